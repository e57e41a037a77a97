"""Distributed mode with real processes: a coordinator (`sqe-server` with coordinator.mode =
"distributed") and `sqe-worker`s on 127.0.0.1, reached through real clients (ADBC, the trino
client, pyarrow.flight).

```text
  ADBC / trino ──▶ coordinator ── tasks: Bearer <internal token> + x-sqe-protocol ──▶ worker-1
                        ▲                                                        ──▶ worker-2
                        └──── heartbeats every 200 ms (DoAction sqe.worker.heartbeat) ─┘
```

Covered: registration in system.runtime.nodes (both protocols), heartbeat loss (SIGSTOP,
SIGCONT, SIGKILL) and busy workers that must keep heartbeating, plans split across workers
(system.runtime.tasks), results equal to a hybrid server's, a worker killed or drained under a
running query, protocol skew in both directions, the internal credential on the workers' port
and on the heartbeat action, worker start-up errors, and a coordinator without workers.

The module's `cluster` (TPC-H sample, two workers) serves the checks that leave it as it was;
tests that stop, kill, drain or skew workers make their own with `distributed_cluster`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import time
from collections.abc import Iterator

import adbc_driver_manager
import pyarrow as pa
import pytest
import trino
from pyarrow import flight

from conftest import password_config
from distributed_kit import LONG_TABLE_ROWS_PER_FILE, MultiFileTable, SlowAggregate
from sqe_harness import (
    HEARTBEAT_ACTION,
    NODE_COLUMNS,
    WORKER_HEARTBEAT_MS,
    Background,
    Cluster,
    SqeWorker,
    call_options,
    free_ports,
    internal_headers,
    query_id,
    query_tasks,
    rows,
    run,
    run_worker_once,
    runtime_nodes,
    scalar,
    unique,
    wait_for,
    worker_version,
)
from trino_protocol import connect as trino_connect

#: A worker whose heartbeats stop is gone after 3 × 200 ms; every wait for a state change allows
#: this much, so a slow machine does not fail the suite but a broken registry does.
STATE_TIMEOUT_S = 15.0
# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, sqe_worker_bin) -> Iterator[Cluster]:
    """The module's cluster, for checks that leave it as they found it: the TPC-H sample and
    two workers with a 1024 MiB memory pool each."""
    c = Cluster(
        tmp_path_factory.mktemp("cluster"),
        sample=True,
        worker_env={"SQE_WORKER__MEMORY_LIMIT_MB": "1024"},
    )
    try:
        c.start(workers=2)
        yield c
    finally:
        c.stop()


@pytest.fixture
def dconn(cluster: Cluster):
    c = cluster.connect()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def multi(cluster: Cluster) -> MultiFileTable:
    """A four-file table on the module's cluster."""
    conn = cluster.connect()
    try:
        return MultiFileTable.create(conn)
    finally:
        conn.close()


def worker_ids(c: Cluster) -> set[str]:
    return {w.node_id for w in c.workers}


def task_nodes(conn, qid: str, c: Cluster) -> set[str]:
    """The workers that ran tasks of query `qid` (the coordinator's own tasks left out)."""
    return {t["node_id"] for t in query_tasks(conn, qid)} & worker_ids(c)


def wait_for_node(conn, node_id: str, state: str, schedulable: bool, timeout: float = STATE_TIMEOUT_S) -> dict:
    """Polls system.runtime.nodes until `node_id` is in `state` with `schedulable`; returns its
    row, or fails showing the last row seen."""
    last: dict = {}

    def check():
        last["row"] = n = runtime_nodes(conn).get(node_id)
        return n if n and n["state"] == state and n["schedulable"] is schedulable else None

    try:
        return wait_for(check, timeout, f"{node_id} to be {state} (schedulable {schedulable})")
    except AssertionError as e:
        raise AssertionError(f"{e}; its last row in system.runtime.nodes: {last.get('row')}") from None


def trino_rows(c: Cluster, sql: str) -> tuple[list[tuple], str, list[str]]:
    """Runs `sql` through the trino client on the coordinator: (rows, query id, column names)."""
    with trino_connect(c.coordinator, schema=None) as t:
        cur = t.cursor()
        cur.execute(sql)
        got = [tuple(r) for r in cur.fetchall()]
        return got, cur.query_id, [d[0] for d in cur.description]


# --------------------------------------------------------------------------------------------
# 1. Registration


