"""Fixtures of the real-pod suite: SQE clusters that really run, on a real node.

- `node`      the local control plane (e2e/cluster/up.sh, no kwok nodes) in
              `$SQE_PODS_CLUSTER_DIR` (default target/pods-cluster) plus a real node
              (e2e/node/up.sh: containerd, kubelet, kube-proxy, CoreDNS) with the images of
              `make images` imported; torn down at the end (`SQE_E2E_KEEP_CLUSTER=1` keeps it).
              The engine image is there three times: `<version>`, `<version>-next` (the same
              binary stamped with another version) and `<version>-next-p2` (that, with the
              worker protocol one ahead), from `make images-next`, for upgrades.
- `operator`  sqe-operator running in the cluster as a pod from its image, installed as a
              user installs it: `kubectl apply --server-side -k config/default`.
- `ns`        a fresh namespace for the test, with the Secret `sqe-users` (user alice).

On a failure the state of the test's namespace and the logs of its pods are attached.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kube import Kubectl, secret_manifest
from pods_kit import IMAGE_ARCHIVES, USERS, Node
from seaweed import Seaweed
from sqe_harness import REPO_ROOT, hash_password


IMAGES = REPO_ROOT / "target" / "images"
_NS = pytest.StashKey[str]()


def _script(path: Path, env: dict[str, str], timeout: float = 900) -> str:
    proc = subprocess.run([str(path)], capture_output=True, text=True, env=env, timeout=timeout, cwd=str(REPO_ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{path.name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}")
    return proc.stdout


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    if os.geteuid() != 0:
        pytest.exit("the real-pod suite needs root (a kubelet and containerd run here)", returncode=2)
    for image in IMAGE_ARCHIVES:
        if not (IMAGES / image).is_file():
            pytest.exit(f"{IMAGES / image} is missing: run make images", returncode=2)
    work = Path(os.environ.get("SQE_PODS_CLUSTER_DIR", REPO_ROOT / "target" / "pods-cluster")).resolve()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(SQE_CLUSTER_DIR=str(work), SQE_FAKE_NODES="0",
               SQE_NODE_IMAGES=" ".join(str(IMAGES / i) for i in IMAGE_ARCHIVES))
    try:
        _script(REPO_ROOT / "e2e" / "cluster" / "up.sh", env)
        _script(REPO_ROOT / "e2e" / "node" / "up.sh", env)
        info = _env_file(work / "cluster.env") | _env_file(work / "node" / "node.env")
        yield Node(kc=Kubectl(work / "kubeconfig"), dir=work, env=info)
    finally:
        if os.environ.get("SQE_E2E_KEEP_CLUSTER") != "1":
            for script in ("node/down.sh", "cluster/down.sh"):
                subprocess.run([str(REPO_ROOT / "e2e" / script)], env=env, capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def lake(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """S3 and an Iceberg REST catalog (SeaweedFS) on the node's bridge address, where pods reach
    it: the shared storage a distributed cluster needs."""
    s = Seaweed(tmp_path_factory.mktemp("seaweed"), ip=node.env["SQE_NODE_IP"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def kc(node: Node) -> Kubectl:
    return node.kc


@pytest.fixture(scope="session")
def operator(kc: Kubectl) -> dict:
    """The operator as a user installs it: its image, RBAC, Deployment (2 replicas, leader
    election) from config/default."""
    kc.run("apply", "--server-side", "-k", str(REPO_ROOT / "config" / "default"), timeout=120)
    kc.run("-n", "sqe-system", "rollout", "status", "deployment/sqe-operator", "--timeout=120s", timeout=130)
    deploy = kc.get("deployment", "sqe-operator", "sqe-system")
    assert deploy is not None
    return deploy


@pytest.fixture
def ns(request: pytest.FixtureRequest, kc: Kubectl, operator: dict) -> Iterator[str]:
    name = f"pods-{request.node.name[:30].replace('_', '-').lower().strip('-')}-{uuid.uuid4().hex[:5]}"
    kc.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    users = "\n".join(f"{u}:{hash_password(p)}" for u, p in USERS.items())
    kc.apply(secret_manifest("sqe-users", name, {"users": users}))
    request.node.stash[_NS] = name
    yield name
    kc.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    ns = item.stash.get(_NS, None)
    if report.failed and ns:
        kubeconfig = Path(os.environ.get("SQE_PODS_CLUSTER_DIR", REPO_ROOT / "target" / "pods-cluster")) / "kubeconfig"
        kc = Kubectl(kubeconfig)
        try:
            state = kc.run("get", "sqe,deploy,pods,svc,endpointslices", "-n", ns, "-o", "wide", check=False).stdout
            events = kc.run("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout
            logs = []
            for pod in kc.list("pods", ns):
                name = pod["metadata"]["name"]
                out = kc.run("logs", "-n", ns, name, "--all-containers", "--tail=40", check=False)
                logs.append(f"--- {name}\n{out.stdout}{out.stderr}")
            report.sections.append((f"namespace {ns}", state + "\n" + events[-4000:] + "\n" + "\n".join(logs)))
        except Exception as e:  # noqa: BLE001 - reporting must not fail the report
            report.sections.append((f"namespace {ns}", f"could not read it: {e!r}"))
    return report
