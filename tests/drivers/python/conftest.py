"""Shared fixtures of the Python driver tests (psycopg 3 and asyncpg) through the pgseal proxy.

The Rust test `crates/e2e/tests/python_drivers.rs` creates a fresh database with the table
`vault` (see crates/e2e/tests/common/mod.rs), starts the proxy, and runs pytest here with:

* ``PGSEAL_PROXY_URL``: the database through the proxy;
* ``PGSEAL_DIRECT_URL``: the same database straight to PostgreSQL, to check what is stored;
* ``PGSEAL_E2E_MODE``: ``encrypted`` (the columns are ``pgseal.*`` domains: the stored bytes
  must be ciphertext) or ``plaintext`` (the twin schema: the stored values must be the values).
"""

import datetime as dt
import os
import uuid
from decimal import Decimal

import pytest

# Column name -> pgseal logical type tag (docs/format.md 2.1), in table order.
TYPE_TAGS = {
    "c_bool": 1,
    "c_int2": 2,
    "c_int4": 3,
    "c_int8": 4,
    "c_float4": 5,
    "c_float8": 6,
    "c_numeric": 7,
    "c_text": 8,
    "c_varchar": 9,
    "c_bytea": 10,
    "c_date": 11,
    "c_time": 12,
    "c_timestamp": 13,
    "c_timestamptz": 14,
    "c_uuid": 15,
    "c_jsonb": 16,
    "c_email": 8,
    "c_phone": 8,
}
COLUMNS = list(TYPE_TAGS)
SEARCHABLE = {"c_email", "c_phone"}
CIPHERTEXT_MAGIC = 0xB5


def sample_rows():
    """(id, note, {column: value}) rows with Python values of every type; one all-NULL row."""
    utc = dt.timezone.utc
    return [
        (
            1,
            "ordinary",
            {
                "c_bool": True,
                "c_int2": 12345,
                "c_int4": -2_000_000_000,
                "c_int8": 9_007_199_254_740_993,
                "c_float4": 1.5,
                "c_float8": -0.1,
                "c_numeric": Decimal("12345.67890"),
                "c_text": "Sun in Leo, Moon in Pisces ☽",
                "c_varchar": "varchar value",
                "c_bytea": b"\x00\x01\x02\xb5\xff",
                "c_date": dt.date(2024, 2, 29),
                "c_time": dt.time(13, 45, 30, 123456),
                "c_timestamp": dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
                "c_timestamptz": dt.datetime(2024, 7, 1, 12, 0, tzinfo=utc),
                "c_uuid": uuid.UUID("123e4567-e89b-12d3-a456-426614174000"),
                "c_jsonb": {"b": [True, None], "a": 1.5},
                "c_email": "Ada@Example.com",
                "c_phone": "+44 20 7946 0018",
            },
        ),
        (
            2,
            "edges",
            {
                "c_bool": False,
                "c_int2": -32768,
                "c_int4": 2_147_483_647,
                "c_int8": -9_223_372_036_854_775_808,
                "c_float4": -2.5e-3,
                "c_float8": 1e-300,
                "c_numeric": Decimal("-0.000100"),
                "c_text": "",
                "c_varchar": "ünïcødé 🦀 'quoted' \"double\" \\ back",
                "c_bytea": b"",
                # date.min would be -infinity to asyncpg, which psycopg cannot read back.
                "c_date": dt.date(1, 1, 2),
                "c_time": dt.time(0, 0),
                "c_timestamp": dt.datetime(9999, 12, 31, 23, 59, 59),
                "c_timestamptz": dt.datetime(1970, 1, 1, tzinfo=utc),
                "c_uuid": uuid.UUID(int=(1 << 128) - 1),
                "c_jsonb": ["a \"string\" with ☃", 0, {}],
                "c_email": "  MiXeD@Case.ORG ",
                "c_phone": "(555) 010-9999",
            },
        ),
        (3, "nulls", {c: None for c in COLUMNS}),
    ]


UPDATES = {
    "c_text": "updated text ✓",
    "c_int8": -42,
    "c_numeric": Decimal("0.5"),
    "c_date": dt.date(1970, 1, 1),
    "c_timestamptz": dt.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone.utc),
    "c_bytea": b"\xde\xad\xbe\xef",
    "c_bool": True,
    "c_email": "new@example.org",
}


def normalise(column, value):
    """The value as the driver returns it, for comparison with what was written."""
    if value is None:
        return None
    if column == "c_float4":
        # real keeps 24 bits of mantissa: compare at that precision.
        return float(f"{value:.6g}")
    if isinstance(value, memoryview):
        return bytes(value)
    return value


@pytest.fixture(scope="session")
def proxy_url():
    url = os.environ.get("PGSEAL_PROXY_URL")
    if not url:
        pytest.skip("PGSEAL_PROXY_URL is not set: run these through `cargo test -p pgseal-e2e`")
    return url


@pytest.fixture(scope="session")
def direct_url():
    url = os.environ.get("PGSEAL_DIRECT_URL")
    if not url:
        pytest.skip("PGSEAL_DIRECT_URL is not set: run these through `cargo test -p pgseal-e2e`")
    return url


@pytest.fixture(scope="session")
def encrypted():
    mode = os.environ.get("PGSEAL_E2E_MODE", "plaintext")
    assert mode in ("encrypted", "plaintext"), f"unknown PGSEAL_E2E_MODE {mode!r}"
    return mode == "encrypted"


def check_stored(direct_url, encrypted, ids):
    """Checks, straight from PostgreSQL, that each non-NULL value of the rows `ids` is stored
    as a pgseal ciphertext of its column's type (encrypted mode), or is not (plaintext mode).
    Returns {id: {column: stored value}} as psycopg reads it directly."""
    import psycopg

    cols = ", ".join(COLUMNS)
    with psycopg.connect(direct_url) as conn:
        rows = conn.execute(
            f"SELECT id, {cols} FROM vault WHERE id = ANY(%s) ORDER BY id", [list(ids)]
        ).fetchall()
    assert [r[0] for r in rows] == sorted(ids)
    stored = {}
    for row in rows:
        stored[row[0]] = dict(zip(COLUMNS, row[1:]))
        for column, value in zip(COLUMNS, row[1:]):
            if value is None:
                continue
            if encrypted:
                raw = bytes(value)
                assert len(raw) >= 52, f"row {row[0]} {column}: too short for a ciphertext"
                assert raw[0] == CIPHERTEXT_MAGIC, f"row {row[0]} {column}: not a ciphertext"
                assert raw[1] == 1, f"row {row[0]} {column}: format version"
                assert raw[2] == TYPE_TAGS[column], f"row {row[0]} {column}: type tag"
                assert raw[3] == (1 if column in SEARCHABLE else 0), f"{column}: index flag"
            else:
                assert not (
                    isinstance(value, (bytes, memoryview))
                    and column != "c_bytea"
                ), f"row {row[0]} {column}: the plaintext twin stores typed values"
    return stored
