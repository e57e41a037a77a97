"""Case 9: deleting the SqeCluster garbage-collects every child (owner references, the
controller-manager's garbage collector); what the spec stops asking for is swept by the
operator; the user's own Secrets are never touched."""

from __future__ import annotations

import pytest

from kube import (
    Kubectl,
    OperatorProcess,
    create_cluster,
    distributed_spec,
    secret_manifest,
    wait_for,
)

KINDS = ["serviceaccounts", "configmaps", "secrets", "services", "poddisruptionbudgets",
         "networkpolicies", "deployments", "replicasets", "pods"]


def children(kc: Kubectl, ns: str, name: str, kinds: list[str]) -> set[str]:
    """Every object labelled as part of the cluster (pods and ReplicaSets carry the selector)."""
    found = set()
    for kind in kinds:
        for o in kc.list(kind, ns, f"app.kubernetes.io/instance={name}"):
            found.add(f"{kind}/{o['metadata']['name']}")
    return found


def monitoring_kinds(kc: Kubectl) -> list[str]:
    return ["servicemonitors"] if kc.get("crd", "servicemonitors.monitoring.coreos.com") else []


def test_delete_collects_every_child(kc: Kubectl, ns: str) -> None:
    kc.apply(secret_manifest("sqe-env", ns, {"SQE_STORAGE__S3_ACCESS_KEY_ID": "AKIA-GC"}))
    kinds = KINDS + monitoring_kinds(kc)
    spec = distributed_spec(replicas=3, existingSecret="sqe-env")
    if "servicemonitors" in kinds:
        spec["metrics"] = {"serviceMonitor": {"enabled": True}}
    c = create_cluster(kc, ns, "gc", spec)
    found = children(kc, ns, c.name, kinds)
    expected = {
        "serviceaccounts/gc-coordinator", "serviceaccounts/gc-workers", "configmaps/gc-config",
        "secrets/gc-internal", "services/gc-coordinator", "services/gc-workers",
        "poddisruptionbudgets/gc-workers", "networkpolicies/gc-coordinator", "networkpolicies/gc-workers",
        "deployments/gc-coordinator", "deployments/gc-workers",
    }
    assert expected <= found, sorted(expected - found)
    assert sum(k.startswith("pods/") for k in found) == 4
    assert sum(k.startswith("replicasets/") for k in found) == 2

    kc.run("delete", "sqe", c.name, "-n", ns, "--wait=true", "--timeout=60s")
    assert kc.get("sqecluster", c.name, ns) is None
    wait_for(lambda: not children(kc, ns, c.name, kinds), 60, "every child to be garbage-collected", interval=0.5)
    # The user's Secrets stay.
    assert kc.get("secret", "sqe-users", ns) is not None
    assert kc.get("secret", "sqe-env", ns) is not None


def test_sweep_deletes_what_the_spec_no_longer_asks_for(kc: Kubectl, ns: str) -> None:
    c = create_cluster(kc, ns, "sweep", distributed_spec(replicas=2))
    assert kc.get("poddisruptionbudget", c.workers, ns) is not None
    assert kc.get("networkpolicy", c.workers, ns) is not None
    c.patch({"spec": {"workers": {"podDisruptionBudget": {"enabled": False}}, "networkPolicy": {"enabled": False}}})
    wait_for(lambda: kc.get("poddisruptionbudget", c.workers, ns) is None, 30, "the PDB swept")
    wait_for(lambda: not kc.list("networkpolicies", ns), 30, "the NetworkPolicies swept")
    c.wait_settled(30)
    # Switching to hybrid (workers.replicas must then be 0) drops everything of the workers.
    c.patch({"spec": {"mode": "hybrid", "workers": {"replicas": 0}}})
    wait_for(lambda: c.deployment(c.workers) is None, 30, "the worker Deployment swept in hybrid mode")
    wait_for(lambda: kc.get("service", c.workers, ns) is None and kc.get("serviceaccount", c.workers, ns) is None,
             30, "the workers' objects swept")
    # the cluster's credential stays: the coordinator signs its clients' tokens with it
    assert kc.get("secret", f"{c.name}-internal", ns) is not None
    obj = c.wait_settled(60, distributed=False)
    assert obj["status"].get("versions", {}).get("workers") is None


