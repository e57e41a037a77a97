"""Helpers of the real-pod suite: the node, SqeCluster readiness, pods and Services."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kube import Kubectl, secret_manifest, wait_for
from sqe_harness import fetch_dicts

USERS = {"alice": "alice-pods-pw-1"}
VERSION = "0.1.0"  # the workspace version the images are built from
NEXT_VERSION = f"{VERSION}-next"  # `make images-next`: the same binary stamped with another version
NEXT_PROTOCOL_VERSION = f"{VERSION}-next-p2"  # ... and a worker protocol one ahead (2)
IMAGE_ARCHIVES = (
    "sqe.tar", "sqe-operator.tar", f"sqe-{NEXT_VERSION}.tar", f"sqe-{NEXT_PROTOCOL_VERSION}.tar",
    "trino-client.tar",  # the client pods' Trino client (make trino-client-image)
)

@dataclass
class Node:
    kc: Kubectl
    dir: Path
    env: dict[str, str]  # cluster.env + node.env

    @property
    def ctr(self) -> list[str]:
        return [f"{self.env['SQE_NODE_TOOLS']}/ctr", "--address", self.env["SQE_NODE_CONTAINERD"], "-n", "k8s.io"]

    def container_pid(self, container_id: str) -> int:
        """The host PID of a running container (from containerd's task list)."""
        cid = container_id.removeprefix("containerd://")
        out = subprocess.run([*self.ctr, "tasks", "ls"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines()[1:]:
            task, pid, status = line.split()[:3]
            if task == cid and status == "RUNNING":
                return int(pid)
        raise AssertionError(f"no running task {cid} in containerd:\n{out}")


def wait_ready(kc: Kubectl, ns: str, name: str, timeout: float = 120) -> dict:
    """Polls the SqeCluster until its Ready condition is True; returns it."""
    def ready() -> dict | None:
        obj = kc.get("sqecluster", name, ns)
        conds = ((obj or {}).get("status") or {}).get("conditions") or []
        return obj if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) else None
    return wait_for(ready, timeout, f"SqeCluster {ns}/{name} Ready")


def pods(kc: Kubectl, ns: str, component: str) -> list[dict]:
    return kc.list("pods", ns, selector=f"app.kubernetes.io/component={component}")


def ready_workers(kc: Kubectl, ns: str) -> set[str]:
    """The names of the worker pods that are not being deleted and whose containers are ready."""
    return {
        p["metadata"]["name"] for p in pods(kc, ns, "worker")
        if not p["metadata"].get("deletionTimestamp")
        and all(s.get("ready") for s in (p.get("status") or {}).get("containerStatuses") or [{}])
    }


def service_ip(kc: Kubectl, ns: str, name: str) -> str:
    svc = kc.get("service", name, ns)
    assert svc is not None, f"no Service {ns}/{name}"
    return svc["spec"]["clusterIP"]




class PortForward:
    """`kubectl port-forward <target> :<port>...`: local ports on 127.0.0.1 for the remote ones."""

    def __init__(self, kc: Kubectl, ns: str, target: str, *ports: int) -> None:
        self.proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(kc.kubeconfig), "-n", ns, "port-forward", target,
             *[f":{p}" for p in ports]],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.local: dict[int, int] = {}
        assert self.proc.stdout is not None
        while len(self.local) < len(ports):
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"kubectl port-forward {target} exited {self.proc.wait()}")
            m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
            if m:
                self.local[int(m.group(2))] = int(m.group(1))

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def distributed_cluster(ns: str, lake, replicas: int = 3, name: str = "analytics") -> dict:
    """A distributed SqeCluster on the suite's REST catalog and S3 (the Secret `sqe-lakehouse`
    holds their credentials: `lakehouse_secret`), sized for the 2-CPU node."""
    return {
        "apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "mode": "distributed",
            # the node has 2 CPUs: the default requests (1 CPU per pod) would leave workers Pending
            "coordinator": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}},
            "workers": {"replicas": replicas,
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}},
            "catalog": {"uri": f"http://{lake.ip}:{lake.iceberg}", "warehouse": "s3://warehouse",
                        "metadataCacheTtlSeconds": 1},
            "storage": {"s3Endpoint": f"http://{lake.ip}:{lake.s3}", "s3Region": "us-east-1", "s3PathStyle": True},
            "auth": {"usersSecret": {"name": "sqe-users"}},
            "existingSecret": "sqe-lakehouse",
        },
    }


def lakehouse_secret(ns: str, key: str, secret: str) -> dict:
    return secret_manifest("sqe-lakehouse", ns, {
        "SQE_CATALOG__CREDENTIAL": f"{key}:{secret}",
        "SQE_STORAGE__S3_ACCESS_KEY_ID": key,
        "SQE_STORAGE__S3_SECRET_ACCESS_KEY": secret,
    })


def workers(conn) -> list[dict]:
    """The worker rows of system.runtime.nodes."""
    return [n for n in fetch_dicts(conn, "SELECT * FROM system.runtime.nodes") if not n["coordinator"]]


