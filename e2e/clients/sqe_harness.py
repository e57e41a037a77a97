"""Drives a real `sqe-server` process and real Python clients for the end-to-end suite.

Everything here talks to the server the way a user would: the process is started from the
built binary, configured through `sqe.toml` and `SQE_<SECTION>__<KEY>` variables, and reached
over loopback TCP with ADBC (Flight SQL), pyarrow.flight and plain HTTP (urllib). Distributed
mode adds `SqeWorker` (an `sqe-worker` process) and `Cluster` (a distributed coordinator and
its workers).

Waiting is always a poll with a deadline (`wait_for`), never a bare sleep.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi
import adbc_driver_manager
import pyarrow as pa
from pyarrow import flight

REPO_ROOT = Path(__file__).resolve().parents[2]

#: How long a server may take to answer /readyz with 200 (the TPC-H sample load is included).
READY_TIMEOUT_S = 120.0
#: How long SIGTERM may take to end an idle server before the harness uses SIGKILL.
STOP_TIMEOUT_S = 45.0
#: Per-RPC deadline the ADBC connections use, so a hung server fails a test instead of the run.
RPC_TIMEOUT_S = 120.0

# Loopback traffic must never go through a proxy that the environment may configure
# (urllib and gRPC both honour *_proxy variables).
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    for _h in ("127.0.0.1", "localhost"):
        if _h not in _hosts:
            _hosts.append(_h)
    os.environ[_var] = ",".join(_hosts)

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------------------------
# Binaries


def server_binary() -> Path:
    return Path(os.environ.get("SQE_SERVER_BIN", REPO_ROOT / "target" / "release" / "sqe-server"))


def cli_binary() -> Path:
    return Path(os.environ.get("SQE_CLI_BIN", REPO_ROOT / "target" / "release" / "sqe-cli"))


def worker_binary() -> Path:
    return Path(os.environ.get("SQE_WORKER_BIN", REPO_ROOT / "target" / "release" / "sqe-worker"))


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: ours without any SQE_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQE_")}
    env.setdefault("RUST_BACKTRACE", "1")
    if extra:
        env.update(extra)
    return env


def hash_password(password: str, binary: Path | None = None) -> str:
    """Runs `sqe-server hash-password` with `password` on stdin and returns the PHC string."""
    binary = binary or server_binary()
    proc = subprocess.run(
        [str(binary), "hash-password"],
        check=False,
        input=password.encode("utf-8"),
        capture_output=True,
        env=base_env(),
        timeout=60,
    )
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, f"hash-password exited {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert lines, f"hash-password printed nothing on stdout; stderr:\n{err}"
    phc = lines[-1]
    assert phc.startswith("$argon2"), f"hash-password did not print a PHC argon2 hash: {out!r}"
    return phc


# --------------------------------------------------------------------------------------------
# Small utilities


def unique(prefix: str) -> str:
    """A fresh lower-case SQL identifier, so tests sharing a server never collide."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> Any:
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds pass.

    Exceptions other than AssertionError count as "not yet"; the last one (or the last falsy
    value) is reported."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_value: Any = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_value = value
            last_exc = None
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - the predicate may fail until the condition holds
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else f" (last value: {last_value!r})"
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET `url` without proxies; returns (status, body) for any HTTP answer.

    Raises `OSError` (URLError, ConnectionRefusedError, ...) when nothing answers.
    """
    try:
        with _HTTP.open(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


class Background:
    """Runs `fn(*args)` in a daemon thread and keeps its result or exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "background") -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at = time.monotonic()
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self.result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e
        finally:
            self.finished_at = time.monotonic()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the call to end; whether it has."""
        self._thread.join(timeout)
        return self.done

    def join(self, timeout: float) -> Background:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"background call still running after {timeout:.0f}s")
        return self


# --------------------------------------------------------------------------------------------
# Prometheus text format


# name, optional {labels} (label values may hold '}' inside quotes), value; a timestamp or an
# OpenMetrics exemplar may follow and is ignored.
_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s+(\S+)')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Parses Prometheus/OpenMetrics text into (name, labels, value) samples."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        name, _, labels_text, value = m.group(1), m.group(2), m.group(3), m.group(4)
        labels = {k: v for k, v in _LABEL_RE.findall(labels_text or "")}
        try:
            samples.append((name, labels, float(value)))
        except ValueError:
            continue
    return samples


def metric_sum(samples: Iterable[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    """Sum of the samples called `name` whose labels include `labels`; None if there are none."""
    found = [v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items())]
    return sum(found) if found else None


# --------------------------------------------------------------------------------------------
# Flight SQL over pyarrow.flight (pyarrow has no Flight SQL protobufs; the two messages we need
# are tiny, so they are encoded by hand: Any{type_url, value=CommandStatementQuery{query}}).


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def statement_query_descriptor(sql: str) -> flight.FlightDescriptor:
    """The FlightDescriptor of a Flight SQL `CommandStatementQuery`."""
    command = _len_field(1, sql.encode("utf-8"))
    any_msg = _len_field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery")
    any_msg += _len_field(2, command)
    return flight.FlightDescriptor.for_command(any_msg)


def call_options(headers: list[tuple[bytes, bytes]] | None = None) -> flight.FlightCallOptions:
    """pyarrow.flight call options with the suite's RPC deadline and optional headers."""
    return flight.FlightCallOptions(timeout=RPC_TIMEOUT_S, headers=headers)


