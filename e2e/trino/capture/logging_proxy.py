"""A tiny logging HTTP/1.1 proxy on 127.0.0.1, put between a Trino client and a Trino server to
record what the client sends (method, path, every header, the body) and what it gets back.

    proxy = LoggingProxy("http://127.0.0.1:8080").start()
    proxy.label = "jdbc getTables"          # or: GET {proxy.url}/__label__/<text> from any client
    ... point the client at proxy.url ...
    proxy.exchanges                          # list of dicts, one per request, tagged with the label
    proxy.stop()

The Host header is passed through unchanged, so the nextUri links that Trino builds from it
point at the proxy and every follow-up request is recorded too. Standard library only.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import json
import threading
import time
import urllib.parse
import zlib
from typing import Any

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


def _decode(body: bytes, encoding: str | None) -> bytes:
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except Exception:  # noqa: BLE001 - best effort, only for the log
        return body
    return body


class LoggingProxy:
    def __init__(self, upstream: str, body_limit: int = 200_000) -> None:
        u = urllib.parse.urlsplit(upstream)
        self.upstream_host = u.hostname or "127.0.0.1"
        self.upstream_port = u.port or 80
        self.body_limit = body_limit
        self.label = ""
        self.exchanges: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoggingProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                if self.path.startswith("/__label__/"):
                    proxy.label = urllib.parse.unquote(self.path[len("/__label__/") :])
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req_headers = [(k, v) for k, v in self.headers.items()]
                # a list, not a dict: a header may come several times (JDBC sends one
                # X-Trino-Prepared-Statement per open prepared statement)
                fwd = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
                t0 = time.time()
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in fwd:
                        if k.lower() != "content-length":
                            conn.putheader(k, v)
                    if body or self.command in ("POST", "PUT"):
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body or None)
                    resp = conn.getresponse()
                    rbody = resp.read()
                    rheaders = resp.getheaders()
                    status = resp.status
                finally:
                    conn.close()
                logged = _decode(rbody, resp.getheader("Content-Encoding"))
                entry = {
                    "label": proxy.label,
                    "time": t0,
                    "method": self.command,
                    "path": self.path,
                    "request_headers": req_headers,
                    "request_body": body[: proxy.body_limit].decode("utf-8", "replace"),
                    "status": status,
                    "response_headers": rheaders,
                    "response_body": logged[: proxy.body_limit].decode("utf-8", "replace"),
                }
                with proxy._lock:
                    proxy.exchanges.append(entry)
                self.send_response(status)
                for k, v in rheaders:
                    if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                        continue
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(rbody)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client went away (e.g. the JDBC driver closing a result early)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="logging-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def for_label(self, label: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.exchanges if e["label"] == label]

    def dump(self, path: str) -> None:
        with self._lock, open(path, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in self.exchanges)