def test_workers_register_and_are_listed_in_system_runtime_nodes(cluster: Cluster, dconn):
    version = worker_version()
    expected = {w.node_id: w for w in cluster.workers}
    nodes = runtime_nodes(dconn)

    coordinators = [n for n in nodes.values() if n["coordinator"]]
    assert len(coordinators) == 1, nodes
    assert coordinators[0]["state"] == "active" and coordinators[0]["protocol_version"] == 1, coordinators

    workers = {k: n for k, n in nodes.items() if not n["coordinator"]}
    assert set(workers) == set(expected), nodes
    now = dt.datetime.now(dt.timezone.utc)
    for node_id, n in workers.items():
        w = expected[node_id]
        seen = {k: n[k] for k in ("http_uri", "node_version", "state", "protocol_version", "schedulable", "note", "memory_limit_mb")}
        assert seen == {
            "http_uri": w.url,
            "node_version": version,
            "state": "active",
            "protocol_version": 1,
            "schedulable": True,
            "note": None,
            "memory_limit_mb": 1024,
        }, n
        assert n["running_tasks"] == 0 and 0 <= n["memory_used_mb"] < 1024, n
        beat = n["last_heartbeat"]
        assert beat is not None and abs((now - beat).total_seconds()) < 10, f"stale heartbeat: {n}"

    # the same through the Trino protocol
    got, _, columns = trino_rows(cluster, f"SELECT {NODE_COLUMNS} FROM system.runtime.nodes")
    stable = ["node_id", "http_uri", "node_version", "coordinator", "state", "protocol_version", "schedulable", "note", "memory_limit_mb"]
    via_trino = sorted(tuple(dict(zip(columns, r))[k] for k in stable) for r in got)
    via_adbc = sorted(tuple(n[k] for k in stable) for n in nodes.values())
    assert via_trino == via_adbc


# --------------------------------------------------------------------------------------------
# 2. Heartbeat loss


def test_a_silent_worker_turns_gone_and_comes_back_and_queries_keep_running(distributed_cluster):
    """Three workers, so the queries without the silent one still split across two."""
    c = distributed_cluster(workers=3)
    w1, *others = c.workers
    rest = {w.node_id for w in others}
    conn = c.connect()
    try:
        table = MultiFileTable.create(conn)
        expected = table.expected_aggregate()

        w1.pause()  # SIGSTOP: no heartbeats, the process and its sockets stay
        gone = wait_for_node(conn, w1.node_id, "gone", False)
        assert "no heartbeat" in (gone["note"] or ""), gone
        assert all(runtime_nodes(conn)[w]["state"] == "active" for w in rest)

        marker = unique("n")
        assert rows(conn, table.aggregate_sql(marker)) == expected
        assert task_nodes(conn, query_id(conn, marker), c) == rest, "the query did not run on the other two only"

        w1.resume()  # SIGCONT: it heartbeats again
        wait_for_node(conn, w1.node_id, "active", True)

        w1.kill()
        wait_for_node(conn, w1.node_id, "gone", False)
        marker = unique("n")
        assert rows(conn, table.aggregate_sql(marker)) == expected
        assert task_nodes(conn, query_id(conn, marker), c) == rest, "the query did not run on the other two only"
    finally:
        conn.close()


@pytest.fixture(scope="module")
def long_table(cluster: Cluster) -> MultiFileTable:
    """A bigger four-INSERT table on the module's cluster, for queries that run for seconds."""
    conn = cluster.connect()
    try:
        return MultiFileTable.create(conn, rows_per_file=LONG_TABLE_ROWS_PER_FILE)
    finally:
        conn.close()


@pytest.mark.slow
def test_busy_workers_keep_heartbeating_and_stay_schedulable(cluster: Cluster, dconn, long_table: MultiFileTable):
    """Workers running a CPU-heavy query still heartbeat: system.runtime.nodes keeps them
    active and schedulable, so it tells the truth and other queries still get workers."""
    slow = SlowAggregate.calibrated(dconn, long_table, target_seconds=6)
    interval_s = WORKER_HEARTBEAT_MS / 1000
    watcher = cluster.connect()
    try:
        marker = unique("n")
        job = Background(rows, dconn, slow.sql(marker), name="distributed query")
        samples = []  # (seconds into the query, age of the last heartbeat, node row)
        while not job.wait(interval_s):
            now = dt.datetime.now(dt.timezone.utc)
            for n in runtime_nodes(watcher).values():
                if not n["coordinator"]:
                    age = (now - n["last_heartbeat"]).total_seconds()
                    samples.append((time.monotonic() - job.started_at, age, n))
        job.join(10)
        assert job.error is None, job.error
        assert job.result == long_table.expected_aggregate()
        elapsed = job.finished_at - job.started_at
        assert elapsed > 5 * 3 * interval_s, f"the query ran {elapsed:.1f}s, too short to tell a stalled heartbeat"
        assert task_nodes(watcher, query_id(watcher, marker), cluster) == worker_ids(cluster)

        lapses = [(t, age, n) for t, age, n in samples if n["state"] != "active" or n["schedulable"] is not True]
        assert len(lapses) == 0, (
            f"{len(lapses)} of {len(samples)} samples during the {elapsed:.1f}s query show a working worker "
            f"not active: the first at {lapses[0][0]:.1f}s, last heartbeat {lapses[0][1]:.1f}s old: {lapses[0][2]}"
        )
    finally:
        # leave the module's cluster as it was: both workers schedulable
        for w in cluster.workers:
            wait_for_node(watcher, w.node_id, "active", True)
        watcher.close()


