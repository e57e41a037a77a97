"""SQE's Trino protocol against a real Trino 476 as the reference: the same statements go to
both (raw `/v1/statement`, following `nextUri`), and the answers are compared: column names,
`type`, `typeSignature`, values, error names, types and locations, and the shape of the pages.

Both hold TPC-H at scale factor 0.01 (Trino's `tpch.tiny`, SQE's sample in `iceberg.tpch`),
reached with the session's catalog and schema, so the SQL text is identical. Known, deliberate
differences are normalised and listed here, not hidden:

- Iceberg has no `varchar(n)`: Trino's TPC-H columns are `varchar(25)`, SQE's are `varchar`.
- Trino's TPC-H connector stores money as `double`; SQE's sample (like dbgen) as
  `decimal(15, 2)`: money columns are compared as numbers rounded to cents.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from trino_protocol import SQE_CATALOG, SQE_SCHEMA, statement

SQE_SESSION = {"X-Trino-Catalog": SQE_CATALOG, "X-Trino-Schema": SQE_SCHEMA}
TRINO_SESSION = {"X-Trino-Catalog": "tpch", "X-Trino-Schema": "tiny"}
CAPS = {"X-Trino-Client-Capabilities": "PATH,PARAMETRIC_DATETIME,SESSION_AUTHORIZATION"}


def both(sqe, trino_ref, sql: str, caps: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    extra = CAPS if caps else {}
    ours = statement(sqe.trino_url, sql, {**SQE_SESSION, **extra})
    theirs = statement(trino_ref.url, sql, {**TRINO_SESSION, **extra})
    return ours, theirs


def normal_type(t: str) -> str:
    return re.sub(r"varchar\(\d+\)", "varchar", t)


def normal_signature(sig: dict[str, Any]) -> dict[str, Any]:
    if sig["rawType"] == "varchar":
        return {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]}
    args = []
    for a in sig["arguments"]:
        if a["kind"] == "TYPE":
            args.append({"kind": "TYPE", "value": normal_signature(a["value"])})
        elif a["kind"] == "NAMED_TYPE":
            v = dict(a["value"])
            v["typeSignature"] = normal_signature(v["typeSignature"])
            args.append({"kind": "NAMED_TYPE", "value": v})
        else:
            args.append(a)
    return {"rawType": sig["rawType"], "arguments": args}


def normal_columns(columns: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c["name"], normal_type(c["type"]), normal_signature(c["typeSignature"])) for c in columns]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT n_nationkey, n_name, n_regionkey, n_comment FROM nation ORDER BY n_nationkey",
        "SELECT r_name, count(*) AS nations FROM nation JOIN region ON n_regionkey = r_regionkey GROUP BY r_name ORDER BY r_name",
        "SELECT o_orderstatus, count(*), min(o_orderdate), max(o_orderdate), sum(o_custkey) FROM orders GROUP BY o_orderstatus ORDER BY 1",
        "SELECT c_mktsegment, avg(c_custkey) AS a FROM customer GROUP BY 1 ORDER BY 1",
        "SELECT l_orderkey, l_linenumber, l_shipdate, l_returnflag FROM lineitem WHERE l_orderkey < 100 ORDER BY 1, 2",
        "SELECT p_partkey, p_name, p_size FROM part WHERE p_size = 15 AND p_type LIKE '%BRASS' ORDER BY 1 LIMIT 20",
        "SELECT true AS b, CAST(2.25 AS double) AS d, CAST(12345678.9 AS decimal(10,2)) AS dec, CAST('abc' AS varchar) AS s, DATE '2024-02-29' AS day, CAST(NULL AS bigint) AS n",
        "SELECT count(*) FROM lineitem WHERE l_shipdate >= DATE '1995-01-01'",
        "SELECT n_name FROM nation WHERE false",
    ],
)
def test_results_match_trino(trino_server, trino_reference, sql):
    ours, theirs = both(trino_server, trino_reference, sql)
    assert ours["error"] is None, ours["error"]
    assert theirs["error"] is None, theirs["error"]
    assert normal_columns(ours["columns"]) == normal_columns(theirs["columns"])
    assert ours["data"] == theirs["data"]
    assert (ours["state"], theirs["state"]) == ("FINISHED", "FINISHED")


def cents(v: Any) -> Decimal:
    return Decimal(str(v)).quantize(Decimal("0.01"))


def test_money_matches_trino_to_the_cent(trino_server, trino_reference):
    sql = "SELECT o_orderkey, o_totalprice FROM orders WHERE o_orderkey < 200 ORDER BY 1"
    ours, theirs = both(trino_server, trino_reference, sql)
    assert [c["name"] for c in ours["columns"]] == [c["name"] for c in theirs["columns"]]
    assert [(k, cents(p)) for k, p in ours["data"]] == [(k, cents(p)) for k, p in theirs["data"]]
    assert ours["columns"][1]["type"] == "decimal(15, 2)" and theirs["columns"][1]["type"] == "double"


@pytest.mark.parametrize("caps", [True, False])
def test_timestamps_are_named_and_written_like_trino(trino_server, trino_reference, caps):
    sql = "SELECT CAST(TIMESTAMP '2024-02-29 12:34:56.789123' AS timestamp(6)) AS ts, CAST(TIMESTAMP '2024-02-29 12:34:56.789' AS timestamp(3)) AS ms"
    ours, theirs = both(trino_server, trino_reference, sql, caps=caps)
    assert ours["error"] is None, ours["error"]
    assert normal_columns(ours["columns"]) == normal_columns(theirs["columns"])
    assert ours["data"] == theirs["data"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELEC 1",
        "SELECT * FROM no_such_table",
        "SELECT no_such_column FROM nation",
        "SELECT * FROM no_such_schema.nation",
        "SELECT * FROM no_such_catalog.tiny.nation",
        "SELECT no_such_function(1)",
        "SELECT 1 / 0",
        "SELECT n_nationkey / (n_regionkey - n_regionkey) FROM nation",
    ],
)
def test_errors_match_trino(trino_server, trino_reference, sql):
    ours, theirs = both(trino_server, trino_reference, sql)
    assert ours["error"] and theirs["error"]
    for key in ("errorName", "errorCode", "errorType"):
        assert ours["error"][key] == theirs["error"][key], (key, ours["error"], theirs["error"]["message"])
    assert ours["error"].get("errorLocation") == theirs["error"].get("errorLocation"), (
        ours["error"]["message"],
        theirs["error"]["message"],
    )
    assert ("errorLocation" in theirs["error"]) == ours["error"]["message"].startswith("line ")
    assert (ours["state"], theirs["state"]) == ("FAILED", "FAILED")
    assert "nextUri" not in ours["pages"][-1]


def test_a_bad_time_zone_fails_like_trino(trino_server, trino_reference):
    zone = {"X-Trino-Time-Zone": "Mars/Olympus_Mons"}
    ours = statement(trino_server.trino_url, "SELECT 1", {**SQE_SESSION, **zone})
    theirs = statement(trino_reference.url, "SELECT 1", {**TRINO_SESSION, **zone})
    for key in ("errorName", "errorType", "message"):
        assert ours["error"][key] == theirs["error"][key], key


@pytest.mark.parametrize("caps", [True, False])
def test_the_session_zone_names_current_timestamp_like_trino(trino_server, trino_reference, caps):
    zone = {"X-Trino-Time-Zone": "America/New_York", **(CAPS if caps else {})}
    ours = statement(trino_server.trino_url, "SELECT current_timestamp", {**SQE_SESSION, **zone})
    theirs = statement(trino_reference.url, "SELECT current_timestamp", {**TRINO_SESSION, **zone})
    assert ours["columns"][0]["type"] == theirs["columns"][0]["type"]
    assert ours["data"][0][0].split(" ")[-1] == theirs["data"][0][0].split(" ")[-1] == "America/New_York"


def test_pages_have_the_same_shape(trino_server, trino_reference):
    sql = "SELECT r_regionkey, r_name FROM region ORDER BY 1"
    ours, theirs = both(trino_server, trino_reference, sql)
    for result in (ours, theirs):
        first, last = result["pages"][0], result["pages"][-1]
        assert first["stats"]["state"] == "QUEUED" and "columns" not in first and "data" not in first
        assert "nextUri" in first and "nextUri" not in last
        assert last["stats"]["state"] == "FINISHED"
        assert all("columns" in p for p in result["pages"] if "data" in p)
    assert set(theirs["pages"][-1]) - {"updateType"} <= set(ours["pages"][-1]) | {"partialCancelUri"}
    missing = {k for k in theirs["pages"][-1]["stats"] if k not in ours["pages"][-1]["stats"]}
    assert missing <= {"planningTimeMillis", "analysisTimeMillis", "finishingTimeMillis", "physicalInputTimeMillis", "internalNetworkInputBytes", "rootStage"}, missing


def test_session_statements_answer_like_trino(trino_server, trino_reference):
    for sql, header in [
        ("SET SESSION query_max_run_time = '1h'", None),
        ("RESET SESSION query_max_run_time", None),
    ]:
        theirs = statement(trino_reference.url, sql, TRINO_SESSION)
        assert theirs["error"] is None
    # SQE's session properties are DataFusion's; the answer has Trino's shape
    ours = statement(trino_server.trino_url, "SET SESSION datafusion.execution.batch_size = 100", SQE_SESSION)
    theirs = statement(trino_reference.url, "SET SESSION query_max_run_time = '1h'", TRINO_SESSION)
    assert ours["updateType"] == theirs["updateType"] == "SET SESSION"
    assert ours["columns"] == theirs["columns"] == []
    ours = statement(trino_server.trino_url, "USE tpch", SQE_SESSION)
    theirs = statement(trino_reference.url, "USE tiny", TRINO_SESSION)
    assert ours["updateType"] == theirs["updateType"] == "USE"
    assert ours["headers"][-1]["x-trino-set-schema"] == ["tpch"] and theirs["headers"][-1]["x-trino-set-schema"] == ["tiny"]
    ours = statement(trino_server.trino_url, "SELECT version()", SQE_SESSION)
    theirs = statement(trino_reference.url, "SELECT version()", TRINO_SESSION)
    assert normal_columns(ours["columns"]) == normal_columns(theirs["columns"])
