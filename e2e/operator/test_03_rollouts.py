"""Cases 3, 4 and 5: rollouts go workers first.

3. An image change: a watch on the Deployments records the timeline; the coordinator's pod
   template does not change until every worker runs the new template and is available; then the
   coordinator rolls; versions and Events are right.
4. A spec.config change and a change of the referenced Secret's content roll workers first
   through checksum/config; a workers.replicas change rolls nothing.
5. A stalled worker rollout (an image kwok never readies) sets Degraded and leaves the
   coordinator untouched; fixing the image recovers.
"""

from __future__ import annotations

import tomllib

import pytest

from kube import (
    Cluster,
    Kubectl,
    OperatorProcess,
    Watch,
    assert_stays,
    assert_workers_first,
    condition,
    create_cluster,
    distributed_spec,
    fully_rolled,
    image_of,
    is_true,
    record_rollout,
    revision,
    secret_manifest,
    template_annotations,
    template_hash,
    wait_for,
)

ROLLOUT_EVENTS = ("ImageChanged", "ConfigChanged", "SecretChanged", "RestartRequested", "SpecChanged",
                  "WorkersRolledOut", "CoordinatorRolledOut", "RolloutStalled")


def rollout_events(c: Cluster) -> list[str]:
    """The rollout Events in order, every one of them (each transition is published once)."""
    return [e["reason"] for e in c.events() if e["reason"] in ROLLOUT_EVENTS]


def test_image_change_rolls_workers_first(kc: Kubectl, ns: str, operator: OperatorProcess) -> None:
    c = create_cluster(kc, ns, "roll", distributed_spec(tag="1.0.0", replicas=3))
    assert c.status()["versions"] == {"coordinator": "1.0.0", "workers": "1.0.0"}
    assert rollout_events(c) == []
    started = operator.metric("sqe_operator_rollouts_total", outcome="started")
    completed = operator.metric("sqe_operator_rollouts_total", outcome="completed")
    image_restarts = operator.metric("sqe_operator_restarts_total", reason="ImageChanged")

    tl = record_rollout(
        c, lambda: c.patch({"spec": {"image": {"tag": "1.1.0"}}}),
        expect=lambda o: o["status"].get("versions") == {"coordinator": "1.1.0", "workers": "1.1.0"},
    )
    assert_workers_first(tl)
    # While the workers rolled, the coordinator still ran the old image.
    w_change = tl.first_change(c.workers)
    c_change = tl.first_change(c.coordinator)
    assert w_change is not None and c_change is not None
    for _, e in tl.of(c.coordinator):
        if tl.events.index(e) < c_change:
            assert image_of(e.obj) == "ghcr.io/sqe-dev/sqe:1.0.0"
    assert image_of(tl.events[w_change].obj) == "ghcr.io/sqe-dev/sqe:1.1.0"

    obj = c.get()
    st = obj["status"]
    assert st["versions"] == {"coordinator": "1.1.0", "workers": "1.1.0"}
    assert st["phase"] == "Running" and st["rollout"] == {"phase": "Idle"}
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    out = kc.run("get", "sqe", c.name, "-n", ns, "--no-headers").stdout.split()
    assert out[1:4] == ["1.1.0", "3/3", "Running"], out

    # Events: one of each, in order.
    assert rollout_events(c) == ["ImageChanged", "WorkersRolledOut", "CoordinatorRolledOut"]
    notes = {e["reason"]: e for e in c.events()}
    assert notes["ImageChanged"]["type"] == "Normal"
    assert "workers" in notes["ImageChanged"]["note"]
    assert "1.1.0" in notes["CoordinatorRolledOut"]["note"]
    assert notes["ImageChanged"]["reportingController"] == "sqe-operator"
    assert notes["ImageChanged"]["reportingInstance"] == operator.identity
    assert c.event_counts()["ImageChanged"] == 1

    # Each Deployment rolled exactly once: two ReplicaSets, revision 2, all pods on 1.1.0.
    for component, deploy_name, replicas in (("worker", c.workers, 3), ("coordinator", c.coordinator, 1)):
        rss = c.replicasets(component)
        assert len(rss) == 2, [r["metadata"]["name"] for r in rss]
        assert sorted(r["spec"]["replicas"] for r in rss) == [0, replicas]
        assert revision(c.deployment(deploy_name)) == "2"
        pods = c.pods(component)
        assert len(pods) == replicas and {p["spec"]["containers"][0]["image"] for p in pods} == {
            "ghcr.io/sqe-dev/sqe:1.1.0"}
    assert operator.metric("sqe_operator_rollouts_total", outcome="started") == started + 1
    assert operator.metric("sqe_operator_rollouts_total", outcome="completed") == completed + 1
    assert operator.metric("sqe_operator_restarts_total", reason="ImageChanged") == image_restarts + 1


