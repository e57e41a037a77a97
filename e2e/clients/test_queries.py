"""Queries, DDL and DML through the ADBC DB-API, errors, and cancellation."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sqe_harness import (
    Background,
    LongQuery,
    assert_adbc_error,
    flatten,
    rows,
    run,
    scalar,
    unique,
    wait_for,
)

Status = adbc_driver_manager.AdbcStatusCode


@pytest.fixture
def schema(conn):
    """A fresh schema in catalog `iceberg` for one test."""
    name = unique("q")
    run(conn, f"CREATE SCHEMA iceberg.{name}")
    return name


# --------------------------------------------------------------------------------------------
# Plain queries


def test_select_literal_fetchall(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT 1 AS x, 'two' AS y")
        assert [d[0] for d in cur.description] == ["x", "y"]
        assert cur.fetchall() == [(1, "two")]


def test_fetch_arrow_table_of_many_batches(conn):
    n = 250_000  # several record batches
    with conn.cursor() as cur:
        cur.execute(f"SELECT value AS v FROM generate_series(1, {n}) ORDER BY value")
        table = cur.fetch_arrow_table()
    assert table.column_names == ["v"]
    assert table.num_rows == n
    col = table.column("v")
    assert col[0].as_py() == 1 and col[n - 1].as_py() == n
    assert pc.sum(col).as_py() == n * (n + 1) // 2


def test_fetchone_and_fetchmany(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM generate_series(1, 5) ORDER BY value")
        assert cur.fetchone() == (1,)
        assert cur.fetchmany(2) == [(2,), (3,)]
        assert cur.fetchall() == [(4,), (5,)]
        assert cur.fetchone() is None


def test_empty_result_keeps_its_schema(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT value AS v FROM generate_series(1, 10) WHERE value > 100")
        table = cur.fetch_arrow_table()
    assert table.num_rows == 0
    assert table.column_names == ["v"]


# --------------------------------------------------------------------------------------------
# DDL and DML


def test_create_insert_select_drop(conn, schema):
    t = f"iceberg.{schema}.people"
    run(conn, f"CREATE TABLE {t} (id INT, name VARCHAR)")
    run(conn, f"INSERT INTO {t} VALUES (1, 'ada'), (2, 'brian'), (3, 'cleo')")
    assert rows(conn, f"SELECT id, name FROM {t} ORDER BY id") == [(1, "ada"), (2, "brian"), (3, "cleo")]
    run(conn, f"INSERT INTO {t} VALUES (4, 'dora')")
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 4
    run(conn, f"DROP TABLE {t}")
    with pytest.raises(adbc_driver_manager.Error) as e:
        rows(conn, f"SELECT * FROM {t}")
    assert_adbc_error(e.value, Status.NOT_FOUND)


def test_all_column_types_round_trip(conn, schema):
    t = f"iceberg.{schema}.typed"
    run(
        conn,
        f"""CREATE TABLE {t} (
            b BOOLEAN, i INT, l BIGINT, r REAL, f FLOAT, d DOUBLE, m DECIMAL(10, 2),
            s VARCHAR, day DATE, ts TIMESTAMP, tstz TIMESTAMP WITH TIME ZONE, bin BYTEA, vb VARBINARY
        )""",
    )
    run(
        conn,
        f"""INSERT INTO {t} VALUES (
            TRUE, 42, 9000000000, 1.5, 2.5, 2.25, 12.34,
            'héllo', DATE '2024-01-02', TIMESTAMP '2024-01-02 03:04:05',
            '2024-01-02T03:04:05Z', X'00FF', X'0A0B'
        )""",
    )
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {t}")
        table = cur.fetch_arrow_table()

    types = {f.name: f.type for f in table.schema}
    assert pa.types.is_boolean(types["b"])
    assert types["i"] == pa.int32()
    assert types["l"] == pa.int64()
    assert types["r"] == pa.float32()
    assert pa.types.is_floating(types["f"])
    assert types["d"] == pa.float64()
    assert types["m"] == pa.decimal128(10, 2)
    assert pa.types.is_string(types["s"]) or pa.types.is_large_string(types["s"]) or pa.types.is_string_view(types["s"])
    assert pa.types.is_date(types["day"])
    assert pa.types.is_timestamp(types["ts"]) and types["ts"].tz is None
    assert pa.types.is_timestamp(types["tstz"]) and types["tstz"].tz is not None
    for col in ("bin", "vb"):
        ty = types[col]
        assert pa.types.is_binary(ty) or pa.types.is_large_binary(ty) or pa.types.is_binary_view(ty), ty

    (row,) = table.to_pylist()
    assert row["b"] is True
    assert row["i"] == 42
    assert row["l"] == 9_000_000_000
    assert row["r"] == 1.5
    assert row["f"] == 2.5
    assert row["d"] == 2.25
    assert row["m"] == Decimal("12.34")
    assert row["s"] == "héllo"
    assert row["day"] == dt.date(2024, 1, 2)
    assert row["ts"] == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert row["tstz"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert row["bin"] == b"\x00\xff"
    assert row["vb"] == b"\x0a\x0b"


def test_partitioned_table(conn, schema):
    t = f"iceberg.{schema}.events"
    run(conn, f"CREATE TABLE {t} (id BIGINT, ts TIMESTAMP, v VARCHAR) PARTITIONED BY (day(ts), bucket(4, id))")
    values = ", ".join(f"({i}, TIMESTAMP '2024-03-{1 + i % 3:02d} {i % 24:02d}:00:00', 'v{i}')" for i in range(30))
    run(conn, f"INSERT INTO {t} VALUES {values}")
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 30
    per_day = rows(conn, f"SELECT CAST(ts AS DATE) AS d, count(*) FROM {t} GROUP BY 1 ORDER BY 1")
    assert per_day == [(dt.date(2024, 3, 1), 10), (dt.date(2024, 3, 2), 10), (dt.date(2024, 3, 3), 10)]
    # a filter on the partition source columns returns exactly the matching rows
    got = rows(
        conn,
        f"SELECT id FROM {t} WHERE ts >= TIMESTAMP '2024-03-02 00:00:00' "
        f"AND ts < TIMESTAMP '2024-03-03 00:00:00' AND id < 10 ORDER BY id",
    )
    assert got == [(1,), (4,), (7,)]
    assert rows(conn, f"SELECT v FROM {t} WHERE id = 17") == [("v17",)]


def test_create_table_as_select_and_insert_select(conn, schema):
    src = f"iceberg.{schema}.src"
    run(conn, f"CREATE TABLE {src} (id BIGINT, name VARCHAR)")
    run(conn, f"INSERT INTO {src} SELECT value, concat('n', CAST(value AS VARCHAR)) FROM generate_series(1, 100)")
    assert scalar(conn, f"SELECT count(*) FROM {src}") == 100

    ctas = f"iceberg.{schema}.big_ids"
    run(conn, f"CREATE TABLE {ctas} AS SELECT id, name FROM {src} WHERE id > 90")
    assert rows(conn, f"SELECT id FROM {ctas} ORDER BY id") == [(i,) for i in range(91, 101)]

    run(conn, f"INSERT INTO {ctas} SELECT id, name FROM {src} WHERE id <= 2")
    assert scalar(conn, f"SELECT count(*) FROM {ctas}") == 12
    assert rows(conn, f"SELECT name FROM {ctas} WHERE id = 2") == [("n2",)]


def test_default_schema_and_three_part_names(conn):
    t = unique("dflt")
    run(conn, f"CREATE TABLE {t} (id INT)")  # unqualified: schema `default`
    run(conn, f"INSERT INTO iceberg.default.{t} VALUES (7)")
    assert scalar(conn, f"SELECT id FROM {t}") == 7
    assert scalar(conn, f"SELECT id FROM iceberg.default.{t}") == 7
    run(conn, f"DROP TABLE {t}")


def test_use_schema_is_per_connection(server, conn, schema):
    run(conn, f"CREATE TABLE iceberg.{schema}.only_here (x INT)")
    run(conn, f"INSERT INTO iceberg.{schema}.only_here VALUES (5)")
    run(conn, f"USE {schema}")
    assert scalar(conn, "SELECT x FROM only_here") == 5
    # another connection still resolves unqualified names in `default`
    other = server.connect()
    try:
        with pytest.raises(adbc_driver_manager.Error) as e:
            rows(other, "SELECT x FROM only_here")
        assert_adbc_error(e.value, Status.NOT_FOUND)
    finally:
        other.close()
    # and the first connection keeps its schema across statements
    assert scalar(conn, "SELECT count(*) FROM only_here") == 1


def test_drop_schema(conn):
    s = unique("gone")
    run(conn, f"CREATE SCHEMA iceberg.{s}")
    assert s in flatten(rows(conn, "SHOW SCHEMAS"))
    run(conn, f"DROP SCHEMA iceberg.{s}")
    assert s not in flatten(rows(conn, "SHOW SCHEMAS"))


def test_explain(conn, schema):
    t = f"iceberg.{schema}.ex"
    run(conn, f"CREATE TABLE {t} (id INT, name VARCHAR)")
    plan_rows = rows(conn, f"EXPLAIN SELECT name FROM {t} WHERE id = 1")
    assert plan_rows, "EXPLAIN returned no rows"
    text = "\n".join(str(v) for v in flatten(plan_rows))
    assert "plan" in text.lower()
    assert "name" in text


def test_execute_update_returns_affected_rows(conn, schema):
    t = f"iceberg.{schema}.upd"
    with conn.cursor() as cur:
        stmt = cur.adbc_statement
        stmt.set_sql_query(f"CREATE TABLE {t} (id INT, name VARCHAR)")
        stmt.execute_update()
        stmt.set_sql_query(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        assert stmt.execute_update() == 3
        stmt.set_sql_query(f"INSERT INTO {t} SELECT id + 10, name FROM {t}")
        assert stmt.execute_update() == 3
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 6


def test_concurrent_connections(server):
    """Several clients querying at once each get their own, correct answers."""
    conns = [server.connect() for _ in range(4)]
    try:

        def work(c, k):
            out = []
            for j in range(5):
                n = 1000 * (k + 1) + j
                out.append(scalar(c, f"SELECT sum(value) FROM generate_series(1, {n})") == n * (n + 1) // 2)
            return out

        jobs = [Background(work, c, k, name=f"client{k}") for k, c in enumerate(conns)]
        for job in jobs:
            job.join(120)
            assert job.error is None, repr(job.error)
            assert job.result == [True] * 5
    finally:
        for c in conns:
            c.close()


# --------------------------------------------------------------------------------------------
# Errors


def test_syntax_error_is_invalid_argument_with_position(conn):
    with conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as e:
            cur.execute("SELEC 1")
        assert_adbc_error(e.value, Status.INVALID_ARGUMENT, "InvalidArgument", "Line: 1, Column:")
        # the same cursor and connection keep working
        cur.execute("SELECT 2 AS two")
        assert cur.fetchall() == [(2,)]
    assert scalar(conn, "SELECT 3") == 3


def test_unknown_table_is_not_found(conn):
    missing = unique("missing")
    with pytest.raises(adbc_driver_manager.Error) as e:
        rows(conn, f"SELECT * FROM iceberg.default.{missing}")
    assert_adbc_error(e.value, Status.NOT_FOUND, missing)
    assert scalar(conn, "SELECT 4") == 4


def test_unknown_schema_is_not_found(conn):
    with pytest.raises(adbc_driver_manager.Error) as e:
        run(conn, f"CREATE TABLE iceberg.{unique('noschema')}.t (x INT)")
    assert_adbc_error(e.value, Status.NOT_FOUND)


def test_unknown_column_is_invalid_argument(conn, schema):
    t = f"iceberg.{schema}.cols"
    run(conn, f"CREATE TABLE {t} (id INT)")
    with pytest.raises(adbc_driver_manager.Error) as e:
        rows(conn, f"SELECT nope FROM {t}")
    assert_adbc_error(e.value, Status.INVALID_ARGUMENT, "nope")


def test_create_existing_table_is_already_exists(conn, schema):
    t = f"iceberg.{schema}.twice"
    run(conn, f"CREATE TABLE {t} (id INT)")
    with pytest.raises(adbc_driver_manager.Error) as e:
        run(conn, f"CREATE TABLE {t} (id INT)")
    assert_adbc_error(e.value, Status.ALREADY_EXISTS)
    assert scalar(conn, f"SELECT count(*) FROM {t}") == 0


def test_error_on_low_level_statement(conn):
    """The plain (unprepared) CommandStatementQuery path reports errors the same way."""
    with conn.cursor() as cur:
        stmt = cur.adbc_statement
        stmt.set_sql_query("SELEC 1")
        with pytest.raises(adbc_driver_manager.Error) as e:
            stmt.execute_query()
        assert_adbc_error(e.value, Status.INVALID_ARGUMENT, "Line: 1, Column:")


# --------------------------------------------------------------------------------------------
# Cancellation


@pytest.mark.slow
def test_cancel_running_query(server_factory):
    """ADBC's cancel aborts the gRPC call of the running statement (the Go driver cancels the
    call's context, i.e. an HTTP/2 RST_STREAM); the server must notice, stop the query and
    free it, and the connection stays usable."""
    server = server_factory()
    conn = server.connect()
    try:
        query = LongQuery.calibrated(conn, target_seconds=90)
        wait_for(
            lambda: server.metric("sqe_active_queries") == 0,
            timeout=15,
            what="sqe_active_queries == 0 before the long query",
        )
        cur = conn.cursor()

        def execute():
            cur.execute(query.sql)
            return cur.fetchall()

        job = Background(execute, name="long-query")

        def active():
            if job.done:
                raise AssertionError(f"query ended before it was cancelled: {job.error or job.result!r}")
            return (server.metric("sqe_active_queries") or 0) >= 1

        wait_for(active, timeout=30, what="sqe_active_queries >= 1")
        cancelled_at = time.monotonic()
        cur.adbc_cancel()
        job.join(30)
        assert job.error is not None, f"query returned {job.result!r} despite the cancel"
        assert isinstance(job.error, adbc_driver_manager.Error), repr(job.error)
        assert job.finished_at - cancelled_at < 10, "execute did not return promptly after the cancel"
        # the server stopped working on it (the query would have run ~90 s)
        wait_for(
            lambda: server.metric("sqe_active_queries") == 0,
            timeout=15,
            what="sqe_active_queries back to 0 after the cancel",
        )
        cur.close()
        assert scalar(conn, "SELECT 1") == 1
        outcomes = {labels.get("outcome") for name, labels, _ in server.metrics() if name == "sqe_queries_total"}
        assert "cancelled" in outcomes or "error" in outcomes, outcomes
    finally:
        conn.close()


def test_cancel_flight_info_before_fetch(server_factory):
    """The Flight RPC `CancelFlightInfo` on a planned query: the server drops it (status
    CANCELLED), counts it as cancelled, and its ticket no longer yields data."""
    import pyarrow.flight as flight

    from sqe_harness import call_options, statement_query_descriptor

    server = server_factory()
    client = server.flight_client()
    info = client.get_flight_info(statement_query_descriptor("SELECT 1 AS x"), call_options())
    serialized = info.serialize()
    # CancelFlightInfoRequest { info = 1 }
    body = bytes([0x0A]) + _varint(len(serialized)) + serialized
    results = list(client.do_action(flight.Action("CancelFlightInfo", body), call_options()))
    # CancelFlightInfoResult { status = 1 }: CANCELLED
    assert [r.body.to_pybytes() for r in results] == [b"\x08\x01"]
    with pytest.raises(Exception, match="not found"):
        client.do_get(info.endpoints[0].ticket, call_options()).read_all()
    wait_for(lambda: server.metric("sqe_active_queries") == 0, timeout=15, what="no active queries")
    assert (server.metric("sqe_queries_total", outcome="cancelled") or 0) >= 1


def test_cancel_flight_info_while_streaming(server_factory):
    """`CancelFlightInfo` on a query whose DoGet is already streaming: the server answers
    CANCELLING, the stream ends with a cancellation error instead of running to the end, and the
    query is counted as cancelled."""
    import time

    import pyarrow.flight as flight

    from sqe_harness import call_options, statement_query_descriptor

    server = server_factory()
    client = server.flight_client()
    # ~12k batches: far more than gRPC buffers, so the query is still running when cancelled.
    info = client.get_flight_info(
        statement_query_descriptor("SELECT value FROM generate_series(1, 100000000)"),
        call_options(),
    )
    reader = client.do_get(info.endpoints[0].ticket, call_options())
    first = reader.read_chunk()
    assert first.data.num_rows > 0
    assert server.metric("sqe_active_queries") == 1

    serialized = info.serialize()
    body = bytes([0x0A]) + _varint(len(serialized)) + serialized
    results = list(client.do_action(flight.Action("CancelFlightInfo", body), call_options()))
    # CancelFlightInfoResult { status = 2 }: CANCELLING (the running stream is told to stop)
    assert [r.body.to_pybytes() for r in results] == [b"\x08\x02"]

    rows = first.data.num_rows
    deadline = time.monotonic() + 30
    with pytest.raises(flight.FlightError, match="(?i)cancel"):
        while time.monotonic() < deadline:
            rows += reader.read_chunk().data.num_rows
    assert rows < 100_000_000, "the stream ran to the end despite the cancel"
    wait_for(lambda: server.metric("sqe_active_queries") == 0, timeout=15, what="no active queries")
    assert (server.metric("sqe_queries_total", outcome="cancelled") or 0) >= 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