def wait_workers_active(conn, names: set[str], timeout: float = 60) -> list[dict]:
    """Polls system.runtime.nodes until exactly the workers `names` are active and schedulable."""
    def check() -> list[dict] | None:
        ws = workers(conn)
        return ws if {w["node_id"] for w in ws if w["state"] == "active" and w["schedulable"]} == names else None
    return wait_for(check, timeout, f"workers {sorted(names)} active in system.runtime.nodes")


def flight_conn(port: int):
    import adbc_driver_flightsql.dbapi as flight_sql

    return flight_sql.connect(f"grpc://127.0.0.1:{port}", db_kwargs={"username": "alice", "password": USERS["alice"]})



def pod_timeline(pod: dict) -> tuple[float, float, float]:
    """When a pod was created, its (first) container started and it became Ready, as epoch
    seconds from the API's timestamps (whole seconds)."""
    from datetime import datetime

    def at(ts: str) -> float:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

    status = pod["status"]
    [ready] = [c for c in status["conditions"] if c["type"] == "Ready" and c["status"] == "True"]
    started = status["containerStatuses"][0]["state"]["running"]["startedAt"]
    return at(pod["metadata"]["creationTimestamp"]), at(started), at(ready["lastTransitionTime"])


UNREACHABLE = "could not connect to SQE at"  # sqe-cli's words when no connection was made


def run_cli_pod(kc: Kubectl, ns: str, name: str, image: str, args: list[str],
                labels: dict[str, str] | None = None, refused: bool = False, timeout: float = 90) -> str:
    """Runs `sqe-cli <args>` (the engine image's client, logged in as alice) in a client pod
    (`run_client_pod`) and returns what it printed."""
    return run_client_pod(kc, ns, name, image, ["sqe-cli", "--user", "alice", *args],
                          labels=labels, refused=refused, timeout=timeout)


TRINO_CLIENT_IMAGE = os.environ.get("SQE_TRINO_CLIENT_IMAGE", "")


def run_trino_client_pod(kc: Kubectl, ns: str, name: str, host: str, sql: str, timeout: float = 90) -> list[list]:
    """Runs `sql` with the Python Trino client (trinodb/trino-python-client; the image of
    e2e/pods/trino-client, `make trino-client-image`) as alice, over HTTP with a password, in a
    client pod (`run_client_pod`), and returns its rows."""
    assert TRINO_CLIENT_IMAGE, "SQE_TRINO_CLIENT_IMAGE is not set (make trino-client-image)"
    program = (
        "import json, os, sys, trino\n"
        "conn = trino.dbapi.connect(host=sys.argv[1], port=8080, user='alice', http_scheme='http',\n"
        "    auth=trino.auth.BasicAuthentication('alice', os.environ['SQE_PASSWORD']), allow_insecure_auth=True)\n"
        "cur = conn.cursor()\n"
        "cur.execute(sys.argv[2])\n"
        "print(json.dumps(cur.fetchall(), default=str))\n"
    )
    out = run_client_pod(kc, ns, name, TRINO_CLIENT_IMAGE, ["python3", "-c", program, host, sql], timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def run_client_pod(kc: Kubectl, ns: str, name: str, image: str, command: list[str],
                   labels: dict[str, str] | None = None, refused: bool = False, timeout: float = 90) -> str:
    """Runs `command` in a pod of its own, as restricted as SQE's (UID 1000, read-only root
    filesystem, no capabilities), with alice's password in SQE_PASSWORD, and returns what it
    printed.

    The pod restarts its container on failure, keeping its address: the node's NetworkPolicy
    controller admits a new pod's address when it sees the pod, which can be after the pod
    started (as under any enforcing CNI), so a first connection may be refused. Expected to
    succeed, the pod is waited for until it has; with `refused`, until its second run (10 s
    later, the same address) has failed too, whose output (its termination message) is returned."""
    kc.apply({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {
            "restartPolicy": "OnFailure",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": command,
                "env": [{"name": "SQE_PASSWORD", "value": USERS["alice"]}],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                # a failed run's output in its status (the kubelet may already have removed the
                # dead container whose log `kubectl logs --previous` would read)
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }],
        },
    })

    def logs(*extra: str) -> str:
        out = kc.run("logs", "-n", ns, name, *extra, check=False)
        return out.stdout + out.stderr

    def ended() -> str | None:
        status = (kc.get("pod", name, ns) or {}).get("status") or {}
        if refused:
            [c] = status.get("containerStatuses") or [{}]
            backing_off = (c.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            last = (c.get("lastState") or {}).get("terminated") or {}
            return last.get("message", "") if c.get("restartCount", 0) >= 1 and backing_off else None
        if status.get("phase") == "Succeeded":
            return logs()
        return None

    try:
        return wait_for(ended, timeout, f"the client pod {ns}/{name} to {'fail twice' if refused else 'succeed'}")
    except AssertionError as e:
        raise AssertionError(f"{e}; it printed:\n{logs()}") from None
    finally:
        kc.run("delete", "pod", "-n", ns, name, "--wait=false", check=False)


def json_rows(logs: str) -> list[dict]:
    """The rows sqe-cli --format json printed."""
    import json

    return [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