def flight_sql_query(
    client: flight.FlightClient, sql: str, options: flight.FlightCallOptions | None = None
) -> pa.Table:
    """Runs `sql` through GetFlightInfo + DoGet on every endpoint and returns all rows."""
    options = options or call_options()
    info = client.get_flight_info(statement_query_descriptor(sql), options)
    tables = [client.do_get(ep.ticket, options).read_all() for ep in info.endpoints]
    if not tables:
        return info.schema.empty_table()
    return pa.concat_tables(tables)


# --------------------------------------------------------------------------------------------
# ADBC helpers


def adbc_error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def assert_adbc_error(
    excinfo_value: BaseException,
    status: adbc_driver_manager.AdbcStatusCode | None = None,
    *substrings: str,
) -> None:
    """Checks an ADBC error's status code and that its message contains every substring
    (case-insensitive)."""
    assert isinstance(excinfo_value, adbc_driver_manager.Error), adbc_error_text(excinfo_value)
    text = str(excinfo_value)
    if status is not None:
        assert excinfo_value.status_code == status, (
            f"expected ADBC status {status.name}, got {excinfo_value.status_code!r}: {text}"
        )
    for s in substrings:
        assert s.lower() in text.lower(), f"expected {s!r} in error message: {text}"


def rows(conn, sql: str, parameters: Any = None) -> list[tuple]:
    """Executes `sql` on a fresh cursor and returns all rows."""
    with conn.cursor() as cur:
        cur.execute(sql, parameters)
        return cur.fetchall()


def scalar(conn, sql: str, parameters: Any = None) -> Any:
    result = rows(conn, sql, parameters)
    assert len(result) == 1 and len(result[0]) == 1, f"{sql!r} returned {result!r}, not one value"
    return result[0][0]


def run(conn, sql: str) -> None:
    """Executes a statement (DDL, INSERT, ...) through the DB-API and drains any result."""
    with conn.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()


def wait_for_scalar(conn, sql: str, expected: Any, timeout: float, what: str) -> None:
    """Polls `sql` until it returns `expected`; errors (e.g. a table not visible yet) count as not yet."""

    def matches() -> bool:
        try:
            return scalar(conn, sql) == expected
        except Exception:
            return False

    wait_for(matches, timeout=timeout, what=what)


def assert_not_found(conn, sql: str, why: str) -> None:
    """`sql` must fail because a name does not resolve on this connection."""
    try:
        scalar(conn, sql)
    except Exception as e:
        text = str(e).lower()
        # "Table 'c.s.t' does not exist" (Trino's wording, with the position) or DataFusion's
        assert "does not exist" in text or "not found" in text, e
    else:
        raise AssertionError(why)


def flatten(result_rows: Iterable[tuple]) -> list[Any]:
    return [v for row in result_rows for v in row]


