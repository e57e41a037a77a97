"""A distributed SqeCluster with three workers on a real node, on an Iceberg REST catalog and S3
(SeaweedFS on the node's bridge address, where pods reach it): every worker registers from its
pod and shows ACTIVE with the image's version in system.runtime.nodes, and a TPC-H query's tasks
run on all three."""

from __future__ import annotations

import sys
import time
import uuid

import adbc_driver_flightsql.dbapi as flight_sql
import pytest

from kube import Kubectl, secret_manifest, wait_for
from pods_kit import USERS, Node, PortForward, pods, wait_ready
from seaweed import KEY, SECRET, Seaweed
from sqe_harness import REPO_ROOT, fetch_dicts, query_id, query_tasks, server_binary

sys.path.insert(0, str(REPO_ROOT / "bench"))
from tpch_data import ingest_tables, parquet_tables  # noqa: E402

WORKERS = 3
VERSION = "0.1.0"  # the workspace version the images are built from


@pytest.fixture(scope="module")
def lake(node: Node, tmp_path_factory) -> Seaweed:
    s = Seaweed(tmp_path_factory.mktemp("seaweed"), ip=node.env["SQE_NODE_IP"])
    yield s
    s.stop()


def _cluster(ns: str, lake: Seaweed, replicas: int = WORKERS) -> dict:
    return {
        "apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
        "metadata": {"name": "analytics", "namespace": ns},
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


def _workers(conn) -> list[dict]:
    return [n for n in fetch_dicts(conn, "SELECT * FROM system.runtime.nodes") if not n["coordinator"]]


def test_three_workers_register_and_share_a_tpch_query(kc: Kubectl, node: Node, ns: str, lake: Seaweed, tmp_path):
    kc.apply(secret_manifest("sqe-lakehouse", ns, {
        "SQE_CATALOG__CREDENTIAL": f"{KEY}:{SECRET}",
        "SQE_STORAGE__S3_ACCESS_KEY_ID": KEY,
        "SQE_STORAGE__S3_SECRET_ACCESS_KEY": SECRET,
    }))
    t0 = time.monotonic()
    kc.apply(_cluster(ns, lake))
    wait_ready(kc, ns, "analytics", timeout=180)
    print(f"distributed cluster ({WORKERS} workers) Ready {time.monotonic() - t0:.1f}s after apply")
    worker_pods = {p["metadata"]["name"] for p in pods(kc, ns, "worker")}
    assert len(worker_pods) == WORKERS

    with PortForward(kc, ns, "svc/analytics-coordinator", 50051) as pf:
        conn = flight_sql.connect(f"grpc://127.0.0.1:{pf.local[50051]}",
                                  db_kwargs={"username": "alice", "password": USERS["alice"]})
        try:
            # every worker pod registered under its pod name, active, with the image's version
            def all_active() -> list[dict] | None:
                ws = _workers(conn)
                ok = {w["node_id"] for w in ws if w["state"] == "active" and w["schedulable"]}
                return ws if ok == worker_pods else None

            workers = wait_for(all_active, 60, f"{WORKERS} active workers in system.runtime.nodes")
            assert {w["node_version"] for w in workers} == {VERSION}, workers
            ips = {p["status"]["podIP"] for p in pods(kc, ns, "worker")}
            assert {w["http_uri"].removeprefix("http://").rsplit(":", 1)[0] for w in workers} == ips, workers

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