def test_config_change_rolls_workers_first(kc: Kubectl, ns: str) -> None:
    c = create_cluster(kc, ns, "cfg", distributed_spec(replicas=2))
    before = {n: template_annotations(c.deployment(n)) for n in (c.workers, c.coordinator)}
    internal = kc.get("secret", f"{c.name}-internal", ns)["data"]

    tl = record_rollout(c, lambda: c.patch({"spec": {"config": {"coordinator": {"target_partitions": 4}}}}))
    assert_workers_first(tl)

    toml = tomllib.loads(kc.get("configmap", f"{c.name}-config", ns)["data"]["sqe.toml"])
    assert toml["coordinator"]["target_partitions"] == 4
    for n in (c.workers, c.coordinator):
        after = template_annotations(c.deployment(n))
        assert after["checksum/config"] != before[n]["checksum/config"], "checksum/config must change"
        assert after["sqe.dev/config-hash"] != before[n]["sqe.dev/config-hash"]
        assert after["sqe.dev/secret-hash"] == before[n]["sqe.dev/secret-hash"]
        assert image_of(c.deployment(n)) == "ghcr.io/sqe-dev/sqe:1.0.0"
    assert rollout_events(c) == ["ConfigChanged", "WorkersRolledOut", "CoordinatorRolledOut"]
    assert c.status()["versions"] == {"coordinator": "1.0.0", "workers": "1.0.0"}
    # The coordinator <-> worker credential is generated once and kept.
    assert kc.get("secret", f"{c.name}-internal", ns)["data"] == internal


@pytest.mark.parametrize("which", ["existingSecret", "usersSecret"])
def test_secret_content_change_rolls_workers_first(kc: Kubectl, ns: str, users_file: str, which: str) -> None:
    kc.apply(secret_manifest("sqe-env", ns, {"SQE_STORAGE__S3_ACCESS_KEY_ID": "AKIA-ONE"}))
    c = create_cluster(kc, ns, "sec", distributed_spec(replicas=2, existingSecret="sqe-env"))
    before = {n: template_annotations(c.deployment(n)) for n in (c.workers, c.coordinator)}
    cm_before = kc.get("configmap", f"{c.name}-config", ns)

    # Only the Secret changes; the SqeCluster does not.
    generation = c.get()["metadata"]["generation"]
    if which == "existingSecret":
        new_secret = secret_manifest("sqe-env", ns, {"SQE_STORAGE__S3_ACCESS_KEY_ID": "AKIA-TWO"})
    else:  # a second user in the users file
        bob = users_file.splitlines()[0].replace("alice:", "bob:", 1)
        new_secret = secret_manifest("sqe-users", ns, {"users": users_file + bob + "\n"})
    tl = record_rollout(c, lambda: kc.apply(new_secret))
    assert_workers_first(tl)

    assert c.get()["metadata"]["generation"] == generation
    cm_after = kc.get("configmap", f"{c.name}-config", ns)
    assert cm_after["metadata"]["resourceVersion"] == cm_before["metadata"]["resourceVersion"], "the config is unchanged"
    for n in (c.workers, c.coordinator):
        after = template_annotations(c.deployment(n))
        assert after["checksum/config"] != before[n]["checksum/config"], "checksum/config must change"
        assert after["sqe.dev/secret-hash"] != before[n]["sqe.dev/secret-hash"]
        assert after["sqe.dev/config-hash"] == before[n]["sqe.dev/config-hash"]
    assert rollout_events(c) == ["SecretChanged", "WorkersRolledOut", "CoordinatorRolledOut"]
    # The Secret's value is never copied into anything the operator writes.
    for d in (c.deployment(c.workers), c.deployment(c.coordinator)):
        assert "AKIA-TWO" not in str(d)


