//! Drift: has someone changed a field the operator renders since it last applied it?
//!
//! The `sqe.dev/applied-hash` annotation says what the operator last applied, not what the
//! object holds now: `kubectl edit` of an owned field keeps the annotation. So an object is
//! skipped only if its hash is current *and* every field the operator renders still has the
//! rendered value. Fields the API server or other tools add (defaults, a `kubectl rollout
//! restart` annotation, status) are not the operator's and do not count.

use serde_json::{Map, Value};

use crate::validate::parse_quantity;

/// The path of the first rendered field whose live value differs, e.g.
/// `spec.ports[0].port`; `None` when the live object still holds everything rendered.
pub fn first_difference(desired: &Value, live: &Value) -> Option<String> {
    match (desired, live) {
        // apiVersion and kind identify the object; items of a LIST do not repeat them.
        (Value::Object(want), Value::Object(have)) => fields_difference(
            want.iter()
                .filter(|(key, _)| *key != "apiVersion" && *key != "kind"),
            have,
            "",
        ),
        _ => difference(desired, live, String::new()),
    }
}

/// The first of `want`'s fields that `have` lacks or holds with another value.
fn fields_difference<'a>(
    mut want: impl Iterator<Item = (&'a String, &'a Value)>,
    have: &Map<String, Value>,
    path: &str,
) -> Option<String> {
    want.find_map(|(key, value)| {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match have.get(key) {
            Some(live_value) => difference(value, live_value, field),
            None if is_empty(value) => None,
            None => Some(field),
        }
    })
}

fn difference(desired: &Value, live: &Value, path: String) -> Option<String> {
    match (desired, live) {
        // Rendered as "unset": whatever the API server filled in is fine.
        (Value::Null, _) => None,
        (Value::Object(want), Value::Object(have)) => fields_difference(want.iter(), have, &path),
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(i, (w, h))| difference(w, h, format!("{path}[{i}]"))),
        // Elements someone else added to a list (server-side apply keeps what other field
        // managers own): drift only if one of ours is missing.
        (Value::Array(want), Value::Array(have)) if want.len() < have.len() => want
            .iter()
            .enumerate()
            .find(|(_, w)| {
                !have
                    .iter()
                    .any(|h| difference(w, h, String::new()).is_none())
            })
            .map(|(i, _)| format!("{path}[{i}]")),
        (Value::Array(_), Value::Array(_)) => Some(path),
        (Value::String(want), Value::String(have)) => {
            (want != have && !same_quantity(want, have)).then_some(path)
        }
        (Value::Number(want), Value::Number(have)) => {
            (want.as_f64() != have.as_f64()).then_some(path)
        }
        (want, have) if is_empty(want) && is_empty(have) => None,
        (want, have) => (want != have).then_some(path),
    }
}

/// The API server stores quantities in canonical form ("1000m" becomes "1", "0.5Gi" "512Mi").
fn same_quantity(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// `{}`, `[]` and null: the API server drops them.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "c", "labels": {"app.kubernetes.io/name": "sqe"}},
            "spec": {"type": "ClusterIP", "ports": [
                {"name": "flight-sql", "port": 50051, "targetPort": "flight-sql"},
                {"name": "metrics", "port": 9090, "targetPort": "metrics"}
            ]}
        })
    }

    #[test]
    fn what_the_api_server_adds_is_not_drift() {
        let mut live = service();
        // As an item of a LIST: no apiVersion or kind.
        live.as_object_mut().unwrap().remove("apiVersion");
        live.as_object_mut().unwrap().remove("kind");
        live["metadata"]["uid"] = json!("u1");
        live["metadata"]["labels"]["team"] = json!("data");
        live["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/restartedAt": "now"});
        live["spec"]["clusterIP"] = json!("10.0.0.7");
        live["spec"]["ports"][0]["protocol"] = json!("TCP");
        live["status"] = json!({"loadBalancer": {}});
        assert_eq!(first_difference(&service(), &live), None);
    }

    #[test]
    fn a_hand_edit_of_a_rendered_field_is_drift() {
        let mut live = service();
        live["spec"]["ports"][1]["port"] = json!(9999);
        assert_eq!(
            first_difference(&service(), &live).as_deref(),
            Some("spec.ports[1].port")
        );

        let mut live = service();
        live["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/name");
        assert_eq!(
            first_difference(&service(), &live).as_deref(),
            Some("metadata.labels.app.kubernetes.io/name")
        );

        let mut live = service();
        live["spec"]["ports"].as_array_mut().unwrap().pop();
        assert_eq!(
            first_difference(&service(), &live).as_deref(),
            Some("spec.ports")
        );
    }

    #[test]
    fn elements_others_add_to_a_list_are_theirs() {
        let mut live = service();
        live["spec"]["ports"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "debug", "port": 6060}));
        assert_eq!(first_difference(&service(), &live), None);
        // ... but one of ours replaced by theirs is drift.
        live["spec"]["ports"][0]["port"] = json!(51000);
        assert_eq!(
            first_difference(&service(), &live).as_deref(),
            Some("spec.ports[0]")
        );
    }

    #[test]
    fn canonical_quantities_and_empty_values_are_equal() {
        let desired = json!({"resources": {"requests": {"cpu": "1000m", "memory": "0.5Gi"}},
                             "emptyDir": {}, "args": [], "priority": null});
        let live = json!({"resources": {"requests": {"cpu": "1", "memory": "512Mi"}}});
        assert_eq!(first_difference(&desired, &live), None);
        let live = json!({"resources": {"requests": {"cpu": "2", "memory": "512Mi"}}});
        assert_eq!(
            first_difference(&desired, &live).as_deref(),
            Some("resources.requests.cpu")
        );
    }

    #[test]
    fn strings_that_are_not_quantities_compare_exactly() {
        let desired = json!({"image": "ghcr.io/sqe-dev/sqe:1.0.0"});
        let live = json!({"image": "ghcr.io/sqe-dev/sqe:1.0.1"});
        assert_eq!(first_difference(&desired, &live).as_deref(), Some("image"));
    }
}
