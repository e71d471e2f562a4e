"""asyncpg through the pgseal proxy: extended protocol with binary formats throughout,
prepared statements, type introspection (asyncpg queries pg_type for OIDs it does not know),
and transactions that fail and recover."""

import asyncio
import json

import asyncpg
import psycopg
import pytest

from conftest import COLUMNS, UPDATES, check_stored, normalise, sample_rows


def adapt(column, value):
    # asyncpg takes and returns jsonb as its text.
    if column == "c_jsonb" and value is not None:
        return json.dumps(value)
    return value


def read(column, value):
    if column == "c_jsonb" and value is not None:
        return json.loads(value)
    return normalise(column, value)


INSERT = "INSERT INTO vault (id, note, {cols}) VALUES ({marks})".format(
    cols=", ".join(COLUMNS),
    marks=", ".join(f"${i}" for i in range(1, len(COLUMNS) + 3)),
)
SELECT_ROW = f"SELECT id, note, {', '.join(COLUMNS)} FROM vault WHERE id = $1"


def params(row):
    row_id, note, values = row
    return [row_id, note] + [adapt(c, values[c]) for c in COLUMNS]


async def assert_rows(conn, rows):
    stmt = await conn.prepare(SELECT_ROW)
    for row_id, note, values in rows:
        got = await stmt.fetchrow(row_id)
        assert got is not None, f"row {row_id} is missing"
        assert got["id"] == row_id and got["note"] == note
        for column in COLUMNS:
            assert read(column, got[column]) == normalise(column, values[column]), (
                f"row {row_id} {column}: read {got[column]!r}, wrote {values[column]!r}"
            )


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def clean(direct_url):
    with psycopg.connect(direct_url, autocommit=True) as conn:
        conn.execute("TRUNCATE vault CASCADE")
    yield


def test_every_type_round_trips_in_binary(clean, proxy_url, direct_url, encrypted):
    rows = sample_rows()

    async def scenario():
        conn = await asyncpg.connect(proxy_url)
        try:
            for row in rows:
                assert await conn.execute(INSERT, *params(row)) == "INSERT 0 1"
            await assert_rows(conn, rows)
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(UPDATES, start=1))
            update = f"UPDATE vault SET {sets} WHERE id = ${len(UPDATES) + 1}"
            for row_id, _, values in rows:
                args = [adapt(c, v) for c, v in UPDATES.items()]
                assert await conn.execute(update, *args, row_id) == "UPDATE 1"
                values.update(UPDATES)
            await assert_rows(conn, rows)
        finally:
            await conn.close()

    run(scenario())
    stored = check_stored(direct_url, encrypted, [r[0] for r in rows])
    if not encrypted:
        for row_id, _, values in rows:
            for column in COLUMNS:
                seen = stored[row_id][column]
                if column == "c_jsonb" and isinstance(seen, str):
                    seen = json.loads(seen)
                assert normalise(column, seen) == normalise(column, values[column])


def test_prepared_statement_reused_with_executemany(clean, proxy_url, direct_url, encrypted):
    async def scenario():
        conn = await asyncpg.connect(proxy_url)
        try:
            insert = await conn.prepare(
                "INSERT INTO vault (id, note, c_text, c_int4, c_uuid, c_timestamptz, c_jsonb) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)"
            )
            template = sample_rows()[0][2]
            expected = {
                i: (
                    f"asyncpg {i} ✓",
                    -31 * i,
                    template["c_uuid"],
                    template["c_timestamptz"],
                    json.dumps({"n": i, "tags": ["x"] * (i % 4)}),
                )
                for i in range(60)
            }
            for i in range(30):
                await insert.fetch(i, "prepared", *expected[i])
            await conn.executemany(
                "INSERT INTO vault (id, note, c_text, c_int4, c_uuid, c_timestamptz, c_jsonb) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [(i, "many", *expected[i]) for i in range(30, 60)],
            )
            select = await conn.prepare(
                "SELECT c_text, c_int4, c_uuid, c_timestamptz, c_jsonb FROM vault WHERE id = $1"
            )
            for i in reversed(range(60)):
                got = await select.fetchrow(i)
                assert (got[0], got[1], got[2], got[3]) == expected[i][:4], f"row {i}"
                assert json.loads(got[4]) == json.loads(expected[i][4])
            types = [a.name for a in select.get_attributes()]
            assert types == ["c_text", "c_int4", "c_uuid", "c_timestamptz", "c_jsonb"]
            described = [a.type.name for a in select.get_attributes()]
            assert described == ["text", "int4", "uuid", "timestamptz", "jsonb"], (
                "the proxy describes each column with its logical type"
            )
        finally:
            await conn.close()

    run(scenario())
    check_stored(direct_url, encrypted, list(range(60)))