def test_replica_change_rolls_nothing(kc: Kubectl, ns: str, operator: OperatorProcess) -> None:
    c = create_cluster(kc, ns, "rep", distributed_spec(replicas=2))
    workers_before = c.deployment(c.workers)
    coordinator_before = c.deployment(c.coordinator)
    rs_before = {comp: sorted(r["metadata"]["name"] for r in c.replicasets(comp)) for comp in ("worker", "coordinator")}
    restarts = operator.metric("sqe_operator_restarts_total")

    with Watch(kc, "sqeclusters", ns) as w:
        w.wait_synced([c.name])
        c.patch({"spec": {"workers": {"replicas": 4}}})
        wait_for(lambda: (o := c.settled()) and o["status"]["workers"]["ready"] == "4/4", 60, "4 ready workers")
        phases = {(e.obj.get("status") or {}).get("phase") for e in w.snapshot()}
        rollouts = {((e.obj.get("status") or {}).get("rollout") or {}).get("phase") for e in w.snapshot()}
    assert "Upgrading" not in phases, phases
    assert rollouts <= {"Idle", None}, f"scaling is not a rollout: {rollouts}"

    workers = c.deployment(c.workers)
    assert workers["spec"]["replicas"] == 4
    assert template_hash(workers) == template_hash(workers_before), "the pod template is unchanged"
    assert revision(workers) == revision(workers_before) == "1"
    coordinator = c.deployment(c.coordinator)
    assert coordinator["metadata"]["generation"] == coordinator_before["metadata"]["generation"]
    assert template_hash(coordinator) == template_hash(coordinator_before)
    rs_after = {comp: sorted(r["metadata"]["name"] for r in c.replicasets(comp)) for comp in ("worker", "coordinator")}
    assert rs_after == rs_before, "no new ReplicaSet"
    assert rollout_events(c) == []
    assert operator.metric("sqe_operator_restarts_total") == restarts
    assert len(c.pods("worker")) == 4


