"""NetworkPolicies, enforced: the policies the operator renders, on a node whose kube-router
(firewall only, iptables + ipset) enforces them. Only the allowed clients reach the
coordinator's client ports; no pod outside the cluster reaches the workers' port, while the
coordinator does (a query's tasks run on the worker). With the policies switched off the very
same pods get through, so what stopped them was the policy."""

from __future__ import annotations

from distributed_kit import MultiFileTable
from kube import Kubectl, wait_for
from pods_kit import PortForward, distributed_cluster, flight_conn, UNREACHABLE, json_rows, lakehouse_secret, pods, run_cli_pod, wait_ready, wait_workers_active
from seaweed import KEY, SECRET, Seaweed
from sqe_harness import query_id, query_tasks, rows, unique

ANALYST = {"sqe.dev/role": "analyst"}


def _cli(host: str, port: int) -> list[str]:
    return ["--host", host, "--port", str(port), "--format", "json",
            "-e", "SELECT count(*) AS n FROM system.runtime.nodes"]


def test_only_allowed_clients_reach_the_coordinator_and_nobody_but_the_cluster_the_workers(kc: Kubectl, ns: str, lake: Seaweed):
    clients = f"{ns}-clients"
    kc.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": clients}})
    try:
        kc.apply(lakehouse_secret(ns, KEY, SECRET))
        cluster = distributed_cluster(ns, lake, replicas=1, name="guarded")
        cluster["spec"]["networkPolicy"] = {"allowedClients": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": clients}},
            "podSelector": {"matchLabels": ANALYST},
        }]}
        kc.apply(cluster)
        wait_ready(kc, ns, "guarded", timeout=180)
        assert {p["metadata"]["name"] for p in kc.list("networkpolicies", ns)} == {"guarded-coordinator", "guarded-workers"}
        [worker] = pods(kc, ns, "worker")
        worker_name, worker_ip = worker["metadata"]["name"], worker["status"]["podIP"]

        # the coordinator reaches the worker: it registered, and a query's tasks ran on it
        with PortForward(kc, ns, "svc/guarded-coordinator", 50051) as pf:
            conn = flight_conn(pf.local[50051])
            try:
                wait_workers_active(conn, {worker_name})
                table = MultiFileTable.create(conn, files=2, rows_per_file=2000)
                marker = unique("n")
                assert rows(conn, table.aggregate_sql(marker)) == table.expected_aggregate()
                qid = query_id(conn, marker)
                assert any(t["node_id"] == worker_name and t["state"] == "FINISHED" for t in query_tasks(conn, qid))
            finally:
                conn.close()

        image = worker["spec"]["containers"][0]["image"]
        coordinator = f"guarded-coordinator.{ns}.svc.cluster.local"

        # an allowed client queries through the Service
        logs = run_cli_pod(kc, clients, "analyst", image, _cli(coordinator, 50051), ANALYST)
        assert json_rows(logs) == [{"n": 2}], logs
        # a pod beside it without the label is refused at the network, as is a pod of the
        # cluster's own namespace (the allowed clients replace the default, "this namespace")
        logs = run_cli_pod(kc, clients, "stranger", image, _cli(coordinator, 50051), refused=True)
        assert UNREACHABLE in logs, logs
        logs = run_cli_pod(kc, ns, "neighbour", image, _cli(coordinator, 50051), refused=True)
        assert UNREACHABLE in logs, logs
        # the allowed client does not reach the workers' port
        logs = run_cli_pod(kc, clients, "analyst-to-worker", image, _cli(worker_ip, 50052), ANALYST, refused=True)
        assert UNREACHABLE in logs, logs

        # the control: without the policies the same pods get through
        kc.patch("sqecluster", "guarded", ns, {"spec": {"networkPolicy": {"enabled": False}}})
        wait_for(lambda: not kc.list("networkpolicies", ns), 60, "the NetworkPolicies deleted")
        logs = run_cli_pod(kc, clients, "stranger-2", image, _cli(coordinator, 50051))
        assert json_rows(logs) == [{"n": 2}], logs
        # ... and the worker's port answers, refusing a user: it takes only the cluster's credential
        logs = run_cli_pod(kc, clients, "analyst-to-worker-2", image, _cli(worker_ip, 50052), ANALYST, refused=True)
        assert UNREACHABLE not in logs and "ERROR" in logs, logs
    finally:
        kc.run("delete", "namespace", clients, "--wait=false", check=False)