# --------------------------------------------------------------------------------------------
# A long-running query whose run time is calibrated on this machine.


_LONG_SQL = (
    "SELECT count(*) AS n FROM generate_series(1, {k}) AS a "
    "CROSS JOIN generate_series(1, {k}) AS b WHERE (a.value + b.value) % 3 <> 0"
)


def _residues(k: int) -> list[int]:
    """How many of 1..k are congruent to 0, 1, 2 (mod 3)."""
    return [len(range(r if r else 3, k + 1, 3)) for r in range(3)]


class LongQuery:
    """A CPU-bound query that does not touch Iceberg, cannot be answered from statistics, and
    has a result we can check: count the pairs (a, b) in 1..k x 1..k with (a + b) % 3 != 0.

    Both sides have k rows (k >= 8192), so every record batch is full whichever side the
    planner builds on, and the run time grows as k squared.
    """

    MIN_K = 8192

    def __init__(self, k: int) -> None:
        self.k = max(self.MIN_K, int(k))

    @property
    def sql(self) -> str:
        return _LONG_SQL.format(k=self.k)

    @property
    def expected(self) -> int:
        r = _residues(self.k)
        return sum(r[i] * r[j] for i in range(3) for j in range(3) if (i + j) % 3 != 0)

    def run(self, conn) -> float:
        """Runs the query, checks its result and returns how long it took."""
        t0 = time.monotonic()
        got = scalar(conn, self.sql)
        elapsed = time.monotonic() - t0
        assert got == self.expected, f"{self.sql} returned {got}, expected {self.expected}"
        return elapsed

    @classmethod
    def calibrated(cls, conn, target_seconds: float) -> LongQuery:
        """Measures the query on `conn` with growing k until one run takes 0.5 s, fits
        time = fixed + c * k^2 on the last two runs, and returns the k expected to run
        `target_seconds`."""
        k, previous = cls.MIN_K, None
        while True:
            elapsed = cls(k).run(conn)
            if elapsed >= 0.5 or k >= 4_000_000:
                break
            previous = (k, elapsed)
            k *= 2
        c = elapsed / k**2
        if previous is not None and elapsed > previous[1]:
            c = (elapsed - previous[1]) / (k**2 - previous[0] ** 2)
        fixed = max(0.0, elapsed - c * k**2)
        return cls(math.sqrt(max(target_seconds - fixed, 0.1) / max(c, 1e-15)))


# --------------------------------------------------------------------------------------------
# The server process


def terminate(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL if `proc` is still running `timeout` seconds later; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def die_with_parent() -> None:
    """In a child between fork and exec: SIGTERM it when the test process dies, so a pytest that
    is killed or aborts (no teardown) leaves no server or worker behind (Linux prctl)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class LoggedProcess:
    """A child process started by a test, its output appended to `log_path`: what the server,
    operator and reference-Trino harnesses share (stopping it, reading its log, telling whether it
    ran during a test). Every one is registered, so `attach_logs` can show a failing test the
    logs of the processes that ran during it."""

    registry: ClassVar[list[LoggedProcess]] = []

    proc: subprocess.Popen | None
    log_path: Path
    started_at: float | None
    stopped_at: float | None
    returncode: int | None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()
        self.stopped_at = self.stopped_at or time.monotonic()

    @property
    def log_title(self) -> str:
        """The heading of this process's log in a failed test's report."""
        return f"log of {self.log_path}"

    def ran_since(self, t: float) -> bool:
        """Whether the process was up at some point after monotonic time `t`."""
        return self.started_at is not None and (self.stopped_at is None or self.stopped_at >= t)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def log_offset(self) -> int:
        """The log's size now: pass it to `log_since` to read only what comes after."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def attach_logs(report: Any, since: float, lines: int = 80) -> None:
    """Adds to a pytest report the log tail of every process that was up after `since`."""
    for p in LoggedProcess.registry:
        if p.ran_since(since):
            report.sections.append((p.log_title, p.log_tail(lines)))


class ServerStartError(AssertionError):
    pass


class SqeProcess(LoggedProcess):
    """What an `sqe-server` and an `sqe-worker` process share: SIGTERM drains it, `/readyz` on
    its health listener says whether it takes work."""

    health_url: str

    def terminate(self) -> None:
        """Sends SIGTERM (the start of a graceful drain)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        """Waits for the process to exit; raises (leaving it running) after `timeout`."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.log_title}: still running {timeout:.0f}s later\n{self.log_tail()}") from None
        self.returncode = rc
        self.stopped_at = time.monotonic()
        return rc

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code (negative when
        killed by a signal), or None if the process never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.terminate()
                return self.wait_exit(timeout)
            except AssertionError:
                self.kill()
        self.returncode = self.proc.wait()
        self.stopped_at = self.stopped_at or time.monotonic()
        return self.returncode

    def readyz(self) -> int | None:
        """The /readyz status, or None when the health listener does not answer."""
        try:
            return http_get(f"{self.health_url}/readyz", timeout=2.0)[0]
        except OSError:
            return None


