"""psycopg 3 through the pgseal proxy: text and binary modes, server-side prepared statements,
and transactions that fail and recover."""

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from conftest import COLUMNS, UPDATES, check_stored, normalise, sample_rows


def adapt(column, value):
    if column == "c_jsonb" and value is not None:
        return Jsonb(value)
    return value


def insert_sql(placeholder):
    cols = ", ".join(COLUMNS)
    marks = ", ".join([placeholder] * (len(COLUMNS) + 2))
    return f"INSERT INTO vault (id, note, {cols}) VALUES ({marks})"


SELECT_ROW = f"SELECT id, note, {', '.join(COLUMNS)} FROM vault WHERE id = %s"


def assert_rows(cur, rows, placeholder="%s"):
    for row_id, note, values in rows:
        got = cur.execute(SELECT_ROW.replace("%s", placeholder), [row_id]).fetchone()
        assert got is not None, f"row {row_id} is missing"
        assert got[0] == row_id and got[1] == note
        for column, seen in zip(COLUMNS, got[2:]):
            assert normalise(column, seen) == normalise(column, values[column]), (
                f"row {row_id} {column}: read {seen!r}, wrote {values[column]!r}"
            )


def assert_stored_equal(direct_url, encrypted, rows):
    stored = check_stored(direct_url, encrypted, [r[0] for r in rows])
    if encrypted:
        return
    for row_id, _, values in rows:
        for column in COLUMNS:
            assert normalise(column, stored[row_id][column]) == normalise(
                column, values[column]
            ), f"row {row_id} {column} stored differently"


def write_and_update(conn, cur, placeholder):
    rows = sample_rows()
    sql = insert_sql(placeholder)
    for row_id, note, values in rows:
        cur.execute(sql, [row_id, note] + [adapt(c, values[c]) for c in COLUMNS])
        assert cur.rowcount == 1
    conn.commit()
    assert_rows(cur, rows, placeholder)

    sets = ", ".join(f"{c} = {placeholder}" for c in UPDATES)
    for row_id, _, values in rows:
        cur.execute(
            f"UPDATE vault SET {sets} WHERE id = {placeholder}",
            [adapt(c, v) for c, v in UPDATES.items()] + [row_id],
        )
        assert cur.rowcount == 1
        values.update(UPDATES)
    conn.commit()
    assert_rows(cur, rows, placeholder)
    return rows


@pytest.fixture
def clean(direct_url):
    """Each test starts with an empty vault (the database is shared by the whole session)."""
    with psycopg.connect(direct_url, autocommit=True) as conn:
        conn.execute("TRUNCATE vault CASCADE")
    yield


