"""The Prometheus endpoint and the health endpoints."""

from __future__ import annotations

import adbc_driver_manager
import pyarrow as pa
import pytest

from sqe_harness import metric_sum, rows, wait_for


@pytest.fixture
def fresh(server_factory):
    """A server of its own, so the counters start from zero."""
    return server_factory()


def test_health_endpoints(server):
    assert server.healthz() == 200
    assert server.readyz() == 200


def test_query_metrics(fresh):
    conn = fresh.connect()
    try:
        assert rows(conn, "SELECT value FROM generate_series(1, 100) ORDER BY value") == [(i,) for i in range(1, 101)]
        assert sorted(rows(conn, "SELECT 'a' AS s UNION ALL SELECT 'b'")) == [("a",), ("b",)]
        with conn.cursor() as cur:  # the unprepared CommandStatementQuery path
            stmt = cur.adbc_statement
            stmt.set_sql_query("SELECT 1 AS one")
            handle, _ = stmt.execute_query()
            assert pa.RecordBatchReader.from_stream(handle).read_all().num_rows == 1
        with pytest.raises(adbc_driver_manager.Error), conn.cursor() as cur:
            stmt = cur.adbc_statement
            stmt.set_sql_query("SELEC 1")
            stmt.execute_query()
    finally:
        conn.close()

    def counted():
        samples = fresh.metrics()
        ok = metric_sum(samples, "sqe_queries_total", outcome="success") or 0
        bad = metric_sum(samples, "sqe_queries_total", outcome="error") or 0
        return samples if ok >= 3 and bad >= 1 else None

    samples = wait_for(counted, timeout=15, what='sqe_queries_total{outcome="success"} >= 3 and {outcome="error"} >= 1')
    names = {name for name, _, _ in samples}

    buckets = [(labels, v) for name, labels, v in samples if name == "sqe_query_duration_seconds_bucket"]
    assert buckets, "no sqe_query_duration_seconds histogram buckets"
    assert any(labels.get("le") == "+Inf" for labels, _ in buckets)
    assert "sqe_query_duration_seconds_count" in names and "sqe_query_duration_seconds_sum" in names
    assert (metric_sum(samples, "sqe_query_duration_seconds_count") or 0) >= 3

    assert metric_sum(samples, "sqe_active_queries") == 0
    assert (metric_sum(samples, "sqe_rows_returned_total") or 0) >= 100 + 2
    assert (metric_sum(samples, "sqe_bytes_returned_total") or 0) > 0


def test_metrics_is_prometheus_text(server):
    text = server.metrics_text()
    assert "# TYPE sqe_queries_total counter" in text or "# TYPE sqe_queries counter" in text
    assert "sqe_active_queries" in text