# --------------------------------------------------------------------------------------------
# 3. A plan split across the workers


@pytest.mark.parametrize("protocol", ["flight_sql", "trino"])
def test_a_multi_file_aggregate_runs_tasks_on_both_workers(cluster: Cluster, dconn, multi: MultiFileTable, protocol):
    marker = unique("n")
    sql = multi.aggregate_sql(marker)
    if protocol == "flight_sql":
        got = rows(dconn, sql)
        qid = query_id(dconn, marker)
    else:
        got, qid, _ = trino_rows(cluster, sql)
    assert got == multi.expected_aggregate()

    def finished_on_workers():
        tasks = [t for t in query_tasks(dconn, qid) if t["node_id"] in worker_ids(cluster)]
        return tasks if tasks and all(t["state"] == "FINISHED" for t in tasks) else None

    tasks = wait_for(finished_on_workers, 10, f"query {qid}'s worker tasks to be FINISHED")
    assert {t["node_id"] for t in tasks} == worker_ids(cluster), tasks
    for t in tasks:
        q, stage, task = t["task_id"].rsplit(".", 2)
        assert q == qid and t["stage_id"] == f"{qid}.{stage}" and int(stage) >= 1 and int(task) >= 0, t
    if protocol == "trino":
        # and the Trino protocol shows the same tasks
        seen, _, _ = trino_rows(cluster, f"SELECT node_id, task_id FROM system.runtime.tasks WHERE query_id = '{qid}'")
        assert {(t["node_id"], t["task_id"]) for t in tasks} <= set(seen)


# --------------------------------------------------------------------------------------------
# 4. The same results as a hybrid server


CORRECTNESS_QUERIES = {
    "q1": """
        SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty,
               sum(l_extendedprice) AS sum_base_price,
               sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price,
               sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge,
               avg(l_quantity) AS avg_qty, avg(l_discount) AS avg_disc, count(*) AS count_order
        FROM iceberg.tpch.lineitem
        WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY
        GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus""",
    "q3": """
        SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority
        FROM iceberg.tpch.customer, iceberg.tpch.orders, iceberg.tpch.lineitem
        WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey
          AND o_orderdate < DATE '1995-03-15' AND l_shipdate > DATE '1995-03-15'
        GROUP BY l_orderkey, o_orderdate, o_shippriority
        ORDER BY revenue DESC, o_orderdate, l_orderkey LIMIT 10""",
    "suppliers_by_region": """
        SELECT r_name, n_name, count(*) AS suppliers, sum(s_acctbal) AS balance
        FROM iceberg.tpch.supplier JOIN iceberg.tpch.nation ON s_nationkey = n_nationkey
             JOIN iceberg.tpch.region ON n_regionkey = r_regionkey
        GROUP BY r_name, n_name ORDER BY r_name, n_name""",
    "top_orders": """
        SELECT o_orderkey, o_custkey, o_totalprice FROM iceberg.tpch.orders
        ORDER BY o_totalprice DESC, o_orderkey LIMIT 25""",
    "multi_aggregate": "SELECT k % 7 AS g, count(*) AS n, sum(v) AS s, min(v) AS lo, max(k) AS hi FROM {t} GROUP BY 1 ORDER BY 1",
    "multi_self_join": """
        SELECT a.v % 10 AS d, count(*) AS n, sum(b.k) AS s
        FROM {t} a JOIN {t} b ON a.k = b.k + 1 GROUP BY 1 ORDER BY 1""",
    "multi_distinct": "SELECT count(DISTINCT v) AS dv, count(*) AS n, min(k) AS lo, max(k) AS hi FROM {t}",
    "multi_top_n": "SELECT k, v FROM {t} WHERE v > 990 ORDER BY v DESC, k LIMIT 30",
}


