"""Worker loss on a real node: a worker pod deleted with `--grace-period=0 --force` while a query
runs tasks on it. The query still returns the right result (the coordinator re-runs it on the
workers that are left), the Deployment replaces the pod, and the new worker registers."""

from __future__ import annotations

from distributed_kit import LONG_TABLE_ROWS_PER_FILE, MultiFileTable, SlowAggregate
from kube import Kubectl, wait_for
from pods_kit import PortForward, distributed_cluster, flight_conn, lakehouse_secret, ready_workers, wait_ready, wait_workers_active
from seaweed import KEY, SECRET, Seaweed
from sqe_harness import Background, query_id, query_tasks, rows, unique


def _three_ready(kc: Kubectl, ns: str, without: str | None = None) -> set[str] | None:
    ready = ready_workers(kc, ns)
    return ready if len(ready) == 3 and without not in ready else None


def test_a_worker_pod_force_deleted_mid_query(kc: Kubectl, ns: str, lake: Seaweed):
    kc.apply(lakehouse_secret(ns, KEY, SECRET))
    kc.apply(distributed_cluster(ns, lake, replicas=3))
    wait_ready(kc, ns, "analytics", timeout=180)
    before = wait_for(lambda: _three_ready(kc, ns), 60, "3 ready worker pods")

    with PortForward(kc, ns, "svc/analytics-coordinator", 50051) as pf:
        conn, watcher = flight_conn(pf.local[50051]), flight_conn(pf.local[50051])
        try:
            wait_workers_active(watcher, before)
            table = MultiFileTable.create(conn, files=6, rows_per_file=LONG_TABLE_ROWS_PER_FILE)
            slow = SlowAggregate.calibrated(conn, table, target_seconds=8)
            marker = unique("n")
            job = Background(rows, conn, slow.sql(marker), name="distributed query")
            qid = query_id(watcher, marker)

            def victim() -> str | None:
                if job.done:
                    raise AssertionError(f"the query ended before it ran on a worker: {job.error or job.result!r}")
                running = {t["node_id"] for t in query_tasks(watcher, qid) if t["state"] == "RUNNING"} & before
                return sorted(running)[0] if running else None

            lost = wait_for(victim, 30, f"query {qid} to run a task on a worker")
            kc.run("delete", "pod", "-n", ns, lost, "--grace-period=0", "--force", timeout=30)
            deleted_while_running = not job.done

            job.join(180)
            assert job.error is None, f"the query failed when {lost} was deleted: {job.error}"
            assert job.result == table.expected_aggregate()
            assert deleted_while_running, "the query ended before the pod was deleted; the calibration made it too short"

            # the Deployment replaces the pod, and the replacement registers and takes work
            after = wait_for(lambda: _three_ready(kc, ns, without=lost), 120, "a replacement worker pod Ready")
            [new] = after - before
            wait_workers_active(watcher, after, timeout=60)
            marker = unique("n")
            assert rows(conn, table.aggregate_sql(marker)) == table.expected_aggregate()
            ran_on = {t["node_id"] for t in query_tasks(watcher, query_id(watcher, marker))}
            assert new in ran_on, f"the new worker {new} ran no task: {ran_on}"
        finally:
            conn.close()
            watcher.close()
