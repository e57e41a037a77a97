"""Fixtures for the end-to-end suite: real `sqe-server` processes and real clients.

Server fixtures (every server listens on free 127.0.0.1 ports and has its own data dir):

- `server`         one per test module; no auth, no TPC-H sample. Tests that share it use
                   unique table/schema names (`unique()`).
- `conn`           a fresh ADBC DB-API connection to `server`, closed after the test.
- `sample_server`  one per session with the TPC-H sample (schema `tpch`, SF 0.01) loaded.
- `auth_server`    one per session with auth.mode = "password" and the users in `auth_users`.
- `server_factory` makes servers a test owns (restarts, drain, config); all are stopped after
                   the test. `server_factory(start=False, ...)` returns an unstarted one.
- `distributed_cluster` makes distributed-mode clusters a test owns (a coordinator with
                   coordinator.mode = "distributed" and `sqe-worker`s); all are stopped after the
                   test. `distributed_cluster(workers=2, sample=..., worker_env=...,
                   coordinator_env=..., config=...)` -> `Cluster` (.coordinator, .workers).

When a test fails, the tail of the log of every server that was running during it is attached
to the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sqe_harness import (  # noqa: F401 - re-exported for test modules and plugins
    Cluster,
    ServerStartError,
    attach_logs,
    SqeServer,
    cli_binary,
    hash_password,
    server_binary,
    worker_binary,
)

# the real Trino reference server (and the Java client jars) for the Trino protocol tests
pytest_plugins = ["trino_fixtures"]

_START = pytest.StashKey[float]()

AUTH_USERS = {
    "alice": "alice-correct-horse-1",
    # a space, a colon and a non-ASCII letter: Basic auth splits on the first colon only
    "bob": "bob pass: süß",
}


# --------------------------------------------------------------------------------------------
# Reporting: attach server logs to failures


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_START] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        attach_logs(report, item.stash.get(_START, 0.0))
    return report


# --------------------------------------------------------------------------------------------
# Binaries


@pytest.fixture(scope="session", autouse=True)
def sqe_server_bin() -> Path:
    """The server binary ($SQE_SERVER_BIN or target/release/sqe-server). Every test needs it,
    so a missing binary stops the run with one clear message instead of N failures."""
    path = server_binary()
    if not path.is_file():
        pytest.exit(
            f"sqe-server binary not found at {path}: build it with `cargo build --release` or set SQE_SERVER_BIN",
            returncode=2,
        )
    return path


@pytest.fixture(scope="session")
def sqe_cli_bin() -> Path:
    path = cli_binary()
    if not path.is_file():
        pytest.fail(f"sqe-cli binary not found at {path}: build it or set SQE_CLI_BIN")
    return path


@pytest.fixture(scope="session")
def sqe_worker_bin() -> Path:
    path = worker_binary()
    if not path.is_file():
        pytest.fail(f"sqe-worker binary not found at {path}: build it or set SQE_WORKER_BIN")
    return path


# --------------------------------------------------------------------------------------------
# Servers


def _stop_all(servers: list[SqeServer]) -> None:
    for s in servers:
        s.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., SqeServer]]:
    """`server_factory(start=True, **SqeServer kwargs)` -> SqeServer under this test's tmp_path.

    Pass `data_dir=other.data_dir` to start a second server on the same data.
    """
    made: list[SqeServer] = []

    def make(start: bool = True, **kwargs) -> SqeServer:
        base = tmp_path / f"server{len(made) + 1}"
        s = SqeServer(base, **kwargs)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    _stop_all(made)


@pytest.fixture
def distributed_cluster(tmp_path: Path, sqe_worker_bin: Path) -> Iterator[Callable[..., Cluster]]:
    """`distributed_cluster(workers=2, **Cluster kwargs)` -> a started Cluster under this
    test's tmp_path; every cluster (workers first) is stopped after the test."""
    made: list[Cluster] = []

    def make(workers: int = 2, **kwargs) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made) + 1}", **kwargs)
        made.append(cluster)
        return cluster.start(workers)

    yield make
    for c in made:
        c.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqeServer]:
    s = SqeServer(tmp_path_factory.mktemp("server"))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def conn(server: SqeServer):
    c = server.connect()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def sample_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqeServer]:
    """The one server of the session that loads the TPC-H sample (schema `tpch`)."""
    s = SqeServer(tmp_path_factory.mktemp("sample"), sample=True, name="sqe-sample")
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def sample_conn(sample_server: SqeServer):
    c = sample_server.connect()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def trino_server(sample_server: SqeServer) -> SqeServer:
    """SQE's Trino endpoint on the TPC-H sample (catalog `iceberg`, schema `tpch`)."""
    return sample_server


@pytest.fixture(scope="session")
def auth_users() -> dict[str, str]:
    return dict(AUTH_USERS)


def password_config(users: dict[str, str]) -> str:
    """An sqe.toml with auth.mode = "password" and one [[auth.users]] per user, hashed by
    `sqe-server hash-password`."""
    lines = ["[auth]", 'mode = "password"', ""]
    for name, password in users.items():
        phc = hash_password(password)
        assert "'" not in phc
        lines += ["[[auth.users]]", f'name = "{name}"', f"password_hash = '{phc}'", ""]
    return "\n".join(lines)


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory, auth_users: dict[str, str]) -> Iterator[SqeServer]:
    s = SqeServer(tmp_path_factory.mktemp("auth"), config=password_config(auth_users), name="sqe-auth")
    try:
        s.start()
        yield s
    finally:
        s.stop()
