"""Case 1: the CRD installs with `kubectl apply --server-side` and the API server rejects invalid
SqeClusters at admission (OpenAPI schema and CEL rules), each with a message that names the
field. Nothing is stored, so the operator never sees them."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator

import pytest

from conftest import make_namespace
from kube import API_VERSION, SUITE_LABEL, Kubectl

DIGEST = "sha256:" + "0123456789abcdef" * 4


def base(ns: str, name: str = "bad") -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "SqeCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"auth": {"usersSecret": {"name": "sqe-users"}}},
    }


def distributed(spec: dict) -> None:
    spec["mode"] = "distributed"
    spec["catalog"] = {"uri": "http://catalog.example:8181/api/catalog"}


def _set(**fields) -> Callable[[dict], None]:
    def apply(m: dict) -> None:
        m["spec"].update(copy.deepcopy(fields))

    return apply


def _distributed_with(**fields) -> Callable[[dict], None]:
    def apply(m: dict) -> None:
        distributed(m["spec"])
        m["spec"].update(copy.deepcopy(fields))

    return apply


def _rename(name: str) -> Callable[[dict], None]:
    def apply(m: dict) -> None:
        m["metadata"]["name"] = name

    return apply


def _drop_users_secret(m: dict) -> None:
    m["spec"]["auth"] = {"tokenTtlSeconds": 3600}


def _drop_auth(m: dict) -> None:
    del m["spec"]["auth"]


# (id, change to a valid manifest, substrings the rejection must contain: the field first)
INVALID: list[tuple[str, Callable[[dict], None], list[str]]] = [
    ("distributed-without-catalog-uri", _set(mode="distributed", catalog={"warehouse": "w"}),
     ["spec.catalog", "spec.catalog.uri is required when spec.mode is distributed"]),
    ("image-tag-and-digest", _set(image={"tag": "1.0.0", "digest": DIGEST}),
     ["spec.image", "set tag or digest, not both"]),
    ("hybrid-with-workers", _set(workers={"replicas": 2}),
     ["spec.workers.replicas", "must be 0 or unset when spec.mode is hybrid"]),
    ("hybrid-explicit-with-workers", _set(mode="hybrid", workers={"replicas": 1}),
     ["spec.workers.replicas", "must be 0 or unset when spec.mode is hybrid"]),
    ("mode-not-in-enum", _set(mode="turbo"),
     ["spec.mode", 'Unsupported value: "turbo"', '"hybrid"', '"distributed"']),
    ("image-digest-pattern", _set(image={"digest": "sha256:NOT-HEX"}),
     ["spec.image.digest", "should match '^sha256:[a-f0-9]{64}$'"]),
    ("image-tag-pattern", _set(image={"tag": "1.0 beta"}),
     ["spec.image.tag", "should match"]),
    ("pull-policy-not-in-enum", _set(image={"pullPolicy": "Sometimes"}),
     ["spec.image.pullPolicy", 'Unsupported value: "Sometimes"']),
    ("name-longer-than-40", _rename("a" * 41),
     ["metadata.name must be at most 40 characters"]),
    ("pdb-min-and-max", _distributed_with(workers={"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}),
     ["spec.workers.podDisruptionBudget", "set minAvailable or maxUnavailable, not both"]),
    ("networkpolicy-client-without-selector", _set(networkPolicy={"allowedClients": [{}]}),
     ["spec.networkPolicy.allowedClients[0]", "each selector needs podSelector or namespaceSelector"]),
    ("networkpolicy-scraper-without-selector", _set(networkPolicy={"metricsScrapers": [{"podSelector": {}}, {}]}),
     ["spec.networkPolicy.metricsScrapers[1]", "each selector needs podSelector or namespaceSelector"]),
    ("missing-users-secret", _drop_users_secret,
     ["spec.auth.usersSecret", "Required value"]),
    ("missing-auth", _drop_auth,
     ["spec.auth", "Required value"]),
    ("users-secret-key-pattern", _set(auth={"usersSecret": {"name": "u", "key": "a/b"}}),
     ["spec.auth.usersSecret.key", "should match"]),
    ("negative-worker-replicas", _distributed_with(workers={"replicas": -1}),
     ["spec.workers.replicas", "should be greater than or equal to 0"]),
    ("too-many-worker-replicas", _distributed_with(workers={"replicas": 1001}),
     ["spec.workers.replicas", "should be less than or equal to 1000"]),
    ("servicemonitor-interval-pattern", _set(metrics={"serviceMonitor": {"enabled": True, "interval": "30 seconds"}}),
     ["spec.metrics.serviceMonitor.interval", "should match '^[0-9]+(ms|s|m|h)$'"]),
    ("progress-deadline-below-10", _distributed_with(workers={"progressDeadlineSeconds": 5}),
     ["spec.workers.progressDeadlineSeconds", "should be greater than or equal to 10"]),
    ("grace-period-zero", _set(coordinator={"terminationGracePeriodSeconds": 0}),
     ["spec.coordinator.terminationGracePeriodSeconds", "should be greater than or equal to 1"]),
    ("catalog-uri-not-http", _set(catalog={"uri": "ftp://catalog.example/"}),
     ["spec.catalog.uri", "should match"]),
    ("token-ttl-below-60", _set(auth={"usersSecret": {"name": "sqe-users"}, "tokenTtlSeconds": 5}),
     ["spec.auth.tokenTtlSeconds", "should be greater than or equal to 60"]),
    ("mode-wrong-type", _set(mode=3),
     ["spec.mode", "must be of type string"]),
]

VALID: list[tuple[str, Callable[[dict], None]]] = [
    ("hybrid-minimal", lambda m: None),
    ("hybrid-zero-workers", _set(workers={"replicas": 0})),
    ("distributed-with-catalog", _distributed_with(workers={"replicas": 3})),
    ("digest-only", _set(image={"digest": DIGEST})),
    ("name-of-40", _rename("a" * 40)),
    ("pdb-max-unavailable", _distributed_with(workers={"podDisruptionBudget": {"maxUnavailable": "50%"}})),
    ("networkpolicy-selectors", _set(networkPolicy={"allowedClients": [{"namespaceSelector": {}}],
                                                    "metricsScrapers": [{"podSelector": {}}]})),
    ("servicemonitor-interval", _set(metrics={"serviceMonitor": {"enabled": True, "interval": "500ms"}})),
]


@pytest.fixture(scope="module")
def admission_ns(kc: Kubectl, users_file: str) -> Iterator[str]:
    name = f"e2e-admission-{uuid.uuid4().hex[:5]}"
    make_namespace(kc, name, users_file)
    yield name
    kc.run("delete", "namespace", name, "--wait=false", check=False)


def test_crd_installed_server_side(kc: Kubectl) -> None:
    crd = kc.json("get", "crd", "sqeclusters.sqe.dev", "--show-managed-fields")
    established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
    assert established and established[0]["status"] == "True"
    managers = {m["manager"]: m["operation"] for m in crd["metadata"].get("managedFields", [])}
    assert "Apply" in managers.values(), f"the CRD was not applied server-side: {managers}"
    # Too large for client-side apply's last-applied annotation: that is why it is server-side.
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (crd["metadata"].get("annotations") or {})
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert crd["spec"]["names"]["shortNames"] == ["sqe"]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.workers.replicas",
        "statusReplicasPath": ".status.workers.replicas",
        "labelSelectorPath": ".status.workers.selector",
    }
    assert "status" in version["subresources"]


@pytest.mark.parametrize("change, expected", [(c, e) for _, c, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_manifest_rejected(kc: Kubectl, admission_ns: str, change, expected: list[str]) -> None:
    manifest = base(admission_ns)
    change(manifest)
    proc = kc.create(manifest, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"accepted:\n{json.dumps(manifest, indent=1)}\n{out}"
    assert "is invalid" in out, out
    for s in expected:
        assert s in out, f"expected {s!r} in the rejection:\n{out}"


@pytest.mark.parametrize("change", [c for _, c in VALID], ids=[i for i, _ in VALID])
def test_valid_manifest_accepted(kc: Kubectl, admission_ns: str, change) -> None:
    """Controls: the rules reject what they should and nothing more (server-side dry run)."""
    manifest = base(admission_ns, "good")
    change(manifest)
    proc = kc.create(manifest, "--dry-run=server", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nothing_was_stored(kc: Kubectl, admission_ns: str) -> None:
    assert kc.list("sqeclusters", admission_ns) == []
    ns_obj = kc.get("namespace", admission_ns)
    assert ns_obj and ns_obj["metadata"]["labels"][SUITE_LABEL] == "operator"