def test_stalled_worker_rollout_degrades_and_recovers(kc: Kubectl, ns: str) -> None:
    c = create_cluster(kc, ns, "stall", distributed_spec(replicas=2, workers={"progressDeadlineSeconds": 10}))
    coordinator_before = c.deployment(c.coordinator)
    c_hash = template_hash(coordinator_before)
    assert c.deployment(c.workers)["spec"]["progressDeadlineSeconds"] == 10

    with Watch(kc, "deployments", ns, f"app.kubernetes.io/instance={c.name}") as w:
        w.wait_synced([c.workers, c.coordinator])
        # kwok never readies pods whose image contains "never-ready".
        c.patch({"spec": {"image": {"repository": "registry.example/sqe-never-ready", "tag": "2.0.0"}}})

        def degraded() -> dict | None:
            o = c.get()
            d = condition(o, "Degraded")
            return o if d and d["status"] == "True" and d["reason"] == "WorkerRolloutStalled" else None

        obj = wait_for(degraded, 90, "Degraded=True reason WorkerRolloutStalled", interval=0.5)
        st = obj["status"]
        assert st["phase"] == "Degraded"
        assert st["rollout"]["phase"] == "RollingWorkers" and st["rollout"].get("reason") == "ImageChanged"
        assert "coordinator is left unchanged" in condition(obj, "Degraded")["message"]
        # The old workers still serve, so the cluster stays Ready.
        assert is_true(obj, "Ready")
        assert st["versions"] == {"coordinator": "1.0.0", "workers": "1.0.0"}
        workers = c.deployment(c.workers)
        progressing = [x for x in workers["status"]["conditions"] if x["type"] == "Progressing"][0]
        assert progressing["reason"] == "ProgressDeadlineExceeded"
        assert workers["status"]["availableReplicas"] == 2
        reasons = [e["reason"] for e in c.events()]
        assert "RolloutStalled" in reasons
        assert [e for e in c.events() if e["reason"] == "RolloutStalled"][0]["type"] == "Warning"

        # The coordinator is left alone while stalled (the operator re-checks every 30 s).
        assert_stays(lambda: template_hash(c.deployment(c.coordinator)) == c_hash, 5, "coordinator untouched")
        coordinator = c.deployment(c.coordinator)
        assert coordinator["metadata"]["generation"] == coordinator_before["metadata"]["generation"]
        assert image_of(coordinator) == "ghcr.io/sqe-dev/sqe:1.0.0"
        assert all(template_hash(e.obj) == c_hash for e in w.snapshot() if e.name == c.coordinator)
        assert c.event_counts().get("RolloutStalled") == 1

        # Fixing the image recovers: workers roll to it, then the coordinator.
        c.patch({"spec": {"image": {"repository": "ghcr.io/sqe-dev/sqe", "tag": "2.0.1"}}})
        obj = wait_for(
            lambda: (o := c.settled()) and o["status"]["versions"] == {"coordinator": "2.0.1", "workers": "2.0.1"} and o,
            90, "recovery on 2.0.1")
        events = w.stop()
    assert not is_true(obj, "Degraded") and condition(obj, "Degraded")["reason"] == "AsExpected"
    assert obj["status"]["phase"] == "Running"
    # The coordinator went from 1.0.0 straight to 2.0.1: it never ran the broken image.
    coord_images = []
    for e in events:
        if e.name == c.coordinator and (not coord_images or coord_images[-1] != image_of(e.obj)):
            coord_images.append(image_of(e.obj))
    assert coord_images == ["ghcr.io/sqe-dev/sqe:1.0.0", "ghcr.io/sqe-dev/sqe:2.0.1"]
    assert len(c.replicasets("coordinator")) == 2
    assert fully_rolled(c.deployment(c.workers))
    assert {p["spec"]["containers"][0]["image"] for p in c.pods("worker")} == {"ghcr.io/sqe-dev/sqe:2.0.1"}
    assert rollout_events(c)[-2:] == ["WorkersRolledOut", "CoordinatorRolledOut"]


def test_rollout_completion_is_reported_once(kc: Kubectl, ns: str, operator: OperatorProcess) -> None:
    rollouts = 6
    c = create_cluster(kc, ns, "once", distributed_spec(replicas=2))
    completed = operator.metric("sqe_operator_rollouts_total", outcome="completed")
    for i in range(rollouts):
        c.patch({"spec": {"restartRequest": f"restart-{i}"}})
        wait_for(lambda: c.settled() and c.event_counts().get("WorkersRolledOut", 0) == i + 1
                 and c.event_counts().get("CoordinatorRolledOut", 0) >= i + 1, 60, f"rollout {i + 1}")
    counts = c.event_counts()
    assert counts.get("RestartRequested") == rollouts and counts.get("WorkersRolledOut") == rollouts, counts
    assert_stays(lambda: c.event_counts().get("CoordinatorRolledOut") == rollouts, 2,
                 f"one CoordinatorRolledOut per rollout ({c.event_counts()})")
    assert operator.metric("sqe_operator_rollouts_total", outcome="completed") == completed + rollouts