def test_text_mode_round_trips_every_type(clean, proxy_url, direct_url, encrypted):
    with psycopg.connect(proxy_url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        with conn.cursor() as cur:
            rows = write_and_update(conn, cur, "%s")
    assert_stored_equal(direct_url, encrypted, rows)


def test_binary_mode_round_trips_every_type(clean, proxy_url, direct_url, encrypted):
    with psycopg.connect(proxy_url) as conn:
        conn.execute("SET TimeZone = 'Pacific/Chatham'")
        # %b sends parameters in binary, binary=True asks for binary results.
        with conn.cursor(binary=True) as cur:
            rows = write_and_update(conn, cur, "%b")
            cur.execute("SELECT c_int8, c_date FROM vault WHERE id = 1")
            assert cur.pgresult.fformat(0) == 1, "results came back in binary"
    assert_stored_equal(direct_url, encrypted, rows)


def test_prepared_statements_are_reused(clean, proxy_url, direct_url, encrypted):
    insert = (
        "INSERT INTO vault (id, note, c_text, c_int8, c_bytea, c_date, c_numeric, c_email) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
    select = "SELECT c_text, c_int8, c_bytea, c_date, c_numeric, c_email FROM vault WHERE id = %s"
    rows = sample_rows()
    template = rows[0][2]

    def expected(i):
        return (
            f"prepared {i} ✓",
            i * 1_000_003 - 7,
            bytes([i % 256]) * i,
            template["c_date"].replace(day=1 + i % 28),
            template["c_numeric"] + i,
            f"user{i}@example.com",
        )

    with psycopg.connect(proxy_url, prepare_threshold=0) as conn:
        for binary in (False, True):
            with conn.cursor(binary=binary) as cur:
                base = 1000 if binary else 0
                for i in range(base, base + 40):
                    cur.execute(insert, [i, "prepared", *expected(i - base)], prepare=True)
                conn.commit()
                for i in reversed(range(base, base + 40)):
                    got = cur.execute(select, [i], prepare=True).fetchone()
                    got = (got[0], got[1], bytes(got[2]), got[3], got[4], got[5])
                    assert got == expected(i - base), f"row {i} (binary={binary})"
        # Both statements were prepared on the server once per format and then reused.
        names = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
        assert names >= 2
    check_stored(direct_url, encrypted, list(range(40)) + list(range(1000, 1040)))


def test_a_failed_transaction_rolls_back_and_the_session_recovers(
    clean, proxy_url, direct_url, encrypted
):
    rows = sample_rows()
    sql = insert_sql("%s")
    params = lambda r: [r[0], r[1]] + [adapt(c, r[2][c]) for c in COLUMNS]  # noqa: E731
    with psycopg.connect(proxy_url, autocommit=True) as conn:
        with pytest.raises(errors.UniqueViolation):
            with conn.transaction():
                conn.execute(sql, params(rows[0]))
                conn.execute(sql, params(rows[0]))
        assert conn.execute("SELECT count(*) FROM vault").fetchone()[0] == 0

        # Manual: the failure aborts the transaction until ROLLBACK.
        conn.execute("BEGIN")
        conn.execute(sql, params(rows[0]))
        with pytest.raises(errors.DivisionByZero):
            conn.execute("UPDATE vault SET c_int8 = %s WHERE id = 1 / %s", [5, 0])
        with pytest.raises(errors.InFailedSqlTransaction):
            conn.execute("SELECT c_text FROM vault WHERE id = %s", [1])
        conn.execute("ROLLBACK")

        # A nested block is a savepoint: its failure is undone, the rest commits.
        with conn.transaction():
            conn.execute(sql, params(rows[0]))
            with pytest.raises(errors.DivisionByZero):
                with conn.transaction():
                    conn.execute("UPDATE vault SET c_int8 = %s WHERE id = 1 / %s", [5, 0])
            conn.execute(sql, params(rows[1]))
        with conn.cursor() as cur:
            assert_rows(cur, rows[:2])
    assert_stored_equal(direct_url, encrypted, rows[:2])


def test_pipeline_mode_with_an_error_in_the_middle(clean, proxy_url, direct_url, encrypted):
    rows = sample_rows()
    sql = insert_sql("%s")
    params = lambda r: [r[0], r[1]] + [adapt(c, r[2][c]) for c in COLUMNS]  # noqa: E731
    with psycopg.connect(proxy_url, autocommit=True) as conn:
        with pytest.raises(errors.UniqueViolation):
            with conn.pipeline():
                conn.execute(sql, params(rows[0]))
                conn.execute(sql, params(rows[1]))
                conn.execute(sql, params(rows[1]))
                conn.execute(sql, params(rows[2]))
        # One Sync closes the pipeline: its statements were one implicit transaction, and the
        # error rolled all of them back.
        assert conn.execute("SELECT count(*) FROM vault").fetchone()[0] == 0
        with conn.pipeline() as pipeline:
            conn.execute(sql, params(rows[0]))
            pipeline.sync()
            conn.execute(sql, params(rows[1]))
            pipeline.sync()
            with pytest.raises(errors.UniqueViolation):
                conn.execute(sql, params(rows[1]))
                pipeline.sync()
        # With a Sync after each statement, only the failing one is lost.
        ids = [r[0] for r in conn.execute("SELECT id FROM vault ORDER BY id").fetchall()]
        assert ids == [1, 2]
        with conn.cursor() as cur:
            assert_rows(cur, rows[:2])
    assert_stored_equal(direct_url, encrypted, rows[:2])
