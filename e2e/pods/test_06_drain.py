"""Draining the node with `kubectl drain` (the eviction API) respects the workers'
PodDisruptionBudget: of two workers one is evicted, the last never is, and the evicted worker
finishes the task it was running before it goes (the query's answer is right, its task there is
FINISHED)."""

from __future__ import annotations

import subprocess

from distributed_kit import LONG_TABLE_ROWS_PER_FILE, MultiFileTable, SlowAggregate
from kube import Kubectl, wait_for
from pods_kit import Node, PortForward, distributed_cluster, flight_conn, lakehouse_secret, pods, ready_workers, wait_ready, wait_workers_active
from seaweed import KEY, SECRET, Seaweed
from sqe_harness import Background, query_id, query_tasks, rows, unique


def test_drain_evicts_one_worker_never_the_last_and_it_finishes_its_task(kc: Kubectl, node: Node, ns: str, lake: Seaweed):
    kc.apply(lakehouse_secret(ns, KEY, SECRET))
    kc.apply(distributed_cluster(ns, lake, replicas=2))
    wait_ready(kc, ns, "analytics", timeout=180)
    assert kc.get("poddisruptionbudget", "analytics-workers", ns) is not None, "no PDB for the workers"
    before = wait_for(lambda: (w := ready_workers(kc, ns)) and len(w) == 2 and w, 60, "2 ready workers")
    name = node.env["SQE_NODE_NAME"]

    # the coordinator keeps its Service endpoint: connect to its pod, which the drain leaves alone
    [coord] = pods(kc, ns, "coordinator")
    with PortForward(kc, ns, f"pod/{coord['metadata']['name']}", 50051) as pf:
        conn, watcher = flight_conn(pf.local[50051]), flight_conn(pf.local[50051])
        try:
            wait_workers_active(watcher, before)
            table = MultiFileTable.create(conn, files=4, rows_per_file=LONG_TABLE_ROWS_PER_FILE)
            slow = SlowAggregate.calibrated(conn, table, target_seconds=8)
            marker = unique("n")
            job = Background(rows, conn, slow.sql(marker), name="distributed query")
            qid = query_id(watcher, marker)

            def running_on_both() -> bool:
                if job.done:
                    raise AssertionError(f"the query ended before it ran on both workers: {job.error or job.result!r}")
                return {t["node_id"] for t in query_tasks(watcher, qid) if t["state"] == "RUNNING"} >= before

            wait_for(running_on_both, 30, f"query {qid} running on both workers")
            drain = subprocess.run(
                ["kubectl", "--kubeconfig", str(kc.kubeconfig), "drain", name, "--ignore-daemonsets",
                 "--delete-emptydir-data", "--pod-selector=app.kubernetes.io/component=worker,app.kubernetes.io/instance=analytics",
                 "--timeout=25s"],
                capture_output=True, text=True, timeout=60,
            )
            try:
                out = drain.stdout + drain.stderr
                assert drain.returncode != 0, f"the drain evicted both workers:\n{out}"
                assert "disruption budget" in out, out
                evicted = {line.split("/")[-1].split()[0] for line in out.splitlines() if line.startswith("pod/") and "evicted" in line}
                assert len(evicted) == 1 and evicted <= before, out
                [gone] = evicted
                [last] = before - evicted
                assert last in ready_workers(kc, ns), "the last worker was evicted"

                job.join(180)
                assert job.error is None, f"the query failed while {gone} was evicted: {job.error}"
                assert job.result == table.expected_aggregate()
                tasks = query_tasks(watcher, qid)
                assert {t["state"] for t in tasks if t["node_id"] == gone} == {"FINISHED"}, tasks
            finally:
                kc.run("uncordon", name)
            # the evicted worker's replacement schedules again and registers
            after = wait_for(lambda: (w := ready_workers(kc, ns)) and len(w) == 2 and w, 90, "2 ready workers again")
            wait_workers_active(watcher, after, timeout=60)
        finally:
            conn.close()
            watcher.close()