class SqeServer(SqeProcess):
    """One `sqe-server` process on free loopback ports.

    `data_dir=None` makes a fresh data directory under `base_dir`; pass an existing one to
    restart on the same data. `config` is the text of an `sqe.toml`. `env` adds or overrides
    `SQE_*` variables (the harness sets the three listener addresses, turns the TPC-H sample off
    unless `sample=True`, and shortens the shutdown timeout so teardown is quick).
    """

    _counter: ClassVar[int] = 0

    def __init__(
        self,
        base_dir: Path,
        *,
        data_dir: Path | None = None,
        config: str | None = None,
        env: dict[str, str] | None = None,
        sample: bool = False,
        binary: Path | None = None,
        name: str = "sqe",
    ) -> None:
        SqeServer._counter += 1
        self.binary = Path(binary or server_binary())
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir) if data_dir else self.base_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.name = f"{name}-{SqeServer._counter}"
        # The log lives next to the data directory, not inside it.
        self.log_path = self.data_dir.parent / f"{self.name}.log"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = self.data_dir.parent / f"{self.name}.toml"
            self.config_path.write_text(config)
        self.sample = sample
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.flight_port = self.health_port = self.metrics_port = self.trino_port = 0
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.returncode: int | None = None
        LoggedProcess.registry.append(self)

    @property
    def log_title(self) -> str:
        return f"sqe-server log ({self.name}, {self.uri})"

    # ---- addresses

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.flight_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def trino_url(self) -> str:
        """The Trino HTTP protocol endpoint (what `trino --server` and the trino client take)."""
        return f"http://127.0.0.1:{self.trino_port}"

    def command(self) -> list[str]:
        cmd = [str(self.binary), "--data-dir", str(self.data_dir)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd

    def environment(self) -> dict[str, str]:
        env = {
            "SQE_COORDINATOR__FLIGHT_SQL_ADDR": f"127.0.0.1:{self.flight_port}",
            "SQE_COORDINATOR__TRINO_HTTP_ADDR": f"127.0.0.1:{self.trino_port}",
            "SQE_COORDINATOR__HEALTH_ADDR": f"127.0.0.1:{self.health_port}",
            "SQE_METRICS__ADDR": f"127.0.0.1:{self.metrics_port}",
            "SQE_COORDINATOR__SAMPLE_DATA": "true" if self.sample else "false",
            "SQE_COORDINATOR__SHUTDOWN_TIMEOUT_SECS": "10",
        }
        env.update(self.extra_env)
        return base_env(env)

    # ---- lifecycle

    def start(self, ready_timeout: float = READY_TIMEOUT_S) -> SqeServer:
        """Starts the process and waits for /readyz = 200. Retries with new ports if a port
        was taken between choosing and binding it."""
        if not self.binary.exists():
            raise ServerStartError(
                f"sqe-server binary not found at {self.binary}; build it (cargo build --release) "
                "or point SQE_SERVER_BIN at it"
            )
        for attempt in range(3):
            self.flight_port, self.health_port, self.metrics_port, self.trino_port = free_ports(4)
            self._spawn()
            try:
                self.wait_ready(ready_timeout)
                return self
            except ServerStartError:
                log = self.log_text()
                if (
                    self.proc.poll() is not None
                    and "address" in log.lower()
                    and "in use" in log.lower()
                    and attempt < 2
                ):
                    continue
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        # The child keeps its own copy of the descriptor; ours is closed when the block ends.
        with open(self.log_path, "ab") as log:
            log.write(
                f"\n=== {' '.join(self.command())} (flight {self.flight_port}, health "
                f"{self.health_port}, metrics {self.metrics_port}, trino {self.trino_port})\n".encode()
            )
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=str(self.base_dir),
                preexec_fn=die_with_parent,
            )
        self.started_at = time.monotonic()
        self.stopped_at = None
        self.returncode = None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self.stopped_at = time.monotonic()
                raise ServerStartError(f"sqe-server exited with code {rc} before it was ready\n{self.log_tail()}")
            try:
                status, body = http_get(f"{self.health_url}/readyz", timeout=2.0)
                if status == 200:
                    return
                last = f"HTTP {status}: {body.strip()[:200]}"
            except OSError as e:
                last = repr(e)
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError(
                    f"sqe-server not ready after {timeout:.0f}s (last /readyz: {last})\n{self.log_tail()}"
                )
            time.sleep(0.1)

    # ---- HTTP endpoints

    def healthz(self) -> int | None:
        try:
            return http_get(f"{self.health_url}/healthz", timeout=2.0)[0]
        except OSError:
            return None

    def metrics_text(self) -> str:
        status, body = http_get(self.metrics_url)
        assert status == 200, f"GET {self.metrics_url} returned {status}: {body[:300]}"
        return body

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        return parse_metrics(self.metrics_text())

    def metric(self, name: str, **labels: str) -> float | None:
        return metric_sum(self.metrics(), name, **labels)

    # ---- clients

    def connect(self, username: str | None = None, password: str | None = None, **db_kwargs: str):
        """An ADBC DB-API connection (autocommit: SQE has no transactions)."""
        kwargs = {
            adbc_driver_flightsql.DatabaseOptions.TIMEOUT_QUERY.value: str(RPC_TIMEOUT_S),
            adbc_driver_flightsql.DatabaseOptions.TIMEOUT_FETCH.value: str(RPC_TIMEOUT_S),
            adbc_driver_flightsql.DatabaseOptions.TIMEOUT_UPDATE.value: str(RPC_TIMEOUT_S),
        }
        if username is not None:
            kwargs["username"] = username
        if password is not None:
            kwargs["password"] = password
        kwargs.update(db_kwargs)
        return adbc_driver_flightsql.dbapi.connect(self.uri, db_kwargs=kwargs, autocommit=True)

    def flight_client(self) -> flight.FlightClient:
        return flight.FlightClient(self.uri)

    def __repr__(self) -> str:
        return f"SqeServer({self.name}, {self.uri}, data_dir={self.data_dir})"