#: The queries whose plans the coordinator splits across the workers (the others run whole on
#: the coordinator: single-file tables, and the self-join, whose small build side makes a
#: CollectLeft hash join the planner keeps in one piece).
SPLIT_ACROSS_WORKERS = {"multi_aggregate", "multi_distinct", "multi_top_n"}


@pytest.fixture(scope="module")
def hybrid_multi(sample_server) -> MultiFileTable:
    """The same four-file table on the hybrid reference server."""
    conn = sample_server.connect()
    try:
        return MultiFileTable.create(conn)
    finally:
        conn.close()


def assert_same_rows(got: list[tuple], want: list[tuple], what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} rows, the hybrid server {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        same = len(g) == len(w) and all(
            math.isclose(a, b, rel_tol=1e-9) if isinstance(a, float) and isinstance(b, float) else a == b
            for a, b in zip(g, w)
        )
        assert same, f"{what}: row {i} is {g}, the hybrid server's is {w}"


@pytest.mark.parametrize("name", list(CORRECTNESS_QUERIES))
def test_results_equal_a_hybrid_servers(cluster, dconn, multi, sample_server, sample_conn, hybrid_multi, name):
    template = CORRECTNESS_QUERIES[name]
    marker = unique("q")  # a comment in the text, to find the query in system.runtime.queries
    got = rows(dconn, f"/* {marker} */ {template.format(t=multi.name)}")
    want = rows(sample_conn, template.format(t=hybrid_multi.name))
    assert got, f"{name} returned no rows"
    assert_same_rows(got, want, name)
    if name in SPLIT_ACROSS_WORKERS:
        assert task_nodes(dconn, query_id(dconn, marker), cluster) == worker_ids(cluster), f"{name} did not run on both workers"


# --------------------------------------------------------------------------------------------
# 5. A worker killed under a running query


def running_on(conn, qid: str, worker: SqeWorker, job: Background):
    """A predicate for wait_for: query `qid` has a RUNNING task on `worker` (and has not ended)."""

    def check():
        if job.done:
            raise AssertionError(f"the query ended before it ran on {worker.node_id}: {job.error or job.result!r}")
        return any(t["node_id"] == worker.node_id and t["state"] == "RUNNING" for t in query_tasks(conn, qid))

    return check


@pytest.mark.slow
def test_killing_a_worker_mid_query_still_returns_the_right_result(distributed_cluster):
    """Three workers, so the retry has two left to split the work across (one would get none:
    a plan is split only across two or more)."""
    c = distributed_cluster(workers=3)
    victim, *survivors = c.workers
    conn, watcher = c.connect(), c.connect()
    try:
        table = MultiFileTable.create(conn, rows_per_file=LONG_TABLE_ROWS_PER_FILE)
        slow = SlowAggregate.calibrated(conn, table, target_seconds=6)
        retries_before = c.coordinator.metric("sqe_query_retries_total") or 0
        marker = unique("n")
        job = Background(rows, conn, slow.sql(marker), name="distributed query")
        qid = query_id(watcher, marker)
        wait_for(running_on(watcher, qid, victim, job), 30, f"query {qid} to run a task on {victim.node_id}")

        victim.kill()
        killed_while_running = not job.done
        job.join(180)
        assert job.error is None, f"the query failed when {victim.node_id} was killed: {job.error}"
        assert job.result == table.expected_aggregate()
        assert killed_while_running, "the query ended before the worker was killed; the calibration made it too short"

        wait_for_node(watcher, victim.node_id, "gone", False)
        # one lost worker costs one retry, and the retry ran on the workers that are left
        retries = (c.coordinator.metric("sqe_query_retries_total") or 0) - retries_before
        tasks = query_tasks(watcher, qid)
        finished_on = {t["node_id"] for t in tasks if t["state"] == "FINISHED"} & worker_ids(c)
        assert (retries, finished_on) == (1, {w.node_id for w in survivors}), (
            f"{retries} retries; the tasks of query {qid}: {[(t['task_id'], t['node_id'], t['state']) for t in tasks]}"
        )
    finally:
        conn.close()
        watcher.close()


# --------------------------------------------------------------------------------------------
# 6. A worker drained under a running query


@pytest.mark.slow
def test_a_draining_worker_finishes_its_tasks_takes_no_new_ones_and_exits_zero(distributed_cluster):
    c = distributed_cluster(workers=3, worker_env={"SQE_WORKER__SHUTDOWN_TIMEOUT_SECS": "60"})
    victim, *others = c.workers
    conn, watcher = c.connect(), c.connect()
    try:
        table = MultiFileTable.create(conn, rows_per_file=LONG_TABLE_ROWS_PER_FILE)
        expected = table.expected_aggregate()
        slow = SlowAggregate.calibrated(conn, table, target_seconds=8)
        marker = unique("n")
        job = Background(rows, conn, slow.sql(marker), name="distributed query")
        qid = query_id(watcher, marker)
        wait_for(running_on(watcher, qid, victim, job), 30, f"query {qid} to run a task on {victim.node_id}")

        victim.terminate()
        draining = wait_for_node(watcher, victim.node_id, "draining", False)
        draining_while_running = not job.done
        assert draining["note"] == "draining", draining
        assert victim.readyz() == 503, "a draining worker must not report ready"

        # a query that starts now, while the victim drains with its tasks still running (checked
        # below), must run on the two other workers only (on 2 cores it may well finish only
        # with the long query: it shares their CPUs)
        later = unique("n")
        started_while_draining = not job.done
        assert rows(watcher, table.aggregate_sql(later)) == expected

        job.join(180)
        assert job.error is None, f"the query failed while {victim.node_id} drained: {job.error}"
        assert job.result == expected
        assert draining_while_running and started_while_draining, (
            "the long query ended before the drain was observed; the calibration made it too short"
        )
        assert victim.wait_exit(60) == 0
        gone = wait_for_node(watcher, victim.node_id, "gone", False)
        assert "left" in (gone["note"] or ""), gone
        victim_tasks = [t for t in query_tasks(watcher, qid) if t["node_id"] == victim.node_id]
        assert victim_tasks and all(t["state"] == "FINISHED" for t in victim_tasks), victim_tasks

        later_nodes = task_nodes(watcher, query_id(watcher, later), c)
        assert later_nodes == {w.node_id for w in others}, (
            f"the query started while {victim.node_id} drained ran tasks on {sorted(later_nodes)}, "
            f"not on {sorted(w.node_id for w in others)}"
        )
    finally:
        conn.close()
        watcher.close()


# --------------------------------------------------------------------------------------------
# 7. Protocol skew


def test_a_newer_worker_takes_tasks_from_an_older_coordinator(distributed_cluster):
    """Workers are upgraded first: a worker speaking 2 accepts 1..2, so a coordinator of 1
    keeps scheduling on it."""
    c = distributed_cluster(workers=1)
    old = c.workers[0]
    (new,) = c.add_workers(1, env={"SQE_TEST_PROTOCOL_VERSION": "2"})
    conn = c.connect()
    try:
        nodes = runtime_nodes(conn)
        assert (nodes[new.node_id]["protocol_version"], nodes[new.node_id]["schedulable"], nodes[new.node_id]["note"]) == (2, True, None), nodes
        assert nodes[old.node_id]["protocol_version"] == 1 and nodes[old.node_id]["schedulable"] is True, nodes

        table = MultiFileTable.create(conn)
        marker = unique("n")
        assert rows(conn, table.aggregate_sql(marker)) == table.expected_aggregate()
        assert task_nodes(conn, query_id(conn, marker), c) == {old.node_id, new.node_id}
    finally:
        conn.close()


def test_an_older_worker_gets_no_tasks_from_a_newer_coordinator(distributed_cluster):
    """A coordinator speaking 2 lists a worker of 1 but schedules nothing on it, and says why."""
    c = distributed_cluster(workers=0, coordinator_env={"SQE_TEST_PROTOCOL_VERSION": "2"})
    (old,) = c.add_workers(1)
    new = c.add_workers(2, env={"SQE_TEST_PROTOCOL_VERSION": "2"})
    conn = c.connect()
    try:
        nodes = runtime_nodes(conn)
        coordinator = next(n for n in nodes.values() if n["coordinator"])
        assert coordinator["protocol_version"] == 2
        o = nodes[old.node_id]
        assert (o["state"], o["protocol_version"], o["schedulable"]) == ("active", 1, False), o
        assert "protocol 1" in (o["note"] or "") and "coordinator speaks 2" in o["note"], o
        for w in new:
            assert (nodes[w.node_id]["protocol_version"], nodes[w.node_id]["schedulable"]) == (2, True), nodes
        # the old worker's log says why it gets nothing
        wait_for(lambda: "schedules no tasks here" in old.log_text(), 10, "the old worker to log that it gets no tasks")

        table = MultiFileTable.create(conn)
        marker = unique("n")
        assert rows(conn, table.aggregate_sql(marker)) == table.expected_aggregate()
        assert task_nodes(conn, query_id(conn, marker), c) == {w.node_id for w in new}
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# 8. The internal credential


def worker_call(worker: SqeWorker, call: str, headers: list[tuple[bytes, bytes]]) -> None:
    """One call to a worker's Flight port with `headers`; raises what the worker answers."""
    client = worker.flight_client()
    try:
        options = call_options(headers)
        if call == "list_actions":
            list(client.list_actions(options))
        else:
            client.do_get(flight.Ticket(b"not a task"), options).read_all()
    finally:
        client.close()


WORKER_CALLS = ["list_actions", "do_get"]


@pytest.mark.parametrize("call", WORKER_CALLS)
@pytest.mark.parametrize(
    "credential",
    ["none", "wrong token", "token without Bearer", "truncated token", "token as Basic"],
)
def test_a_worker_refuses_calls_without_the_internal_token(cluster: Cluster, call, credential):
    token = cluster.token
    authorization = {
        "none": None,
        "wrong token": b"Bearer " + b"0" * len(token),
        "token without Bearer": token.encode(),
        "truncated token": f"Bearer {token[:-1]}".encode(),
        "token as Basic": b"Basic " + base64.b64encode(f"sqe:{token}".encode()),
    }[credential]
    headers = internal_headers(None)  # the right protocol header: only the credential is wrong
    if authorization is not None:
        headers.append((b"authorization", authorization))
    with pytest.raises(flight.FlightUnauthenticatedError) as e:
        worker_call(cluster.workers[0], call, headers)
    assert "internal credential" in str(e.value), e.value


@pytest.mark.parametrize("call", WORKER_CALLS)
@pytest.mark.parametrize("protocol,why", [(None, "x-sqe-protocol"), ("2", "the call speaks 2"), ("0", "the call speaks 0"), ("one", "x-sqe-protocol")])
def test_a_worker_refuses_calls_in_a_protocol_it_does_not_speak(cluster: Cluster, call, protocol, why):
    with pytest.raises(pa.ArrowInvalid) as e:  # pyarrow's "precondition failed": FAILED_PRECONDITION
        worker_call(cluster.workers[0], call, internal_headers(cluster.token, protocol))
    text = str(e.value)
    assert "precondition failed" in text and why in text and "1..1" in text, text


@pytest.mark.parametrize("call", WORKER_CALLS)
def test_a_worker_serves_calls_with_the_internal_token_and_protocol(cluster: Cluster, call):
    """The refusals above are about the credential and the protocol: with both right, the call
    gets past the guard to the worker's gRPC router, which serves datafusion-distributed's
    worker service, not Flight: UNIMPLEMENTED."""
    with pytest.raises(pa.ArrowNotImplementedError):
        worker_call(cluster.workers[0], call, internal_headers(cluster.token))


def fake_heartbeat(node_id: str) -> bytes:
    """A heartbeat of a worker that does not exist (were it accepted, it would be listed)."""
    return json.dumps(
        {
            "node_id": node_id,
            "url": f"http://127.0.0.1:{free_ports(1)[0]}",
            "version": "0.0.0",
            "protocol": 1,
            "oldest_protocol": 1,
            "draining": False,
            "leaving": False,
            "memory_used_bytes": 0,
            "memory_limit_bytes": 0,
            "running_tasks": 0,
            "max_tasks": 64,
            "interval_ms": 200,
        }
    ).encode()


def heartbeat(server, body: bytes, headers: list[tuple[bytes, bytes]]) -> list:
    client = server.flight_client()
    try:
        return list(client.do_action(flight.Action(HEARTBEAT_ACTION, body), call_options(headers)))
    finally:
        client.close()


@pytest.mark.parametrize("credential", ["none", "wrong token", "token without Bearer"])
def test_the_coordinator_takes_heartbeats_only_with_the_internal_token(cluster: Cluster, dconn, credential):
    intruder = unique("intruder")
    authorization = {
        "none": None,
        "wrong token": b"Bearer " + b"0" * len(cluster.token),
        "token without Bearer": cluster.token.encode(),
    }[credential]
    headers = [(b"authorization", authorization)] if authorization else []
    with pytest.raises(flight.FlightUnauthenticatedError) as e:
        heartbeat(cluster.coordinator, fake_heartbeat(intruder), headers)
    assert "internal credential" in str(e.value), e.value
    assert intruder not in runtime_nodes(dconn)


def test_a_hybrid_coordinator_refuses_heartbeats(sample_server, sample_conn):
    intruder = unique("intruder")
    with pytest.raises(pa.ArrowInvalid) as e:  # FAILED_PRECONDITION
        heartbeat(sample_server, fake_heartbeat(intruder), internal_headers("any-token", None))
    assert "precondition failed" in str(e.value) and "hybrid mode" in str(e.value), e.value
    assert intruder not in {r[0] for r in rows(sample_conn, "SELECT node_id FROM system.runtime.nodes")}


def test_a_password_coordinator_runs_users_queries_on_workers_that_refuse_users_credentials(distributed_cluster):
    password = "alice-correct-horse-1"
    c = distributed_cluster(workers=2, config=password_config({"alice": password}))
    conn = c.connect("alice", password)
    try:
        table = MultiFileTable.create(conn)
        marker = unique("n")
        assert rows(conn, table.aggregate_sql(marker)) == table.expected_aggregate()
        assert task_nodes(conn, query_id(conn, marker), c) == worker_ids(c)
    finally:
        conn.close()

    client = c.coordinator.flight_client()
    try:
        user_bearer = client.authenticate_basic_token("alice", password)  # (b"authorization", b"Bearer …")
    finally:
        client.close()
    assert user_bearer[0].lower() == b"authorization" and user_bearer[1].startswith(b"Bearer ")
    user_basic = (b"authorization", b"Basic " + base64.b64encode(f"alice:{password}".encode()))
    for credential in (user_bearer, user_basic):
        for call in WORKER_CALLS:
            with pytest.raises(flight.FlightUnauthenticatedError):
                worker_call(c.workers[0], call, [credential, *internal_headers(None)])
        # nor is a user a worker to the coordinator
        with pytest.raises(flight.FlightUnauthenticatedError):
            heartbeat(c.coordinator, fake_heartbeat(unique("intruder")), [credential])


# --------------------------------------------------------------------------------------------
# 9. Worker start-up errors


@pytest.mark.parametrize(
    "case,key",
    [
        ("no coordinator_url", "worker.coordinator_url"),
        ("all interfaces without a token", "worker.internal_token"),
        ("all interfaces without advertise_url", "worker.advertise_url"),
    ],
)
def test_a_misconfigured_worker_exits_2_naming_the_key(tmp_path, sqe_worker_bin, case, key):
    flight_port, health_port, metrics_port = free_ports(3)
    env = {
        "SQE_WORKER__FLIGHT_ADDR": f"127.0.0.1:{flight_port}",
        "SQE_WORKER__COORDINATOR_URL": f"http://127.0.0.1:{free_ports(1)[0]}",
        "SQE_COORDINATOR__HEALTH_ADDR": f"127.0.0.1:{health_port}",
        "SQE_METRICS__ADDR": f"127.0.0.1:{metrics_port}",
        "SQE_COORDINATOR__DATA_DIR": str(tmp_path),
    }
    if case == "no coordinator_url":
        del env["SQE_WORKER__COORDINATOR_URL"]
    elif case == "all interfaces without a token":
        env["SQE_WORKER__FLIGHT_ADDR"] = f"0.0.0.0:{flight_port}"
        env["SQE_WORKER__ADVERTISE_URL"] = f"http://127.0.0.1:{flight_port}"
    else:
        env["SQE_WORKER__FLIGHT_ADDR"] = f"0.0.0.0:{flight_port}"
        env["SQE_WORKER__INTERNAL_TOKEN"] = "t0ken"
    p = run_worker_once(env)
    assert p.returncode == 2, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert key in p.stderr, p.stderr


# --------------------------------------------------------------------------------------------
# 10. A coordinator without workers


def test_without_workers_table_queries_fail_after_the_wait_and_succeed_once_one_registers(distributed_cluster):
    c = distributed_cluster(workers=0, coordinator_env={"SQE_COORDINATOR__WORKER_WAIT_TIMEOUT_SECS": "2"})
    conn = c.connect()
    try:
        schema = unique("lonely")
        run(conn, f"CREATE SCHEMA iceberg.{schema}")
        run(conn, f"CREATE TABLE iceberg.{schema}.notes (id BIGINT, body VARCHAR)")
        run(conn, f"INSERT INTO iceberg.{schema}.notes VALUES (1, 'one'), (2, 'two')")
        sql = f"SELECT id, body FROM iceberg.{schema}.notes ORDER BY id"

        t0 = time.monotonic()
        with pytest.raises(adbc_driver_manager.Error) as e:
            rows(conn, sql)
        waited = time.monotonic() - t0
        # gRPC UNAVAILABLE: no worker now, a later try may find one
        assert e.value.status_code == adbc_driver_manager.AdbcStatusCode.IO, e.value
        assert "no worker has registered" in str(e.value), e.value
        assert 2 <= waited < 30, f"the query failed after {waited:.1f}s, not after the 2 s wait"
        # the same refusal through the Trino protocol
        with pytest.raises(trino.exceptions.TrinoQueryError) as te:
            trino_rows(c, sql)
        assert "no worker has registered" in te.value.message, te.value
        assert (te.value.error_name, te.value.error_type) == ("NO_NODES_AVAILABLE", "INTERNAL_ERROR"), te.value

        # statements that read no table need no worker
        assert scalar(conn, "SELECT 1") == 1
        assert [n["coordinator"] for n in runtime_nodes(conn).values()] == [True]

        c.add_workers(1)
        assert rows(conn, sql) == [(1, "one"), (2, "two")]
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Writes and memory on the workers


def test_inserts_and_ctas_write_on_the_workers_and_commit_once(cluster: Cluster):
    conn = cluster.connect()
    try:
        table = MultiFileTable.create(conn)
        schema = table.name.rsplit(".", 1)[0]
        plan = "\n".join(str(r[1]) for r in rows(conn, f"EXPLAIN INSERT INTO {table.name} SELECT k, v FROM {table.name}"))
        # the workers write (below the stage boundary), the coordinator commits (above it)
        commit, boundary, write = (plan.find(n) for n in ("IcebergCommitExec", "NetworkCoalesceExec", "IcebergWriteExec"))
        assert -1 < commit < boundary < write, plan

        copy = f"{schema}.copy"
        assert rows(conn, f"CREATE TABLE {copy} AS SELECT k, v FROM {table.name}") == [(table.row_count,)]
        assert rows(conn, f"INSERT INTO {copy} SELECT k, v FROM {table.name} WHERE k <= 100") == [(100,)]
        got = rows(conn, f"SELECT count(*), count(DISTINCT k), sum(v) FROM {copy}")
        expected_sum = sum(k * 37 % 1000 for k in range(1, table.row_count + 1)) + sum(k * 37 % 1000 for k in range(1, 101))
        assert got == [(table.row_count + 100, table.row_count, expected_sum)]
    finally:
        conn.close()


def _padded_sort(c, rows_per_file: int):
    """A table of 4 × `rows_per_file` rows and a full sort of ~130 bytes per row (no TopK),
    with its expected rows."""
    conn = c.connect()
    table = MultiFileTable.create(conn, rows_per_file=rows_per_file)
    sql = f"SELECT k, repeat(CAST(v AS VARCHAR), 40) AS pad FROM {table.name} ORDER BY pad DESC, k"
    expected = [(k, str(k * 37 % 1000) * 40) for k in range(1, table.row_count + 1)]
    expected.sort(key=lambda r: r[0])
    expected.sort(key=lambda r: r[1], reverse=True)  # stable: k ascending within a pad
    return conn, sql, expected


def test_a_sort_beyond_the_workers_memory_limit_spills_and_answers(distributed_cluster):
    # 48 MiB per worker (10 MiB per sorting partition is its merge reservation); each worker
    # sorts ~52 MiB of rows
    c = distributed_cluster(workers=2, worker_env={"SQE_WORKER__MEMORY_LIMIT_MB": "48"})
    conn, sql, expected = _padded_sort(c, rows_per_file=200_000)
    try:
        assert rows(conn, sql) == expected
        assert task_nodes(conn, query_id(conn, "ORDER BY pad DESC, k"), c) == {w.node_id for w in c.workers}
    finally:
        conn.close()


def test_a_worker_pool_too_small_to_sort_fails_naming_the_limit(distributed_cluster):
    # below the 10 MiB a sort reserves for merging its spills: nothing can spill, the error says
    # which key to raise
    c = distributed_cluster(workers=2, worker_env={"SQE_WORKER__MEMORY_LIMIT_MB": "8"})
    conn, sql, _ = _padded_sort(c, rows_per_file=20_000)
    try:
        with pytest.raises(adbc_driver_manager.Error) as e:
            rows(conn, sql)
        assert "(the memory limit: worker.memory_limit_mb = 8)" in str(e.value), e.value
        assert "ResourceExhausted" in str(e.value), e.value
        # the workers stay usable
        assert rows(conn, "SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'") == [(3,)]
    finally:
        conn.close()
