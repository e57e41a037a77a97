"""Fixtures of the operator's end-to-end suite: one Kubernetes API server and one operator
process for the whole session, one namespace per case.

- `cluster`   the API server: `$KUBECONFIG` if set (an existing cluster), otherwise the local
              control plane (e2e/cluster/up.sh) in `$SQE_E2E_CLUSTER_DIR` (default
              target/e2e-cluster), stopped with down.sh at the end (`SQE_E2E_KEEP_CLUSTER=1`
              keeps it). The SqeCluster CRD is applied server-side and config/rbac installed in
              namespace sqe-system.
- `operator`  `sqe-operator run` (the real binary, $SQE_OPERATOR_BIN) as a subprocess under its
              own identity: a client certificate for system:serviceaccount:sqe-system:sqe-operator
              (group system:serviceaccounts), so the ClusterRole in config/rbac is what it may do
              and the audit log tells its requests apart. Log: <cluster dir>/logs/operator-*.log.
- `ns`        a fresh namespace for the test, with the Secret `sqe-users` (user alice).

On a failure the tail of every operator log that was running during the test and the state of
the test's namespace are attached to the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kube import (
    OPERATOR_GROUPS,
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    SUITE_LABEL,
    AuditLog,
    Kubectl,
    OperatorProcess,
    namespace_name,
    operator_binary,
    secret_manifest,
    wait_for,
)
from sqe_harness import REPO_ROOT, attach_logs, hash_password, server_binary

CLUSTER_SCRIPTS = REPO_ROOT / "e2e" / "cluster"
SQE_CRD = REPO_ROOT / "crds" / "sqecluster.yaml"
RBAC_DIR = REPO_ROOT / "config" / "rbac"
USERS = {"alice": "alice-e2e-pw-1"}

_START = pytest.StashKey[float]()
_NS = pytest.StashKey[str]()
_SESSION_T0 = time.monotonic()


@dataclass
class ClusterInfo:
    kc: Kubectl  # admin
    kubeconfig: Path
    #: where the suite keeps its files (operator logs and kubeconfig); the cluster dir when local
    dir: Path
    #: the local control plane (audit log available) rather than an existing cluster
    local: bool
    audit: AuditLog | None
    operator_kubeconfig: Path
    #: the ServiceMonitor CRD existed before the suite started
    servicemonitor_crd_preinstalled: bool
    started_here: bool
    up_seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# Reporting


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_START] = time.monotonic()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        attach_logs(report, item.stash.get(_START, 0.0))
        ns = item.stash.get(_NS, None)
        kc = _ADMIN[0] if _ADMIN else None
        if ns and kc:
            try:
                state = kc.run("get", "sqe,deploy,rs,pods", "-n", ns, "-o", "wide", check=False, timeout=20)
                sqe = kc.run("get", "sqe", "-n", ns, "-o", "json", check=False, timeout=20)
                statuses = [
                    {"name": i["metadata"]["name"], "generation": i["metadata"].get("generation"),
                     "status": i.get("status")}
                    for i in (json.loads(sqe.stdout or "{}").get("items") or [])
                ]
                report.sections.append(
                    (f"namespace {ns}", state.stdout + state.stderr + "\n" + json.dumps(statuses, indent=1))
                )
            except Exception as e:  # noqa: BLE001 - reporting must not fail the report
                report.sections.append((f"namespace {ns}", f"could not read it: {e!r}"))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    info = _INFO[0] if _INFO else None
    total = time.monotonic() - _SESSION_T0
    where = "existing cluster ($KUBECONFIG)" if info and not info.started_here else "local control plane"
    extra = f", control plane started in {info.up_seconds:.0f}s" if info and info.started_here else ""
    terminalreporter.write_line(f"operator e2e: {total:.0f}s in total on the {where}{extra}")
    if info:
        terminalreporter.write_line(f"operator logs: {info.dir / 'logs'}/operator-*.log")


_ADMIN: list[Kubectl] = []
_INFO: list[ClusterInfo] = []


# --------------------------------------------------------------------------------------------
# Binaries


@pytest.fixture(scope="session", autouse=True)
def binaries() -> None:
    for what, path in (("sqe-operator", operator_binary()), ("sqe-server", server_binary())):
        if not path.is_file():
            pytest.exit(f"{what} binary not found at {path}: build it (cargo build --release) or set "
                        f"SQE_{what.split('-')[1].upper()}_BIN", returncode=2)
    if shutil.which("kubectl") is None:
        pytest.exit("kubectl is not on PATH", returncode=2)


# --------------------------------------------------------------------------------------------
# The cluster


def _script(name: str, env: dict[str, str], *args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(CLUSTER_SCRIPTS / name), *args], capture_output=True, text=True, env=env, timeout=timeout,
        cwd=str(REPO_ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout


def _impersonating_kubeconfig(kc: Kubectl, out: Path) -> None:
    """For an existing cluster (no client CA at hand): the admin kubeconfig, impersonating the
    operator's ServiceAccount user and group, so RBAC still applies to the operator."""
    cfg = json.loads(kc.run("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout)
    for u in cfg.get("users", []):
        u["user"]["as"] = OPERATOR_USER
        u["user"]["as-groups"] = list(OPERATOR_GROUPS)
    out.write_text(json.dumps(cfg))
    out.chmod(0o600)


@pytest.fixture(scope="session")
def cluster() -> Iterator[ClusterInfo]:
    t0 = time.monotonic()
    started_here = False
    env_kubeconfig = os.environ.get("KUBECONFIG")
    work_dir = Path(os.environ.get("SQE_E2E_CLUSTER_DIR", REPO_ROOT / "target" / "e2e-cluster")).resolve()
    cluster_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    if env_kubeconfig:
        kubeconfig = Path(env_kubeconfig)
        # A kubeconfig written by up.sh sits next to its cluster.env: the local control plane.
        local = (kubeconfig.parent / "cluster.env").is_file()
        cluster_dir = kubeconfig.parent if local else None
    else:
        cluster_env["SQE_CLUSTER_DIR"] = str(work_dir)
        _script("up.sh", cluster_env)
        started_here = True
        kubeconfig = work_dir / "kubeconfig"
        local, cluster_dir = True, work_dir
    up_seconds = time.monotonic() - t0
    kc = Kubectl(kubeconfig)
    _ADMIN.append(kc)
    try:
        kc.run("get", "--raw", "/readyz", timeout=30)
        # Files of this run: operator logs and kubeconfig. Never write into a cluster dir the
        # suite was pointed at with $KUBECONFIG (it may be another engineer's).
        dir_ = work_dir
        (dir_ / "logs").mkdir(parents=True, exist_ok=True)

        # The CRD (large: it must be applied server-side) and the operator's RBAC.
        kc.run("apply", "--server-side", "--force-conflicts", "-f", str(SQE_CRD))
        kc.wait_crd_established("sqeclusters.sqe.dev")
        kc.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
        kc.run("apply", "--server-side", "--force-conflicts", "-n", OPERATOR_NAMESPACE, "-k", str(RBAC_DIR))
        sm_pre = kc.get("crd", "servicemonitors.monitoring.coreos.com") is not None

        # The operator's identity.
        op_kubeconfig = dir_ / "operator.kubeconfig"  # no ':' in the path: KUBECONFIG splits on it
        if local:
            uenv = dict(cluster_env)
            uenv["SQE_CLUSTER_DIR"] = str(cluster_dir)
            made = Path(_script("user-kubeconfig.sh", uenv, OPERATOR_USER, *OPERATOR_GROUPS).strip().splitlines()[-1])
            shutil.copyfile(made, op_kubeconfig)
            op_kubeconfig.chmod(0o600)
        else:
            _impersonating_kubeconfig(kc, op_kubeconfig)
        op_kc = Kubectl(op_kubeconfig)
        who = op_kc.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=False).stdout
        assert who in ("", OPERATOR_USER), f"the operator's kubeconfig authenticates as {who!r}"
        can = op_kc.run("auth", "can-i", "patch", "deployments.apps", "-A", check=False).stdout.strip()
        assert can == "yes", f"RBAC: the operator may not patch Deployments ({can!r})"
        cannot = op_kc.run("auth", "can-i", "delete", "namespaces", check=False).stdout.strip()
        assert cannot == "no", "RBAC: the operator must not be an administrator"

        audit = None
        if local and cluster_dir is not None:
            audit_path = cluster_dir / "logs" / "audit.log"
            audit = AuditLog(audit_path) if audit_path.is_file() else None
        info = ClusterInfo(
            kc=kc, kubeconfig=kubeconfig, dir=dir_, local=local, audit=audit,
            operator_kubeconfig=op_kubeconfig, servicemonitor_crd_preinstalled=sm_pre,
            started_here=started_here, up_seconds=up_seconds,
        )
        _INFO.append(info)
        yield info
    finally:
        # The operator's client certificate stays valid as long as the cluster dir's CA (kept
        # across runs): do not leave it lying around.
        (work_dir / "operator.kubeconfig").unlink(missing_ok=True)
        if started_here and os.environ.get("SQE_E2E_KEEP_CLUSTER") != "1":
            _script("down.sh", cluster_env, timeout=120)
        elif not started_here:
            # An existing cluster: remove what the suite made (namespaces; a CRD it installed).
            kc.run("delete", "namespace", "-l", f"{SUITE_LABEL}=operator", "--wait=false", check=False)


@pytest.fixture(scope="session")
def kc(cluster: ClusterInfo) -> Kubectl:
    return cluster.kc


@pytest.fixture(scope="session")
def operator(cluster: ClusterInfo) -> Iterator[OperatorProcess]:
    """The operator every case shares (no leader election), restartable by the cases that kill
    it (`operator.kill()`, `operator.start()`)."""
    op = OperatorProcess(
        cluster.operator_kubeconfig, cluster.dir / "logs" / "operator-shared.log", identity="e2e-shared"
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="session")
def users() -> dict[str, str]:
    return dict(USERS)


@pytest.fixture(scope="session")
def users_file(users: dict[str, str]) -> str:
    """`name:$argon2id$...` lines, as the Secret holds them."""
    return "".join(f"{name}:{hash_password(pw)}\n" for name, pw in users.items())


def make_namespace(kc: Kubectl, name: str, users_file: str) -> str:
    kc.apply({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {SUITE_LABEL: "operator"}},
    })
    kc.apply(secret_manifest("sqe-users", name, {"users": users_file}))
    return name


@pytest.fixture
def ns(request: pytest.FixtureRequest, kc: Kubectl, operator: OperatorProcess, users_file: str) -> Iterator[str]:
    """A fresh namespace with the Secret `sqe-users`; deleted (without waiting) afterwards."""
    name = namespace_name(request.node.name, uuid.uuid4().hex[:5])
    make_namespace(kc, name, users_file)
    request.node.stash[_NS] = name
    yield name
    if os.environ.get("SQE_E2E_KEEP_NAMESPACES") != "1":
        kc.run("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def wait_other_namespaces_gone(kc: Kubectl, keep: str, timeout: float = 120) -> None:
    """Waits until the namespaces of earlier cases are deleted, so their clean-up (garbage
    collection, the operator's reaction to it) does not count in this case's measurements."""

    def others() -> list[str]:
        return [
            n["metadata"]["name"] for n in kc.list("namespaces", selector=f"{SUITE_LABEL}=operator")
            if n["metadata"]["name"] != keep
        ]

    wait_for(lambda: not others(), timeout, "the namespaces of earlier cases to be deleted", interval=1)
