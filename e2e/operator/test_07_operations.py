"""Cases 7 and 10: cluster operations.

7. Pause: spec changes are not applied while spec.clusterOperation.paused is set (the operator
   writes only status), and are once it is unset (workers first). Stop scales coordinator and workers to zero, and back.
10. `kubectl scale sqe/<name> --replicas=N` goes through the scale subresource into
    spec.workers.replicas; the operator scales the worker Deployment and does not fight it.
"""

from __future__ import annotations

from kube import (
    Cluster,
    Kubectl,
    OperatorProcess,
    assert_stays,
    assert_workers_first,
    condition,
    create_cluster,
    describe_requests,
    distributed_spec,
    image_of,
    is_true,
    record_rollout,
    revision,
    template_annotations,
    template_hash,
    wait_for,
    Watch,
)


def test_pause_holds_changes_until_unpaused(kc: Kubectl, ns: str, cluster) -> None:
    c = create_cluster(kc, ns, "pause", distributed_spec(tag="1.0.0", replicas=2))
    c.patch({"spec": {"clusterOperation": {"paused": True}}})
    obj = wait_for(
        lambda: (o := c.get())["status"].get("observedGeneration") == o["metadata"]["generation"]
        and is_true(o, "Paused") and o, 30, "Paused=True")
    assert obj["status"]["phase"] == "Paused"
    assert condition(obj, "Paused")["reason"] == "Paused"
    before = {n: c.deployment(n) for n in (c.workers, c.coordinator)}
    cm_before = kc.get("configmap", f"{c.name}-config", ns)
    audit = cluster.audit
    offset = audit.offset() if audit else 0

    # Changes while paused: an image, a config key and a replica count.
    c.patch({"spec": {"image": {"tag": "1.1.0"}, "workers": {"replicas": 3},
                      "config": {"coordinator": {"target_partitions": 2}}}})
    wait_for(lambda: (o := c.get())["status"].get("observedGeneration") == o["metadata"]["generation"],
             30, "the operator to observe the paused change")

    def untouched() -> bool:
        for n, d in before.items():
            now = c.deployment(n)
            if now["metadata"]["generation"] != d["metadata"]["generation"] or template_hash(now) != template_hash(d):
                return False
        cm = kc.get("configmap", f"{c.name}-config", ns)
        return cm["metadata"]["resourceVersion"] == cm_before["metadata"]["resourceVersion"]

    assert_stays(untouched, 5, "nothing applied while paused")
    obj = c.get()
    assert obj["status"]["phase"] == "Paused" and is_true(obj, "Paused")
    assert obj["status"]["versions"] == {"coordinator": "1.0.0", "workers": "1.0.0"}
    if audit:
        writes = [e for e in audit.writes_since(offset, namespace=ns)
                  if (e.get("objectRef") or {}).get("subresource") != "status"]
        assert writes == [], f"paused: only status may be written\n{describe_requests(writes)}"

    # Unpause: the held changes roll, workers first.
    tl = record_rollout(
        c, lambda: c.patch({"spec": {"clusterOperation": {"paused": False}}}),
        expect=lambda o: o["status"].get("versions") == {"coordinator": "1.1.0", "workers": "1.1.0"})
    assert_workers_first(tl)
    obj = c.get()
    assert not is_true(obj, "Paused") and obj["status"]["phase"] == "Running"
    assert c.deployment(c.workers)["spec"]["replicas"] == 3
    assert "target_partitions = 2" in kc.get("configmap", f"{c.name}-config", ns)["data"]["sqe.toml"]


def test_stop_scales_to_zero_and_back(kc: Kubectl, ns: str) -> None:
    c = create_cluster(kc, ns, "stop", distributed_spec(replicas=2))
    hashes = {n: template_hash(c.deployment(n)) for n in (c.workers, c.coordinator)}

    c.patch({"spec": {"clusterOperation": {"stopped": True}}})

    def stopped() -> dict | None:
        o = c.get()
        st = o.get("status") or {}
        if st.get("observedGeneration") != o["metadata"]["generation"] or st.get("phase") != "Stopped":
            return None
        if any(c.deployment(n)["spec"]["replicas"] != 0 for n in (c.workers, c.coordinator)):
            return None
        return o if not c.pods("worker") and not c.pods("coordinator") else None

    obj = wait_for(stopped, 60, "both parts scaled to zero")
    ready = condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "Stopped", ready
    assert obj["status"]["coordinator"]["replicas"] == 0
    # Stopping is scaling, not a rollout: templates and ReplicaSets unchanged.
    for n in (c.workers, c.coordinator):
        assert template_hash(c.deployment(n)) == hashes[n]
        assert revision(c.deployment(n)) == "1"
    # The rest of the cluster stays.
    assert kc.get("service", c.coordinator, ns) and kc.get("configmap", f"{c.name}-config", ns)

    c.patch({"spec": {"clusterOperation": {"stopped": False}}})
    obj = c.wait_settled(60)
    assert obj["status"]["workers"]["ready"] == "2/2" and obj["status"]["coordinator"]["ready"] == "1/1"
    assert c.deployment(c.coordinator)["spec"]["replicas"] == 1
    for n in (c.workers, c.coordinator):
        assert template_hash(c.deployment(n)) == hashes[n]
        assert revision(c.deployment(n)) == "1"


