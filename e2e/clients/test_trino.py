"""SQE's Trino HTTP protocol through the real `trino` Python client (DB-API, SQLAlchemy,
pandas) and through raw `/v1/statement` requests where the client hides what matters (pages,
headers, cancel, abandoned queries)."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy
import trino
from sqlalchemy import inspect

from sqe_harness import LongQuery, http_get, unique, wait_for
from trino_protocol import SQE_CATALOG, SQE_SCHEMA, connect, post, request, statement

TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


@pytest.fixture
def tconn(sample_server):
    c = connect(sample_server)
    try:
        yield c
    finally:
        c.close()


def one(conn, sql: str, params=None):
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur.fetchall()


# --------------------------------------------------------------------------------------------
# DB-API


def test_fetchone_fetchmany_fetchall_and_description(tconn):
    cur = tconn.cursor()
    cur.execute("SELECT n_nationkey, n_name, n_regionkey FROM nation ORDER BY n_nationkey")
    assert [d[0] for d in cur.description] == ["n_nationkey", "n_name", "n_regionkey"]
    assert [d[1] for d in cur.description] == ["bigint", "varchar", "bigint"]
    assert cur.fetchone() == [0, "ALGERIA", 0]
    assert cur.fetchmany(2) == [[1, "ARGENTINA", 1], [2, "BRAZIL", 1]]
    rest = cur.fetchall()
    assert len(rest) == 22 and rest[-1] == [24, "UNITED STATES", 1]
    assert cur.fetchone() is None


def test_qmark_parameters(tconn):
    assert one(tconn, "SELECT n_name FROM nation WHERE n_nationkey = ?", (3,)) == [["CANADA"]]
    got = one(
        tconn,
        "SELECT ? AS i, ? AS s, ? AS d, ? AS b, ? AS day, ? AS f",
        (42, "it's", Decimal("12345.67"), True, dt.date(2024, 2, 29), 1.5),
    )
    assert got == [[42, "it's", Decimal("12345.67"), True, dt.date(2024, 2, 29), 1.5]]


def test_legacy_prepared_statements(sample_server):
    """PREPARE … FROM / EXECUTE … USING / DEALLOCATE, with the statement carried in headers."""
    with connect(sample_server, legacy_prepared_statements=True) as c:
        assert one(c, "SELECT n_name FROM nation WHERE n_nationkey = ?", (4,)) == [["EGYPT"]]
        assert one(c, "SELECT count(*) FROM nation WHERE n_regionkey = ? AND n_name LIKE ?", (1, "%A%")) == [[4]]


def test_every_type_decodes_to_the_right_python_value(tconn):
    row = one(
        tconn,
        """SELECT
            true AS c_boolean,
            CAST(1 AS tinyint) AS c_tinyint,
            CAST(-2 AS smallint) AS c_smallint,
            CAST(3 AS integer) AS c_integer,
            CAST(9007199254740993 AS bigint) AS c_bigint,
            CAST(1.5 AS real) AS c_real,
            CAST(2.25 AS double) AS c_double,
            CAST('NaN' AS double) AS c_nan,
            CAST('Infinity' AS double) AS c_inf,
            CAST('-Infinity' AS double) AS c_neginf,
            CAST(12345678.9 AS decimal(10,2)) AS c_decimal,
            CAST('12345678901234567890123456789012345678' AS decimal(38,0)) AS c_decimal38,
            'héllo' AS c_varchar,
            X'CAFEBABE00' AS c_varbinary,
            DATE '2024-02-29' AS c_date,
            CAST('12:34:56.789' AS time) AS c_time,
            TIMESTAMP '2024-02-29 12:34:56.789123' AS c_timestamp,
            CAST('2024-02-29T12:34:56.789Z' AS timestamp with time zone) AS c_timestamptz,
            INTERVAL '3' DAY AS c_interval,
            ARRAY[1, 2, NULL] AS c_array,
            MAP(ARRAY['a', 'b'], ARRAY[1, 2]) AS c_map,
            named_struct('x', 1, 'y', 'z') AS c_row,
            NULL AS c_null,
            CAST(NULL AS integer) AS c_null_int""",
    )[0]
    (b, ti, si, i, bi, r, d, nan, inf, neginf, dec, dec38, s, vb, day, t, ts, tstz, iv, arr, m, rw, n, ni) = row
    assert (b, ti, si, i, bi) == (True, 1, -2, 3, 9007199254740993)
    assert (r, d) == (1.5, 2.25)
    assert nan != nan and inf == float("inf") and neginf == float("-inf")
    assert dec == Decimal("12345678.90") and dec38 == Decimal("12345678901234567890123456789012345678")
    assert s == "héllo" and vb == bytes.fromhex("CAFEBABE00")
    assert day == dt.date(2024, 2, 29)
    assert t == dt.time(12, 34, 56, 789000)
    assert ts == dt.datetime(2024, 2, 29, 12, 34, 56, 789123)
    assert tstz == dt.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=dt.timezone.utc) and tstz.utcoffset() == dt.timedelta(0)
    assert iv == dt.timedelta(days=3)
    assert arr == [1, 2, None]
    assert m == {"a": 1, "b": 2}
    assert tuple(rw) == (1, "z") and rw.x == 1 and rw.y == "z"
    assert n is None and ni is None


def test_a_large_result_comes_in_many_pages(sample_server, tconn):
    cur = tconn.cursor()
    cur.execute("SELECT l_orderkey, l_linenumber, l_comment FROM lineitem")
    got = cur.fetchall()
    expected = one(tconn, "SELECT count(*) FROM lineitem")[0][0]
    assert len(got) == expected > 50_000
    # the same through the raw protocol: several pages with data, and memory stays bounded
    result = statement(sample_server.trino_url, "SELECT * FROM lineitem", {"X-Trino-Catalog": SQE_CATALOG, "X-Trino-Schema": SQE_SCHEMA})
    data_pages = [p for p in result["pages"] if p.get("data")]
    assert len(result["data"]) == expected
    assert len(data_pages) >= 5, [len(p.get("data", [])) for p in result["pages"]]
    assert result["state"] == "FINISHED"


def test_ddl_and_dml_report_update_type_and_count(sample_server, tconn):
    table = unique("t")
    cur = tconn.cursor()
    cur.execute(f"CREATE TABLE {table} (id bigint, name varchar)")
    cur.fetchall()
    assert cur.update_type == "CREATE TABLE"
    cur.execute(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    assert cur.fetchall() == [[3]]
    assert cur.update_type == "INSERT" and cur.rowcount == 3
    assert one(tconn, f"SELECT name FROM {table} ORDER BY id") == [["a"], ["b"], ["c"]]
    result = statement(sample_server.trino_url, f"INSERT INTO {SQE_CATALOG}.{SQE_SCHEMA}.{table} SELECT 4, 'd'")
    assert (result["updateType"], result["updateCount"], result["data"]) == ("INSERT", 1, [[1]])
    assert [c["name"] for c in result["columns"]] == ["rows"]
    cur.execute(f"DROP TABLE {table}")
    cur.fetchall()
    assert cur.update_type == "DROP TABLE"


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("sql", "name", "location"),
    [
        ("SELEC 1", "SYNTAX_ERROR", (1, 1)),
        ("SELECT * FROM no_such_table", "TABLE_NOT_FOUND", (1, 15)),
        ("SELECT no_such_column FROM nation", "COLUMN_NOT_FOUND", (1, 8)),
        ("SELECT * FROM no_such_schema.nation", "SCHEMA_NOT_FOUND", (1, 15)),
        ("SELECT * FROM no_such_catalog.tpch.nation", "CATALOG_NOT_FOUND", (1, 15)),
        ("SELECT no_such_function(1)", "FUNCTION_NOT_FOUND", (1, 8)),
        ("SELECT 1 / 0", "DIVISION_BY_ZERO", None),
    ],
)
def test_errors_have_trinos_name_type_and_location(tconn, sql, name, location):
    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        one(tconn, sql)
    err = e.value
    assert err.error_name == name, err
    assert err.error_type == "USER_ERROR"
    if location is None:
        assert err.error_location is None or err.error_location == (0, 0), err.error_location
    else:
        assert err.error_location == location, (err.error_location, err.message)
        assert err.message.startswith(f"line {location[0]}:{location[1]}: "), err.message


def test_division_by_zero_while_running_fails_the_query(tconn):
    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        one(tconn, "SELECT n_nationkey / (n_regionkey - n_regionkey) FROM nation")
    assert e.value.error_name == "DIVISION_BY_ZERO"


# --------------------------------------------------------------------------------------------
# Session: USE, SET SESSION, SHOW, DESCRIBE, transactions


def test_use_sets_the_clients_schema(sample_server):
    with connect(sample_server, schema=None) as c:
        cur = c.cursor()
        cur.execute("USE tpch")
        cur.fetchall()
        # the client took the schema from X-Trino-Set-Schema and sends it from now on
        assert one(c, "SELECT count(*) FROM region") == [[5]]


def test_use_of_a_missing_schema_fails(tconn):
    with pytest.raises(trino.exceptions.TrinoUserError) as e:
        one(tconn, "USE no_such_schema")
    assert e.value.error_name == "SCHEMA_NOT_FOUND"


def test_set_and_reset_session(sample_server):
    base = sample_server.trino_url
    r = statement(base, "SET SESSION datafusion.execution.batch_size = 100")
    assert r["updateType"] == "SET SESSION"
    assert r["headers"][-1]["x-trino-set-session"] == ["datafusion.execution.batch_size=100"]
    r = statement(base, "SHOW SESSION", {"X-Trino-Session": "datafusion.execution.batch_size=100"})
    assert ["datafusion.execution.batch_size", "100"] in [row[:2] for row in r["data"]]
    r = statement(base, "RESET SESSION datafusion.execution.batch_size")
    assert r["headers"][-1]["x-trino-clear-session"] == ["datafusion.execution.batch_size"]
    r = statement(base, "SET SESSION no_such_property = 1")
    assert r["error"]["errorName"] == "INVALID_SESSION_PROPERTY"
    with connect(sample_server, session_properties={"datafusion.execution.batch_size": "64"}) as c:
        assert one(c, "SELECT count(*) FROM nation") == [[25]]


def test_the_session_time_zone_is_the_clients(sample_server):
    base = sample_server.trino_url
    ny = {"X-Trino-Time-Zone": "America/New_York"}
    r = statement(base, "SELECT current_timestamp AS now", {**ny, "X-Trino-Client-Capabilities": "PARAMETRIC_DATETIME"})
    assert r["error"] is None, r["error"]
    assert r["columns"][0]["type"] == "timestamp(3) with time zone"
    assert r["data"][0][0].endswith(" America/New_York")
    # no header: the server's zone, UTC
    assert statement(base, "SELECT current_timestamp")["data"][0][0].endswith(" UTC")
    # a stored timestamptz (Iceberg keeps instants in UTC) keeps its zone whatever the session's
    table = f"tz_{uuid.uuid4().hex[:8]}"
    assert statement(base, f"CREATE TABLE {table} (t timestamp(6) with time zone)")["error"] is None
    try:
        r = statement(base, f"INSERT INTO {table} VALUES (TIMESTAMP '2020-07-01 00:00:00 UTC')", ny)
        assert r["error"] is None, r["error"]
        assert statement(base, f"SELECT t FROM {table}", ny)["data"] == [["2020-07-01 00:00:00.000 UTC"]]
    finally:
        statement(base, f"DROP TABLE {table}")
    # the python client sends its `timezone` as the header and decodes the zone
    with connect(sample_server, timezone="Europe/Berlin") as c:
        ((now,),) = one(c, "SELECT current_timestamp")
    assert str(now.tzinfo) == "Europe/Berlin"
    r = statement(base, "SELECT 1", {"X-Trino-Time-Zone": "Mars/Olympus_Mons"})
    assert (r["error"]["errorName"], r["error"]["message"]) == ("NOT_SUPPORTED", "Time zone not supported: Mars/Olympus_Mons")


def test_show_and_describe(tconn):
    assert [SQE_CATALOG] in one(tconn, "SHOW CATALOGS") and ["system"] in one(tconn, "SHOW CATALOGS")
    assert ["tpch"] in one(tconn, f"SHOW SCHEMAS FROM {SQE_CATALOG}")
    assert [r[0] for r in one(tconn, "SHOW TABLES")] == TPCH_TABLES
    assert one(tconn, "DESCRIBE nation") == [
        ["n_nationkey", "bigint", "", ""],
        ["n_name", "varchar", "", ""],
        ["n_regionkey", "bigint", "", ""],
        ["n_comment", "varchar", "", ""],
    ]
    assert one(tconn, "SHOW COLUMNS FROM region")[0] == ["r_regionkey", "bigint", "", ""]
    create = one(tconn, "SHOW CREATE TABLE region")[0][0]
    assert create.startswith(f'CREATE TABLE "{SQE_CATALOG}"."tpch"."region"') and '"r_name" varchar' in create
    assert one(tconn, "SELECT version()")[0][0]


def test_prepare_describe_execute_deallocate_over_raw_http(sample_server):
    base = sample_server.trino_url
    h = {"X-Trino-Catalog": SQE_CATALOG, "X-Trino-Schema": SQE_SCHEMA}
    r = statement(base, "PREPARE q1 FROM SELECT n_name FROM nation WHERE n_nationkey = ?", h)
    assert r["updateType"] == "PREPARE"
    added = r["headers"][-1]["x-trino-added-prepare"][0]
    assert added.startswith("q1=")
    h["X-Trino-Prepared-Statement"] = added
    assert statement(base, "EXECUTE q1 USING 3", h)["data"] == [["CANADA"]]
    assert statement(base, "DESCRIBE INPUT q1", h)["data"] == [[0, "bigint"]]
    out = statement(base, "DESCRIBE OUTPUT q1", h)["data"]
    assert [row[0] for row in out] == ["n_name"] and out[0][4] == "varchar"
    r = statement(base, "DEALLOCATE PREPARE q1", h)
    assert r["headers"][-1]["x-trino-deallocated-prepare"] == ["q1"]
    r = statement(base, "EXECUTE nope USING 1", h)
    assert r["error"]["errorName"] == "NOT_FOUND"
    r = statement(base, "EXECUTE IMMEDIATE 'SELECT n_name FROM nation WHERE n_nationkey = ?' USING 4", h)
    assert r["data"] == [["EGYPT"]]


def test_transactions_are_accepted_where_safe(sample_server):
    base = sample_server.trino_url
    r = statement(base, "START TRANSACTION", {"X-Trino-Transaction-Id": "NONE"})
    assert r["updateType"] == "START TRANSACTION"
    assert r["headers"][-1]["x-trino-started-transaction-id"]
    r = statement(base, "COMMIT")
    assert r["updateType"] == "COMMIT"
    r = statement(base, "ROLLBACK")
    assert r["error"]["errorName"] == "NOT_SUPPORTED" and "commits every statement" in r["error"]["message"]


# --------------------------------------------------------------------------------------------
# The protocol itself


def test_pages_follow_trinos_shape(sample_server):
    base = sample_server.trino_url
    status, _, first = post(base, "SELECT r_regionkey, r_name FROM region ORDER BY 1", {"X-Trino-Catalog": SQE_CATALOG, "X-Trino-Schema": SQE_SCHEMA})
    assert status == 200
    assert first["stats"]["state"] == "QUEUED" and "columns" not in first
    parts = first["id"].split("_")
    assert [len(p) for p in parts] == [8, 6, 5, 5], first["id"]
    assert first["nextUri"].startswith(base + "/v1/statement/")
    assert first["infoUri"].startswith(base)
    result = statement(base, "SELECT r_regionkey, r_name FROM region ORDER BY 1", {"X-Trino-Catalog": SQE_CATALOG, "X-Trino-Schema": SQE_SCHEMA})
    assert "nextUri" not in result["pages"][-1] and result["state"] == "FINISHED"
    assert all("columns" in p for p in result["pages"] if "data" in p)
    assert result["columns"] == [
        {"name": "r_regionkey", "type": "bigint", "typeSignature": {"rawType": "bigint", "arguments": []}},
        {"name": "r_name", "type": "varchar", "typeSignature": {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]}},
    ]
    assert result["data"][0] == [0, "AFRICA"]
    for key in ("queued", "scheduled", "nodes", "cpuTimeMillis", "wallTimeMillis", "queuedTimeMillis", "elapsedTimeMillis", "processedRows", "processedBytes", "peakMemoryBytes"):
        assert key in result["pages"][-1]["stats"], key
    # an empty result still names its columns
    empty = statement(base, "SELECT r_name FROM region WHERE false", {"X-Trino-Catalog": SQE_CATALOG, "X-Trino-Schema": SQE_SCHEMA})
    assert empty["data"] == [] and [c["name"] for c in empty["columns"]] == ["r_name"]
    # unnamed columns are named by position, as Trino does
    assert [c["name"] for c in statement(base, "SELECT 1, 2 AS two, 1 + 2")["columns"]] == ["_col0", "two", "_col2"]


def test_proxy_headers_make_the_next_uri(sample_server):
    _, _, page = post(sample_server.trino_url, "SELECT 1", {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "sqe.example.com"})
    assert page["nextUri"].startswith("https://sqe.example.com/v1/statement/"), page["nextUri"]


def test_a_retried_page_is_the_same_page(sample_server):
    base = sample_server.trino_url
    _, _, page = post(base, "SELECT 42")
    uri = page["nextUri"]
    s1, _, a = request("GET", uri, headers={"X-Trino-User": "test"})
    s2, _, b = request("GET", uri, headers={"X-Trino-User": "test"})
    assert (s1, s2) == (200, 200) and a == b


def test_another_user_cannot_read_a_query(sample_server):
    _, _, page = post(sample_server.trino_url, "SELECT 1", user="ann")
    status, _, _ = request("GET", page["nextUri"], headers={"X-Trino-User": "bob"})
    assert status == 404


def test_no_user_is_unauthorized(sample_server):
    status, _, body = request("POST", f"{sample_server.trino_url}/v1/statement", b"SELECT 1")
    assert status == 401 and "X-Trino-User" in body


def test_info(sample_server):
    status, body = http_get(f"{sample_server.trino_url}/v1/info")
    assert status == 200
    import json

    info = json.loads(body)
    assert info["coordinator"] is True and info["starting"] is False
    assert info["nodeVersion"]["version"] and info["environment"] and info["uptime"]


def _query_state(server, query_id: str):
    rows = statement(server.trino_url, f"SELECT state, error_code FROM system.runtime.queries WHERE query_id = '{query_id}'")["data"]
    return rows[0] if rows else None


def test_delete_cancels_a_running_query(sample_server):
    base = sample_server.trino_url
    _, _, page = post(base, LongQuery(2_000_000).sql)
    query_id = page["id"]
    wait_for(lambda: (_query_state(sample_server, query_id) or [""])[0] == "RUNNING", 60, "the query to run")
    status, _, _ = request("DELETE", page["nextUri"], headers={"X-Trino-User": "test"})
    assert status == 204
    state = wait_for(lambda: (s := _query_state(sample_server, query_id)) and s[0] == "FAILED" and s, 30, "the cancelled query to end")
    assert state == ["FAILED", "USER_CANCELED"]

    # the engine stopped working on it: none of its tasks is still running
    def tasks_stopped():
        r = statement(sample_server.trino_url, f"SELECT state FROM system.runtime.tasks WHERE query_id = '{query_id}'")
        states = {row[0] for row in r["data"]}
        return states and "RUNNING" not in states and states
    assert wait_for(tasks_stopped, 30, "the cancelled query's tasks to stop") <= {"CANCELED", "FINISHED"}


def test_the_client_cancel_stops_the_query(sample_server):
    with connect(sample_server) as c:
        cur = c.cursor()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                cur.execute(LongQuery(2_000_000).sql)
                cur.fetchall()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t = threading.Thread(target=run)
        t.start()
        wait_for(lambda: cur.query_id is not None, 60, "the query to start")
        query_id = cur.query_id
        wait_for(lambda: (_query_state(sample_server, query_id) or [""])[0] == "RUNNING", 60, "the query to run")
        cur.cancel()
        t.join(60)
        assert not t.is_alive()
        wait_for(lambda: (_query_state(sample_server, query_id) or [""])[0] == "FAILED", 30, "the query to end")


def test_an_abandoned_query_is_cancelled(server_factory):
    s = server_factory(sample=False, env={"SQE_COORDINATOR__TRINO_CLIENT_TIMEOUT_SECS": "1"})
    _, _, page = post(s.trino_url, LongQuery(2_000_000).sql)
    query_id = page["id"]
    # nobody polls: the sweep (every 5 s) cancels it once a second has passed without a poll
    state = wait_for(lambda: (r := _query_state(s, query_id)) and r[0] == "FAILED" and r, 30, "the abandoned query to be cancelled")
    assert state == ["FAILED", "USER_CANCELED"]
    status, _, _ = request("GET", page["nextUri"], headers={"X-Trino-User": "test"})
    assert status == 404


# --------------------------------------------------------------------------------------------
# Authentication


def test_password_auth_over_the_trino_protocol(auth_server, auth_users):
    base = auth_server.trino_url
    status, _, _ = post(base, "SELECT 1")
    assert status == 401
    user, password = "alice", auth_users["alice"]
    good = trino.auth.BasicAuthentication(user, password)
    with trino.dbapi.connect(host="127.0.0.1", port=auth_server.trino_port, user=user, http_scheme="http",
                             auth=good, allow_insecure_auth=True, catalog=SQE_CATALOG, schema="default") as c:
        assert one(c, "SELECT 1") == [[1]]
        assert one(c, "SELECT \"user\" FROM system.runtime.queries WHERE query = 'SELECT 1' LIMIT 1") == [["alice"]]
    bad = trino.auth.BasicAuthentication(user, "wrong")
    with trino.dbapi.connect(host="127.0.0.1", port=auth_server.trino_port, user=user, http_scheme="http",
                             auth=bad, allow_insecure_auth=True) as c:
        with pytest.raises(trino.exceptions.HttpError) as e:
            one(c, "SELECT 1")
        assert "401" in str(e.value)
    # a Basic user may not claim to be someone else
    import base64

    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    status, _, _ = post(base, "SELECT 1", {"Authorization": f"Basic {basic}"}, user="bob")
    assert status == 403


# --------------------------------------------------------------------------------------------
# SQLAlchemy and pandas


@pytest.fixture
def engine(sample_server):
    e = sqlalchemy.create_engine(f"trino://test@127.0.0.1:{sample_server.trino_port}/{SQE_CATALOG}")
    try:
        yield e
    finally:
        e.dispose()


def test_sqlalchemy_inspector(engine):
    insp = inspect(engine)
    assert "tpch" in insp.get_schema_names()
    assert sorted(insp.get_table_names(schema="tpch")) == TPCH_TABLES
    columns = insp.get_columns("nation", schema="tpch")
    assert [c["name"] for c in columns] == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    assert isinstance(columns[0]["type"], sqlalchemy.types.BigInteger)
    assert isinstance(columns[1]["type"], sqlalchemy.types.String)
    assert insp.has_table("nation", schema="tpch") and not insp.has_table("no_such", schema="tpch")
    assert insp.get_pk_constraint("nation", schema="tpch")["constrained_columns"] == []
    assert insp.get_indexes("nation", schema="tpch") == []
    assert insp.get_table_comment("nation", schema="tpch") == {"text": None}
    assert insp.get_view_names(schema="tpch") == []


def test_pandas_read_sql(engine):
    df = pd.read_sql("SELECT * FROM tpch.nation ORDER BY n_nationkey", engine)
    assert len(df) == 25 and list(df.columns) == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    assert df["n_name"].iloc[0] == "ALGERIA"


# --------------------------------------------------------------------------------------------
# System tables, metrics


def test_system_runtime_tables_show_both_protocols(sample_server, sample_conn, tconn):
    marker = f"marker_{uuid.uuid4().hex[:8]}"
    with sample_conn.cursor() as cur:
        cur.execute(f"SELECT '{marker}' AS m")
        cur.fetchall()
    one(tconn, f"SELECT '{marker}' AS m")
    rows = one(tconn, f"SELECT protocol, state, \"user\" FROM system.runtime.queries WHERE query = 'SELECT ''{marker}'' AS m' ORDER BY protocol")
    assert [r[0] for r in rows] == ["flight_sql", "trino"] and all(r[1] == "FINISHED" for r in rows)
    nodes = one(tconn, "SELECT node_version, coordinator, state FROM system.runtime.nodes")
    assert len(nodes) == 1 and nodes[0][1] is True and nodes[0][2] == "active"
    # the same tables through Flight SQL
    with sample_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM system.runtime.queries WHERE protocol = 'trino'")
        assert cur.fetchone()[0] >= 1


def test_metrics_carry_the_protocol(sample_server, tconn):
    before = sample_server.metric("sqe_queries_total", protocol="trino", outcome="success") or 0
    one(tconn, "SELECT 1")
    wait_for(lambda: (sample_server.metric("sqe_queries_total", protocol="trino", outcome="success") or 0) > before, 10, "the Trino query to be counted")


def test_a_draining_server_answers_503_to_new_trino_queries(server_factory):
    s = server_factory(sample=False)
    q = LongQuery(2_000_000)
    _, _, page = post(s.trino_url, q.sql)
    wait_for(lambda: (_query_state(s, page["id"]) or [""])[0] == "RUNNING", 60, "the query to run")
    s.terminate()
    wait_for(lambda: http_get(f"{s.health_url}/readyz")[0] == 503, 30, "/readyz to turn 503")
    status, _, _ = post(s.trino_url, "SELECT 1")
    assert status == 503
    request("DELETE", page["nextUri"], headers={"X-Trino-User": "test"})
    assert s.wait_exit(60) == 0


def test_system_runtime_tasks_show_each_partition(sample_server, tconn):
    cur = tconn.cursor()
    cur.execute("SELECT l_orderkey FROM lineitem WHERE l_quantity > 45")
    got = len(cur.fetchall())
    query_id = cur.query_id
    tasks = one(tconn, f"SELECT task_id, state, output_rows, node_id FROM system.runtime.tasks WHERE query_id = '{query_id}' ORDER BY partition")
    assert tasks, "the query has no tasks"
    assert all(t[1] == "FINISHED" for t in tasks), tasks
    assert sum(t[2] for t in tasks) == got
    assert all(t[0].startswith(f"{query_id}.0.") for t in tasks)
    node = one(tconn, "SELECT node_id FROM system.runtime.nodes")[0][0]
    assert {t[3] for t in tasks} == {node}
