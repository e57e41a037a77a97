"""Helpers for the Trino protocol tests: connections of the real `trino` client to SQE, and a
raw `/v1/statement` driver for what the clients hide (pages, headers, cancel)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import trino

from sqe_harness import SqeServer

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

#: Where the TPC-H sample lives on SQE (catalog.schema).
SQE_CATALOG = "iceberg"
SQE_SCHEMA = "tpch"


def connect(server: SqeServer, schema: str | None = SQE_SCHEMA, **kwargs: Any) -> trino.dbapi.Connection:
    """A DB-API connection of the real trino client to SQE's Trino endpoint."""
    kwargs.setdefault("user", "test")
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=server.trino_port,
        http_scheme="http",
        catalog=SQE_CATALOG,
        schema=schema,
        request_timeout=120,
        **kwargs,
    )


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, list[str]], Any]:
    """One HTTP request; returns (status, headers with lower-case names, JSON or text body)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _HTTP.open(req, timeout=120) as resp:
            status, raw, hdrs = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    merged: dict[str, list[str]] = {}
    for k, v in hdrs.items():
        merged.setdefault(k.lower(), []).append(v)
    text = raw.decode("utf-8", "replace")
    try:
        return status, merged, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, merged, text


def post(base: str, sql: str, headers: dict[str, str] | None = None, user: str = "test") -> tuple[int, dict, Any]:
    h = {"X-Trino-User": user, "Content-Type": "text/plain; charset=utf-8"}
    h.update(headers or {})
    return request("POST", f"{base}/v1/statement", sql.encode(), h)


def statement(base: str, sql: str, headers: dict[str, str] | None = None, user: str = "test") -> dict[str, Any]:
    """Runs `sql` to the end the way a client does; returns every page and the merged result."""
    h = {"X-Trino-User": user}
    h.update(headers or {})
    status, hdrs, page = post(base, sql, h, user)
    assert status == 200, (status, page)
    pages, all_headers = [page], [hdrs]
    while "nextUri" in page:
        status, hdrs, page = request("GET", page["nextUri"], headers=h)
        assert status == 200, (status, page)
        pages.append(page)
        all_headers.append(hdrs)
    data: list[list[Any]] = []
    columns = None
    for p in pages:
        data.extend(p.get("data", []))
        columns = p.get("columns", columns)
    last = pages[-1]
    return {
        "pages": pages,
        "headers": all_headers,
        "columns": columns,
        "data": data,
        "error": last.get("error"),
        "state": last["stats"]["state"],
        "updateType": last.get("updateType"),
        "updateCount": last.get("updateCount"),
    }
