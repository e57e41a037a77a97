"""A real Trino server (the reference for SQE's Trino protocol) and a raw Trino protocol client.

`TrinoReference` starts Trino 476 as a single-node coordinator (it also runs the tasks) on a
free 127.0.0.1 port, in a directory of its own, with the TPC-H connector as catalog `tpch`
(`tpch.column-naming=STANDARD`, so the columns are n_nationkey, n_name, ...; schema `tiny` is
scale factor 0.01) and the memory connector as catalog `memory` (for DDL and DML). The server comes
from `make trino-stack` (e2e/trino/fetch.sh), cached under `$CACHE_DIR/trino-476`
(CACHE_DIR defaults to ~/.cache/sqe), and runs on Java 24+: `$TRINO_JAVA_HOME`, default
/usr/lib/jvm/temurin-25-jdk-amd64.

`run_statement(base_url, sql)` speaks the Trino client protocol with urllib only (POST
/v1/statement, then GET every nextUri until there is none) and keeps every raw JSON page and the
headers of every response, so that tests can drive SQE and the reference Trino the same way and
compare what they answer.

Waiting is always a poll with a deadline, never a bare sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from sqe_harness import LoggedProcess

TRINO_VERSION = "476"
DEFAULT_JAVA_HOME = "/usr/lib/jvm/temurin-25-jdk-amd64"
#: How long the server may take to answer /v1/info with "starting": false.
START_TIMEOUT_S = 240.0
#: How long SIGTERM may take before SIGKILL (Trino's graceful shutdown is not used).
STOP_TIMEOUT_S = 30.0
#: Per-request timeout of `run_statement`, and its overall deadline for one statement.
HTTP_TIMEOUT_S = 60.0
STATEMENT_TIMEOUT_S = 300.0

# Loopback traffic never goes through a proxy that the environment may configure.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TrinoStackMissing(RuntimeError):
    """The Trino reference stack is not in the cache: `make trino-stack` fetches it."""


# --------------------------------------------------------------------------------------------
# Where things are


def cache_dir() -> Path:
    """The cache root: $CACHE_DIR, or ~/.cache/sqe (the Makefile's default)."""
    env = os.environ.get("CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "sqe"


def stack_dir() -> Path:
    return cache_dir() / f"trino-{TRINO_VERSION}"


def server_dir() -> Path:
    return stack_dir() / "server"


def trino_jdbc_jar() -> Path:
    return stack_dir() / "trino-jdbc.jar"


def trino_cli_jar() -> Path:
    return stack_dir() / "trino-cli.jar"


def flight_sql_jdbc_jar() -> Path:
    return stack_dir() / "flight-sql-jdbc-driver.jar"


def java_home() -> Path:
    return Path(os.environ.get("TRINO_JAVA_HOME") or DEFAULT_JAVA_HOME)


def java_binary() -> Path:
    return java_home() / "bin" / "java"


def require_stack(*, server: bool = True) -> Path:
    """The stack dir; raises `TrinoStackMissing` naming `make trino-stack` when a piece is absent."""
    missing = []
    if server and not (server_dir() / ".complete").is_file():
        missing.append(str(server_dir()))
    for plugin in PLUGINS if server else ():
        if not (server_dir() / f".plugin-{plugin}.complete").is_file():
            missing.append(str(server_dir() / "plugin" / plugin))
    for jar in (trino_jdbc_jar(), trino_cli_jar(), flight_sql_jdbc_jar()):
        if not jar.is_file():
            missing.append(str(jar))
    if missing:
        raise TrinoStackMissing(
            f"the Trino {TRINO_VERSION} reference stack is not fetched (missing: {', '.join(missing)}): "
            f"run `make trino-stack` (CACHE_DIR={cache_dir()})"
        )
    if server and not java_binary().is_file():
        raise TrinoStackMissing(
            f"Trino {TRINO_VERSION} needs Java 24+, not found at {java_binary()}: install it or set TRINO_JAVA_HOME"
        )
    return stack_dir()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The server

# What Trino's own jvm.config recommends, minus what does not fit a 2-core test machine (a large
# code cache, RAM percentages), plus what makes start-up quick: the class-data-sharing archive
# is created on the first run and reused afterwards (JDK 19+ -XX:+AutoCreateSharedArchive).
JVM_FLAGS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:G1HeapRegionSize=4M",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:ReservedCodeCacheSize=256M",
    # C1 only: on 2 cores this starts ~20% faster with ~100 MiB less RSS, and TPC-H tiny
    # queries run as fast (measured)
    "-XX:TieredStopAtLevel=1",
    "-XX:PerMethodRecompilationCutoff=10000",
    "-XX:PerBytecodeRecompilationCutoff=10000",
    "-Djdk.attach.allowAttachSelf=true",
    "-Djdk.nio.maxCachedBufferSize=2000000",
    "-Dfile.encoding=UTF-8",
    "-XX:+EnableDynamicAgentLoading",
    # Java 24+ warns on stderr about these without the flags
    "--enable-native-access=ALL-UNNAMED",
    "--sun-misc-unsafe-memory-access=allow",
]


#: tpch: TPC-H generated on the fly (schemas tiny = SF 0.01, sf1, ...), standard column names
#: (n_nationkey, ...); memory: tables in RAM, for CREATE TABLE / INSERT / DROP.
DEFAULT_CATALOGS: dict[str, dict[str, str]] = {
    "tpch": {"connector.name": "tpch", "tpch.column-naming": "STANDARD"},
    "memory": {"connector.name": "memory", "memory.max-data-per-node": "128MB"},
}
PLUGINS = ("tpch", "memory")


class TrinoReference(LoggedProcess):
    """One real Trino server on 127.0.0.1 (see the module docstring).

    `base_dir=None` makes a temporary directory that `stop()` removes; pass a directory to keep
    the configuration, data and log (`<base_dir>/trino.log`) after the run.
    """

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        heap: str = "1G",
        catalogs: dict[str, dict[str, str]] | None = None,
        extra_config: dict[str, str] | None = None,
        extra_jvm: list[str] | None = None,
        name: str = "trino-ref",
    ) -> None:
        self.name = name
        self.heap = heap
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="trino-ref-"))
        self.catalogs = catalogs if catalogs is not None else dict(DEFAULT_CATALOGS)
        self.extra_config = dict(extra_config or {})
        self.extra_jvm = list(extra_jvm or [])
        self.log_path = self.base_dir / "trino.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.returncode: int | None = None
        LoggedProcess.registry.append(self)
        #: Seconds from spawning the JVM to /v1/info answering "starting": false.
        self.startup_seconds: float | None = None

    # ---- addresses

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_title(self) -> str:
        return f"trino reference log ({self.url})"

    # ---- configuration

    def _write_config(self) -> None:
        etc = self.base_dir / "etc"
        (etc / "catalog").mkdir(parents=True, exist_ok=True)
        data = self.base_dir / "data"
        data.mkdir(exist_ok=True)
        # Only the connector plugins that the catalogs use are loaded (trino-server-core's
        # other plugins cost start-up time): plugin.dir points at a directory of links to them.
        plugins = self.base_dir / "plugin"
        plugins.mkdir(exist_ok=True)
        for connector in sorted({c["connector.name"] for c in self.catalogs.values()}):
            link = plugins / connector
            if not link.exists():
                link.symlink_to(server_dir() / "plugin" / connector, target_is_directory=True)

        node = {
            "node.environment": "sqe_reference",
            "node.id": f"ref-{uuid.uuid4().hex[:12]}",
            "node.data-dir": str(data),
            # listen on and announce loopback only
            "node.bind-ip": "127.0.0.1",
            "node.internal-address": "127.0.0.1",
        }
        config = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(self.port),
            "discovery.uri": self.url,
            "catalog.config-dir": str(etc / "catalog"),
            "plugin.dir": str(plugins),
            # a 1 GiB heap: the defaults (30% of the heap per query) are fine for TPC-H tiny
            "query.max-memory": "512MB",
            "query.max-memory-per-node": "256MB",
            # keep it light on a 2-core machine
            "task.concurrency": "2",
            "task.max-worker-threads": "4",
            "http-server.threads.max": "50",
            "http-server.log.enabled": "false",
        }
        config.update(self.extra_config)
        jvm = [f"-Xmx{self.heap}", *JVM_FLAGS, *self.extra_jvm]
        cds = stack_dir() / f"trino-{TRINO_VERSION}-{java_home().name}.jsa"
        jvm += [
            "-XX:+AutoCreateSharedArchive",
            f"-XX:SharedArchiveFile={cds}",
            "-Xlog:cds=off",
            "-Xlog:cds+dynamic=off",
        ]

        def props(d: dict[str, str]) -> str:
            return "".join(f"{k}={v}\n" for k, v in d.items())

        (etc / "node.properties").write_text(props(node))
        (etc / "config.properties").write_text(props(config))
        (etc / "jvm.config").write_text("\n".join(jvm) + "\n")
        (etc / "log.properties").write_text("io.trino=INFO\n")
        for cat, cprops in self.catalogs.items():
            (etc / "catalog" / f"{cat}.properties").write_text(props(cprops))
        self._node = node
        self._jvm = jvm

    def command(self) -> list[str]:
        """What bin/launcher run would execute: java, jvm.config, the class path, node.properties
        as system properties, -Dconfig, the main class. Run directly, so that SIGTERM reaches the
        JVM and the pid is the JVM's."""
        etc = self.base_dir / "etc"
        return [
            str(java_binary()),
            *self._jvm,
            "-cp",
            str(server_dir() / "lib" / "*"),
            *[f"-D{k}={v}" for k, v in self._node.items()],
            f"-Dconfig={etc / 'config.properties'}",
            f"-Dlog.levels-file={etc / 'log.properties'}",
            "io.trino.server.TrinoServer",
        ]

    # ---- lifecycle

    def start(self, timeout: float = START_TIMEOUT_S) -> TrinoReference:
        require_stack()
        for attempt in range(3):
            self.port = free_port()
            self._write_config()
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except TrinoStartError:
                log = self.log_text().lower()
                if self.proc.poll() is not None and "address already in use" in log and attempt < 2:
                    continue
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {' '.join(self.command())}\n".encode())
            log.flush()
            env = {
                k: v
                for k, v in os.environ.items()
                if k not in ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")
            }
            env["JAVA_HOME"] = str(java_home())
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(self.base_dir),
                env=env,
            )
        self.started_at = time.monotonic()
        self.stopped_at = None

    @property
    def probe_sql(self) -> str:
        """The query that must succeed before the server counts as ready."""
        if "tpch" in self.catalogs:
            return "SELECT count(*) FROM tpch.tiny.region"
        return "SELECT 1"

    def info(self, timeout: float = 5.0) -> dict[str, Any]:
        with _HTTP.open(f"{self.url}/v1/info", timeout=timeout) as resp:
            return json.loads(resp.read())

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Polls /v1/info until "starting" is false; fails with the log if the JVM exits."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.stopped_at = time.monotonic()
                raise TrinoStartError(f"Trino exited with code {rc} before it was ready\n{self.log_tail()}")
            try:
                info = self.info(timeout=2.0)
                if info.get("starting") is False:
                    # "starting": false comes a few seconds before the node manager has seen
                    # this node announce itself; until then queries fail with "No nodes
                    # available to run query". So a query that needs a node must also work.
                    probe = run_statement(self.url, self.probe_sql, timeout=30.0, request_timeout=10.0)
                    if probe["error"] is None:
                        self.startup_seconds = time.monotonic() - self.started_at
                        return
                    last = f"probe {self.probe_sql!r}: {probe['error'].get('message')}"
                else:
                    last = f"/v1/info: {info}"
            except (OSError, ValueError) as e:
                last = repr(e)
            if time.monotonic() >= deadline:
                self.stop()
                raise TrinoStartError(f"Trino not ready after {timeout:.0f}s (last: {last})\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL; removes a temporary base dir."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            rc = self.proc.wait()
            self.stopped_at = self.stopped_at or time.monotonic()
        if self._own_dir and self.base_dir.exists():
            # keep the log readable after stop: copy it next to nothing, just read it first
            self._last_log = self.log_text()
            shutil.rmtree(self.base_dir, ignore_errors=True)
        return rc

    def __enter__(self) -> TrinoReference:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- diagnostics

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return getattr(self, "_last_log", "")

    def rss_bytes(self) -> int | None:
        """The JVM's resident set size now (Linux /proc), or None when it is not running."""
        if not self.running:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return None

    def query(self, sql: str, **kwargs: Any) -> list[list[Any]]:
        """`run_statement` against this server; raises on a query error; returns the rows."""
        result = run_statement(self.url, sql, **kwargs)
        if result["error"]:
            raise AssertionError(f"{sql!r} failed on the reference Trino: {result['error'].get('message')}")
        return result["data"]

    def __repr__(self) -> str:
        return f"TrinoReference({self.name}, {self.url}, base_dir={self.base_dir})"


class TrinoStartError(AssertionError):
    pass


# --------------------------------------------------------------------------------------------
# The raw client


def _request(
    method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _HTTP.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def run_statement(
    base_url: str,
    sql: str,
    headers: dict[str, str] | None = None,
    user: str = "test",
    *,
    timeout: float = STATEMENT_TIMEOUT_S,
    request_timeout: float = HTTP_TIMEOUT_S,
) -> dict[str, Any]:
    """Runs `sql` with the Trino client protocol: POST {base_url}/v1/statement, then GET each
    `nextUri` until a response has none. Returns

        {"columns": first non-null `columns`, "data": every page's `data` concatenated,
         "error": the `error` object (or None), "updateType", "updateCount",
         "stats": the last `stats`, "id", "infoUri",
         "status": [HTTP status of each response],
         "pages": [the parsed JSON of each response (the raw text if it was not JSON)],
         "response_headers": [dict of the headers of each response]}

    `headers` are sent with every request (X-Trino-User defaults to `user`). A 503 is retried,
    as the Trino clients do, until `timeout`. A non-200 answer with no JSON body ends the loop
    and is reported in "error" as {"httpStatus": ..., "message": body}.
    """
    send = {"X-Trino-User": user, "User-Agent": "sqe-e2e-raw"}
    send.update(headers or {})
    deadline = time.monotonic() + timeout
    result: dict[str, Any] = {
        "columns": None,
        "data": [],
        "error": None,
        "updateType": None,
        "updateCount": None,
        "stats": None,
        "id": None,
        "infoUri": None,
        "status": [],
        "pages": [],
        "response_headers": [],
    }
    method, url, body = "POST", base_url.rstrip("/") + "/v1/statement", sql.encode("utf-8")
    post_headers = dict(send)
    post_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    while True:
        if time.monotonic() >= deadline:
            raise AssertionError(f"statement still running after {timeout:.0f}s: {sql!r}")
        status, rheaders, raw = _request(method, url, body, post_headers if method == "POST" else send, request_timeout)
        result["status"].append(status)
        result["response_headers"].append(rheaders)
        text = raw.decode("utf-8", "replace")
        if status == 503:
            result["pages"].append(text)
            time.sleep(0.05)
            continue
        try:
            page = json.loads(text) if text else None
        except ValueError:
            page = None
        result["pages"].append(page if page is not None else text)
        if status != 200 or not isinstance(page, dict):
            result["error"] = result["error"] or {"httpStatus": status, "message": text}
            return result
        result["id"] = result["id"] or page.get("id")
        result["infoUri"] = result["infoUri"] or page.get("infoUri")
        if result["columns"] is None and page.get("columns") is not None:
            result["columns"] = page["columns"]
        if page.get("data"):
            result["data"].extend(page["data"])
        if page.get("error") is not None:
            result["error"] = page["error"]
        if page.get("updateType") is not None:
            result["updateType"] = page["updateType"]
        if page.get("updateCount") is not None:
            result["updateCount"] = page["updateCount"]
        result["stats"] = page.get("stats", result["stats"])
        next_uri = page.get("nextUri")
        if not next_uri:
            return result
        method, url, body = "GET", next_uri, None


if __name__ == "__main__":  # a manual start: python3 trino_reference.py
    ref = TrinoReference()
    try:
        ref.start()
        rss = ref.rss_bytes() or 0
        print(f"Trino {TRINO_VERSION} at {ref.url}: ready in {ref.startup_seconds:.1f}s, RSS {rss / 2**20:.0f} MiB")
        print(json.dumps(ref.info()))
        print(ref.query("SELECT count(*) FROM tpch.tiny.nation"))
        print(f"RSS after a query: {(ref.rss_bytes() or 0) / 2**20:.0f} MiB")
    finally:
        ref.stop()
