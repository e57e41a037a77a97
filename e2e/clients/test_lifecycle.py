"""The server process: graceful drain on SIGTERM, restarts on the same data directory,
configuration errors and `--version`."""

from __future__ import annotations

import re
import time

import adbc_driver_manager
import pyarrow as pa
import pytest

from sqe_harness import (
    Background,
    LongQuery,
    free_ports,
    rows,
    run,
    run_server_once,
    scalar,
    unique,
    wait_for,
)

TPCH_TABLES = ["nation", "region", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]


def _loopback_env() -> dict[str, str]:
    flight_port, health_port, metrics_port = free_ports(3)
    return {
        "SQE_COORDINATOR__FLIGHT_SQL_ADDR": f"127.0.0.1:{flight_port}",
        "SQE_COORDINATOR__HEALTH_ADDR": f"127.0.0.1:{health_port}",
        "SQE_METRICS__ADDR": f"127.0.0.1:{metrics_port}",
        "SQE_COORDINATOR__SAMPLE_DATA": "false",
    }


# --------------------------------------------------------------------------------------------
# Graceful drain


@pytest.mark.slow
def test_sigterm_drains_in_flight_query(server_factory):
    server = server_factory(env={"SQE_COORDINATOR__SHUTDOWN_TIMEOUT_SECS": "60"})
    long_conn, other = server.connect(), server.connect()
    long_cur = None
    try:
        query = LongQuery.calibrated(long_conn, target_seconds=8)
        assert scalar(other, "SELECT 1") == 1  # the second client is connected before SIGTERM
        long_cur = long_conn.cursor()

        def long_query():
            # The plain CommandStatementQuery path (no prepared statement), so closing the
            # cursor after the server has exited needs no ClosePreparedStatement call.
            stmt = long_cur.adbc_statement
            stmt.set_sql_query(query.sql)
            handle, _ = stmt.execute_query()
            return pa.RecordBatchReader.from_stream(handle).read_all().to_pylist()

        job = Background(long_query, name="in-flight")

        def active():
            if job.done:
                raise AssertionError(f"the long query ended before SIGTERM: {job.error or job.result!r}")
            return (server.metric("sqe_active_queries") or 0) >= 1

        wait_for(active, timeout=30, what="the long query to be active")
        server.terminate()

        wait_for(lambda: server.readyz() == 503, timeout=15, what="/readyz to answer 503 while draining")

        with pytest.raises(adbc_driver_manager.Error) as e:
            scalar(other, "SELECT 2")
        refused_while_running = not job.done
        text = str(e.value).lower()
        assert "unavailable" in text or "shutting down" in text, str(e.value)

        job.join(90)
        assert job.error is None, f"the in-flight query failed during the drain: {job.error!r}"
        assert job.result == [{"n": query.expected}]
        assert refused_while_running, (
            "the long query finished before the new query was refused, so the drain was not "
            "tested; the calibration made it too short"
        )
        assert server.wait_exit(60) == 0
    finally:
        if long_cur is not None:
            long_cur.close()
        long_conn.close()
        other.close()


def test_idle_server_stops_promptly_with_code_zero(server_factory):
    server = server_factory()
    t0 = time.monotonic()
    server.terminate()
    assert server.wait_exit(15) == 0
    assert time.monotonic() - t0 < 15


# --------------------------------------------------------------------------------------------
# Restart on the same data directory


@pytest.mark.slow
def test_restart_keeps_data_and_loads_sample_once(server_factory):
    env = {"SQE_COORDINATOR__SAMPLE_SCALE_FACTOR": "0.001"}  # small: only the restart matters
    first = server_factory(sample=True, env=env)
    s = unique("keep")
    conn = first.connect()
    try:
        run(conn, f"CREATE SCHEMA iceberg.{s}")
        run(conn, f"CREATE TABLE iceberg.{s}.notes (id INT, body VARCHAR)")
        run(conn, f"INSERT INTO iceberg.{s}.notes VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        sample_counts = {t: scalar(conn, f"SELECT count(*) FROM iceberg.tpch.{t}") for t in TPCH_TABLES}
    finally:
        conn.close()
    assert sample_counts["nation"] == 25 and sample_counts["region"] == 5
    assert first.stop() == 0

    second = server_factory(sample=True, env=env, data_dir=first.data_dir)
    conn = second.connect()
    try:
        assert rows(conn, f"SELECT id, body FROM iceberg.{s}.notes ORDER BY id") == [
            (1, "one"),
            (2, "two"),
            (3, "three"),
        ]
        again = {t: scalar(conn, f"SELECT count(*) FROM iceberg.tpch.{t}") for t in TPCH_TABLES}
        assert again == sample_counts, "the TPC-H sample was loaded again on restart"
        # the restarted server keeps writing to the same tables
        run(conn, f"INSERT INTO iceberg.{s}.notes VALUES (4, 'four')")
        assert scalar(conn, f"SELECT count(*) FROM iceberg.{s}.notes") == 4
    finally:
        conn.close()
    assert second.stop() == 0


# --------------------------------------------------------------------------------------------
# Configuration errors: exit non-zero at once and name the key or variable


def test_unknown_key_in_config_file(tmp_path):
    config = tmp_path / "sqe.toml"
    config.write_text('[auth]\nmood = "x"\n')
    p = run_server_once(
        ["--data-dir", str(tmp_path / "data"), "--config", str(config)], env=_loopback_env(), timeout=30
    )
    assert p.returncode != 0
    assert "auth.mood" in p.stderr, p.stderr


def test_bad_environment_value_names_the_variable(tmp_path):
    env = _loopback_env() | {"SQE_COORDINATOR__BATCH_SIZE": "lots"}
    p = run_server_once(["--data-dir", str(tmp_path / "data")], env=env, timeout=30)
    assert p.returncode != 0
    assert "SQE_COORDINATOR__BATCH_SIZE" in p.stderr, p.stderr


def test_no_auth_on_all_interfaces_is_refused(tmp_path):
    env = _loopback_env()
    env["SQE_COORDINATOR__FLIGHT_SQL_ADDR"] = f"0.0.0.0:{free_ports(1)[0]}"
    p = run_server_once(["--data-dir", str(tmp_path / "data")], env=env, timeout=30)
    assert p.returncode != 0
    assert "loopback" in p.stderr.lower(), p.stderr


def test_password_mode_without_users_is_refused(tmp_path):
    env = _loopback_env() | {"SQE_AUTH__MODE": "password"}
    p = run_server_once(["--data-dir", str(tmp_path / "data")], env=env, timeout=30)
    assert p.returncode != 0
    assert "auth.users" in p.stderr, p.stderr


def test_version():
    p = run_server_once(["--version"], timeout=30)
    assert p.returncode == 0, p.stderr
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), p.stdout
