"""Case 13: the contract between the two halves. What the operator rendered for a hybrid
cluster (the ConfigMap's sqe.toml, the users Secret mounted as a file, the existingSecret as
SQE_* environment variables, the container's command and args) boots the real `sqe-server`, and
a Flight SQL client (ADBC) and a Trino client (the `trino-http` port) run a query on it with a
user from the Secret.

No container runs on the fake nodes, so the test plays kubelet for the coordinator pod: it reads
the Deployment's pod template and materialises its volumes under a temp dir (ConfigMap and
Secret items as files, emptyDirs as directories), remaps the mount paths in the config and the
arguments to those directories, rewrites the listener addresses to free 127.0.0.1 ports, and
runs the container's command with the env the template asks for."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import tomllib
from pathlib import Path

import adbc_driver_flightsql.dbapi
import adbc_driver_manager
import pytest
import trino

from kube import Cluster, Kubectl, secret_manifest, wait_for
from sqe_harness import base_env, free_ports, http_get, server_binary

ENV_SECRET = {
    # credentials the pods get as variables (unused by the embedded catalog, but loaded)
    "SQE_STORAGE__S3_ACCESS_KEY_ID": "AKIAE2ECONTRACT",
    "SQE_STORAGE__S3_SECRET_ACCESS_KEY": "e2e-contract-secret",
    # and a setting: the engine's defaults can be overridden through the Secret, too
    "SQE_COORDINATOR__SESSION_IDLE_TIMEOUT_SECS": "1800",
}


class Pod:
    """The coordinator pod of a Deployment, materialised on this machine."""

    def __init__(self, kc: Kubectl, ns: str, deploy: dict, root: Path) -> None:
        self.kc, self.ns, self.root = kc, ns, root
        spec = deploy["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        self.volumes = {v["name"]: v for v in spec["volumes"]}
        self.mounts: dict[str, Path] = {}  # mount path in the pod -> directory here
        for m in self.container["volumeMounts"]:
            local = root / "volumes" / m["name"]
            local.mkdir(parents=True, exist_ok=True)
            self._fill(self.volumes[m["name"]], local)
            self.mounts[m["mountPath"]] = local

    def _fill(self, volume: dict, into: Path) -> None:
        if "configMap" in volume:
            cm = self.kc.get("configmap", volume["configMap"]["name"], self.ns)
            assert cm is not None, f"ConfigMap {volume['configMap']['name']} is missing"
            for key, text in cm["data"].items():
                (into / key).write_text(text)
        elif "secret" in volume:
            secret = self.kc.get("secret", volume["secret"]["secretName"], self.ns)
            assert secret is not None, f"Secret {volume['secret']['secretName']} is missing"
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in secret["data"]]
            for item in items:
                (into / item["path"]).write_bytes(base64.b64decode(secret["data"][item["key"]]))
                (into / item["path"]).chmod(0o440)
        else:
            assert "emptyDir" in volume, volume

    def local_path(self, pod_path: str) -> str:
        for mount, local in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if pod_path == mount or pod_path.startswith(mount + "/"):
                return str(local) + pod_path[len(mount):]
        return pod_path

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for src in self.container.get("envFrom") or []:
            secret = self.kc.get("secret", src["secretRef"]["name"], self.ns)
            assert secret is not None
            env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
        for var in self.container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            field = (var.get("valueFrom") or {}).get("fieldRef")
            if ref:
                secret = self.kc.get("secret", ref["name"], self.ns)
                env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
            elif field:
                # the downward API, as the kubelet fills it for a pod on this machine
                env[var["name"]] = {"status.podIP": "127.0.0.1"}[field["fieldPath"]]
            else:
                # $(NAME) names a variable defined before this one, as the kubelet expands it
                env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)),
                                          var["value"])
        return env


def remap_config(text: str, pod: Pod) -> tuple[str, dict[str, int]]:
    """sqe.toml with every pod path remapped and every listener on a free 127.0.0.1 port.
    Returns the text and {pod port: local port}."""
    ports: dict[int, int] = {}

    def addr(m: re.Match) -> str:
        pod_port = int(m.group(2))
        if pod_port not in ports:
            (ports[pod_port],) = free_ports(1)
        return f'{m.group(1)}"127.0.0.1:{ports[pod_port]}"'

    text = re.sub(r'^(\s*(?:[a-z_]+_)?addr\s*=\s*)"(?:0\.0\.0\.0|127\.0\.0\.1):(\d+)"', addr, text, flags=re.M)
    text = re.sub(r'"(/[^"]*)"', lambda m: '"' + pod.local_path(m.group(1)) + '"', text)
    return text, ports


def test_rendered_config_boots_the_engine(kc: Kubectl, ns: str, users: dict[str, str], tmp_path: Path) -> None:
    kc.apply(secret_manifest("sqe-env", ns, ENV_SECRET))
    kc.apply({"apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
              "metadata": {"name": "contract", "namespace": ns},
              "spec": {"auth": {"usersSecret": {"name": "sqe-users"}}, "existingSecret": "sqe-env",
                       "config": {"coordinator": {"target_partitions": 2}}}})
    c = Cluster(kc, ns, "contract")
    c.wait_settled(60, distributed=False)
    deploy = c.deployment(c.coordinator)
    pod = Pod(kc, ns, deploy, tmp_path)
    container = pod.container

    # The command line the pod runs, with its paths remapped.
    assert container["command"] == ["sqe-server"]
    args = [pod.local_path(a) for a in container["args"]]
    assert args[0] == "--config" and Path(args[1]).is_file(), args
    rendered = Path(args[1]).read_text()
    assert "e2e-contract-secret" not in rendered and "AKIAE2ECONTRACT" not in rendered
    text, ports = remap_config(rendered, pod)
    assert "0.0.0.0" not in text and "/etc/sqe" not in text and "/var/lib/sqe" not in text, text
    Path(args[1]).write_text(text)
    parsed = tomllib.loads(text)
    assert parsed["coordinator"]["target_partitions"] == 2
    assert Path(parsed["auth"]["users_file"]).read_text().startswith("alice:$argon2")
    env = pod.env()
    assert env.items() >= ENV_SECRET.items()

    # The probes' port is the config's health listener.
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    health = ports[named[container["readinessProbe"]["httpGet"]["port"]]]
    flight = ports[named["flight-sql"]]
    metrics = ports[named["metrics"]]
    trino_port = ports[named["trino-http"]]

    check = subprocess.run([str(server_binary()), "--config", args[1], "check-config"], capture_output=True,
                           text=True, env=base_env(env), timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "e2e-contract-secret" not in check.stdout, "check-config must hide secrets"

    log = tmp_path / "sqe-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(server_binary()), *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=base_env(env), cwd=str(tmp_path))
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"sqe-server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                return http_get(f"http://127.0.0.1:{health}{container['readinessProbe']['httpGet']['path']}",
                                timeout=2)[0] == 200
            except OSError:
                return False

        wait_for(ready, 120, "sqe-server /readyz (the readiness probe)", interval=0.2)
        assert http_get(f"http://127.0.0.1:{health}{container['livenessProbe']['httpGet']['path']}")[0] == 200
        status, body = http_get(f"http://127.0.0.1:{metrics}/metrics")
        assert status == 200 and "# TYPE" in body

        (name, password), = users.items()
        uri = f"grpc://127.0.0.1:{flight}"
        with adbc_driver_flightsql.dbapi.connect(uri, db_kwargs={"username": name, "password": password},
                                                 autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT 40 + 2 AS answer")
            assert cur.fetchall() == [(42,)]
            if parsed["coordinator"].get("sample_data"):
                cur.execute("SELECT count(*) FROM tpch.nation")
                assert cur.fetchall() == [(25,)]
        # The Trino port: the same user through HTTP Basic, as the operator's Service exposes it.
        trino_url = f"http://127.0.0.1:{trino_port}"
        status, body = http_get(f"{trino_url}/v1/info")
        assert status == 200 and json.loads(body)["coordinator"] is True
        with trino.dbapi.connect(host="127.0.0.1", port=trino_port, user=name, http_scheme="http",
                                 auth=trino.auth.BasicAuthentication(name, password),
                                 allow_insecure_auth=True) as tconn:
            cur = tconn.cursor()
            cur.execute("SELECT 40 + 2 AS answer")
            assert cur.fetchall() == [[42]]
        for auth in (None, trino.auth.BasicAuthentication(name, "wrong")):
            with pytest.raises(trino.exceptions.HttpError, match="401"):
                with trino.dbapi.connect(host="127.0.0.1", port=trino_port, user=name, http_scheme="http",
                                         auth=auth, allow_insecure_auth=True) as tconn:
                    tconn.cursor().execute("SELECT 1")
        # Auth is on: a wrong password is refused.
        with pytest.raises(adbc_driver_manager.Error):
            with adbc_driver_flightsql.dbapi.connect(uri, db_kwargs={"username": name, "password": "wrong"},
                                                     autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, f"sqe-server exited {proc.returncode} on SIGTERM:\n{log.read_text()[-2000:]}"
