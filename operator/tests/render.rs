//! Snapshot and property tests of the pure pipeline: SqeCluster YAML in → objects out.
//!
//! Snapshots live in `operator/tests/snapshots/`; regenerate them after an intended change with
//! `SQE_UPDATE_SNAPSHOTS=1 cargo test -p sqe-operator --test render` and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sqe_operator::build::{self, BuildContext, ChildKind, Desired};
use sqe_operator::crd::{self, SqeCluster};
use sqe_operator::labels;
use sqe_operator::validate::{self, SecretState, SecretsSeen};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sample(name: &str) -> SqeCluster {
    let path = repo().join("config/samples").join(name);
    let text = std::fs::read_to_string(&path).expect("sample exists");
    let mut cluster: SqeCluster = serde_yaml::from_str(&text).expect("sample parses");
    cluster
        .metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    cluster
}

fn ctx() -> BuildContext {
    BuildContext {
        internal_token: Some("token-for-tests".into()),
        service_monitor_api: true,
    }
}

fn render(cluster: &SqeCluster, secrets: &SecretsSeen) -> Desired {
    let plan = validate::validate(cluster, secrets).unwrap_or_else(|p| {
        panic!("valid sample: {}", validate::describe(&p));
    });
    build::build(&plan, &ctx())
}

fn deployment<'a>(desired: &'a Desired, suffix: &str) -> &'a Value {
    &desired
        .children
        .iter()
        .find(|c| c.kind == ChildKind::Deployment && c.name.ends_with(suffix))
        .expect("deployment rendered")
        .object
}

fn template_annotation(deployment: &Value, key: &str) -> String {
    deployment
        .pointer("/spec/template/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn samples_render_to_their_snapshots() {
    let update = std::env::var("SQE_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for name in [
        "sqecluster-hybrid.yaml",
        "sqecluster-distributed.yaml",
        "sqecluster-full.yaml",
    ] {
        let cluster = sample(name);
        let yaml = build::to_yaml(&render(&cluster, &SecretsSeen::default())).expect("yaml");
        let snapshot = repo().join("operator/tests/snapshots").join(name);
        if update {
            std::fs::create_dir_all(snapshot.parent().expect("dir")).expect("mkdir");
            std::fs::write(&snapshot, &yaml).expect("write snapshot");
            continue;
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        if expected != yaml {
            mismatches.push(name);
        }
    }
    assert!(
        mismatches.is_empty(),
        "rendered output differs from the snapshots for {mismatches:?}; if intended, run \
         SQE_UPDATE_SNAPSHOTS=1 cargo test -p sqe-operator --test render and review the diff"
    );
}

#[test]
fn rendering_twice_is_byte_identical() {
    for name in ["sqecluster-hybrid.yaml", "sqecluster-full.yaml"] {
        let cluster = sample(name);
        let a = build::to_yaml(&render(&cluster, &SecretsSeen::default())).expect("yaml");
        let b = build::to_yaml(&render(&cluster.clone(), &SecretsSeen::default())).expect("yaml");
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn hybrid_renders_no_worker_objects_and_distributed_renders_them() {
    let hybrid = render(&sample("sqecluster-hybrid.yaml"), &SecretsSeen::default());
    let kinds: Vec<(ChildKind, &str)> = hybrid
        .children
        .iter()
        .map(|c| (c.kind, c.name.as_str()))
        .collect();
    assert!(
        kinds.iter().all(|(_, n)| !n.contains("workers")),
        "{kinds:?}"
    );
    assert!(
        !kinds
            .iter()
            .any(|(k, _)| *k == ChildKind::PodDisruptionBudget)
    );
    // a hybrid cluster has its credential too: the key its bearer tokens are signed with
    assert!(
        kinds.contains(&(ChildKind::Secret, "sqe-demo-internal")),
        "{kinds:?}"
    );

    let distributed = render(
        &sample("sqecluster-distributed.yaml"),
        &SecretsSeen::default(),
    );
    for (kind, name) in [
        (ChildKind::Deployment, "analytics-workers"),
        (ChildKind::Service, "analytics-workers"),
        (ChildKind::PodDisruptionBudget, "analytics-workers"),
        (ChildKind::NetworkPolicy, "analytics-workers"),
        (ChildKind::Secret, "analytics-internal"),
    ] {
        assert!(distributed.get(kind, name).is_some(), "{kind:?} {name}");
    }
    // Workers get only a headless Service: never reachable from outside.
    let svc = &distributed
        .get(ChildKind::Service, "analytics-workers")
        .expect("svc")
        .object;
    assert_eq!(svc.pointer("/spec/clusterIP"), Some(&Value::from("None")));
    // Workload objects come last, workers before the coordinator.
    let last: Vec<&str> = distributed
        .children
        .iter()
        .rev()
        .take(2)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(last, ["analytics-coordinator", "analytics-workers"]);
}

#[test]
fn pods_are_locked_down() {
    let desired = render(
        &sample("sqecluster-distributed.yaml"),
        &SecretsSeen::default(),
    );
    for suffix in ["-coordinator", "-workers"] {
        let d = deployment(&desired, suffix);
        let pod = d.pointer("/spec/template/spec").expect("pod spec");
        assert_eq!(pod["automountServiceAccountToken"], Value::Bool(false));
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
        assert_eq!(pod["securityContext"]["runAsUser"], Value::from(1000));
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
        assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], Value::from("RuntimeDefault"));
        assert_eq!(
            c["readinessProbe"]["httpGet"]["path"],
            Value::from("/readyz")
        );
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], Value::from("health"));
    }
    // No secret ever lands in the ConfigMap.
    let cm = &desired
        .get(ChildKind::ConfigMap, "analytics-config")
        .expect("cm")
        .object;
    let toml = cm["data"]["sqe.toml"].as_str().expect("sqe.toml");
    for secret_key in [
        "credential",
        "token =",
        "s3_secret_access_key",
        "internal_token",
    ] {
        assert!(!toml.contains(secret_key), "{secret_key} in {toml}");
    }
}

