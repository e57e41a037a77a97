"""Catalog metadata: ADBC GetObjects/GetInfo/GetTableSchema/GetTableTypes, SHOW, DESCRIBE and
information_schema."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sqe_harness import flatten, rows, run, unique


@pytest.fixture(scope="module")
def objects_db(server):
    """A schema with two tables, made once for the module: (schema, {table: [columns]})."""
    s = unique("meta")
    tables = {"people": ["id", "name", "born"], "pets": ["pet_id", "owner_id"]}
    c = server.connect()
    try:
        run(c, f"CREATE SCHEMA iceberg.{s}")
        run(c, f"CREATE TABLE iceberg.{s}.people (id INT, name VARCHAR, born DATE)")
        run(c, f"CREATE TABLE iceberg.{s}.pets (pet_id BIGINT, owner_id INT)")
    finally:
        c.close()
    return s, tables


def _objects(conn, **filters) -> list[dict]:
    return conn.adbc_get_objects(depth="all", **filters).read_all().to_pylist()


def _find(objs: list[dict], catalog: str, schema: str, table: str | None = None):
    for cat in objs:
        if cat["catalog_name"] != catalog:
            continue
        for sch in cat["catalog_db_schemas"] or []:
            if sch["db_schema_name"] != schema:
                continue
            if table is None:
                return sch
            for tab in sch["db_schema_tables"] or []:
                if tab["table_name"] == table:
                    return tab
    return None


def test_get_objects_lists_catalog_schemas_tables_columns(conn, objects_db):
    s, tables = objects_db
    objs = _objects(conn)
    assert "iceberg" in [c["catalog_name"] for c in objs]
    assert _find(objs, "iceberg", "default") is not None, "schema `default` missing from GetObjects"
    sch = _find(objs, "iceberg", s)
    assert sch is not None, f"schema {s} missing from GetObjects"
    assert sorted(t["table_name"] for t in sch["db_schema_tables"]) == sorted(tables)
    for name, columns in tables.items():
        tab = _find(objs, "iceberg", s, name)
        assert tab["table_type"] == "TABLE"
        cols = sorted(tab["table_columns"], key=lambda c: c["ordinal_position"])
        assert [c["column_name"] for c in cols] == columns
        assert [c["ordinal_position"] for c in cols] == list(range(1, len(columns) + 1))


def test_get_objects_filters(conn, objects_db):
    s, _ = objects_db
    objs = (
        conn.adbc_get_objects(depth="tables", catalog_filter="iceberg", db_schema_filter=s, table_name_filter="pe%")
        .read_all()
        .to_pylist()
    )
    found = sorted(
        t["table_name"] for c in objs for sch in c["catalog_db_schemas"] or [] for t in sch["db_schema_tables"] or []
    )
    assert found == ["people", "pets"]

    schemas_only = conn.adbc_get_objects(depth="db_schemas", catalog_filter="iceberg").read_all().to_pylist()
    names = [sch["db_schema_name"] for c in schemas_only for sch in c["catalog_db_schemas"] or []]
    assert s in names and "default" in names


def test_get_info_reports_sqe(conn):
    info = conn.adbc_get_info()
    assert info.get("vendor_name") == "SQE", info
    assert info.get("driver_name"), info
    assert info.get("vendor_version"), info


def test_get_table_types(conn):
    assert "TABLE" in conn.adbc_get_table_types()


def test_get_table_schema(conn, objects_db):
    s, _ = objects_db
    schema = conn.adbc_get_table_schema("people", catalog_filter="iceberg", db_schema_filter=s)
    assert schema.names == ["id", "name", "born"]
    assert schema.field("id").type == pa.int32()
    assert pa.types.is_date(schema.field("born").type)


def test_show_schemas(conn, objects_db):
    s, _ = objects_db
    values = flatten(rows(conn, "SHOW SCHEMAS"))
    assert "default" in values and s in values


def test_show_tables(conn, objects_db):
    t = unique("shown")
    run(conn, f"CREATE TABLE {t} (x INT)")  # in `default`, the session's schema
    assert t in flatten(rows(conn, "SHOW TABLES"))
    s, tables = objects_db
    run(conn, f"USE {s}")
    shown = flatten(rows(conn, "SHOW TABLES"))
    for name in tables:
        assert name in shown


def test_describe(conn, objects_db):
    s, _ = objects_db
    described = rows(conn, f"DESCRIBE iceberg.{s}.people")
    assert [r[0] for r in described] == ["id", "name", "born"]


def test_information_schema(conn, objects_db):
    s, tables = objects_db
    got = rows(
        conn,
        f"SELECT table_name FROM information_schema.tables "
        f"WHERE table_catalog = 'iceberg' AND table_schema = '{s}' ORDER BY table_name",
    )
    assert got == [(name,) for name in sorted(tables)]
    cols = rows(
        conn,
        f"SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = '{s}' AND table_name = 'people' ORDER BY ordinal_position",
    )
    assert cols == [("id",), ("name",), ("born",)]


def test_new_table_is_visible_to_other_connections(server, conn):
    """A table created on one connection shows up in another's metadata right away."""
    s = unique("vis")
    run(conn, f"CREATE SCHEMA iceberg.{s}")
    run(conn, f"CREATE TABLE iceberg.{s}.fresh (x INT)")
    other = server.connect()
    try:
        assert _find(_objects(other, db_schema_filter=s), "iceberg", s, "fresh") is not None
    finally:
        other.close()
