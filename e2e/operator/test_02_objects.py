"""Case 2: a sample SqeCluster produces every object the operator promises (docs/operator.md,
"What it creates") with the expected fields; once kwok readies the pods the status is Ready with
the current observedGeneration and the endpoints; `kubectl get sqe` shows the printer columns."""

from __future__ import annotations

import base64
import re
import tomllib

from kube import (
    OPERATOR_VERSION,
    Cluster,
    Kubectl,
    condition,
    is_true,
    secret_manifest,
    wait_for,
)
from sqe_harness import REPO_ROOT

SAMPLES = REPO_ROOT / "config" / "samples"
COMMON_LABELS = {
    "app.kubernetes.io/name": "sqe",
    "app.kubernetes.io/managed-by": "sqe-operator",
    "app.kubernetes.io/part-of": "sqe",
}


def load_sample(kc: Kubectl, file: str, ns: str) -> dict:
    manifest = kc.yaml_to_json(SAMPLES / file)
    manifest["metadata"]["namespace"] = ns
    return manifest


def check_child(obj: dict | None, cluster: dict, component: str | None, what: str) -> dict:
    """Labels, owner reference and applied-hash annotation every child carries."""
    assert obj is not None, f"{what} does not exist"
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    want = dict(COMMON_LABELS, **{"app.kubernetes.io/instance": cluster["metadata"]["name"]})
    if component:
        want["app.kubernetes.io/component"] = component
    assert want.items() <= labels.items(), f"{what} labels: {labels}"
    owners = meta.get("ownerReferences") or []
    assert owners == [{
        "apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster", "name": cluster["metadata"]["name"],
        "uid": cluster["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
    }], f"{what} ownerReferences: {owners}"
    assert re.fullmatch(r"[0-9a-f]{16}", (meta.get("annotations") or {}).get("sqe.dev/applied-hash", "")), what
    return obj


def ports(items: list[dict], key: str = "port") -> dict[str, int]:
    return {p["name"]: p[key] for p in items}


def check_pod_template(deploy: dict, cluster_name: str, component: str, image: str, command: str) -> dict:
    spec = deploy["spec"]
    assert spec["selector"] == {"matchLabels": {
        "app.kubernetes.io/name": "sqe", "app.kubernetes.io/instance": cluster_name,
        "app.kubernetes.io/component": component}}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert spec["revisionHistoryLimit"] == 5
    assert spec["progressDeadlineSeconds"] == 600
    tmpl = spec["template"]
    ann = tmpl["metadata"]["annotations"]
    for key in ("checksum/config", "sqe.dev/config-hash", "sqe.dev/secret-hash"):
        assert re.fullmatch(r"[0-9a-f]{64}", ann.get(key, "")), f"{key}: {ann}"
    assert re.fullmatch(r"[0-9a-f]{16}", ann.get("sqe.dev/template-hash", "")), ann
    pod = tmpl["spec"]
    assert pod["serviceAccountName"] == f"{cluster_name}-{'coordinator' if component == 'coordinator' else 'workers'}"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["terminationGracePeriodSeconds"] == 60
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"}}
    (c,) = pod["containers"]
    assert c["name"] == "sqe" and c["image"] == image and c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == [command] and c["args"] == ["--config", "/etc/sqe/config/sqe.toml"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "runAsUser": 1000, "runAsGroup": 1000, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"]["path"] == path and c[probe]["httpGet"]["port"] == "health", c[probe]
    assert ports(c["ports"], "containerPort")["health"] == 9091
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/sqe/config"].get("readOnly") is True
    assert mounts["/etc/sqe/users"].get("readOnly") is True
    assert {"/tmp", "/var/lib/sqe"} <= mounts.keys()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == f"{cluster_name}-config"
    assert volumes["users"]["secret"]["secretName"] == "sqe-users"
    assert volumes["users"]["secret"]["items"] == [{"key": "users", "path": "users"}]
    assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["data"]
    return c


def check_status(obj: dict, ns: str, workers: str | None) -> None:
    st = obj["status"]
    gen = obj["metadata"]["generation"]
    assert st["observedGeneration"] == gen
    assert is_true(obj, "Ready"), st["conditions"]
    for c in st["conditions"]:
        assert c["observedGeneration"] == gen, c
    types = [c["type"] for c in st["conditions"]]
    assert types == ["Ready", "Progressing", "Degraded", "Paused"], types
    assert not is_true(obj, "Degraded") and not is_true(obj, "Paused") and not is_true(obj, "Progressing")
    assert st["phase"] == "Running"
    assert st["rollout"] == {"phase": "Idle"}
    name = obj["metadata"]["name"]
    assert st["endpoints"] == {
        "flightSql": f"{name}-coordinator.{ns}.svc:50051",
        "trinoHttp": f"{name}-coordinator.{ns}.svc:8080",
    }
    assert st["coordinator"]["ready"] == "1/1"
    if workers:
        assert st["workers"]["ready"] == workers
        assert st["workers"]["selector"] == (
            f"app.kubernetes.io/component=worker,app.kubernetes.io/instance={name},app.kubernetes.io/name=sqe")


def check_printer_columns(kc: Kubectl, ns: str, name: str, version: str, workers: str) -> None:
    out = kc.run("get", "sqe", name, "-n", ns).stdout.splitlines()
    header, row = out[0].split(), out[1].split()
    assert header == ["NAME", "VERSION", "WORKERS", "PHASE", "AGE"], out
    if workers:
        assert row[:4] == [name, version, workers, "Running"], out
    else:  # hybrid: no workers column value
        assert row[:3] == [name, version, "Running"] or row[:4] == [name, version, "<none>", "Running"], out
    # The short name and category work too.
    assert name in kc.run("get", "sqe", "-n", ns, "-o", "name").stdout
    assert name in kc.run("get", "sqe", "-n", ns, "-o", "name").stdout


def test_hybrid_sample(kc: Kubectl, ns: str) -> None:
    manifest = load_sample(kc, "sqecluster-hybrid.yaml", ns)
    kc.apply(manifest)
    name = manifest["metadata"]["name"]
    c = Cluster(kc, ns, name)
    obj = c.wait_settled(60, distributed=False)
    check_status(obj, ns, workers=None)
    assert obj["status"]["versions"] == {"coordinator": OPERATOR_VERSION}
    assert "workers" not in obj["status"]
    check_printer_columns(kc, ns, name, OPERATOR_VERSION, "")

    sa = check_child(kc.get("serviceaccount", f"{name}-coordinator", ns), obj, "coordinator", "coordinator SA")
    assert sa["automountServiceAccountToken"] is False

    cm = check_child(kc.get("configmap", f"{name}-config", ns), obj, None, "ConfigMap")
    toml = tomllib.loads(cm["data"]["sqe.toml"])
    assert toml["coordinator"]["mode"] == "hybrid"
    assert toml["coordinator"]["flight_sql_addr"] == "0.0.0.0:50051"
    assert toml["coordinator"]["health_addr"] == "0.0.0.0:9091"
    assert toml["coordinator"]["data_dir"] == "/var/lib/sqe"
    assert toml["auth"]["mode"] == "password" and toml["auth"]["users_file"] == "/etc/sqe/users/users"
    assert toml["metrics"] == {"enabled": True, "addr": "0.0.0.0:9090"}
    assert toml["catalog"]["type"] == "sql"

    svc = check_child(kc.get("service", f"{name}-coordinator", ns), obj, "coordinator", "coordinator Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert ports(svc["spec"]["ports"]) == {"flight-sql": 50051, "trino-http": 8080, "metrics": 9090}
    assert all(p["targetPort"] == p["name"] for p in svc["spec"]["ports"])
    assert svc["spec"]["selector"] == {
        "app.kubernetes.io/name": "sqe", "app.kubernetes.io/instance": name, "app.kubernetes.io/component": "coordinator"}

    np = check_child(kc.get("networkpolicy", f"{name}-coordinator", ns), obj, "coordinator", "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    rules = np["spec"]["ingress"]
    assert [sorted(p["port"] for p in r["ports"]) for r in rules] == [[8080, 50051], [9090]]
    assert rules[0]["from"] == [{"podSelector": {}}], "clients: this namespace by default"
    assert rules[1]["from"] == [{"namespaceSelector": {}, "podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]

    deploy = check_child(c.deployment(f"{name}-coordinator"), obj, "coordinator", "coordinator Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["metadata"]["labels"]["app.kubernetes.io/version"] == OPERATOR_VERSION
    container = check_pod_template(deploy, name, "coordinator", f"ghcr.io/sqe-dev/sqe:{OPERATOR_VERSION}", "sqe-server")
    assert ports(container["ports"], "containerPort") == {
        "flight-sql": 50051, "trino-http": 8080, "metrics": 9090, "health": 9091}
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": "2", "memory": "2Gi"}}
    # the cluster's credential, which the coordinator signs bearer tokens with: a token outlives
    # a restart of the coordinator
    # and the address system.runtime.nodes shows for it: its pod's IP (the downward API)
    assert container["env"] == [
        {"name": "SQE_WORKER__INTERNAL_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": f"{name}-internal", "key": "internal-token", "optional": False}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "SQE_COORDINATOR__ADVERTISE_URL", "value": "http://$(POD_IP):8080"},
    ]
    assert "envFrom" not in container
    internal = check_child(kc.get("secret", f"{name}-internal", ns), obj, None, "internal Secret")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", base64.b64decode(internal["data"]["internal-token"]).decode())

    # Hybrid: no workers, no PDB, no ServiceMonitor.
    assert c.deployment(f"{name}-workers") is None
    assert kc.list("poddisruptionbudgets", ns) == []
    assert sorted(s["metadata"]["name"] for s in kc.list("secrets", ns)) == [f"{name}-internal", "sqe-users"]
    pods = c.pods("coordinator")
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"


def test_distributed_sample(kc: Kubectl, ns: str) -> None:
    kc.apply(secret_manifest("sqe-lakehouse", ns, {
        "SQE_CATALOG__CREDENTIAL": "client-id:client-secret",
        "SQE_STORAGE__S3_ACCESS_KEY_ID": "AKIAE2E",
        "SQE_STORAGE__S3_SECRET_ACCESS_KEY": "e2e-s3-secret-value",
    }))
    manifest = load_sample(kc, "sqecluster-distributed.yaml", ns)
    kc.apply(manifest)
    name = manifest["metadata"]["name"]
    c = Cluster(kc, ns, name)
    obj = c.wait_settled(60)
    check_status(obj, ns, workers="3/3")
    assert obj["status"]["versions"] == {"coordinator": "0.1.0", "workers": "0.1.0"}
    check_printer_columns(kc, ns, name, "0.1.0", "3/3")

    for role, sa_name in (("coordinator", f"{name}-coordinator"), ("worker", f"{name}-workers")):
        sa = check_child(kc.get("serviceaccount", sa_name, ns), obj, role, f"{role} SA")
        assert sa["automountServiceAccountToken"] is False

    cm = check_child(kc.get("configmap", f"{name}-config", ns), obj, None, "ConfigMap")
    text = cm["data"]["sqe.toml"]
    toml = tomllib.loads(text)
    assert toml["coordinator"]["mode"] == "distributed"
    assert toml["worker"]["coordinator_url"] == f"http://{name}-coordinator.{ns}.svc:50051"
    assert toml["worker"]["flight_addr"] == "0.0.0.0:50052"
    assert toml["worker"]["spill_dir"] == "/var/lib/sqe-spill"
    # the query memory pools: 3/4 of the containers' memory limits (4Gi workers, 2Gi coordinator)
    assert (toml["worker"]["memory_limit_mb"], toml["coordinator"]["memory_limit_mb"]) == (3072, 1536)
    assert toml["catalog"]["type"] == "rest"
    assert toml["catalog"]["uri"] == manifest["spec"]["catalog"]["uri"]
    assert toml["catalog"]["warehouse"] == "analytics"
    assert toml["storage"]["s3_endpoint"] == "http://minio.lakehouse.svc:9000"
    assert toml["storage"]["s3_region"] == "us-east-1" and toml["storage"]["s3_path_style"] is True
    for secret_value in ("client-secret", "e2e-s3-secret-value", "AKIAE2E"):
        assert secret_value not in text, "a Secret value leaked into the ConfigMap"

    internal = check_child(kc.get("secret", f"{name}-internal", ns), obj, None, "internal Secret")
    token = base64.b64decode(internal["data"]["internal-token"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), "32 random bytes, base64url"

    svc = check_child(kc.get("service", f"{name}-coordinator", ns), obj, "coordinator", "coordinator Service")
    assert ports(svc["spec"]["ports"]) == {"flight-sql": 50051, "trino-http": 8080, "metrics": 9090}
    wsvc = check_child(kc.get("service", f"{name}-workers", ns), obj, "worker", "workers Service")
    assert wsvc["spec"]["clusterIP"] == "None", "workers get a headless Service only"
    assert ports(wsvc["spec"]["ports"]) == {"flight": 50052, "metrics": 9090}
    assert [s["metadata"]["name"] for s in kc.list("services", ns)] == [f"{name}-coordinator", f"{name}-workers"]

    pdb = check_child(kc.get("poddisruptionbudget", f"{name}-workers", ns), obj, "worker", "PDB")
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert pdb["status"].get("currentHealthy") == 3
    assert [p["metadata"]["name"] for p in kc.list("poddisruptionbudgets", ns)] == [f"{name}-workers"], "no coordinator PDB"

    wsel = {"app.kubernetes.io/name": "sqe", "app.kubernetes.io/instance": name, "app.kubernetes.io/component": "worker"}
    csel = dict(wsel, **{"app.kubernetes.io/component": "coordinator"})
    cnp = check_child(kc.get("networkpolicy", f"{name}-coordinator", ns), obj, "coordinator", "coordinator NetworkPolicy")
    rules = cnp["spec"]["ingress"]
    assert [sorted(p["port"] for p in r["ports"]) for r in rules] == [[8080, 50051], [9090], [50051]]
    assert rules[2]["from"] == [{"podSelector": {"matchLabels": wsel}}], "workers reach the coordinator"
    wnp = check_child(kc.get("networkpolicy", f"{name}-workers", ns), obj, "worker", "workers NetworkPolicy")
    assert wnp["spec"]["podSelector"] == {"matchLabels": wsel}
    wrules = wnp["spec"]["ingress"]
    assert [sorted(p["port"] for p in r["ports"]) for r in wrules] == [[50052], [9090]]
    assert wrules[0]["from"] == [{"podSelector": {"matchLabels": csel}}, {"podSelector": {"matchLabels": wsel}}], (
        "only the coordinator and the other workers (stage exchanges) reach a worker's 50052")

    cdeploy = check_child(c.deployment(f"{name}-coordinator"), obj, "coordinator", "coordinator Deployment")
    wdeploy = check_child(c.deployment(f"{name}-workers"), obj, "worker", "workers Deployment")
    assert cdeploy["spec"]["replicas"] == 1 and wdeploy["spec"]["replicas"] == 3
    image = "ghcr.io/sqe-dev/sqe:0.1.0"
    cc = check_pod_template(cdeploy, name, "coordinator", image, "sqe-server")
    wc = check_pod_template(wdeploy, name, "worker", image, "sqe-worker")
    assert ports(wc["ports"], "containerPort") == {"flight": 50052, "metrics": 9090, "health": 9091}
    assert wc["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}}
    token_env = {"name": "SQE_WORKER__INTERNAL_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": f"{name}-internal", "key": "internal-token", "optional": False}}}
    # a worker registers under its pod's name at its pod's IP (the downward API)
    field = lambda path: {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}  # noqa: E731
    assert cc["env"] == [
        token_env,
        {"name": "POD_IP", "valueFrom": field("status.podIP")},
        {"name": "SQE_COORDINATOR__ADVERTISE_URL", "value": "http://$(POD_IP):8080"},
    ]
    assert wc["env"] == [
        token_env,
        {"name": "POD_IP", "valueFrom": field("status.podIP")},
        {"name": "SQE_WORKER__NODE_ID", "valueFrom": field("metadata.name")},
        {"name": "SQE_WORKER__ADVERTISE_URL", "value": "http://$(POD_IP):50052"},
    ]
    for container in (cc, wc):
        assert container["envFrom"] == [{"secretRef": {"name": "sqe-lakehouse", "optional": False}}]
    spill = {v["name"]: v for v in wdeploy["spec"]["template"]["spec"]["volumes"]}["spill"]
    assert spill["emptyDir"] == {"sizeLimit": "20Gi"}
    assert {m["mountPath"] for m in wc["volumeMounts"]} >= {"/var/lib/sqe-spill"}
    # Both parts run the same config and Secrets: the same checksum.
    assert (cdeploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            == wdeploy["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
    assert len(c.pods("worker")) == 3 and len(c.pods("coordinator")) == 1


def test_operator_side_validation_sets_a_condition(kc: Kubectl, ns: str) -> None:
    """What the API server cannot check (the engine's config schema, the referenced Secrets) is
    reported as a condition and a Warning Event naming the field, never a Secret's value; the
    cluster is not touched until the spec or the Secret is fixed."""
    kc.apply(secret_manifest("sqe-env", ns, {"AWS_SECRET_ACCESS_KEY": "hunter2-value"}))
    kc.apply(secret_manifest("plain-users", ns, {"users": "bob:plain-text-password\n"}))
    kc.apply({"apiVersion": "sqe.dev/v1alpha1", "kind": "SqeCluster",
              "metadata": {"name": "inv", "namespace": ns},
              "spec": {"auth": {"usersSecret": {"name": "plain-users"}}, "existingSecret": "sqe-env",
                       "config": {"coordinator": {"batch_sise": 4096}}}})
    c = Cluster(kc, ns, "inv")

    def invalid() -> dict | None:
        o = c.get()
        st = o.get("status") or {}
        return o if st.get("phase") == "Invalid" and st.get("observedGeneration") == o["metadata"]["generation"] else None

    obj = wait_for(invalid, 30, "phase Invalid")
    degraded = condition(obj, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidSpec", degraded
    message = degraded["message"]
    for field in ("spec.config.coordinator.batch_sise", "spec.existingSecret key AWS_SECRET_ACCESS_KEY",
                  "spec.auth.usersSecret", "not an argon2 hash"):
        assert field in message, f"{field!r} not in {message!r}"
    for secret in ("hunter2-value", "plain-text-password"):
        assert secret not in str(obj) and secret not in str(c.events()), "a Secret value leaked"
    ready = condition(obj, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    warnings = [e for e in c.events() if e["reason"] == "InvalidSpec"]
    assert warnings and warnings[0]["type"] == "Warning"
    assert kc.list("deployments", ns) == [] and kc.get("configmap", "inv-config", ns) is None, "nothing is applied"

    # Fixing the spec and the Secrets makes it valid; the cluster is then created.
    kc.run("delete", "secret", "sqe-env", "-n", ns)
    kc.apply(secret_manifest("sqe-env", ns, {"SQE_STORAGE__S3_SECRET_ACCESS_KEY": "hunter2-value"}))
    c.patch({"spec": {"config": None, "auth": {"usersSecret": {"name": "sqe-users"}}}})
    obj = c.wait_settled(60, distributed=False)
    assert not is_true(obj, "Degraded")
    assert "hunter2-value" not in kc.get("configmap", "inv-config", ns)["data"]["sqe.toml"]
