"""Renders capture.json (from capture.py) into e2e/trino/client-traffic.md.

    python3 e2e/trino/capture/render.py /tmp/cap/capture.json e2e/trino/client-traffic.md

The hand-written summary at the top lives in SUMMARY below; everything after it is generated.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any

SUMMARY = (Path(__file__).resolve().parent / "summary.md").read_text()

# Request headers that only say how the bytes travel.
TRANSPORT = {"host", "content-length", "connection", "accept", "accept-encoding", "content-type"}


def fence(text: str, lang: str = "") -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"


def js(obj: Any, indent: int | None = 1) -> str:
    return json.dumps(obj, indent=indent, ensure_ascii=False)


def trim_failure(fi: Any, keep: int = 2) -> Any:
    """failureInfo with each stack cut to `keep` frames."""
    if not isinstance(fi, dict):
        return fi
    out = dict(fi)
    stack = out.get("stack")
    if isinstance(stack, list) and len(stack) > keep:
        out["stack"] = stack[:keep] + [f"... {len(stack) - keep} more frames"]
    if out.get("cause"):
        out["cause"] = trim_failure(out["cause"], keep)
    if out.get("suppressed"):
        out["suppressed"] = [trim_failure(s, keep) for s in out["suppressed"]]
    return out


def trim_page(page: Any) -> Any:
    if not isinstance(page, dict):
        return page
    p = dict(page)
    if isinstance(p.get("error"), dict) and "failureInfo" in p["error"]:
        p["error"] = dict(p["error"])
        p["error"]["failureInfo"] = trim_failure(p["error"]["failureInfo"])
    return p


def sqls(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return entry.get("runtime_queries") or []


def posted(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in entry["exchanges"] if e["method"] == "POST" and e["path"].startswith("/v1/statement")]


def header_block(headers: list[list[str]]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers if k.lower() not in TRANSPORT)


def action_section(label: str, entry: dict[str, Any], result: str | None = None, show_headers: bool = False) -> str:
    out = [f"#### {label}\n"]
    rq = sqls(entry)
    if not rq:
        out.append("No statement reached the server.\n")
    for q in rq:
        state = q["state"] + (f" ({q['error_code']})" if q.get("error_code") else "")
        out.append(f"user `{q['user']}`, source `{q['source']}`, {state}:\n")
        out.append(fence(q["query"], "sql"))
    others = [e for e in entry["exchanges"] if not (e["method"] == "POST" and e["path"].startswith("/v1/statement"))]
    methods = sorted(
        {e["method"] + " " + re.sub(r"/v1/statement/(\w+)/.*", r"/v1/statement/\1/…", e["path"]) for e in others}
    )
    if methods:
        out.append("Other requests: " + ", ".join(f"`{m}`" for m in methods) + "\n")
    extra_req = []
    for e in entry["exchanges"]:
        for k, v in e["request_headers"]:
            if k.lower() in ("x-trino-prepared-statement",) and (k, v) not in extra_req:
                extra_req.append((k, v))
    resp = []
    for e in entry["exchanges"]:
        for k, v in e["response_headers"]:
            if k.lower().startswith("x-trino") and (k, v) not in resp:
                resp.append((k, v))
    if extra_req:
        out.append("Request headers beyond the client's usual set:\n")
        out.append(fence("\n".join(f"{k}: {v}" for k, v in extra_req)))
    if resp:
        out.append("X-Trino-* response headers:\n")
        out.append(fence("\n".join(f"{k}: {v}   (decoded: {urllib.parse.unquote_plus(v)!r})" for k, v in resp)))
    if show_headers and posted(entry):
        out.append("Headers of the first POST /v1/statement:\n")
        out.append(fence(header_block(posted(entry)[0]["request_headers"])))
    if result:
        out.append("Client-side result:\n")
        out.append(fence(result))
    return "\n".join(out)


def jdbc_results(stdout: str) -> dict[str, str]:
    res: dict[str, list[str]] = {}
    cur = None
    for line in stdout.splitlines():
        if line.startswith("=== "):
            cur = line[4:]
            res[cur] = []
        elif cur:
            res[cur].append(line)
    return {k: "\n".join(v) for k, v in res.items()}


def types_section(t: dict[str, Any], tc: dict[str, Any] | None) -> str:
    out = []
    cols = t["columns"]
    row = t["data"][0] if t["data"] else []
    ccols = tc["columns"] if tc else cols
    crow = tc["data"][0] if tc and tc["data"] else row

    def cell(v: Any) -> str:
        return "`" + js(v, None).replace("|", "\\|") + "`"

    out.append(
        "| column | `type` without capabilities | JSON value | `type` with PARAMETRIC_DATETIME | JSON value | `typeSignature` (with PARAMETRIC_DATETIME) |"
    )
    out.append("|---|---|---|---|---|---|")
    for c, v, cc, cv in zip(cols, row, ccols, crow):
        same = c["type"] == cc["type"] and v == cv
        out.append(
            f"| {c['name']} | `{c['type']}` | {cell(v)} | {'same' if same else '`' + cc['type'] + '`'} | {'same' if same else cell(cv)} | {cell(cc['typeSignature'])} |"
        )
    out.append("")
    out.append(
        "The full `columns` array with `X-Trino-Client-Capabilities: PATH,PARAMETRIC_DATETIME,SESSION_AUTHORIZATION` (what JDBC and the CLI send):\n"
    )
    out.append(fence(js(ccols), "json"))
    out.append("The `data` row, as sent (with capabilities):\n")
    out.append(fence(js(tc["data"] if tc else t["data"], None), "json"))
    out.append(
        "Without `X-Trino-Client-Capabilities` (the raw `run_statement` default), the `columns` differ only for time/timestamp:\n"
    )
    diff = [c for c, cc in zip(cols, ccols) if c != cc]
    out.append(fence(js(diff), "json"))
    return "\n".join(out)


def errors_section(errors: dict[str, Any]) -> str:
    out = [
        "| case | SQL | HTTP statuses | errorName | errorCode | errorType | errorLocation | message |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in errors.items():
        e = r["error"] or {}
        loc = js(e.get("errorLocation"), None) if e.get("errorLocation") else "—"
        out.append(
            f"| {name} | `{r.get('_sql', '')}` | {r['status']} | {e.get('errorName')} | {e.get('errorCode')} | {e.get('errorType')} | `{loc}` | {str(e.get('message', '')).replace('|', chr(92) + '|')} |"
        )
    out.append("")
    for name, r in errors.items():
        out.append(f"#### error: {name}\n")
        out.append(
            f"`{r.get('_sql', '')}`: {len(r['pages'])} responses, statuses {r['status']}. The page with the error (stack frames cut to 2):\n"
        )
        page = next((p for p in r["pages"] if isinstance(p, dict) and p.get("error")), r["pages"][-1])
        out.append(fence(js(trim_page(page)), "json"))
    return "\n".join(out)


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    d = json.loads(Path(src).read_text())
    traffic = d["traffic"]
    from capture import ERRORS

    for name, r in d["errors"].items():
        r["_sql"] = ERRORS.get(name, "")
    for name, r in d.get("errors_with_schema", {}).items():
        r["_sql"] = "SELECT * FROM no_such_table"
    py = d.get("python_results", {})
    jd = jdbc_results(d.get("jdbc_stdout", ""))
    out = [SUMMARY.replace("{versions}", js(d.get("versions"), None))]

    out.append("\n## 1. SQLAlchemy inspector (trino.sqlalchemy dialect)\n")
    out.append(
        '`create_engine("trino://test@127.0.0.1:PORT/tpch")`; each call on a fresh `inspect(engine)`. '
        "The SQL below is what `system.runtime.queries` recorded (identical to the POST bodies).\n"
    )
    for label, entry in traffic.items():
        if label.startswith("sqlalchemy") or label.startswith("pandas"):
            out.append(
                action_section(label, entry, py.get(label, {}).get("result") or py.get(label, {}).get("exception"))
            )
    for label in py:
        if (label.startswith("sqlalchemy") or label.startswith("pandas")) and label not in traffic:
            out.append(
                f"#### {label}\n\nNo request at all. Client-side result:\n\n"
                + fence(py[label].get("result") or py[label].get("exception"))
            )

    out.append("\n## 2. Trino JDBC driver 476: DatabaseMetaData, Statement, PreparedStatement\n")
    out.append(
        "`jdbc:trino://127.0.0.1:PORT/tpch/tiny`, user `test`, `source=jdbc-capture` (e2e/trino/capture/JdbcCapture.java).\n"
    )
    for label, entry in traffic.items():
        if label.startswith("jdbc"):
            out.append(action_section(label, entry, jd.get(label)))
    for label in jd:
        if label not in traffic:
            out.append(f"#### {label}\n\nNo request at all. Client-side result:\n\n" + fence(jd[label]))

    out.append("\n## 3. Types: `columns`, `typeSignature` and JSON values\n")
    out.append(fence(d["types"]["pages"][0] and _types_sql(), "sql"))
    out.append(types_section(d["types"], d.get("types_caps")))

    out.append("\n## 4. Errors\n")
    out.append(errors_section({**d["errors"], **d.get("errors_with_schema", {})}))
    nu = d.get("no_user")
    if nu:
        out.append("#### no user (empty X-Trino-User)\n")
        out.append(f"HTTP {nu['status']}, body: `{nu['pages'][-1]}` (plain text, not JSON)\n")

    if d.get("dml"):
        out.append("\n## 4b. DDL and DML (catalog `memory`, raw client)\n")
        out.append("| statement | updateType | updateCount | `columns` | `data` | error |\n|---|---|---|---|---|---|")
        for x in d["dml"]:
            r = x["result"]
            e = r["error"] or {}
            cols = (
                ", ".join(f"{c['name']} `{c['type']}`" for c in (r["columns"] or []))
                if r["columns"] is not None
                else "absent"
            )
            if r["columns"] == []:
                cols = "`[]`"
            err = f"{e.get('errorName')} ({e.get('errorCode')}): {e.get('message')}" if e else ""
            out.append(
                f"| `{x['sql']}` | {r['updateType']} | {r['updateCount']} | {cols} | `{js(r['data'], None)}` | {err.replace('|', chr(92) + '|')} |"
            )
        out.append("")
        ins = next(x for x in d["dml"] if x["name"].startswith("INSERT VALUES"))
        out.append(f"Every page of `{ins['sql']}` (statuses {ins['result']['status']}):\n")
        for p in ins["result"]["pages"]:
            out.append(fence(js(p), "json"))
        ddl = next(x for x in d["dml"] if x["name"] == "CREATE TABLE")
        out.append(f"Last page of `{ddl['sql']}`:\n")
        out.append(fence(js(ddl["result"]["pages"][-1]), "json"))

    out.append("\n## 5. The page sequence of one query (`SELECT * FROM tpch.tiny.region`, raw client)\n")
    rp = d["region_pages"]
    out.append(f"{len(rp['pages'])} responses, statuses {rp['status']}. Every page, as sent:\n")
    for i, p in enumerate(rp["pages"]):
        hdr = {k: v for k, v in rp["response_headers"][i].items()}
        out.append(f"Response {i + 1} (headers {js(hdr, None)}):\n")
        out.append(fence(js(p), "json"))

    out.append("\n## 6. Session, prepared statements, SHOW/DESCRIBE (raw client)\n")
    out.append(
        "| statement | request headers | updateType | X-Trino-* response headers | data |\n|---|---|---|---|---|"
    )
    for name, s in d["session"].items():
        r = s["result"]
        hs = [f"{k}: {v}" for h in r["response_headers"] for k, v in h.items() if k.lower().startswith("x-trino")]
        err = r["error"]
        data = js(r["data"][:12], None)
        if err:
            data = f"error {err.get('errorName')}: {err.get('message')}"
        data = data.replace("|", "\\|").replace("\n", "\\n")
        if len(data) > 400:
            data = data[:400] + "…"
        req = ", ".join(f"{k}: {v}" for k, v in s["headers"].items()) or "—"
        out.append(f"| `{s['sql']}` | {req} | {r['updateType']} | {'<br>'.join(hs) or '—'} | `{data}` |")
    out.append("")
    out.append("`columns` of the SHOW/DESCRIBE results:\n")
    for name in (
        "SHOW CATALOGS",
        "SHOW SCHEMAS FROM tpch",
        "SHOW TABLES FROM tpch.tiny",
        "DESCRIBE tpch.tiny.nation",
        "DESCRIBE INPUT",
        "DESCRIBE OUTPUT",
        "EXPLAIN",
    ):
        r = d["session"][name]["result"]
        if r["columns"]:
            out.append(
                f"- `{d['session'][name]['sql']}`: " + ", ".join(f"{c['name']} `{c['type']}`" for c in r["columns"])
            )
    out.append("")
    for name in ("SET SESSION", "PREPARE"):
        r = d["session"][name]["result"]
        out.append(f"Last page of `{d['session'][name]['sql']}`:\n")
        out.append(fence(js(r["pages"][-1]), "json"))

    out.append("\n## 7. trino Python client (DB-API)\n")
    for label, entry in traffic.items():
        if label.startswith("python"):
            out.append(
                action_section(
                    label,
                    entry,
                    py.get(label, {}).get("result") or py.get(label, {}).get("exception"),
                    show_headers=label.endswith("(default)"),
                )
            )

    out.append("\n## 8. Trino CLI 476\n")
    for label, entry in traffic.items():
        if label.startswith("cli"):
            c = d["cli"][label]
            res = f"$ java -jar trino-cli.jar {' '.join(c['cmd'])}\nexit {c['rc']}\n--- stdout\n{c['stdout']}--- stderr\n{c['stderr']}"
            out.append(action_section(label, entry, res, show_headers=label.endswith("CSV")))

    out.append("\n## 9. Request headers of each client (first POST /v1/statement)\n")
    seen = set()
    for label, entry in traffic.items():
        client = label.split()[0]
        if client in seen or not posted(entry):
            continue
        seen.add(client)
        out.append(f"- **{client}** (from “{label}”):\n")
        out.append(fence(header_block(posted(entry)[0]["request_headers"])))
    first = next(iter(traffic.values()))
    if posted(first):
        out.append("Response headers of a POST /v1/statement:\n")
        out.append(fence(header_block(posted(first)[0]["response_headers"])))

    out.append("\n## 10. `/v1/info` and `SELECT version()`\n")
    out.append(fence(js(d["v1_info"]), "json"))
    v = d["session"]["SELECT version()"]["result"]
    out.append(f"`SELECT version()` → columns {js(v['columns'], None)}, data {js(v['data'], None)}\n")
    Path(dst).write_text("\n".join(out))
    print(f"wrote {dst}")


def _types_sql() -> str:
    from capture import TYPES_SQL

    return TYPES_SQL


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
