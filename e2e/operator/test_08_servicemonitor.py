"""Case 8: the ServiceMonitor.

Without the monitoring.coreos.com CRD, a cluster that asks for a ServiceMonitor gets the
condition ServiceMonitorAvailable=False (reason CRDMissing) and an Event, and nothing else
fails. With the CRD (prometheus-operator's own, committed in crds/ from its Go module) the
ServiceMonitor appears; disabling it removes it.

The operator caches API discovery for 60 s, so these cases poll with a 90 s deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kube import (
    Cluster,
    Kubectl,
    OperatorProcess,
    condition,
    is_true,
    wait_for,
)

SM_CRD = Path(__file__).parent / "crds" / "monitoring.coreos.com_servicemonitors.yaml"
SM_CRD_NAME = "servicemonitors.monitoring.coreos.com"
DISCOVERY_DEADLINE = 90  # the operator's discovery cache lives 60 s


def hybrid_with_monitor(**monitor) -> dict:
    return {
        "auth": {"usersSecret": {"name": "sqe-users"}},
        "metrics": {"serviceMonitor": {"enabled": True, **monitor}},
    }


@pytest.fixture(scope="module")
def servicemonitor_crd(kc: Kubectl, cluster) -> Iterator[None]:
    """Installs prometheus-operator's ServiceMonitor CRD (left installed for later cases on the
    throw-away local cluster; removed again on an existing cluster if the suite added it)."""
    kc.run("apply", "--server-side", "-f", str(SM_CRD))
    kc.wait_crd_established(SM_CRD_NAME)
    yield
    if not cluster.started_here and not cluster.servicemonitor_crd_preinstalled:
        kc.run("delete", "crd", SM_CRD_NAME, "--wait=false", check=False)


def sm_missing_precondition(kc: Kubectl, cluster) -> None:
    if kc.get("crd", SM_CRD_NAME) is not None:
        pytest.skip("the ServiceMonitor CRD is installed on this cluster already")


def test_without_the_crd_a_condition_explains(kc: Kubectl, ns: str, operator: OperatorProcess, cluster) -> None:
    sm_missing_precondition(kc, cluster)
    log_offset = operator.log_offset()
    kc.apply({"apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
              "metadata": {"name": "nomon", "namespace": ns}, "spec": hybrid_with_monitor(interval="15s")})
    c = Cluster(kc, ns, "nomon")
    obj = c.wait_settled(60, distributed=False)
    sm = condition(obj, "ServiceMonitorAvailable")
    assert sm is not None, obj["status"]["conditions"]
    assert sm["status"] == "False" and sm["reason"] == "CRDMissing", sm
    assert "monitoring.coreos.com/v1" in sm["message"]
    # Nothing else fails: Ready, Running, every other child exists, no reconcile errors.
    assert is_true(obj, "Ready") and obj["status"]["phase"] == "Running"
    assert not is_true(obj, "Degraded")
    for kind, name in (("deployment", c.coordinator), ("service", c.coordinator),
                       ("configmap", f"{c.name}-config"), ("networkpolicy", c.coordinator)):
        assert kc.get(kind, name, ns) is not None, f"{kind} {name}"
    assert operator.reconcile_failures(log_offset, ns) == []
    warnings = [e for e in c.events() if e["reason"] == "ServiceMonitorCRDMissing"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning", warnings


@pytest.mark.slow
def test_crd_installed_later_is_picked_up_without_a_change(
    kc: Kubectl, ns: str, operator: OperatorProcess, cluster, request: pytest.FixtureRequest
) -> None:
    sm_missing_precondition(kc, cluster)
    kc.apply({"apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
              "metadata": {"name": "later", "namespace": ns}, "spec": hybrid_with_monitor()})
    c = Cluster(kc, ns, "later")
    obj = c.wait_settled(60, distributed=False)
    assert condition(obj, "ServiceMonitorAvailable")["reason"] == "CRDMissing"
    request.getfixturevalue("servicemonitor_crd")
    # No change to the cluster: the operator has to notice the new API by itself.
    wait_for(lambda: kc.get("servicemonitor", "later", ns) is not None, DISCOVERY_DEADLINE,
             "the ServiceMonitor after the CRD was installed", interval=2)


def test_servicemonitor_created_and_removed(
    kc: Kubectl, ns: str, operator: OperatorProcess, servicemonitor_crd: None
) -> None:
    kc.apply({"apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
              "metadata": {"name": "mon", "namespace": ns},
              "spec": hybrid_with_monitor(interval="15s", labels={"release": "prometheus"})})
    c = Cluster(kc, ns, "mon")
    c.wait_settled(60, distributed=False)

    # If the CRD was installed moments ago the operator may still have "no such API" cached;
    # a change to the cluster makes it reconcile (and re-discover once the cache expired).
    # (Without a change it notices within a minute: see the case above.)
    nudges = iter(range(1, 1000))

    def created() -> dict | None:
        sm = kc.get("servicemonitor", "mon", ns)
        if sm is None:
            kc.run("annotate", "sqe", "mon", "-n", ns, f"e2e.sqe.dev/nudge={next(nudges)}", "--overwrite")
        return sm

    sm = wait_for(created, DISCOVERY_DEADLINE, "the ServiceMonitor", interval=5)
    obj = c.wait_settled(30, distributed=False)
    cond = condition(obj, "ServiceMonitorAvailable")
    assert cond["status"] == "True" and cond["reason"] == "Created", cond
    assert sm["spec"] == {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "sqe", "app.kubernetes.io/instance": "mon"}},
        "namespaceSelector": {"matchNames": [ns]},
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}],
    }
    labels = sm["metadata"]["labels"]
    assert labels["release"] == "prometheus" and labels["app.kubernetes.io/managed-by"] == "sqe-operator"
    owner = sm["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "SqeCluster" and owner["name"] == "mon" and owner["uid"] == obj["metadata"]["uid"]
    # It selects the Service that has the `metrics` port.
    svc = kc.get("service", c.coordinator, ns)
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert "metrics" in [p["name"] for p in svc["spec"]["ports"]]

    # Disabling it removes it, and the condition goes away.
    c.patch({"spec": {"metrics": {"serviceMonitor": {"enabled": False}}}})
    wait_for(lambda: kc.get("servicemonitor", "mon", ns) is None, 30, "the ServiceMonitor to be deleted")
    obj = c.wait_settled(30, distributed=False)
    assert condition(obj, "ServiceMonitorAvailable") is None, obj["status"]["conditions"]
    assert kc.get("deployment", c.coordinator, ns) is not None
