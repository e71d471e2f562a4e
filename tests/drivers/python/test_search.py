"""Equality search on encrypted columns with psycopg 3 through the pgseal proxy: `=`, `<>`,
`IN`, `NOT IN`, NULL parameters, a parameter both stored and searched for, prepared and binary
statements, a unique index with `ON CONFLICT`, and the e-mail normalisation.

The test works on a table of its own, `search_people`, with searchable pgseal columns in
encrypted mode and plain `text` in plaintext mode, and drops it at the end."""

import psycopg
import pytest
from psycopg import errors


ROWS = [
    (1, "ann", "ann@example.com", "+41 79 000 00 01"),
    (2, "bob", "bob@example.com", "+41 79 000 00 02"),
    (3, "bob2", "bob@example.com", None),
    (4, "nil", None, "+41 79 000 00 04"),
]


@pytest.fixture()
def conn(proxy_url, encrypted):
    email, phone = ("pgseal.email", "pgseal.phone") if encrypted else ("text", "text")
    with psycopg.connect(proxy_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS search_people")
        conn.execute(
            f"CREATE TABLE search_people (id int PRIMARY KEY, name text, email {email}, "
            f"phone {phone})"
        )
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO search_people VALUES (%s, %s, %s, %s)", ROWS)
        yield conn
        conn.execute("DROP TABLE search_people")


def ids(conn, sql, params=(), **kwargs):
    return [r[0] for r in conn.execute(sql, params, **kwargs).fetchall()]


def test_equality_predicates(conn):
    q = "SELECT id FROM search_people WHERE {} ORDER BY id"
    assert ids(conn, q.format("email = %s"), ["bob@example.com"]) == [2, 3]
    assert ids(conn, q.format("%s = email"), ["ann@example.com"]) == [1]
    assert ids(conn, q.format("email <> %s"), ["bob@example.com"]) == [1]
    assert ids(conn, q.format("email = %s"), [None]) == []
    assert ids(conn, q.format("email IN (%s, %s)"), ["ann@example.com", "x@y"]) == [1]
    assert ids(conn, q.format("email NOT IN (%s, %s)"), ["ann@example.com", None]) == []
    assert ids(conn, q.format("email IS NULL")) == [4]
    assert ids(conn, q.format("email = %s AND name = %s"), ["bob@example.com", "bob2"]) == [3]
    assert ids(conn, q.format("email = 'ann@example.com' OR phone = %s"), ["+41 79 000 00 04"]) == [1, 4]
    assert ids(
        conn,
        "SELECT a.id FROM search_people a JOIN search_people b ON b.id = a.id AND b.email = %s "
        "ORDER BY 1",
        ["bob@example.com"],
    ) == [2, 3]
    # Server-side prepared, then executed with other values; binary results and parameters.
    for email, want in [("ann@example.com", [1]), ("bob@example.com", [2, 3]), ("no@x", [])]:
        assert ids(conn, q.format("email = %s"), [email], prepare=True) == want
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT id, email FROM search_people WHERE email = %s", ["ann@example.com"])
        assert cur.fetchall() == [(1, "ann@example.com")]


def test_one_parameter_stored_and_searched(conn):
    cur = conn.execute(
        "UPDATE search_people SET email = %(e)s, name = 'same' WHERE email = %(e)s",
        {"e": "bob@example.com"},
    )
    assert cur.rowcount == 2
    cur = conn.execute(
        "DELETE FROM search_people WHERE email = %s RETURNING id, email", ["bob@example.com"]
    )
    assert sorted(cur.fetchall()) == [(2, "bob@example.com"), (3, "bob@example.com")]


def test_unique_index_and_on_conflict(conn):
    conn.execute("DELETE FROM search_people WHERE id = 3")
    conn.execute("CREATE UNIQUE INDEX search_people_email ON search_people (email)")
    with pytest.raises(errors.UniqueViolation):
        conn.execute("INSERT INTO search_people (id, email) VALUES (9, %s)", ["ann@example.com"])
    conn.execute(
        "INSERT INTO search_people (id, name, email) VALUES (9, 'new', %s) "
        "ON CONFLICT (email) DO UPDATE SET name = 'upserted'",
        ["ann@example.com"],
    )
    assert conn.execute("SELECT name FROM search_people WHERE id = 1").fetchone() == ("upserted",)


def test_normalisation_in_encrypted_mode(conn, encrypted):
    found = ids(conn, "SELECT id FROM search_people WHERE email = %s", ["  ANN@Example.com"])
    # A searchable pgseal.email compares lower-cased, trimmed text; plain text does not.
    assert found == ([1] if encrypted else [])
    found = ids(conn, "SELECT id FROM search_people WHERE phone = %s", ["41790000002"])
    assert found == ([2] if encrypted else [])