fn with_spec(mut cluster: SqeCluster, patch: Value) -> SqeCluster {
    let mut spec = serde_json::to_value(&cluster.spec).expect("spec");
    merge(&mut spec, patch);
    cluster.spec = serde_json::from_value(spec).expect("patched spec");
    cluster
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// (checksum/config, template-hash) of both Deployments.
fn hashes(cluster: &SqeCluster, secrets: &SecretsSeen) -> Vec<(String, String)> {
    let desired = render(cluster, secrets);
    ["-workers", "-coordinator"]
        .iter()
        .map(|s| {
            let d = deployment(&desired, s);
            (
                template_annotation(d, labels::ANNOTATION_CONFIG_CHECKSUM),
                template_annotation(d, labels::ANNOTATION_TEMPLATE_HASH),
            )
        })
        .collect()
}

fn secrets(credential: &str) -> SecretsSeen {
    SecretsSeen {
        existing: SecretState::Found(BTreeMap::from([(
            "SQE_CATALOG__CREDENTIAL".to_string(),
            credential.as_bytes().to_vec(),
        )])),
        users: SecretState::Found(BTreeMap::from([(
            "users".to_string(),
            b"alice:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_vec(),
        )])),
    }
}

#[test]
fn what_restarts_pods_and_what_does_not() {
    let base = sample("sqecluster-distributed.yaml");
    let seen = secrets("id:secret");
    let before = hashes(&base, &seen);

    // Scaling workers: no pod template changes.
    let scaled = with_spec(
        base.clone(),
        serde_json::json!({"workers": {"replicas": 7}}),
    );
    assert_eq!(
        hashes(&scaled, &seen),
        before,
        "scaling must not restart pods"
    );
    // A PDB or ServiceMonitor change: no pod template changes.
    let other = with_spec(
        base.clone(),
        serde_json::json!({"workers": {"podDisruptionBudget": {"maxUnavailable": 2}},
                           "metrics": {"serviceMonitor": {"enabled": true}}}),
    );
    assert_eq!(
        hashes(&other, &seen),
        before,
        "PDB/ServiceMonitor must not restart pods"
    );

    // A config change: checksum and template change on both parts.
    let config = with_spec(
        base.clone(),
        serde_json::json!({"config": {"coordinator": {"batch_size": 4096}}}),
    );
    let after = hashes(&config, &seen);
    for (a, b) in after.iter().zip(&before) {
        assert_ne!(a.0, b.0, "config change must change checksum/config");
        assert_ne!(a.1, b.1);
    }
    // A referenced Secret's content change: same.
    let after = hashes(&base, &secrets("id:rotated"));
    for (a, b) in after.iter().zip(&before) {
        assert_ne!(a.0, b.0, "secret change must change checksum/config");
    }
    // An image change or a restart request: template changes, checksum does not.
    for patch in [
        serde_json::json!({"image": {"tag": "0.2.0"}}),
        serde_json::json!({"restartRequest": "again"}),
    ] {
        let changed = with_spec(base.clone(), patch.clone());
        let after = hashes(&changed, &seen);
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(a.0, b.0, "{patch}: checksum/config");
            assert_ne!(a.1, b.1, "{patch}: template-hash");
        }
    }
}

