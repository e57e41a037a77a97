"""Config and Secret changes on a real node: each rolls the pods, workers first and the coordinator
once every new worker is Ready, and the engine then runs what was changed: a new default schema
answers unqualified table names, a user added to the users Secret can log in."""

from __future__ import annotations

import datetime as dt

from kube import Kubectl, secret_manifest, wait_for
from pods_kit import USERS, PortForward, distributed_cluster, flight_conn, lakehouse_secret, pods, wait_ready
from seaweed import KEY, SECRET, Seaweed
from sqe_harness import hash_password, rows, run, unique


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ready_at(pod: dict) -> dt.datetime | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready" and c["status"] == "True":
            return _ts(c["lastTransitionTime"])
    return None


def _rolled(kc: Kubectl, ns: str, old: set[str]) -> dict[str, list[dict]] | None:
    """Every pod replaced and Ready: the new pods by component, else None."""
    now = {c: [p for p in pods(kc, ns, c) if not p["metadata"].get("deletionTimestamp")]
           for c in ("coordinator", "worker")}
    every = [p for ps in now.values() for p in ps]
    if any(p["metadata"]["name"] in old for p in pods(kc, ns, "coordinator") + pods(kc, ns, "worker")):
        return None
    if len(now["worker"]) != 2 or len(now["coordinator"]) != 1 or not all(_ready_at(p) for p in every):
        return None
    return now


def _assert_workers_first(new: dict[str, list[dict]]) -> None:
    last_worker_ready = max(_ready_at(p) for p in new["worker"])
    [coordinator] = new["coordinator"]
    created = _ts(coordinator["metadata"]["creationTimestamp"])
    assert created >= last_worker_ready, (
        f"the new coordinator was created at {created}, before the last new worker was Ready ({last_worker_ready})"
    )


def _names(kc: Kubectl, ns: str) -> set[str]:
    return {p["metadata"]["name"] for p in pods(kc, ns, "coordinator") + pods(kc, ns, "worker")}


def test_config_and_secret_changes_roll_workers_first_and_take_effect(kc: Kubectl, ns: str, lake: Seaweed):
    kc.apply(lakehouse_secret(ns, KEY, SECRET))
    cluster = distributed_cluster(ns, lake, replicas=2)
    kc.apply(cluster)
    wait_ready(kc, ns, "analytics", timeout=180)
    schema = unique("conf")
    with PortForward(kc, ns, "svc/analytics-coordinator", 50051) as pf, flight_conn(pf.local[50051]) as conn:
        run(conn, f"CREATE SCHEMA {schema}")
        run(conn, f"CREATE TABLE {schema}.marks AS SELECT 7 AS id")

    # 1. spec.config: the default schema
    old = _names(kc, ns)
    cluster["spec"]["config"] = {"coordinator": {"default_schema": schema}}
    kc.apply(cluster)
    new = wait_for(lambda: _rolled(kc, ns, old), 180, "every pod replaced after the config change")
    _assert_workers_first(new)
    wait_ready(kc, ns, "analytics", timeout=120)
    with PortForward(kc, ns, "svc/analytics-coordinator", 50051) as pf, flight_conn(pf.local[50051]) as conn:
        assert rows(conn, "SELECT id FROM marks") == [(7,)]

    # 2. the users Secret: a second user
    old = _names(kc, ns)
    users = {**USERS, "bob": "bob-pods-pw-2"}
    kc.apply(secret_manifest("sqe-users", ns, {"users": "\n".join(f"{u}:{hash_password(p)}" for u, p in users.items())}))
    new = wait_for(lambda: _rolled(kc, ns, old), 180, "every pod replaced after the Secret change")
    _assert_workers_first(new)
    wait_ready(kc, ns, "analytics", timeout=120)
    import adbc_driver_flightsql.dbapi as flight_sql

    with PortForward(kc, ns, "svc/analytics-coordinator", 50051) as pf:
        with flight_sql.connect(f"grpc://127.0.0.1:{pf.local[50051]}",
                                db_kwargs={"username": "bob", "password": users["bob"]}) as conn:
            assert rows(conn, "SELECT current_user") == [("bob",)]
