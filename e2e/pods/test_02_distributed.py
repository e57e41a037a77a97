"""A distributed SqeCluster with three workers on a real node, on an Iceberg REST catalog and S3
(SeaweedFS on the node's bridge address, where pods reach it): every worker registers from its
pod and shows ACTIVE with the image's version in system.runtime.nodes, and a TPC-H query's tasks
run on all three."""

from __future__ import annotations

import sys
import time
import uuid

from kube import Kubectl, wait_for
from pods_kit import VERSION, PortForward, distributed_cluster, flight_conn, lakehouse_secret, pod_timeline, pods, ready_workers, wait_ready, wait_workers_active
from seaweed import KEY, SECRET, Seaweed
from sqe_harness import REPO_ROOT, fetch_dicts, query_id, query_tasks, server_binary

sys.path.insert(0, str(REPO_ROOT / "bench"))
from tpch_data import ingest_tables, parquet_tables  # noqa: E402

WORKERS = 3


def test_three_workers_register_and_share_a_tpch_query(kc: Kubectl, ns: str, lake: Seaweed):
    kc.apply(lakehouse_secret(ns, KEY, SECRET))
    t0 = time.monotonic()
    kc.apply(distributed_cluster(ns, lake, replicas=WORKERS))
    wait_ready(kc, ns, "analytics", timeout=180)
    print(f"distributed cluster ({WORKERS} workers) Ready {time.monotonic() - t0:.1f}s after apply")
    worker_pods = {p["metadata"]["name"] for p in pods(kc, ns, "worker")}
    assert len(worker_pods) == WORKERS
    # the cluster is Ready once enough workers are; the timings are of every pod Ready
    wait_for(lambda: ready_workers(kc, ns) == worker_pods or None, 120, f"all {WORKERS} worker pods Ready")
    for role in ("coordinator", "worker"):
        for pod in pods(kc, ns, role):
            created, started, ready = pod_timeline(pod)
            print(f"{role} {pod['metadata']['name']}: container started {started - created:.0f}s after the pod was "
                  f"created, Ready {ready - started:.0f}s after it started")

    with PortForward(kc, ns, "svc/analytics-coordinator", 50051) as pf:
        conn = flight_conn(pf.local[50051])
        try:
            # every worker pod registered under its pod name and IP, active, with the image's version
            workers = wait_workers_active(conn, worker_pods)
            assert {w["node_version"] for w in workers} == {VERSION}, workers
            ips = {p["status"]["podIP"] for p in pods(kc, ns, "worker")}
            assert {w["http_uri"].removeprefix("http://").rsplit(":", 1)[0] for w in workers} == ips, workers
            # the coordinator shows its own pod's Trino URL, not the address it binds (0.0.0.0)
            coordinator_ip = pods(kc, ns, "coordinator")[0]["status"]["podIP"]
            coordinators = fetch_dicts(conn, "SELECT http_uri FROM system.runtime.nodes WHERE coordinator")
            assert coordinators == [{"http_uri": f"http://{coordinator_ip}:8080"}], coordinators

            # TPC-H lineitem in six data files, so its scan has work for every worker
            schema = f"tpch_{uuid.uuid4().hex[:6]}"
            with conn.cursor() as cur:
                cur.execute(f"CREATE SCHEMA {schema}")
                cur.fetchall()
            parquet = parquet_tables(server_binary(), 0.01, REPO_ROOT / "target" / "bench")
            ingest_tables(conn, parquet, schema=schema, files_per_table=6)

            marker = f"pods_{uuid.uuid4().hex[:8]}"
            sql = (f"SELECT /* {marker} */ l_returnflag, l_linestatus, count(*) AS n, sum(l_quantity) AS qty "
                   f"FROM {schema}.lineitem GROUP BY l_returnflag, l_linestatus ORDER BY 1, 2")
            got = fetch_dicts(conn, sql)
            assert sum(r["n"] for r in got) == 60175 and len(got) == 4, got
            qid = query_id(conn, marker)

            def finished_on_workers() -> list[dict] | None:
                tasks = [t for t in query_tasks(conn, qid) if t["node_id"] in worker_pods]
                return tasks if tasks and all(t["state"] == "FINISHED" for t in tasks) else None

            tasks = wait_for(finished_on_workers, 20, f"query {qid}'s worker tasks FINISHED")
            assert {t["node_id"] for t in tasks} == worker_pods, tasks
        finally:
            conn.close()