#[test]
fn stopped_scales_both_parts_to_zero_and_keeps_the_rest() {
    let base = sample("sqecluster-distributed.yaml");
    let stopped = with_spec(
        base.clone(),
        serde_json::json!({"clusterOperation": {"stopped": true}}),
    );
    let running = render(&base, &SecretsSeen::default());
    let desired = render(&stopped, &SecretsSeen::default());
    assert_eq!(desired.children.len(), running.children.len());
    for suffix in ["-workers", "-coordinator"] {
        assert_eq!(
            deployment(&desired, suffix)["spec"]["replicas"],
            Value::from(0)
        );
    }
}

/// A spec patch and the field its problem must name.
fn invalid_cases() -> Vec<(Value, &'static str)> {
    vec![
        (
            serde_json::json!({"mode": "distributed", "catalog": null}),
            "spec.catalog.uri",
        ),
        (
            serde_json::json!({"workers": {"replicas": 3}}),
            "spec.workers.replicas",
        ),
        (
            serde_json::json!({"config": {"coordinator": {"batch_sise": 1}}}),
            "spec.config.coordinator.batch_sise",
        ),
        (
            serde_json::json!({"config": {"coordinator": {"batch_size": "lots"}}}),
            "spec.config.coordinator.batch_size",
        ),
        (
            serde_json::json!({"config": {"catalog": {"credential": "a:b"}}}),
            "spec.config.catalog.credential",
        ),
        (
            serde_json::json!({"config": {"coordinator": {"flight_sql_addr": "0.0.0.0:1"}}}),
            "spec.config.coordinator.flight_sql_addr",
        ),
        (
            serde_json::json!({"config": {"coordinator": 5}}),
            "spec.config.coordinator",
        ),
        (
            serde_json::json!({"coordinator": {"resources": {"requests": {"cpu": "4"}}}}),
            "spec.coordinator.resources.requests.cpu",
        ),
        (
            serde_json::json!({"coordinator": {"resources": {"limits": {"memory": "lots"}}}}),
            "spec.coordinator.resources.limits.memory",
        ),
        (
            serde_json::json!({"coordinator": {"terminationGracePeriodSeconds": 10}}),
            "spec.coordinator.terminationGracePeriodSeconds",
        ),
        (
            serde_json::json!({"image": {"repository": "ghcr.io/sqe-dev/sqe:1.0"}}),
            "spec.image.repository",
        ),
        (
            serde_json::json!({"mode": "distributed", "catalog": {"uri": "http://c"},
                               "workers": {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}}),
            "spec.workers.podDisruptionBudget",
        ),
    ]
}