def test_foreground_delete_completes(kc: Kubectl, ns: str, operator: OperatorProcess, cluster) -> None:
    try:
        c = create_cluster(kc, ns, "fg", distributed_spec(replicas=2))
    except AssertionError as e:  # a setup failure must not pass for the expected failure
        raise RuntimeError(f"precondition failed: {e}") from e
    offset = cluster.audit.offset() if cluster.audit else 0
    try:
        kc.run("delete", "sqe", c.name, "-n", ns, "--cascade=foreground", "--wait=false")
        wait_for(lambda: kc.get("sqecluster", c.name, ns) is None, 20, "the SqeCluster to be deleted (foreground)")
        assert not children(kc, ns, c.name, KINDS)
    finally:
        recreated = []
        if cluster.audit:
            recreated = [e for e in cluster.audit.writes_since(offset, namespace=ns)
                         if (e.get("objectRef") or {}).get("resource") != "sqeclusters"]
        if kc.get("sqecluster", c.name, ns) is not None:
            # Unblock it (drop the foregroundDeletion finalizer) so the operator stops writing
            # before the next case.
            kc.run("patch", "sqe", c.name, "-n", ns, "--type", "json",
                   "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', check=False)
            wait_for(lambda: kc.get("sqecluster", c.name, ns) is None, 30, "the stuck SqeCluster to go")
        print(f"operator writes to children during the foreground delete: {len(recreated)}")


def test_deleted_children_are_recreated(kc: Kubectl, ns: str) -> None:
    """A child deleted by hand comes back (the operator watches what it owns); a deleted worker
    Deployment is recreated without touching the coordinator."""
    c = create_cluster(kc, ns, "heal", distributed_spec(replicas=2))
    coordinator = c.deployment(c.coordinator)
    for kind, name in (("configmap", f"{c.name}-config"), ("service", c.coordinator),
                       ("networkpolicy", c.workers), ("deployment", c.workers)):
        uid = kc.get(kind, name, ns)["metadata"]["uid"]
        kc.run("delete", kind, name, "-n", ns, "--wait=true")
        wait_for(lambda: (o := kc.get(kind, name, ns)) is not None and o["metadata"]["uid"] != uid, 30,
                 f"{kind} {name} recreated")
    obj = c.wait_settled(60)
    assert obj["status"]["workers"]["ready"] == "2/2"
    now = c.deployment(c.coordinator)
    assert now["metadata"]["generation"] == coordinator["metadata"]["generation"]
    assert now["metadata"]["uid"] == coordinator["metadata"]["uid"]


def test_hand_edits_of_rendered_fields_are_reverted(kc: Kubectl, ns: str) -> None:
    """`kubectl edit` of a field the operator renders is put back (the edit is a watch event of
    an owned object); fields the operator does not render are left alone."""
    c = create_cluster(kc, ns, "drift", distributed_spec(replicas=2))
    config = f"{c.name}-config"
    rendered_toml = kc.get("configmap", config, ns)["data"]["sqe.toml"]
    workers_resources = c.deployment(c.workers)["spec"]["template"]["spec"]["containers"][0]["resources"]

    ports = kc.get("service", c.coordinator, ns)["spec"]["ports"]
    metrics = next(i for i, p in enumerate(ports) if p["name"] == "metrics")
    kc.run("patch", "service", c.coordinator, "-n", ns, "--type", "json",
           "-p", f'[{{"op":"replace","path":"/spec/ports/{metrics}/targetPort","value":9999}}]')
    kc.run("patch", "configmap", config, "-n", ns, "--type", "merge",
           "-p", '{"data":{"sqe.toml":"# edited by hand\\n"},"metadata":{"labels":{"team":"data"}}}')
    kc.run("set", "resources", f"deployment/{c.workers}", "-n", ns, "-c", "sqe", "--limits=cpu=8")

    wait_for(lambda: kc.get("service", c.coordinator, ns)["spec"]["ports"] == ports, 30,
             "the Service's metrics targetPort put back")
    wait_for(lambda: kc.get("configmap", config, ns)["data"]["sqe.toml"] == rendered_toml, 30,
             "the rendered sqe.toml put back")
    wait_for(lambda: c.deployment(c.workers)["spec"]["template"]["spec"]["containers"][0]["resources"]
             == workers_resources, 30, "the worker resources put back")
    # A label the operator does not render stays.
    assert kc.get("configmap", config, ns)["metadata"]["labels"].get("team") == "data"
    assert c.wait_settled(60)["status"]["workers"]["ready"] == "2/2"
