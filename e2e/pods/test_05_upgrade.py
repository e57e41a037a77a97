"""The upgrade nobody notices: 20 clients run checked queries continuously through the
coordinator's Service while `spec.image.tag` moves a three-worker cluster to another version.
The operator replaces the workers first and the coordinator only once the coordinator's own
registry (system.runtime.nodes) shows every worker on the new version. Every query is counted;
clients do only what standard gRPC clients do: reconnect, and retry UNAVAILABLE when the query
had not started (the call that plans it failed, not the stream of its rows)."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from dataclasses import dataclass, field

import adbc_driver_flightsql.dbapi as flight_sql
import pytest

from distributed_kit import MultiFileTable
from kube import Kubectl, wait_for
from pods_kit import NEXT_PROTOCOL_VERSION, NEXT_VERSION, USERS, VERSION, distributed_cluster, lakehouse_secret, pods, service_ip, wait_ready
from seaweed import KEY, SECRET, Seaweed
from sqe_harness import adbc_error_text, fetch_dicts

CLIENTS = 20


@dataclass
class Counts:
    sent: int = 0
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    wrong: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def _connect(host: str):
    return flight_sql.connect(f"grpc://{host}:50051", db_kwargs={"username": "alice", "password": USERS["alice"]})


def _not_started(text: str) -> bool:
    """UNAVAILABLE from the call that plans a query (or from connecting): nothing ran yet."""
    unavailable = "Unavailable" in text or "UNAVAILABLE" in text or "connection" in text.lower()
    return unavailable and "DoGet" not in text


def _client(host: str, table: MultiFileTable, stop: threading.Event, counts: Counts, seed: int) -> None:
    rnd = random.Random(seed)
    conn = None
    while not stop.is_set():
        k = rnd.randint(1, table.row_count)
        kind = rnd.random()
        if kind < 0.5:
            sql, want = f"SELECT v FROM {table.name} WHERE k = {k}", [(k * 37 % 1000,)]
        elif kind < 0.7:
            sql, want = "SELECT 1", [(1,)]
        else:
            sql, want = table.aggregate_sql(), table.expected_aggregate()
        counts.add(sent=1)
        deadline = time.monotonic() + 60  # the client's retry budget for one query
        while True:
            try:
                if conn is None:
                    conn = _connect(host)
                with conn.cursor() as cur:
                    cur.execute(sql)
                    got = [tuple(r) for r in cur.fetchall()]
            except Exception as e:  # noqa: BLE001 - every error is counted
                text = adbc_error_text(e)
                try:
                    if conn is not None:
                        conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
                if _not_started(text) and time.monotonic() < deadline:
                    counts.add(retried=1)
                    time.sleep(0.2)
                    continue
                counts.add(failed=1)
                with counts.lock:
                    counts.errors.append(f"{sql[:60]}: {text[:300]}")
                break
            if got == want:
                counts.add(succeeded=1)
            else:
                counts.add(wrong=1)
                with counts.lock:
                    counts.errors.append(f"{sql[:60]}: got {got[:3]}, want {want[:3]}")
            break
    if conn is not None:
        conn.close()


def _watch(host: str, stop: threading.Event, samples: list) -> None:
    """system.runtime.nodes as the coordinators see it, twice a second: (time, coordinator, workers)."""
    conn = None
    while not stop.is_set():
        try:
            conn = conn or _connect(host)
            nodes = fetch_dicts(conn, "SELECT node_id, node_version, state, protocol_version, coordinator FROM system.runtime.nodes")
            coord = next(n["node_id"] for n in nodes if n["coordinator"])
            workers = {n["node_id"]: (n["node_version"], n["state"], n["protocol_version"]) for n in nodes if not n["coordinator"]}
            samples.append((time.time(), coord, workers))
        except Exception:  # noqa: BLE001 - the coordinator may be changing: try again
            conn = None
        stop.wait(0.5)


@pytest.mark.parametrize("target", [NEXT_VERSION, NEXT_PROTOCOL_VERSION], ids=["version", "version-and-protocol"])
def test_an_upgrade_under_load_fails_no_query(kc: Kubectl, ns: str, lake: Seaweed, target: str):
    kc.apply(lakehouse_secret(ns, KEY, SECRET))
    cluster = distributed_cluster(ns, lake, replicas=3)
    cluster["spec"]["image"] = {"repository": "ghcr.io/sqe-dev/sqe", "tag": VERSION}
    kc.apply(cluster)
    wait_ready(kc, ns, "analytics", timeout=180)
    host = service_ip(kc, ns, "analytics-coordinator")  # the Service itself, through kube-proxy
    [old_coordinator] = [p["metadata"]["name"] for p in pods(kc, ns, "coordinator")]
    with _connect(host) as conn:
        wait_for(lambda: len([w for w in fetch_dicts(conn, "SELECT state FROM system.runtime.nodes WHERE NOT coordinator")
                              if w["state"] == "active"]) == 3, 60, "3 active workers")
        table = MultiFileTable.create(conn, files=4, rows_per_file=5000)

    counts, samples, stop = Counts(), [], threading.Event()
    threads = [threading.Thread(target=_client, args=(host, table, stop, counts, i), daemon=True) for i in range(CLIENTS)]
    watcher = threading.Thread(target=_watch, args=(host, stop, samples), daemon=True)
    for t in [*threads, watcher]:
        t.start()
    try:
        time.sleep(3)  # load before the change (a fixed lead-in, not a wait for a condition)
        t0 = time.monotonic()
        cluster["spec"]["image"] = {"repository": "ghcr.io/sqe-dev/sqe", "tag": target}
        kc.apply(cluster)

        def upgraded() -> str | None:
            coords = [p for p in pods(kc, ns, "coordinator") if not p["metadata"].get("deletionTimestamp")]
            obj = kc.get("sqecluster", "analytics", ns) or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or [])
            names = {p["metadata"]["name"] for p in coords}
            if ready and old_coordinator not in names and len(pods(kc, ns, "coordinator")) == 1:
                return coords[0]["metadata"]["name"]
            return None

        new_coordinator = wait_for(upgraded, 300, "the cluster Ready on the new version")
        took = time.monotonic() - t0

        # the load goes on until the new coordinator's registry lists the three new workers
        def new_registry() -> bool:
            return any(s[1] == new_coordinator
                       and len([v for v, state, _ in s[2].values() if v == target and state == "active"]) == 3
                       for s in samples)

        wait_for(new_registry, 90, f"{new_coordinator} to list 3 workers on {target}")
    finally:
        stop.set()
        for t in [*threads, watcher]:
            t.join(90)
    print(f"upgrade {VERSION} -> {target} under {CLIENTS} clients: {took:.1f}s; queries sent {counts.sent}, "
          f"succeeded {counts.succeeded}, retried {counts.retried}, failed {counts.failed}, wrong {counts.wrong}")
    assert counts.wrong == 0, counts.errors[:10]
    assert counts.failed == 0, f"{counts.failed} of {counts.sent} queries failed: {counts.errors[:10]}"
    assert counts.succeeded > CLIENTS * 10

    # the order, as the engine saw it: the old coordinator listed all three workers active on the
    # new version before the new coordinator pod was created
    [pod] = [p for p in pods(kc, ns, "coordinator") if p["metadata"]["name"] == new_coordinator]
    created = dt.datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00")).timestamp()
    seen = [s for s in samples if s[1] == old_coordinator
            and len([v for v, state, _ in s[2].values() if v == target and state == "active"]) == 3]
    assert seen and seen[0][0] <= created + 1, (
        f"the old coordinator never listed 3 workers on {target} before {new_coordinator} was created"
    )
    final = [s for s in samples if s[1] == new_coordinator]
    assert {v for v, state, _ in final[-1][2].values() if state == "active"} == {target}, final[-1]
    if target == NEXT_PROTOCOL_VERSION:
        # the new workers spoke protocol 2 to the old coordinator (protocol 1), which a worker
        # accepts (current and previous), and were scheduled
        assert {p for v, state, p in seen[0][2].values() if v == target and state == "active"} == {2}, seen[0]
