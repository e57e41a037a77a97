"""Helpers of the real-pod suite: the node, SqeCluster readiness, pods and Services."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kube import Kubectl, wait_for

USERS = {"alice": "alice-pods-pw-1"}

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
