"""Case 11: GitOps. Applying the same manifest twice with `kubectl apply --server-side` changes
nothing (generation, the children's resourceVersions); `kubectl diff --server-side` is empty; and
over an idle window (60 s, `SQE_E2E_IDLE_SECONDS`) the operator sends zero write requests,
counted both from the API server's audit log (requests by the operator's user, leases
excluded) and from its own sqe_operator_api_writes_total — while it does reconcile (the test
touches the cluster and a child, which triggers reconciles that must only read)."""

from __future__ import annotations

import json
import os
import time

import pytest

from conftest import wait_other_namespaces_gone
from kube import (
    Cluster,
    Kubectl,
    OperatorProcess,
    cluster_manifest,
    describe_requests,
    distributed_spec,
    secret_manifest,
    wait_for,
)

IDLE_SECONDS = float(os.environ.get("SQE_E2E_IDLE_SECONDS", "60"))
FIELD_MANAGER = "e2e-gitops"
CHILD_KINDS = ["serviceaccounts", "configmaps", "secrets", "services", "poddisruptionbudgets",
               "networkpolicies", "deployments"]


def snapshot(kc: Kubectl, c: Cluster) -> dict[str, str]:
    """resourceVersion of the SqeCluster and of everything the operator owns, and generations."""
    obj = c.get()
    snap = {"sqecluster": obj["metadata"]["resourceVersion"], "generation": str(obj["metadata"]["generation"])}
    for kind in CHILD_KINDS:
        for o in kc.list(kind, c.ns, f"app.kubernetes.io/instance={c.name},app.kubernetes.io/managed-by=sqe-operator"):
            snap[f"{kind}/{o['metadata']['name']}"] = o["metadata"]["resourceVersion"]
    return snap


@pytest.mark.slow
def test_reapply_is_a_no_op_and_an_idle_operator_writes_nothing(
    kc: Kubectl, ns: str, operator: OperatorProcess, cluster, tmp_path
) -> None:
    wait_other_namespaces_gone(kc, ns)
    kc.apply(secret_manifest("sqe-lakehouse", ns, {"SQE_CATALOG__CREDENTIAL": "id:secret"}))
    spec = distributed_spec(tag="1.0.0", replicas=3, existingSecret="sqe-lakehouse",
                            storage={"s3Endpoint": "http://minio.lakehouse.svc:9000", "s3Region": "us-east-1"},
                            config={"coordinator": {"target_partitions": 8, "log_level": "info,sqe_engine=debug"}},
                            networkPolicy={"allowedClients": [{"podSelector": {"matchLabels": {"sqe-client": "true"}}}]},
                            coordinator={"resources": {"limits": {"memory": "4Gi"}}},
                            # Stored canonically by the API server ("1"): must not look like drift.
                            workers={"resources": {"requests": {"cpu": "1000m"}}})
    manifest = cluster_manifest("gitops", ns, spec)
    path = tmp_path / "gitops.json"
    path.write_text(json.dumps(manifest))
    apply_args = ("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(path))

    kc.run(*apply_args)
    c = Cluster(kc, ns, "gitops")
    c.wait_settled(90)
    # Quiet: the status is final and nothing moves any more.
    def quiet() -> dict[str, str] | None:
        a = snapshot(kc, c)
        time.sleep(2)  # an observation window: nothing may change in it
        return a if snapshot(kc, c) == a else None

    first = wait_for(quiet, 60, "the cluster to be quiet", interval=0)

    out = kc.run(*apply_args).stdout
    assert "serverside-applied" in out
    again = snapshot(kc, c)
    assert again == first, {k: (first.get(k), again.get(k)) for k in first.keys() | again.keys() if first.get(k) != again.get(k)}

    diff = kc.run("diff", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(path), check=False)
    assert diff.returncode == 0, f"kubectl diff exited {diff.returncode}:\n{diff.stdout}{diff.stderr}"
    assert diff.stdout.strip() == "", diff.stdout

    # The idle window. On an existing cluster there is no audit log to read: the operator's own
    # count of its API writes is then the whole check.
    offset = cluster.audit.offset() if cluster.audit else None
    writes = operator.writes()
    reconciles = operator.metric("sqe_operator_reconciles_total")
    t0 = time.monotonic()
    touched = False
    while time.monotonic() - t0 < IDLE_SECONDS:
        if not touched and time.monotonic() - t0 > 5:
            # Trigger reconciles without changing the spec: an annotation on the SqeCluster and a
            # label on a child (neither is something the operator owns or corrects).
            kc.run("annotate", "sqe", c.name, "-n", ns, "e2e.sqe.dev/touched=1")
            kc.run("label", "configmap", f"{c.name}-config", "-n", ns, "e2e.sqe.dev/touched=1")
            touched = True
        assert operator.writes() == writes, "the operator wrote during the idle window"
        time.sleep(5)
    if cluster.audit is not None:
        requests = cluster.audit.writes_since(offset)
        assert requests == [], f"{len(requests)} write requests by {requests[0]['user']['username']}:\n{describe_requests(requests)}"
    assert operator.writes() == writes
    assert operator.metric("sqe_operator_reconciles_total") >= reconciles + 2, "the touches should have reconciled"
    assert c.get()["metadata"]["generation"] == int(first["generation"])
    # Nothing the operator owns moved, except the ConfigMap the test labelled.
    now = snapshot(kc, c)
    changed = {k for k in first if k not in ("sqecluster",) and first[k] != now.get(k)}
    assert changed == {f"configmaps/{c.name}-config"}, changed
