"""Case 6: the operator killed (SIGKILL) mid-rollout and restarted finishes the rollout without
rolling anything twice.

To kill it at a known point, a ResourceQuota on pods holds the rollout still: with the quota at
exactly the running pods, the Deployment controller cannot create the surge pod, so the rollout
waits in the phase the test wants. The operator is killed there, the quota lifted, and the
Deployment controller finishes that part alone; the restarted operator must take over from the
live Deployments (their pod-template annotations), not redo anything:

  kill #1 in RollingWorkers (worker template written, no new worker pod yet)
  kill #2 in RollingCoordinator (coordinator template written, no new coordinator pod yet)
"""

from __future__ import annotations

from conftest import wait_other_namespaces_gone
from kube import (
    Cluster,
    Kubectl,
    OperatorProcess,
    Timeline,
    Watch,
    assert_workers_first,
    create_cluster,
    describe_requests,
    distributed_spec,
    fully_rolled,
    image_of,
    revision,
    template_hash,
    wait_for,
)

NEW = "ghcr.io/sqe-dev/sqe:1.1.0"


def hold_pods(kc: Kubectl, ns: str, pods: int) -> None:
    """A ResourceQuota allowing exactly `pods` pods; waits until the quota controller counted
    them (until then admission would refuse every pod)."""
    kc.apply({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "hold", "namespace": ns},
        "spec": {"hard": {"pods": str(pods)}},
    })
    wait_for(
        lambda: ((kc.get("resourcequota", "hold", ns) or {}).get("status") or {}).get("used", {}).get("pods") == str(pods),
        30, f"quota to count {pods} pods",
    )


def release_pods(kc: Kubectl, ns: str) -> None:
    kc.delete("resourcequota", "hold", ns, wait=True)


def phase(c: Cluster) -> str | None:
    return (c.status().get("rollout") or {}).get("phase")


def test_killed_mid_rollout_resumes_without_rolling_twice(
    kc: Kubectl, ns: str, operator: OperatorProcess, cluster
) -> None:
    wait_other_namespaces_gone(kc, ns)
    c = create_cluster(kc, ns, "kill", distributed_spec(tag="1.0.0", replicas=3))
    gen = {n: c.deployment(n)["metadata"]["generation"] for n in (c.workers, c.coordinator)}
    old = {n: template_hash(c.deployment(n)) for n in (c.workers, c.coordinator)}
    audit = cluster.audit
    audit_start = audit.offset() if audit else 0

    with Watch(kc, "deployments", ns, f"app.kubernetes.io/instance={c.name}") as w:
        w.wait_synced(old)
        try:
            # ---- kill #1: RollingWorkers
            hold_pods(kc, ns, 4)  # 3 workers + 1 coordinator: no room for a surge pod
            c.patch({"spec": {"image": {"tag": "1.1.0"}}})
            wait_for(lambda: image_of(c.deployment(c.workers)) == NEW and phase(c) == "RollingWorkers",
                     30, "the worker template written and status RollingWorkers")
            operator.kill()
            workers = c.deployment(c.workers)
            assert (workers["status"].get("updatedReplicas") or 0) == 0, "the quota should hold the rollout"
            assert image_of(c.deployment(c.coordinator)) == "ghcr.io/sqe-dev/sqe:1.0.0"

            # Without the operator, the Deployment controller finishes the workers.
            release_pods(kc, ns)
            wait_for(lambda: fully_rolled(c.deployment(c.workers)), 90, "the workers to finish rolling")
            assert image_of(c.deployment(c.coordinator)) == "ghcr.io/sqe-dev/sqe:1.0.0", "nobody rolls the coordinator"

            # ---- kill #2: RollingCoordinator
            hold_pods(kc, ns, 4)  # 3 new workers + the old coordinator
            operator.start()
            wait_for(lambda: image_of(c.deployment(c.coordinator)) == NEW and phase(c) == "RollingCoordinator",
                     60, "the restarted operator to hand over to the coordinator")
            writes_run2 = operator.writes(kind="Deployment")
            operator.kill()
            assert writes_run2 == 1, f"the restarted operator applied {writes_run2} Deployments (only the coordinator)"
            release_pods(kc, ns)
            wait_for(lambda: fully_rolled(c.deployment(c.coordinator)), 90, "the coordinator to finish rolling")
        finally:
            release_pods(kc, ns)
            if not operator.running:
                operator.start()
        obj = wait_for(
            lambda: (o := c.settled()) and o["status"].get("versions") == {"coordinator": "1.1.0", "workers": "1.1.0"} and o,
            60, "the cluster settled on 1.1.0")
        events = w.stop()
    assert operator.writes(kind="Deployment") == 0, "the third operator run found nothing to apply"

    tl = Timeline(events, c.coordinator, c.workers, old)
    assert_workers_first(tl)
    # Nothing rolled twice: each Deployment's spec was written once, two ReplicaSets each.
    for n, component in ((c.workers, "worker"), (c.coordinator, "coordinator")):
        d = c.deployment(n)
        assert d["metadata"]["generation"] == gen[n] + 1, f"{n}: generation {gen[n]} -> {d['metadata']['generation']}"
        assert revision(d) == "2", n
        assert len(tl.template_hashes(n)) == 2, tl.describe()
        assert len(c.replicasets(component)) == 2
    assert obj["status"]["phase"] == "Running"
    counts = c.event_counts()
    assert counts.get("ImageChanged") == 1, counts
    assert counts.get("WorkersRolledOut") == 1, counts
    assert counts.get("CoordinatorRolledOut", 0) >= 1, counts

    if audit:
        patches = [e for e in audit.writes_since(audit_start, namespace=ns)
                   if (e.get("objectRef") or {}).get("resource") == "deployments"]
        # Each Deployment was written exactly once by the operator during the rollout.
        by_name: dict[str, int] = {}
        for e in patches:
            by_name[e["objectRef"]["name"]] = by_name.get(e["objectRef"]["name"], 0) + 1
        assert by_name == {c.workers: 1, c.coordinator: 1}, describe_requests(patches)
