"""Case 12: two operator replicas with --leader-elect. Only the leader reconciles (the standby's
sqe_operator_leader is 0 and it sends no writes); killing the leader (SIGKILL: no release)
hands over once the Lease expires; a replica stopped cleanly (SIGTERM) releases the Lease.

The shared operator (no leader election) is stopped for the duration of this case and
started again afterwards."""

from __future__ import annotations

import time
import uuid

from conftest import wait_other_namespaces_gone
from kube import (
    OPERATOR_NAMESPACE,
    Kubectl,
    OperatorProcess,
    create_cluster,
    distributed_spec,
    wait_for,
)


def lease(kc: Kubectl, name: str) -> dict:
    return (kc.get("lease", name, OPERATOR_NAMESPACE) or {}).get("spec") or {}


def test_only_the_leader_reconciles_and_killing_it_hands_over(
    kc: Kubectl, ns: str, operator: OperatorProcess, cluster
) -> None:
    wait_other_namespaces_gone(kc, ns)
    lease_name = f"sqe-operator-e2e-{uuid.uuid4().hex[:6]}"
    args = ["--leader-elect", "--lease-name", lease_name]
    logs = cluster.dir / "logs"
    a = OperatorProcess(cluster.operator_kubeconfig, logs / "operator-leader-a.log", "e2e-leader-a", args)
    b = OperatorProcess(cluster.operator_kubeconfig, logs / "operator-leader-b.log", "e2e-leader-b", args)
    operator.stop()
    try:
        a.start()
        wait_for(lambda: a.metric("sqe_operator_leader") == 1, 30, "replica a to lead")
        b.start()  # a standby is ready (it can take over) but not the leader
        assert lease(kc, lease_name)["holderIdentity"] == "e2e-leader-a"
        assert b.metric("sqe_operator_leader") == 0

        # The leader reconciles a new cluster; the standby does nothing.
        c = create_cluster(kc, ns, "lead", distributed_spec(tag="1.0.0", replicas=2))
        assert a.writes() > 0 and a.metric("sqe_operator_reconciles_total") > 0
        assert b.writes() == 0 and b.metric("sqe_operator_reconciles_total") == 0
        assert b.metric("sqe_operator_leader") == 0
        events = [e for e in c.events() if e.get("reportingController") == "sqe-operator"]
        assert {e.get("reportingInstance") for e in events} <= {"e2e-leader-a"}, events
        transitions = lease(kc, lease_name).get("leaseTransitions", 0)

        # SIGKILL the leader: it cannot release the Lease; b takes over once it expires (15 s).
        a.kill()
        t0 = time.monotonic()
        wait_for(lambda: b.metric("sqe_operator_leader") == 1, 45, "replica b to take over", interval=0.5)
        handover = time.monotonic() - t0
        spec = lease(kc, lease_name)
        assert spec["holderIdentity"] == "e2e-leader-b"
        assert spec["leaseTransitions"] == transitions + 1
        assert handover <= 35, f"hand-over took {handover:.0f}s (Lease 15 s + retry 5 s)"

        # The new leader reconciles: a change rolls.
        c.patch({"spec": {"image": {"tag": "1.1.0"}}})
        wait_for(lambda: (o := c.settled()) and o["status"].get("versions") == {"coordinator": "1.1.0", "workers": "1.1.0"},
                 90, "the new leader to roll 1.1.0")
        assert b.writes(kind="Deployment") >= 2
        rolled = [e for e in c.events() if e["reason"] in ("ImageChanged", "WorkersRolledOut")]
        assert {e.get("reportingInstance") for e in rolled} == {"e2e-leader-b"}

        # A clean stop releases the Lease, so a standby would not wait for it to expire.
        assert b.stop() == 0
        spec = lease(kc, lease_name)
        assert not spec.get("holderIdentity"), spec
        assert "became the leader" in b.log_text() and "standing by" in b.log_text()
    finally:
        a.kill()
        b.stop()
        operator.start()
        kc.delete("lease", lease_name, OPERATOR_NAMESPACE)