def test_kubectl_scale_through_the_scale_subresource(kc: Kubectl, ns: str, operator: OperatorProcess) -> None:
    c = create_cluster(kc, ns, "scale", distributed_spec(replicas=2))
    coordinator = c.deployment(c.coordinator)
    worker_hash = template_hash(c.deployment(c.workers))

    scale = kc.json("get", "sqe", c.name, "-n", ns, "--subresource=scale")
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2 and scale["status"]["replicas"] == 2
    assert scale["status"]["selector"] == (
        f"app.kubernetes.io/component=worker,app.kubernetes.io/instance={c.name},app.kubernetes.io/name=sqe")

    out = kc.run("scale", f"sqe/{c.name}", "-n", ns, "--replicas=5").stdout
    assert "scaled" in out
    obj = wait_for(lambda: (o := c.settled()) and o["status"]["workers"]["ready"] == "5/5" and o, 60, "5/5 workers")
    assert obj["spec"]["workers"]["replicas"] == 5
    workers = c.deployment(c.workers)
    assert workers["spec"]["replicas"] == 5 and workers["status"]["readyReplicas"] == 5
    assert template_hash(workers) == worker_hash and revision(workers) == "1", "scaling is not a rollout"
    assert len(c.replicasets("worker")) == 1
    assert c.deployment(c.coordinator)["metadata"]["generation"] == coordinator["metadata"]["generation"]
    scale = kc.json("get", "sqe", c.name, "-n", ns, "--subresource=scale")
    assert scale["spec"]["replicas"] == 5 and scale["status"]["replicas"] == 5

    # The operator does not fight it: it holds over time, and through the next rollout.
    assert_stays(lambda: c.deployment(c.workers)["spec"]["replicas"] == 5, 3, "5 replicas kept")
    tl = record_rollout(c, lambda: c.patch({"spec": {"restartRequest": "after-scale"}}))
    assert_workers_first(tl)
    assert c.deployment(c.workers)["spec"]["replicas"] == 5
    assert len(c.pods("worker")) == 5

    # And down again.
    kc.run("scale", f"sqe/{c.name}", "-n", ns, "--replicas=1")
    wait_for(lambda: (o := c.settled()) and o["status"]["workers"]["ready"] == "1/1" and len(c.pods("worker")) == 1,
             60, "1/1 worker")
    assert c.deployment(c.workers)["spec"]["replicas"] == 1
    assert image_of(c.deployment(c.workers)) == image_of(c.deployment(c.coordinator))


OPERATOR_ROLLOUT_EVENTS = {"ImageChanged", "ConfigChanged", "SecretChanged", "RestartRequested", "SpecChanged",
                           "WorkersRolledOut"}


def user_restart(kc: Kubectl, c: Cluster) -> list[dict]:
    """`kubectl rollout restart` of the workers, watched; returns the SqeCluster's statuses."""
    with Watch(kc, "sqeclusters", c.ns) as w:
        w.wait_synced([c.name])
        kc.run("rollout", "restart", f"deployment/{c.workers}", "-n", c.ns)
        wait_for(lambda: len(c.replicasets("worker")) == 2 and c.settled(), 60, "the restart to roll the workers")
        return [e.obj.get("status") or {} for e in w.stop()]


def test_kubectl_rollout_restart_is_not_reverted(kc: Kubectl, ns: str) -> None:
    """`kubectl rollout restart` adds an annotation the operator does not own: the pods roll, the
    operator neither reverts it nor starts a rollout of its own, and keeps it across its next
    change."""
    c = create_cluster(kc, ns, "rr", distributed_spec(replicas=2))
    user_restart(kc, c)
    restarted = template_annotations(c.deployment(c.workers)).get("kubectl.kubernetes.io/restartedAt")
    assert restarted
    assert_stays(lambda: template_annotations(c.deployment(c.workers)).get("kubectl.kubernetes.io/restartedAt")
                 == restarted and len(c.replicasets("worker")) == 2, 3, "the restart is kept")
    reasons = {e["reason"] for e in c.events()}
    assert not reasons & OPERATOR_ROLLOUT_EVENTS, f"no rollout of the operator's own: {reasons}"
    assert revision(c.deployment(c.coordinator)) == "1", "the coordinator is not rolled"

    # The operator's next change keeps the user's annotation (server-side apply, field owners).
    tl = record_rollout(c, lambda: c.patch({"spec": {"config": {"coordinator": {"target_partitions": 3}}}}))
    assert_workers_first(tl)
    assert template_annotations(c.deployment(c.workers)).get("kubectl.kubernetes.io/restartedAt") == restarted


def test_user_restart_is_not_reported_as_a_rollout(kc: Kubectl, ns: str, operator: OperatorProcess) -> None:
    """While someone else's restart replaces the workers, the status says pods are changing, not
    that the operator rolls; and no completion is announced or counted afterwards."""
    c = create_cluster(kc, ns, "urr", distributed_spec(replicas=4))
    completed = operator.metric("sqe_operator_rollouts_total", outcome="completed")
    started = operator.metric("sqe_operator_rollouts_total", outcome="started")
    statuses = user_restart(kc, c)
    phases = {(s.get("rollout") or {}).get("phase") for s in statuses}
    assert phases <= {"Idle"}, f"the rollout phase stays Idle: {phases}"
    assert {s.get("phase") for s in statuses} <= {"Running"}, [s.get("phase") for s in statuses]
    progressing = [condition({"status": s}, "Progressing") for s in statuses]
    reasons = {p["reason"] for p in progressing if p and p["status"] == "True"}
    assert reasons <= {"PodsChanging"}, f"Progressing while pods are replaced: {reasons}"
    assert_stays(lambda: "CoordinatorRolledOut" not in {e["reason"] for e in c.events()}, 3,
                 f"no completion reported for a rollout the operator did not start ({c.event_counts()})")
    assert operator.metric("sqe_operator_rollouts_total", outcome="completed") == completed
    assert operator.metric("sqe_operator_rollouts_total", outcome="started") == started
