"""SQE on an Iceberg REST catalog with S3 storage: SeaweedFS (`weed mini`) serves both.

The REST catalog issues OAuth2 tokens for client credentials; table data and metadata live in
its S3 bucket. This is the production shape (Polaris / Lakekeeper + object storage) on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seaweed import KEY, SECRET, Seaweed
from sqe_harness import SqeServer, rows, run, scalar, unique, wait_for_scalar


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    s = Seaweed(tmp_path_factory.mktemp("seaweed"))
    yield s
    s.stop()


def rest_server(seaweed, base: Path, **kwargs) -> SqeServer:
    # the S3 secret comes from the environment, as in production
    env = {"SQE_STORAGE__S3_SECRET_ACCESS_KEY": SECRET}
    env.update(kwargs.pop("env", {}))
    return SqeServer(base, config=kwargs.pop("config", seaweed.sqe_config()), env=env, **kwargs).start()


def test_ddl_dml_and_partitions_on_rest_catalog_and_s3(seaweed, tmp_path):
    server = rest_server(seaweed, tmp_path / "a")
    schema = unique("lake")
    conn = server.connect()
    try:
        run(conn, f"CREATE SCHEMA {schema}")
        run(conn, f"CREATE TABLE {schema}.events (id BIGINT, ts TIMESTAMP, kind VARCHAR) PARTITIONED BY (day(ts))")
        run(conn, f"INSERT INTO {schema}.events VALUES (1, TIMESTAMP '2024-01-01 10:00:00', 'a'), "
                  f"(2, TIMESTAMP '2024-01-02 10:00:00', 'b'), (3, TIMESTAMP '2024-01-02 11:00:00', 'a')")
        assert rows(conn, f"SELECT kind, count(*) FROM {schema}.events GROUP BY kind ORDER BY kind") == [("a", 2), ("b", 1)]
        run(conn, f"CREATE TABLE {schema}.copy AS SELECT * FROM {schema}.events WHERE kind = 'a'")
        assert scalar(conn, f"SELECT count(*) FROM {schema}.copy") == 2
        assert (schema,) in rows(conn, "SHOW SCHEMAS")
    finally:
        conn.close()
        server.stop()

    # a new server (no local state) on the same catalog sees everything
    again = rest_server(seaweed, tmp_path / "b")
    conn = again.connect()
    try:
        assert scalar(conn, f"SELECT count(*) FROM {schema}.events WHERE ts >= TIMESTAMP '2024-01-02'") == 2
        run(conn, f"DROP TABLE {schema}.copy")
        run(conn, f"DROP TABLE {schema}.events")
        run(conn, f"DROP SCHEMA {schema}")
        assert (schema,) not in rows(conn, "SHOW SCHEMAS")
    finally:
        conn.close()
        again.stop()


def test_table_from_another_engine_appears_without_restart(seaweed, tmp_path):
    a = rest_server(seaweed, tmp_path / "a")
    b = rest_server(seaweed, tmp_path / "b")
    schema = unique("shared")
    ca, cb = a.connect(), b.connect()
    try:
        run(cb, f"CREATE SCHEMA {schema}")
        run(cb, f"CREATE TABLE {schema}.t AS SELECT 41 + 1 AS answer")
        wait_for_scalar(ca, f"SELECT answer FROM {schema}.t", 42, timeout=30, what="the other engine's table")
    finally:
        ca.close()
        cb.close()
        a.stop()
        b.stop()


def test_wrong_catalog_credentials_fail_at_start(seaweed, tmp_path):
    server = SqeServer(tmp_path, config=seaweed.sqe_config(credential=f"{KEY}:wrong"),
                       env={"SQE_STORAGE__S3_SECRET_ACCESS_KEY": SECRET})
    with pytest.raises(AssertionError) as failure:
        server.start(ready_timeout=60)
    assert "REST catalog" in str(failure.value) or "REST catalog" in server.log_text()
