"""The TPC-H sample (schema `tpch`, scale factor 0.01) that a server loads on its first start.

All tests here share the one session-wide `sample_server`, so the load is paid once.
"""

from __future__ import annotations

import pytest

from sqe_harness import flatten, rows, scalar

pytestmark = pytest.mark.sample

TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def test_sample_row_counts(sample_conn):
    assert scalar(sample_conn, "SELECT count(*) FROM iceberg.tpch.nation") == 25
    assert scalar(sample_conn, "SELECT count(*) FROM iceberg.tpch.region") == 5
    assert scalar(sample_conn, "SELECT count(*) FROM iceberg.tpch.orders") == 15_000
    assert scalar(sample_conn, "SELECT count(*) FROM iceberg.tpch.customer") == 1_500
    assert scalar(sample_conn, "SELECT count(*) FROM iceberg.tpch.lineitem") > 50_000


def test_sample_tables_are_listed(sample_conn):
    assert "tpch" in flatten(rows(sample_conn, "SHOW SCHEMAS"))
    objs = sample_conn.adbc_get_objects(depth="tables", catalog_filter="iceberg", db_schema_filter="tpch")
    names = sorted(
        t["table_name"]
        for c in objs.read_all().to_pylist()
        for s in c["catalog_db_schemas"] or []
        for t in s["db_schema_tables"] or []
    )
    assert names == TPCH_TABLES


def test_join_and_group_by(sample_conn):
    got = rows(
        sample_conn,
        "SELECT r.r_name, count(*) AS nations FROM iceberg.tpch.nation n "
        "JOIN iceberg.tpch.region r ON n.n_regionkey = r.r_regionkey "
        "GROUP BY r.r_name ORDER BY r.r_name",
    )
    assert got == [("AFRICA", 5), ("AMERICA", 5), ("ASIA", 5), ("EUROPE", 5), ("MIDDLE EAST", 5)]


def test_tpch_q1_shape(sample_conn):
    """TPC-H Q1 (pricing summary): the groups partition lineitem."""
    with sample_conn.cursor() as cur:
        cur.execute(
            """
            SELECT l_returnflag, l_linestatus,
                   sum(l_quantity) AS sum_qty,
                   sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
                   avg(l_discount) AS avg_disc,
                   count(*) AS count_order
            FROM iceberg.tpch.lineitem
            WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY
            GROUP BY l_returnflag, l_linestatus
            ORDER BY l_returnflag, l_linestatus
            """
        )
        table = cur.fetch_arrow_table()
    groups = list(zip(table.column("l_returnflag").to_pylist(), table.column("l_linestatus").to_pylist()))
    assert groups == [("A", "F"), ("N", "F"), ("N", "O"), ("R", "F")]
    in_q1 = scalar(
        sample_conn,
        "SELECT count(*) FROM iceberg.tpch.lineitem WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY",
    )
    assert sum(table.column("count_order").to_pylist()) == in_q1
    assert all(0 <= d <= 0.1 for d in table.column("avg_disc").to_pylist())


def test_tpch_q3_style_join(sample_conn):
    """A three-way join with filters, aggregation and LIMIT returns well-formed rows."""
    got = rows(
        sample_conn,
        """
        SELECT l.l_orderkey, sum(l.l_extendedprice * (1 - l.l_discount)) AS revenue
        FROM iceberg.tpch.customer c
        JOIN iceberg.tpch.orders o ON c.c_custkey = o.o_custkey
        JOIN iceberg.tpch.lineitem l ON l.l_orderkey = o.o_orderkey
        WHERE c.c_mktsegment = 'BUILDING' AND o.o_orderdate < DATE '1995-03-15'
          AND l.l_shipdate > DATE '1995-03-15'
        GROUP BY l.l_orderkey
        ORDER BY revenue DESC
        LIMIT 10
        """,
    )
    assert len(got) == 10
    revenues = [float(r[1]) for r in got]
    assert revenues == sorted(revenues, reverse=True)
    assert len({r[0] for r in got}) == 10