def test_type_introspection_through_the_proxy(clean, proxy_url, direct_url, encrypted):
    """An enum, a domain and an array of them are OIDs asyncpg does not know: it looks them up
    in pg_type (a large catalog query) through the proxy before decoding the rows."""

    async def scenario():
        conn = await asyncpg.connect(proxy_url)
        try:
            await conn.execute(
                "CREATE TYPE mood AS ENUM ('calm', 'stormy');"
                "CREATE DOMAIN short_note AS text CHECK (length(VALUE) < 20);"
                "CREATE TABLE moods (id bigint PRIMARY KEY REFERENCES vault (id),"
                "  m mood NOT NULL, history mood[] NOT NULL, remark short_note)"
            )
            rows = sample_rows()[:2]
            for row in rows:
                await conn.execute(INSERT, *params(row))
            await conn.executemany(
                "INSERT INTO moods (id, m, history, remark) VALUES ($1, $2, $3, $4)",
                [(1, "calm", ["stormy", "calm"], "fine"), (2, "stormy", [], None)],
            )
            got = await conn.fetch(
                "SELECT v.id, v.c_text, v.c_email, m.m, m.history, m.remark "
                "FROM vault v JOIN moods m ON m.id = v.id ORDER BY v.id"
            )
            assert [tuple(r) for r in got] == [
                (1, rows[0][2]["c_text"], rows[0][2]["c_email"], "calm", ["stormy", "calm"], "fine"),
                (2, rows[1][2]["c_text"], rows[1][2]["c_email"], "stormy", [], None),
            ]
        finally:
            await conn.close()

    run(scenario())
    check_stored(direct_url, encrypted, [1, 2])


def test_a_failed_transaction_rolls_back_and_the_connection_recovers(
    clean, proxy_url, direct_url, encrypted
):
    rows = sample_rows()

    async def scenario():
        conn = await asyncpg.connect(proxy_url)
        try:
            with pytest.raises(asyncpg.UniqueViolationError):
                async with conn.transaction():
                    await conn.execute(INSERT, *params(rows[0]))
                    await conn.execute(INSERT, *params(rows[0]))
            assert await conn.fetchval("SELECT count(*) FROM vault") == 0

            tx = conn.transaction()
            await tx.start()
            await conn.execute(INSERT, *params(rows[0]))
            with pytest.raises(asyncpg.DivisionByZeroError):
                await conn.execute("UPDATE vault SET c_int8 = $1 WHERE id = 1 / $2", 5, 0)
            with pytest.raises(asyncpg.InFailedSQLTransactionError):
                await conn.fetchval("SELECT c_text FROM vault WHERE id = $1", 1)
            await tx.rollback()

            async with conn.transaction():
                await conn.execute(INSERT, *params(rows[0]))
                with pytest.raises(asyncpg.DivisionByZeroError):
                    async with conn.transaction():
                        await conn.execute(
                            "UPDATE vault SET c_int8 = $1 WHERE id = 1 / $2", 5, 0
                        )
                await conn.execute(INSERT, *params(rows[1]))
            await assert_rows(conn, rows[:2])
        finally:
            await conn.close()

    run(scenario())
    check_stored(direct_url, encrypted, [1, 2])