def run_server_once(
    args: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
    binary: Path | None = None,
) -> subprocess.CompletedProcess:
    """Runs `sqe-server ARGS` to completion (for commands and start-up failures). A server that
    is still running after `timeout` is killed and the test fails."""
    binary = binary or server_binary()
    try:
        return subprocess.run(
            [str(binary), *args],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=base_env(env),
            timeout=timeout,
            cwd=str(cwd) if cwd else None,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(
            f"`sqe-server {' '.join(args)}` still running after {timeout:.0f}s\nstdout:\n{out}\nstderr:\n{err}"
        ) from None


def adbc_connect(server: SqeServer, username: str | None = None, password: str | None = None, **db_kwargs: str):
    """`adbc_driver_flightsql.dbapi.connect("grpc://127.0.0.1:<port>", db_kwargs={...})`."""
    return server.connect(username, password, **db_kwargs)


def flight_client(server: SqeServer) -> flight.FlightClient:
    """A pyarrow.flight client for the server's Flight SQL port."""
    return server.flight_client()


# --------------------------------------------------------------------------------------------
# Distributed mode: `sqe-worker` processes, and a coordinator with its workers
#
#   Cluster ── coordinator: SqeServer with coordinator.mode = "distributed" + internal token
#          └─ workers: SqeWorker ── heartbeat (DoAction sqe.worker.heartbeat, Bearer token) ──▶
#                                   the coordinator's Flight SQL port; tasks come back on the
#                                   worker's own Flight port (Bearer token + x-sqe-protocol)

#: The coordinator <-> worker protocol of the real builds (`SQE_TEST_PROTOCOL_VERSION` makes a
#: process speak another one, which is how the suite builds "old" and "new" binaries).
PROTOCOL_VERSION = 1
#: The header in which every coordinator <-> worker call names its protocol version.
PROTOCOL_HEADER = "x-sqe-protocol"
#: The Flight action a worker heartbeats with, on the coordinator's Flight SQL port.
HEARTBEAT_ACTION = "sqe.worker.heartbeat"
#: How often the suite's workers heartbeat: the default (1000 ms) would make every check of a
#: lost or draining worker wait seconds.
WORKER_HEARTBEAT_MS = 200
#: How long a worker may take to register with its coordinator (/readyz = 200).
WORKER_READY_TIMEOUT_S = 30.0

NODE_COLUMNS = (
    "node_id, http_uri, node_version, coordinator, state, protocol_version, schedulable, note, "
    "running_tasks, memory_used_mb, memory_limit_mb, last_heartbeat"
)


def internal_headers(token: str | None, protocol: int | str | None = PROTOCOL_VERSION) -> list[tuple[bytes, bytes]]:
    """The headers of a coordinator -> worker call: `authorization: Bearer <token>` and
    `x-sqe-protocol`; None leaves a header out."""
    headers = []
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if protocol is not None:
        headers.append((PROTOCOL_HEADER.encode(), str(protocol).encode()))
    return headers


def fetch_dicts(conn, sql: str) -> list[dict[str, Any]]:
    """Executes `sql` through ADBC and returns its rows as dicts by column name."""
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table().to_pylist()


def runtime_nodes(conn) -> dict[str, dict[str, Any]]:
    """`system.runtime.nodes` through ADBC, by node_id (the coordinator's row included)."""
    return {r["node_id"]: r for r in fetch_dicts(conn, f"SELECT {NODE_COLUMNS} FROM system.runtime.nodes")}


def query_id(conn, marker: str, timeout: float = 30.0) -> str:
    """The id of the one query in `system.runtime.queries` whose text contains `marker`
    (a unique string in the query), polled until the coordinator lists it."""

    def lookup() -> str | None:
        found = fetch_dicts(
            conn,
            "SELECT query_id FROM system.runtime.queries "
            f"WHERE strpos(query, '{marker}') > 0 AND strpos(query, 'system.runtime') = 0",
        )
        assert len(found) <= 1, f"more than one query contains {marker!r}: {found}"
        return found[0]["query_id"] if found else None

    return wait_for(lookup, timeout=timeout, what=f"the query containing {marker!r} in system.runtime.queries")


def query_tasks(conn, qid: str) -> list[dict[str, Any]]:
    """The query's rows of `system.runtime.tasks`."""
    return fetch_dicts(
        conn,
        "SELECT node_id, task_id, stage_id, query_id, state FROM system.runtime.tasks "
        f"WHERE query_id = '{qid}' ORDER BY task_id",
    )


def run_worker_once(env: dict[str, str], timeout: float = 30.0, binary: Path | None = None) -> subprocess.CompletedProcess:
    """Runs `sqe-worker` with `env` to completion (start-up failures, `--version` via `args`)."""
    return _run_once([str(binary or worker_binary())], env, timeout)


def worker_version(binary: Path | None = None) -> str:
    """The version `sqe-worker --version` prints (`sqe-worker 0.1.0` -> `0.1.0`)."""
    p = _run_once([str(binary or worker_binary()), "--version"], {}, 30.0)
    assert p.returncode == 0, f"sqe-worker --version exited {p.returncode}: {p.stderr}"
    m = re.search(r"\d+\.\d+\.\d+\S*", p.stdout)
    assert m, f"sqe-worker --version printed no version: {p.stdout!r}"
    return m.group(0)


def _run_once(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd,
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=base_env(env),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise AssertionError(
            f"`{' '.join(cmd)}` still running after {timeout:.0f}s\nstdout:\n{out}\nstderr:\n{err}"
        ) from None


class SqeWorker(SqeProcess):
    """One `sqe-worker` process on free loopback ports, heartbeating to `coordinator`.

    The harness sets its Flight, health and metrics addresses, node id, data dir (spill files
    go to `<data dir>/spill`), the internal token and a short heartbeat interval; `env` adds
    or overrides `SQE_*` variables (`SQE_WORKER__MEMORY_LIMIT_MB`, `SQE_TEST_PROTOCOL_VERSION`,
    …). `start()` returns once /readyz answers 200: the coordinator answered a heartbeat.
    """

    _counter: ClassVar[int] = 0

    def __init__(
        self,
        base_dir: Path,
        coordinator: SqeServer | str,
        *,
        token: str | None,
        node_id: str | None = None,
        env: dict[str, str] | None = None,
        heartbeat_ms: int = WORKER_HEARTBEAT_MS,
        binary: Path | None = None,
    ) -> None:
        SqeWorker._counter += 1
        self.binary = Path(binary or worker_binary())
        self.node_id = node_id or f"worker-{SqeWorker._counter}"
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / self.node_id
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base_dir / f"{self.node_id}.log"
        self.coordinator = coordinator
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.flight_port = self.health_port = self.metrics_port = 0
        self.paused = False
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.returncode: int | None = None
        self._attempts = 0
        LoggedProcess.registry.append(self)

    @property
    def log_title(self) -> str:
        return f"sqe-worker log ({self.node_id}, {self.url})"

    # ---- addresses

    @property
    def url(self) -> str:
        """The URL the worker advertises: `http_uri` in system.runtime.nodes."""
        return f"http://127.0.0.1:{self.flight_port}"

    @property
    def flight_uri(self) -> str:
        return f"grpc://127.0.0.1:{self.flight_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    @property
    def coordinator_url(self) -> str:
        if isinstance(self.coordinator, SqeServer):
            return f"http://127.0.0.1:{self.coordinator.flight_port}"
        return self.coordinator

    def environment(self) -> dict[str, str]:
        env = {
            "SQE_WORKER__FLIGHT_ADDR": f"127.0.0.1:{self.flight_port}",
            "SQE_WORKER__COORDINATOR_URL": self.coordinator_url,
            "SQE_WORKER__NODE_ID": self.node_id,
            "SQE_WORKER__HEARTBEAT_INTERVAL_MS": str(self.heartbeat_ms),
            "SQE_COORDINATOR__HEALTH_ADDR": f"127.0.0.1:{self.health_port}",
            "SQE_METRICS__ADDR": f"127.0.0.1:{self.metrics_port}",
            "SQE_COORDINATOR__DATA_DIR": str(self.data_dir),
        }
        if self.token is not None:
            env["SQE_WORKER__INTERNAL_TOKEN"] = self.token
        env.update(self.extra_env)
        return base_env(env)

    # ---- lifecycle

    def start(self, ready_timeout: float = WORKER_READY_TIMEOUT_S) -> SqeWorker:
        self.launch()
        return self.wait_started(ready_timeout)

    def launch(self) -> None:
        """Starts the process without waiting (`wait_started` waits), so several workers can
        come up at once."""
        if not self.binary.exists():
            raise ServerStartError(
                f"sqe-worker binary not found at {self.binary}; build it (cargo build --release) "
                "or point SQE_WORKER_BIN at it"
            )
        self._attempts = 0
        self._spawn()

    def wait_started(self, ready_timeout: float = WORKER_READY_TIMEOUT_S) -> SqeWorker:
        """Waits for /readyz = 200, starting again on new ports if one was taken."""
        while True:
            try:
                self.wait_ready(ready_timeout)
                return self
            except ServerStartError:
                log = self.log_text().lower()
                if self.proc.poll() is not None and "in use" in log and self._attempts < 2:
                    self._attempts += 1
                    self._spawn()
                    continue
                raise

    def _spawn(self) -> None:
        self.flight_port, self.health_port, self.metrics_port = free_ports(3)
        with open(self.log_path, "ab") as log:
            log.write(
                f"\n=== {self.binary} (node {self.node_id}, flight {self.flight_port}, health "
                f"{self.health_port}, coordinator {self.coordinator_url})\n".encode()
            )
            log.flush()
            self.proc = subprocess.Popen(
                [str(self.binary)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=str(self.base_dir),
                preexec_fn=die_with_parent,
            )
        self.paused = False
        self.started_at = time.monotonic()
        self.stopped_at = None
        self.returncode = None

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self.stopped_at = time.monotonic()
                raise ServerStartError(f"sqe-worker exited with code {rc} before it registered\n{self.log_tail()}")
            status = self.readyz()
            if status == 200:
                return
            last = f"HTTP {status}" if status is not None else "no answer"
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError(
                    f"sqe-worker {self.node_id} not registered after {timeout:.0f}s (last /readyz: "
                    f"{last})\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: the process freezes, so its heartbeats stop while its sockets stay open."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGCONT if paused, then as any SQE process."""
        if self.paused and self.running:
            self.resume()
        return super().stop(timeout)

    # ---- endpoints (readyz: 200 = registered with the coordinator and not draining)

    def flight_client(self) -> flight.FlightClient:
        """A pyarrow.flight client for the worker's own Flight port (the one tasks come in on)."""
        return flight.FlightClient(self.flight_uri)

    def __repr__(self) -> str:
        return f"SqeWorker({self.node_id}, {self.url}, coordinator {self.coordinator_url})"


class Cluster:
    """A distributed-mode coordinator (`sqe-server`, `coordinator.mode = "distributed"`) and
    its `sqe-worker`s, all on loopback and sharing one random internal token.

    `coordinator_env` and `worker_env` add `SQE_*` variables to the coordinator and to every
    worker; `add_workers(..., env=...)` adds more for some of them.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        sample: bool = False,
        config: str | None = None,
        coordinator_env: dict[str, str] | None = None,
        worker_env: dict[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.token = uuid.uuid4().hex
        env = {
            "SQE_COORDINATOR__MODE": "distributed",
            "SQE_WORKER__INTERNAL_TOKEN": self.token,
        }
        env.update(coordinator_env or {})
        self.coordinator = SqeServer(
            self.base_dir / "coordinator", sample=sample, config=config, env=env, name="sqe-coordinator"
        )
        self.worker_env = dict(worker_env or {})
        self.workers: list[SqeWorker] = []

    def start(self, workers: int = 2) -> Cluster:
        self.coordinator.start()
        self.add_workers(workers)
        return self

    def add_workers(self, n: int = 1, env: dict[str, str] | None = None, start: bool = True) -> list[SqeWorker]:
        """`n` more workers (started and registered unless `start=False`), all at once."""
        made = []
        for _ in range(n):
            w = SqeWorker(
                self.base_dir / "workers",
                self.coordinator,
                token=self.token,
                node_id=f"worker-{len(self.workers) + 1}",
                env={**self.worker_env, **(env or {})},
            )
            self.workers.append(w)
            made.append(w)
        if start:
            for w in made:
                w.launch()
            for w in made:
                w.wait_started()
        return made

    def worker(self, node_id: str) -> SqeWorker:
        return next(w for w in self.workers if w.node_id == node_id)

    def connect(self, username: str | None = None, password: str | None = None):
        return self.coordinator.connect(username, password)

    def stop(self) -> None:
        """Workers first (all told at once; each drains and leaves), then the coordinator."""
        for w in self.workers:
            if w.running:
                if w.paused:
                    w.resume()
                w.terminate()
        for w in self.workers:
            if w.running:
                try:
                    w.wait_exit(STOP_TIMEOUT_S)
                except AssertionError:
                    w.kill()
            w.stop()
        self.coordinator.stop()

    def __repr__(self) -> str:
        return f"Cluster({self.coordinator!r}, workers={[w.node_id for w in self.workers]})"
