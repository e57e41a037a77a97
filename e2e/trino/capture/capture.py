"""Records what real Trino clients send to a real Trino 476 server and what they get back, into
capture.json (raw) for e2e/trino/client-traffic.md.

Runs with a Python that has trino, sqlalchemy and pandas (a scratch venv), Java 17 for the
JDBC driver and the CLI, and the stack from `make trino-stack`:

    python3 -m venv /tmp/cap/venv
    /tmp/cap/venv/bin/pip install trino==0.340.0 SQLAlchemy==2.1.9 pandas==3.1.1
    /tmp/cap/venv/bin/python e2e/trino/capture/capture.py [--url http://127.0.0.1:PORT] --out /tmp/cap/capture.json

Without --url it starts its own TrinoReference. Every client talks to the server through
logging_proxy.py on 127.0.0.1; what the server received is read back from
system.runtime.queries by query id.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "e2e" / "clients"))
sys.path.insert(0, str(HERE))

for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = "127.0.0.1,localhost"

from logging_proxy import LoggingProxy

from trino_reference import (
    TrinoReference,
    run_statement,
    trino_cli_jar,
    trino_jdbc_jar,
)

TYPES_SQL = """SELECT
  true AS c_boolean,
  CAST(1 AS tinyint) AS c_tinyint,
  CAST(-2 AS smallint) AS c_smallint,
  3 AS c_integer,
  CAST(9007199254740993 AS bigint) AS c_bigint,
  REAL '1.5' AS c_real,
  DOUBLE '2.25' AS c_double,
  1e300 * 10 AS c_double_big,
  nan() AS c_double_nan,
  infinity() AS c_double_inf,
  -infinity() AS c_double_neginf,
  CAST(nan() AS real) AS c_real_nan,
  CAST(12345678.9 AS decimal(10,2)) AS c_decimal_10_2,
  CAST(-0.5 AS decimal(10,2)) AS c_decimal_neg,
  CAST('12345678901234567890123456789012345678' AS decimal(38,0)) AS c_decimal_38_0,
  'héllo' AS c_varchar_literal,
  CAST('abc' AS varchar) AS c_varchar,
  CAST('ab' AS char(3)) AS c_char3,
  X'CAFEBABE00' AS c_varbinary,
  DATE '2024-02-29' AS c_date,
  TIME '12:34:56.789' AS c_time3,
  TIMESTAMP '2024-02-29 12:34:56.789' AS c_timestamp3,
  TIMESTAMP '2024-02-29 12:34:56.789123' AS c_timestamp6,
  TIMESTAMP '2024-02-29 12:34:56' AS c_timestamp0,
  TIMESTAMP '2024-02-29 12:34:56.789 UTC' AS c_timestamptz3_utc,
  TIMESTAMP '2024-02-29 12:34:56.789 Europe/Berlin' AS c_timestamptz3_zone,
  TIMESTAMP '2024-02-29 12:34:56.789 +02:00' AS c_timestamptz3_offset,
  INTERVAL '1 02:03:04.567' DAY TO SECOND AS c_interval_ds,
  INTERVAL '-3' DAY AS c_interval_ds_neg,
  INTERVAL '1-2' YEAR TO MONTH AS c_interval_ym,
  ARRAY[1, 2, NULL] AS c_array_int,
  MAP(ARRAY['a', 'b'], ARRAY[1, 2]) AS c_map,
  CAST(ROW(1, 'x') AS ROW(x integer, y varchar)) AS c_row,
  ROW(1, 'x') AS c_row_anon,
  NULL AS c_null,
  CAST(NULL AS integer) AS c_null_int,
  JSON '{"a":[1,2]}' AS c_json,
  UUID '12151fd2-7586-11e9-8f9e-2a86e4085a59' AS c_uuid"""

CAPS = "PATH,PARAMETRIC_DATETIME,SESSION_AUTHORIZATION"

ERRORS = {
    "syntax error": "SELEC 1",
    "missing table": "SELECT * FROM tpch.tiny.no_such_table",
    "missing column": "SELECT no_such_column FROM tpch.tiny.nation",
    "missing schema": "SELECT * FROM tpch.no_such_schema.nation",
    "missing catalog": "SELECT * FROM no_such_catalog.tiny.nation",
    "division by zero (constant)": "SELECT 1 / 0",
    "division by zero (per row)": "SELECT n_nationkey / (n_regionkey - n_regionkey) FROM tpch.tiny.nation",
    "unsupported function": "SELECT no_such_function(1)",
    "type mismatch": "SELECT 'a' + 1",
    "read-only connector (CREATE TABLE)": "CREATE TABLE tpch.tiny.t (x integer)",
    "unqualified table without catalog/schema": "SELECT * FROM nation",
}

SESSION_STATEMENTS = {
    "USE": ("USE tpch.tiny", {}),
    "SET SESSION": ("SET SESSION query_max_run_time = '1h'", {}),
    "RESET SESSION": ("RESET SESSION query_max_run_time", {}),
    "PREPARE": ("PREPARE q1 FROM SELECT n_name FROM tpch.tiny.nation WHERE n_nationkey = ?", {}),
    "EXECUTE with X-Trino-Prepared-Statement": (
        "EXECUTE q1 USING 3",
        {"X-Trino-Prepared-Statement": "q1=" + "SELECT+n_name+FROM+tpch.tiny.nation+WHERE+n_nationkey+%3D+%3F"},
    ),
    "EXECUTE IMMEDIATE": ("EXECUTE IMMEDIATE 'SELECT n_name FROM tpch.tiny.nation WHERE n_nationkey = ?' USING 4", {}),
    "DESCRIBE INPUT": (
        "DESCRIBE INPUT q1",
        {"X-Trino-Prepared-Statement": "q1=" + "SELECT+n_name+FROM+tpch.tiny.nation+WHERE+n_nationkey+%3D+%3F"},
    ),
    "DESCRIBE OUTPUT": (
        "DESCRIBE OUTPUT q1",
        {"X-Trino-Prepared-Statement": "q1=" + "SELECT+n_name+FROM+tpch.tiny.nation+WHERE+n_nationkey+%3D+%3F"},
    ),
    "DEALLOCATE PREPARE": (
        "DEALLOCATE PREPARE q1",
        {"X-Trino-Prepared-Statement": "q1=" + "SELECT+n_name+FROM+tpch.tiny.nation+WHERE+n_nationkey+%3D+%3F"},
    ),
    "START TRANSACTION": ("START TRANSACTION", {}),
    "START TRANSACTION with X-Trino-Transaction-Id: NONE": ("START TRANSACTION", {"X-Trino-Transaction-Id": "NONE"}),
    "SHOW CATALOGS": ("SHOW CATALOGS", {}),
    "SHOW SCHEMAS FROM tpch": ("SHOW SCHEMAS FROM tpch", {}),
    "SHOW TABLES FROM tpch.tiny": ("SHOW TABLES FROM tpch.tiny", {}),
    "DESCRIBE tpch.tiny.nation": ("DESCRIBE tpch.tiny.nation", {}),
    "SHOW COLUMNS FROM tpch.tiny.region": ("SHOW COLUMNS FROM tpch.tiny.region", {}),
    "EXPLAIN": ("EXPLAIN SELECT * FROM tpch.tiny.region", {}),
    "SELECT version()": ("SELECT version()", {}),
    "with X-Trino-Catalog/Schema headers": (
        "SELECT count(*) FROM nation",
        {"X-Trino-Catalog": "tpch", "X-Trino-Schema": "tiny"},
    ),
}


# DDL and DML on the memory catalog, in order (the raw client, no capabilities header).
DML = [
    ("CREATE SCHEMA", "CREATE SCHEMA memory.cap"),
    ("CREATE TABLE", "CREATE TABLE memory.cap.people (id bigint, name varchar, born date)"),
    (
        "INSERT VALUES (3 rows)",
        "INSERT INTO memory.cap.people VALUES (1, 'ann', DATE '1990-01-02'), (2, 'bob', NULL), (3, 'cy', DATE '2000-02-29')",
    ),
    ("INSERT SELECT (0 rows)", "INSERT INTO memory.cap.people SELECT * FROM memory.cap.people WHERE false"),
    ("CREATE TABLE AS SELECT", "CREATE TABLE memory.cap.nations AS SELECT n_nationkey, n_name FROM tpch.tiny.nation"),
    ("CREATE TABLE IF NOT EXISTS (exists)", "CREATE TABLE IF NOT EXISTS memory.cap.people (id bigint)"),
    ("CREATE TABLE (exists)", "CREATE TABLE memory.cap.people (id bigint)"),
    ("DELETE", "DELETE FROM memory.cap.people WHERE id = 1"),
    ("UPDATE", "UPDATE memory.cap.people SET name = 'x' WHERE id = 2"),
    ("INSERT type mismatch", "INSERT INTO memory.cap.people VALUES ('not a number', 'x', NULL)"),
    ("SELECT after DML", "SELECT * FROM memory.cap.people ORDER BY id"),
    ("CREATE VIEW", "CREATE VIEW memory.cap.v AS SELECT id FROM memory.cap.people"),
    ("DROP VIEW", "DROP VIEW memory.cap.v"),
    ("DROP TABLE", "DROP TABLE memory.cap.nations"),
    ("DROP TABLE (missing)", "DROP TABLE memory.cap.nations"),
    ("DROP TABLE IF EXISTS (missing)", "DROP TABLE IF EXISTS memory.cap.nations"),
    ("DROP TABLE people", "DROP TABLE memory.cap.people"),
    ("DROP SCHEMA", "DROP SCHEMA memory.cap"),
]


def runtime_queries(url: str, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    r = run_statement(
        url,
        'SELECT query_id, "user", source, query, state, error_type, error_code, created '
        f"FROM system.runtime.queries WHERE query_id IN ({quoted}) ORDER BY created",
        user="capture",
    )
    assert r["error"] is None, r["error"]
    names = [c["name"] for c in r["columns"]]
    return [dict(zip(names, row)) for row in r["data"]]


def query_ids(exchanges: list[dict[str, Any]]) -> list[str]:
    ids = []
    for e in exchanges:
        if e["method"] == "POST" and e["path"].startswith("/v1/statement"):
            try:
                ids.append(json.loads(e["response_body"])["id"])
            except (ValueError, KeyError):
                pass
    return ids


def python_client(proxy: LoggingProxy, out: dict[str, Any]) -> None:
    import pandas
    import sqlalchemy
    import trino
    from sqlalchemy import create_engine, inspect

    out["versions"] = {
        "trino": trino.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "pandas": pandas.__version__,
    }
    results: dict[str, Any] = {}

    def action(label: str, fn):
        proxy.label = label
        try:
            results[label] = {"result": repr(fn())[:3000]}
        except Exception as e:  # noqa: BLE001 - recorded
            results[label] = {"exception": f"{type(e).__name__}: {e}"[:3000]}

    def connect(**kw):
        return trino.dbapi.connect(
            host="127.0.0.1", port=proxy.port, user="test", catalog="tpch", schema="tiny", http_scheme="http", **kw
        )

    conn = connect()

    def qmark():
        cur = conn.cursor()
        cur.execute("SELECT * FROM nation WHERE n_nationkey = ?", (3,))
        one = cur.fetchone()
        rest = cur.fetchall()
        return {"fetchone": one, "rest": rest, "description": cur.description}

    action("python dbapi execute qmark param (default)", qmark)

    def fetches():
        cur = conn.cursor()
        cur.execute("SELECT n_nationkey, n_name FROM nation ORDER BY n_nationkey")
        return {
            "description": cur.description,
            "fetchone": cur.fetchone(),
            "fetchmany(3)": cur.fetchmany(3),
            "fetchall_len": len(cur.fetchall()),
            "rowcount": cur.rowcount,
        }

    action("python dbapi fetchone/fetchmany/fetchall", fetches)

    def types_desc():
        cur = conn.cursor()
        cur.execute(TYPES_SQL)
        row = cur.fetchone()
        return {"description": cur.description, "row": row}

    action("python dbapi all types", types_desc)

    legacy = connect(legacy_prepared_statements=True)

    def qmark_legacy():
        cur = legacy.cursor()
        cur.execute("SELECT * FROM nation WHERE n_nationkey = ?", (3,))
        return {"rows": cur.fetchall(), "description": cur.description}

    action("python dbapi execute qmark param (legacy_prepared_statements=True)", qmark_legacy)

    def many_types_params():
        import datetime
        import decimal

        cur = conn.cursor()
        cur.execute(
            "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?",
            (
                1,
                2**40,
                "it's",
                1.5,
                decimal.Decimal("12345.67"),
                datetime.date(2024, 2, 29),
                datetime.datetime(2024, 2, 29, 12, 34, 56, 789000),
                True,
                None,
            ),
        )
        return {"rows": cur.fetchall(), "description": cur.description}

    action("python dbapi params of several types", many_types_params)

    def err():
        cur = conn.cursor()
        cur.execute("SELECT * FROM no_such_table")
        return cur.fetchall()

    action("python dbapi error (missing table)", err)

    def dml():
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA IF NOT EXISTS memory.pycap")
        cur.fetchall()
        cur.execute("CREATE TABLE memory.pycap.t (id bigint, name varchar)")
        created = (cur.fetchall(), cur.rowcount, cur.description)
        cur.execute("INSERT INTO memory.pycap.t VALUES (1, 'a'), (2, 'b')")
        inserted = (cur.fetchall(), cur.rowcount, cur.description)
        cur.execute("INSERT INTO memory.pycap.t VALUES (?, ?)", (3, "c"))
        param_insert = (cur.fetchall(), cur.rowcount)
        cur.executemany("INSERT INTO memory.pycap.t VALUES (?, ?)", [(4, "d"), (5, "e")])
        many = (cur.fetchall(), cur.rowcount)
        cur.execute("DROP TABLE memory.pycap.t")
        cur.fetchall()
        cur.execute("DROP SCHEMA memory.pycap")
        cur.fetchall()
        return {
            "create (fetchall, rowcount, description)": created,
            "insert 2 rows (fetchall, rowcount, description)": inserted,
            "insert with params": param_insert,
            "executemany 2 rows": many,
        }

    action("python dbapi DDL/DML on memory (rowcount)", dml)

    engine = create_engine(f"trino://test@127.0.0.1:{proxy.port}/tpch")
    insp = None

    def mk_insp():
        nonlocal insp
        insp = inspect(engine)
        return "inspector"

    action("sqlalchemy connect + inspect(engine)", mk_insp)
    action("sqlalchemy get_schema_names", lambda: insp.get_schema_names())
    action("sqlalchemy get_table_names(schema=tiny)", lambda: insp.get_table_names(schema="tiny"))
    action("sqlalchemy get_columns(nation, schema=tiny)", lambda: insp.get_columns("nation", schema="tiny"))
    action("sqlalchemy get_pk_constraint(nation, schema=tiny)", lambda: insp.get_pk_constraint("nation", schema="tiny"))
    action("sqlalchemy get_foreign_keys(nation, schema=tiny)", lambda: insp.get_foreign_keys("nation", schema="tiny"))
    action("sqlalchemy get_indexes(nation, schema=tiny)", lambda: insp.get_indexes("nation", schema="tiny"))
    action("sqlalchemy has_table(nation, schema=tiny)", lambda: insp.has_table("nation", schema="tiny"))
    action("sqlalchemy has_table(no_such, schema=tiny)", lambda: insp.has_table("no_such", schema="tiny"))
    action("sqlalchemy get_view_names(schema=tiny)", lambda: insp.get_view_names(schema="tiny"))
    action("sqlalchemy get_table_comment(nation, schema=tiny)", lambda: insp.get_table_comment("nation", schema="tiny"))
    action(
        "pandas.read_sql(SELECT * FROM tiny.nation, engine)",
        lambda: pandas.read_sql("SELECT * FROM tiny.nation", engine).head(3).to_dict(),
    )
    out["python_results"] = results


def jdbc(proxy: LoggingProxy, out: dict[str, Any]) -> None:
    proc = subprocess.run(
        ["java", "-cp", str(trino_jdbc_jar()), str(HERE / "JdbcCapture.java"), proxy.url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out["jdbc_stdout"] = proc.stdout
    out["jdbc_stderr"] = proc.stderr[-5000:]
    out["jdbc_rc"] = proc.returncode


def cli(proxy: LoggingProxy, out: dict[str, Any]) -> None:
    runs = {}
    for label, args in {
        "cli --execute --output-format CSV": ["--output-format", "CSV"],
        "cli --execute (default format)": [],
        "cli --execute --output-format CSV_HEADER": ["--output-format", "CSV_HEADER"],
        "cli --execute error (missing table)": None,
    }.items():
        proxy.label = label
        sql = "SELECT * FROM tpch.tiny.region" if args is not None else "SELECT * FROM tpch.tiny.no_such_table"
        cmd = [
            "java",
            "-jar",
            str(trino_cli_jar()),
            "--server",
            proxy.url,
            "--user",
            "test",
            "--execute",
            sql,
            *(args or []),
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        runs[label] = {"cmd": cmd[3:], "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-3000:]}
    out["cli"] = runs


def raw(url: str, out: dict[str, Any]) -> None:
    from trino_reference import _HTTP

    with _HTTP.open(f"{url}/v1/info", timeout=10) as r:
        out["v1_info"] = {"status": r.status, "headers": dict(r.headers.items()), "body": json.loads(r.read())}
    out["types"] = run_statement(url, TYPES_SQL)
    # what JDBC, the CLI and the Python client send: with PARAMETRIC_DATETIME the server reports
    # time(p)/timestamp(p) and keeps the fractional digits; without it, it rounds to millis
    out["types_caps"] = run_statement(url, TYPES_SQL, headers={"X-Trino-Client-Capabilities": CAPS})
    out["region_pages"] = run_statement(url, "SELECT * FROM tpch.tiny.region")
    out["errors"] = {k: run_statement(url, sql) for k, sql in ERRORS.items()}
    out["errors_with_schema"] = {
        "unqualified missing table with X-Trino-Catalog/Schema": run_statement(
            url, "SELECT * FROM no_such_table", headers={"X-Trino-Catalog": "tpch", "X-Trino-Schema": "tiny"}
        )
    }
    out["session"] = {
        k: {"sql": sql, "headers": h, "result": run_statement(url, sql, headers=h)}
        for k, (sql, h) in SESSION_STATEMENTS.items()
    }
    out["dml"] = [{"name": n, "sql": q, "result": run_statement(url, q)} for n, q in DML]
    # a bad user header / no user
    req_no_user = run_statement(url, "SELECT 1", headers={"X-Trino-User": ""})
    out["no_user"] = req_no_user


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--out", default="/tmp/cap/capture.json")
    ap.add_argument("--parts", default="raw,python,jdbc,cli")
    args = ap.parse_args()
    ref = None
    url = args.url
    if not url:
        ref = TrinoReference().start()
        url = ref.url
    out: dict[str, Any] = {"url": url}
    if Path(args.out).exists():
        out = json.loads(Path(args.out).read_text())
    parts = args.parts.split(",")
    proxy = LoggingProxy(url).start()
    try:
        if "raw" in parts:
            raw(url, out)
        if "python" in parts:
            python_client(proxy, out)
        if "jdbc" in parts:
            jdbc(proxy, out)
        if "cli" in parts:
            cli(proxy, out)
        labels = sorted(
            {e["label"] for e in proxy.exchanges if e["label"]},
            key=lambda l: min(e["time"] for e in proxy.exchanges if e["label"] == l),
        )
        traffic = out.setdefault("traffic", {})
        for label in labels:
            ex = proxy.for_label(label)
            traffic[label] = {"exchanges": ex, "runtime_queries": runtime_queries(url, query_ids(ex))}
    finally:
        proxy.stop()
        if ref:
            ref.stop()
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