#[test]
fn invalid_specs_name_the_field() {
    let base = sample("sqecluster-hybrid.yaml");
    for (patch, field) in invalid_cases() {
        let cluster = with_spec(base.clone(), patch.clone());
        let problems = validate::validate(&cluster, &SecretsSeen::default())
            .err()
            .unwrap_or_else(|| panic!("{patch} must be invalid"));
        assert!(
            problems.iter().any(|p| p.field == field),
            "{patch}: expected a problem on {field}, got {}",
            validate::describe(&problems)
        );
    }
}

#[test]
fn referenced_secrets_are_checked_without_echoing_values() {
    let cluster = sample("sqecluster-distributed.yaml");
    let missing = SecretsSeen {
        existing: SecretState::Missing,
        users: SecretState::Missing,
    };
    let problems = validate::validate(&cluster, &missing).expect_err("missing secrets");
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert!(fields.contains(&"spec.existingSecret"), "{fields:?}");
    assert!(fields.contains(&"spec.auth.usersSecret.name"), "{fields:?}");

    let plain = SecretsSeen {
        existing: SecretState::Found(BTreeMap::from([
            (
                "SQE_CATALOG__CREDENTIAL".to_string(),
                b"no-colon-secret".to_vec(),
            ),
            ("PASSWORD".to_string(), b"hunter2".to_vec()),
        ])),
        users: SecretState::Found(BTreeMap::from([(
            "users".to_string(),
            b"alice:plaintext-password".to_vec(),
        )])),
    };
    let problems = validate::validate(&cluster, &plain).expect_err("bad secrets");
    let text = validate::describe(&problems);
    for field in [
        "spec.existingSecret key PASSWORD",
        "spec.existingSecret key SQE_CATALOG__CREDENTIAL",
        "spec.auth.usersSecret",
    ] {
        assert!(problems.iter().any(|p| p.field == field), "{field}: {text}");
    }
    for secret in ["no-colon-secret", "hunter2", "plaintext-password"] {
        assert!(!text.contains(secret), "a secret value leaked into: {text}");
    }
}

#[test]
fn the_committed_crd_matches_the_types() {
    let committed =
        std::fs::read_to_string(repo().join("crds/sqecluster.yaml")).unwrap_or_default();
    assert!(
        committed == crd::crd_yaml().expect("crd yaml"),
        "crds/sqecluster.yaml is out of date: run `make crds`"
    );
}

fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "default" {
                    found.push(format!("{path}.default"));
                }
                walk(v, &format!("{path}.{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn the_crd_has_no_schema_defaults_and_names_fields_in_its_rules() {
    let crd = serde_json::to_value(crd::crd()).expect("crd");
    let mut defaults = Vec::new();
    walk(&crd, "", &mut defaults);
    assert!(
        defaults.is_empty(),
        "schema defaults cause GitOps drift: {defaults:?}"
    );
    let text = crd.to_string();
    assert!(text.contains("x-kubernetes-validations"));
    assert!(!text.contains("\"nullable\""));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(
        version["subresources"]["scale"]["specReplicasPath"],
        ".spec.workers.replicas"
    );
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Version", "Workers", "Phase", "Age"]);
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["sqe"])
    );
}

#[test]
fn a_spec_round_trips_without_gaining_fields() {
    for name in [
        "sqecluster-hybrid.yaml",
        "sqecluster-distributed.yaml",
        "sqecluster-full.yaml",
    ] {
        let path = repo().join("config/samples").join(name);
        let original: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
        let cluster: SqeCluster = serde_json::from_value(original.clone()).expect("typed");
        let back = serde_json::to_value(&cluster.spec).expect("json");
        assert_eq!(
            back, original["spec"],
            "{name}: spec changed on a round trip"
        );
    }
}
