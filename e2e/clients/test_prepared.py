"""Prepared statements with parameters (Flight SQL CreatePreparedStatement + DoPut binding).

Note: the ADBC DB-API prepares every statement it executes (`cur.execute` calls
`AdbcStatementPrepare` first), so every other module exercises prepared statements without
parameters too; this one is about parameter binding.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from sqe_harness import rows, run, scalar, unique


@pytest.fixture
def people(conn):
    """A table with three rows in a fresh schema; yields its three-part name."""
    s = unique("prep")
    t = f"iceberg.{s}.people"
    run(conn, f"CREATE SCHEMA iceberg.{s}")
    run(conn, f"CREATE TABLE {t} (id INT, name VARCHAR)")
    run(conn, f"INSERT INTO {t} VALUES (1, 'ada'), (2, 'brian'), (3, 'cleo')")
    return t


def test_select_with_one_parameter(conn, people):
    with conn.cursor() as cur:
        cur.execute(f"SELECT name FROM {people} WHERE id = ?", parameters=(2,))
        assert cur.fetchall() == [("brian",)]


def test_reexecute_with_new_parameters(conn, people):
    """The cursor keeps the prepared statement for the same SQL and binds new values."""
    sql = f"SELECT name FROM {people} WHERE id = ?"
    with conn.cursor() as cur:
        cur.execute(sql, parameters=(1,))
        assert cur.fetchall() == [("ada",)]
        cur.execute(sql, parameters=(3,))
        assert cur.fetchall() == [("cleo",)]
        cur.execute(sql, parameters=(99,))
        assert cur.fetchall() == []


def test_several_parameters_of_different_types(conn, people):
    with conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {people} WHERE id >= ? AND name <> ? ORDER BY id", parameters=(2, "cleo"))
        assert cur.fetchall() == [(2,)]


def test_string_parameter_is_not_sql(conn, people):
    """A bound value is data, never SQL text."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {people} WHERE name = ?", parameters=("x' OR '1'='1",))
        assert cur.fetchall() == [(0,)]
    assert scalar(conn, f"SELECT count(*) FROM {people}") == 3


def test_parameter_schema_of_prepared_statement(conn, people):
    with conn.cursor() as cur:
        schema = cur.adbc_prepare(f"SELECT name FROM {people} WHERE id = ?")
        # servers may decline to describe parameters (then ADBC returns None)
        if schema is not None:
            assert len(schema) == 1


def test_executemany_insert(conn, people):
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {people} VALUES (?, ?)", [(10, "a"), (11, "b")])
        assert cur.rowcount == 2
    assert rows(conn, f"SELECT id, name FROM {people} WHERE id >= 10 ORDER BY id") == [(10, "a"), (11, "b")]


def test_executemany_with_arrow_parameters(conn, people):
    batch = pa.record_batch(
        [pa.array(range(100, 150), pa.int32()), pa.array([f"p{i}" for i in range(100, 150)])],
        names=["0", "1"],
    )
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {people} VALUES (?, ?)", batch)
    assert scalar(conn, f"SELECT count(*) FROM {people} WHERE id >= 100") == 50
    assert rows(conn, f"SELECT name FROM {people} WHERE id = 149") == [("p149",)]


def test_insert_with_parameters_via_execute(conn, people):
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {people} VALUES (?, ?)", parameters=(20, "zed"))
        cur.fetchall()
    assert rows(conn, f"SELECT name FROM {people} WHERE id = 20") == [("zed",)]
