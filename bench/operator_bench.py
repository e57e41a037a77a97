#!/usr/bin/env python3
"""Operator benchmark: apply N SqeClusters at once to a local control plane and measure.

Prints (and writes to target/bench/operator.{md,json}): time until every cluster is Ready, the
operator's peak RSS and CPU seconds, API requests and writes per cluster (from the API server's
audit log, by the operator's own user), and the operator's writes during an idle minute after.

Uses $KUBECONFIG when set (then the audit figures are skipped unless --audit-log is given);
otherwise starts its own control plane in target/bench-cluster with enough fake nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPERATOR_USER = "system:serviceaccount:sqe-system:sqe-operator"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def sh(*args: str, env: dict | None = None, input: str | None = None, check: bool = True) -> str:
    result = subprocess.run(args, env=env, input=input, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def audit_entries(path: Path, since_offset: int) -> tuple[list[dict], int]:
    """Audit events by the operator's user written after `since_offset`, one per request."""
    seen: dict[str, dict] = {}
    with path.open("rb") as f:
        f.seek(since_offset)
        data = f.read()
        end = f.tell()
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("user", {}).get("username") != OPERATOR_USER:
            continue
        seen[event.get("auditID", str(len(seen)))] = event
    return list(seen.values()), end


def count(entries: list[dict]) -> tuple[int, int]:
    """(requests, writes), leaving out Lease renewals (leader election)."""
    relevant = [e for e in entries if e.get("objectRef", {}).get("resource") != "leases"]
    writes = [e for e in relevant if e.get("verb") in WRITE_VERBS]
    return len(relevant), len(writes)


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a live process."""
    hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return hwm, cpu


def cluster_manifest(i: int, namespace: str) -> str:
    return f"""---
apiVersion: sqe.dev/v1alpha1
kind: SqeCluster
metadata:
  name: bench-{i:04d}
  namespace: {namespace}
spec:
  auth:
    usersSecret:
      name: sqe-users
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--idle-seconds", type=int, default=60)
    parser.add_argument("--operator", default=str(ROOT / "target/release/sqe-operator"))
    parser.add_argument("--server", default=str(ROOT / "target/release/sqe-server"))
    parser.add_argument("--out", default=str(ROOT / "target/bench"))
    args = parser.parse_args()

    cluster_dir = ROOT / "target/bench-cluster"
    own_cluster = not os.environ.get("KUBECONFIG")
    env = dict(os.environ)
    if own_cluster:
        env.update(SQE_CLUSTER_DIR=str(cluster_dir), SQE_FAKE_NODES=str(max(3, args.clusters // 25)))
        sh(str(ROOT / "e2e/cluster/build.sh"), env=env)
        subprocess.run([str(ROOT / "e2e/cluster/down.sh")], env=env, capture_output=True)
        sh(str(ROOT / "e2e/cluster/up.sh"), env=env)
        env["KUBECONFIG"] = str(cluster_dir / "kubeconfig")
    audit_log = cluster_dir / "logs/audit.log" if own_cluster else None

    kubectl = lambda *a, **kw: sh("kubectl", *a, env=env, **kw)  # noqa: E731
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds/sqecluster.yaml"))
    wait_for(
        lambda: kubectl(
            "get", "crd", "sqeclusters.sqe.dev", "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False,
        ).strip() == "True",
        60, "the CRD to be established",
    )
    kubectl("create", "namespace", "sqe-system", check=False)
    kubectl("apply", "--server-side", "-n", "sqe-system", "-k", str(ROOT / "config/rbac"))
    namespace = "sqe-bench"
    kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False)
    kubectl("create", "namespace", namespace)
    password_hash = sh(args.server, "hash-password", input="bench\n").strip()
    kubectl("create", "secret", "generic", "sqe-users", "-n", namespace,
            f"--from-literal=users=bench:{password_hash}")

    # The operator under its own user, so the audit log tells its requests apart.
    op_env = dict(env)
    if own_cluster:
        generated = sh(str(ROOT / "e2e/cluster/user-kubeconfig.sh"), OPERATOR_USER,
                       "system:serviceaccounts", env=env).strip()
        op_kubeconfig = cluster_dir / "bench-operator.kubeconfig"
        shutil.copy(generated, op_kubeconfig)
        op_env["KUBECONFIG"] = str(op_kubeconfig)
    port = free_port()
    log_path = Path(args.out) / "operator-bench.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    operator = subprocess.Popen(
        [args.operator, "run", "--listen-addr", f"127.0.0.1:{port}", "--namespace", namespace],
        env=op_env, stdout=log_path.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        import urllib.request

        def ready() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(ready, 30, "the operator's /readyz")
        offset = audit_log.stat().st_size if audit_log else 0
        _, cpu_before = proc_stats(operator.pid)

        manifests = "".join(cluster_manifest(i, namespace) for i in range(args.clusters))
        started = time.monotonic()
        sh("kubectl", "apply", "--server-side", "-f", "-", env=env, input=manifests)

        def all_ready() -> int | None:
            items = json.loads(kubectl("get", "sqe", "-n", namespace, "-o", "json"))["items"]
            n = sum(
                1
                for c in items
                for cond in c.get("status", {}).get("conditions", [])
                if cond["type"] == "Ready" and cond["status"] == "True"
            )
            return n if n == args.clusters else None

        wait_for(all_ready, 600, f"{args.clusters} Ready SqeClusters", interval=1.0)
        to_ready = time.monotonic() - started
        rss, cpu_after = proc_stats(operator.pid)

        figures = {
            "clusters": args.clusters,
            "seconds_until_all_ready": round(to_ready, 1),
            "operator_peak_rss_mib": round(rss, 1),
            "operator_cpu_seconds": round(cpu_after - cpu_before, 2),
        }
        if audit_log:
            entries, offset = audit_entries(audit_log, offset)
            requests, writes = count(entries)
            figures["api_requests_per_cluster"] = round(requests / args.clusters, 1)
            figures["api_writes_per_cluster"] = round(writes / args.clusters, 1)
            # Let in-flight status updates settle (3 s without an operator write), then
            # measure a quiet window.
            quiet_since = time.monotonic()

            def settled() -> bool:
                nonlocal offset, quiet_since
                more, offset = audit_entries(audit_log, offset)
                if count(more)[1]:
                    quiet_since = time.monotonic()
                return time.monotonic() - quiet_since >= 3

            wait_for(settled, 120, "the operator to go quiet", interval=0.5)
            time.sleep(args.idle_seconds)  # the measurement window itself, not a wait
            entries, _ = audit_entries(audit_log, offset)
            idle_requests, idle_writes = count(entries)
            figures[f"idle_{args.idle_seconds}s_writes"] = idle_writes
            figures[f"idle_{args.idle_seconds}s_requests"] = idle_requests
        _, cpu_end = proc_stats(operator.pid)
        figures["operator_cpu_seconds_total"] = round(cpu_end - cpu_before, 2)
    finally:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(15)
        except subprocess.TimeoutExpired:
            operator.kill()
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        if own_cluster:
            subprocess.run([str(ROOT / "e2e/cluster/down.sh")], env=env, capture_output=True)

    out = Path(args.out)
    (out / "operator.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in figures.items()]
    (out / "operator.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
