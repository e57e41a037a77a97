"""SQE processes on this machine, for the benchmarks and `make run-distributed`.

A `LocalCluster` is either one hybrid `sqe-server`, or a distributed coordinator with `sqe-worker`s
that heartbeat to it, all on one data dir and on 127.0.0.1 only:

```text
  hybrid:       sqe-server ── plans and executes
  distributed:  sqe-server (coordinator) ◀── heartbeats ── sqe-worker × N
                     │                                          ▲
                     └────────── plan stages (Flight) ──────────┘
  start: coordinator ─▶ /readyz 200 ─▶ workers ─▶ each worker's /readyz 200 (registered)
  stop:  workers SIGTERM ─▶ wait (deadline) ─▶ SIGKILL ─▶ then the coordinator the same way
```

Every wait is a poll with a deadline. Logs go to one file per process, or are streamed to our
stdout with the process's name in front of each line. Standard library only, so
`bench/run_distributed.py` runs with any Python 3.11.
"""

from __future__ import annotations

import collections
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
#: A coordinator's first start loads the TPC-H sample before /readyz turns 200.
READY_TIMEOUT_S = 180.0
#: After SIGTERM, how long a process may take to drain and exit before SIGKILL.
STOP_TIMEOUT_S = 40.0

# Loopback traffic never goes through a proxy the environment may configure (urllib and gRPC
# both honour *_proxy variables).
for _var in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_var, "").split(",") if h]
    os.environ[_var] = ",".join(_hosts + [h for h in (LOOPBACK, "localhost") if h not in _hosts])
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether a listener holds `port` (a server's SO_REUSEADDR ignores TIME_WAIT, so do we)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
        return False


def internal_token() -> str:
    """A fresh coordinator <-> worker credential."""
    return secrets.token_urlsafe(32)


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status `url` answers with, or None when nothing answers."""
    try:
        with _HTTP.open(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a live process, in MiB (NaN once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


try:  # loaded here, not in the forked child, where loading a library could deadlock
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def _exit_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies (Linux), so
    a killed benchmark leaves no server behind."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_exit(code: int | None) -> str:
    """'exited with 0' or 'was killed by SIGKILL' for a Popen return code."""
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with {code}"


class ProcessFailed(RuntimeError):
    """A process exited or did not become ready; the message carries its log's tail."""


class SqeProcess:
    """One sqe-server or sqe-worker: its command, health port, log and exit."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], health_port: int,
                 log_path: Path | None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.health_port = health_port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=200)
        self._reader: threading.Thread | None = None
        self._log_file = None
        #: stop() has dealt with it
        self.stopped = False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def readyz_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/readyz"

    def start(self, prefix_width: int = 0) -> None:
        """Starts the process; without a log file its output is streamed as `name | line`."""
        env = dict(self.env)
        if self.log_path is not None:
            self._log_file = open(self.log_path, "wb")
            out = self._log_file
        else:
            out = subprocess.PIPE
        if self.log_path is not None or not sys.stdout.isatty():
            env.setdefault("NO_COLOR", "1")  # no ANSI colours in files and pipes
        # its own session: a Ctrl-C reaches only us, and we stop the processes in order
        self.proc = subprocess.Popen(self.argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_exit_with_parent)
        if self.log_path is None:
            self._reader = threading.Thread(target=self._stream, args=(prefix_width,),
                                            name=f"log-{self.name}", daemon=True)
            self._reader.start()

    def _stream(self, width: int) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._tail.append(line)
            sys.stdout.write(f"{self.name:<{width}} | {line}\n")
            sys.stdout.flush()

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def is_ready(self) -> bool:
        return http_status(self.readyz_url) == 200

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            code = self.exit_code()
            if code is not None:
                raise ProcessFailed(f"{self.name} {describe_exit(code)} before it was ready\n"
                                    f"{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise ProcessFailed(f"{self.name}: {self.readyz_url} not 200 after {timeout:.0f} s\n"
                                    f"{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is not None:
            if self._log_file is not None:
                self._log_file.flush()
            try:
                text = self.log_path.read_text(errors="replace").splitlines()
            except OSError:
                text = []
        else:
            text = list(self._tail)
        shown = text[-lines:]
        where = f" ({self.log_path})" if self.log_path else ""
        return "\n".join([f"--- last {len(shown)} lines of {self.name}'s log{where} ---", *shown])

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid) if self.exit_code() is None else float("nan")

    def send_sigterm(self) -> None:
        if self.exit_code() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, deadline: float) -> bool:
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        if self.exit_code() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close_log(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@dataclass
class CoordinatorPorts:
    flight_sql: int
    trino_http: int
    health: int
    metrics: int

    @classmethod
    def free(cls) -> CoordinatorPorts:
        return cls(free_port(), free_port(), free_port(), free_port())

    @classmethod
    def defaults(cls) -> CoordinatorPorts:
        """The engine's defaults (docs/configuration.md), as `make run` uses them."""
        return cls(flight_sql=50051, trino_http=8080, health=9091, metrics=9090)


@dataclass
class WorkerPorts:
    flight: int
    health: int
    metrics: int

    @classmethod
    def free(cls) -> WorkerPorts:
        return cls(free_port(), free_port(), free_port())

    @classmethod
    def fixed(cls, n: int) -> WorkerPorts:
        """Worker n (from 1): Flight 5006n; health and metrics the coordinator's + 100·n."""
        return cls(flight=50060 + n, health=9091 + 100 * n, metrics=9090 + 100 * n)


@dataclass
class ClusterSpec:
    """What to start. `workers` is ignored in hybrid mode."""

    mode: str  # "hybrid" or "distributed"
    data_dir: Path
    server_bin: Path = ROOT / "target" / "release" / "sqe-server"
    worker_bin: Path = ROOT / "target" / "release" / "sqe-worker"
    workers: int = 2
    sample_data: bool = True
    worker_memory_mb: int = 0
    worker_max_tasks: int | None = None
    #: extra SQE_* variables for the coordinator (e.g. target partitions, log level)
    coordinator_env: dict[str, str] = field(default_factory=dict)
    #: extra SQE_* variables for every worker
    worker_env: dict[str, str] = field(default_factory=dict)
    coordinator_ports: CoordinatorPorts | None = None  # None: free ports
    worker_ports: list[WorkerPorts] | None = None  # None: free ports
    #: one <name>.log per process here; None streams the logs to stdout
    logs_dir: Path | None = None


class LocalCluster:
    """A hybrid sqe-server, or a coordinator with workers, started and stopped in order."""

    def __init__(self, spec: ClusterSpec) -> None:
        if spec.mode not in ("hybrid", "distributed"):
            raise ValueError(f"mode must be hybrid or distributed, not {spec.mode!r}")
        self.spec = spec
        self.data_dir = spec.data_dir.resolve()
        self.ports = spec.coordinator_ports or CoordinatorPorts.free()
        self.token = internal_token() if spec.mode == "distributed" else None
        self.coordinator = self._coordinator_process()
        self.workers: list[SqeProcess] = []
        self.worker_ports: dict[str, WorkerPorts] = {}
        if spec.mode == "distributed":
            for n in range(1, spec.workers + 1):
                ports = spec.worker_ports[n - 1] if spec.worker_ports else WorkerPorts.free()
                self.workers.append(self._worker_process(n, ports))

    # ---- what the clients need

    @property
    def flight_sql_uri(self) -> str:
        return f"grpc://{LOOPBACK}:{self.ports.flight_sql}"

    @property
    def trino_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.trino_http}"

    @property
    def processes(self) -> list[SqeProcess]:
        return [self.coordinator, *self.workers]

    # ---- the processes

    def _log_path(self, name: str) -> Path | None:
        if self.spec.logs_dir is None:
            return None
        self.spec.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.spec.logs_dir / f"{name}.log"

    def _coordinator_process(self) -> SqeProcess:
        p = self.ports
        env = dict(os.environ)
        env.update(self.spec.coordinator_env)
        env.update(
            SQE_COORDINATOR__MODE=self.spec.mode,
            SQE_COORDINATOR__FLIGHT_SQL_ADDR=f"{LOOPBACK}:{p.flight_sql}",
            SQE_COORDINATOR__TRINO_HTTP_ADDR=f"{LOOPBACK}:{p.trino_http}",
            SQE_COORDINATOR__HEALTH_ADDR=f"{LOOPBACK}:{p.health}",
            SQE_METRICS__ADDR=f"{LOOPBACK}:{p.metrics}",
            SQE_COORDINATOR__SAMPLE_DATA=str(self.spec.sample_data).lower(),
        )
        if self.token:
            env["SQE_WORKER__INTERNAL_TOKEN"] = self.token
        name = "coordinator" if self.spec.mode == "distributed" else "sqe-server"
        argv = [str(self.spec.server_bin), "--data-dir", str(self.data_dir)]
        return SqeProcess(name, argv, env, p.health, self._log_path(name))

    def _worker_process(self, n: int, ports: WorkerPorts) -> SqeProcess:
        name = f"worker-{n}"
        env = dict(os.environ)
        env.update(self.spec.worker_env)
        env.update(
            SQE_WORKER__NODE_ID=name,
            SQE_WORKER__FLIGHT_ADDR=f"{LOOPBACK}:{ports.flight}",
            SQE_WORKER__COORDINATOR_URL=f"http://{LOOPBACK}:{self.ports.flight_sql}",
            SQE_WORKER__INTERNAL_TOKEN=self.token or "",
            SQE_COORDINATOR__HEALTH_ADDR=f"{LOOPBACK}:{ports.health}",
            SQE_METRICS__ADDR=f"{LOOPBACK}:{ports.metrics}",
            SQE_COORDINATOR__DATA_DIR=str(self.data_dir),
            SQE_WORKER__SPILL_DIR=str(self.data_dir / "spill" / name),
            SQE_WORKER__MEMORY_LIMIT_MB=str(self.spec.worker_memory_mb),
        )
        if self.spec.worker_max_tasks is not None:
            env["SQE_WORKER__MAX_TASKS"] = str(self.spec.worker_max_tasks)
        self.worker_ports[name] = ports
        return SqeProcess(name, [str(self.spec.worker_bin)], env, ports.health, self._log_path(name))

    def ports_in_use(self) -> list[str]:
        """The fixed ports another process holds already, described ('50051 (coordinator Flight SQL)')."""
        wanted = [
            (self.ports.flight_sql, "coordinator Flight SQL"),
            (self.ports.trino_http, "coordinator Trino HTTP"),
            (self.ports.health, "coordinator health"),
            (self.ports.metrics, "coordinator metrics"),
        ]
        for w in self.workers:
            p = self.worker_ports[w.name]
            wanted += [(p.flight, f"{w.name} Flight"), (p.health, f"{w.name} health"),
                       (p.metrics, f"{w.name} metrics")]
        return [f"{port} ({what})" for port, what in wanted if port_in_use(port)]

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Starts the coordinator, waits until it is ready, then the workers until registered.

        On any failure everything started so far is stopped and ProcessFailed raised."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        width = max(len(p.name) for p in self.processes)
        try:
            self.coordinator.start(width)
            self.coordinator.wait_ready(timeout)
            for w in self.workers:
                w.start(width)
            for w in self.workers:
                w.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def check_alive(self) -> list[str]:
        """'<name> exited with <code>' for each process that is gone."""
        return [f"{p.name} {describe_exit(p.exit_code())}" for p in self.processes
                if p.proc is not None and p.exit_code() is not None]

    def peak_rss_mib(self) -> dict[str, float]:
        return {p.name: p.peak_rss_mib() for p in self.processes if p.proc is not None}

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> list[str]:
        """Workers first, then the coordinator: SIGTERM, wait until `timeout`, then SIGKILL.

        Returns one line per process saying how it ended."""
        report = []
        for group in (self.workers, [self.coordinator]):
            started = [p for p in group if p.proc is not None]
            for p in started:
                if p.exit_code() is not None and not p.stopped:
                    report.append(f"{p.name} had stopped already ({describe_exit(p.exit_code())})")
            running = [p for p in started if p.exit_code() is None]
            t0 = time.monotonic()
            for p in running:
                p.send_sigterm()
            deadline = t0 + timeout
            for p in running:
                if p.wait_exit(deadline):
                    report.append(f"{p.name} {describe_exit(p.exit_code())}, "
                                  f"{time.monotonic() - t0:.2f} s after SIGTERM")
                else:
                    p.kill()
                    report.append(f"{p.name} did not exit {timeout:.0f} s after SIGTERM: killed")
            for p in started:
                p.stopped = True
                p.close_log()
        return report
