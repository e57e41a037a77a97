#!/usr/bin/env bash
# Checks that a control plane from up.sh behaves like a real cluster for what the operator
# needs: Deployments roll out and roll, a "never-ready" image stalls a rollout until
# ProgressDeadlineExceeded, the garbage collector removes dependents, namespaces finish deleting,
# and the audit log records writes by user. Works in its own namespace and removes it.
#
#   KUBECONFIG  defaults to ${SQE_CLUSTER_DIR:-$PWD/target/cluster}/kubeconfig
set -euo pipefail

dir=${SQE_CLUSTER_DIR:-$PWD/target/cluster}
export KUBECONFIG=${KUBECONFIG:-$dir/kubeconfig}
ns=sqe-smoke-$$
pass=0
fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAILED: $*"; fail=$((fail + 1)); }
k() { kubectl -n "$ns" "$@"; }

# poll <seconds> <command...>: until the command succeeds or the deadline passes
poll() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.3
    done
}

kubectl create namespace "$ns" >/dev/null
poll 30 k get serviceaccount default || bad "default service account in $ns"
trap 'kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT

# 1. a Deployment becomes 2/2 available
k create deployment x --image=example/x:1 --replicas=2 >/dev/null
if k rollout status deploy/x --timeout=60s >/dev/null; then
    ok "deployment x 2/2 available ($(k get deploy x -o jsonpath='{.status.availableReplicas}'))"
else bad "deployment x did not become available"; fi

# 2. kubectl set image rolls it
k set image deploy/x x=example/x:2 >/dev/null
if k rollout status deploy/x --timeout=60s >/dev/null &&
    [[ $(k get pods -l app=x -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort -u) == example/x:2 ]]; then
    ok "set image rolled deployment x to example/x:2"
else bad "set image did not roll deployment x"; fi

# 3. a never-ready image stalls the rollout, then ProgressDeadlineExceeded
k patch deploy x -p '{"spec":{"progressDeadlineSeconds":5}}' >/dev/null
k set image deploy/x x=example/never-ready:1 >/dev/null
stalled() {
    [[ $(k get deploy x -o jsonpath='{.status.conditions[?(@.type=="Progressing")].reason}') == ProgressDeadlineExceeded ]]
}
if poll 60 stalled; then
    nr=$(k get pods -l app=x -o jsonpath='{range .items[*]}{.spec.containers[0].image} {.status.phase} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep never-ready || true)
    if [[ -n $nr && $(awk '$2 != "Running" || $3 != "False"' <<<"$nr") == "" ]] &&
        [[ $(k get deploy x -o jsonpath='{.status.availableReplicas}') == 2 ]]; then
        ok "never-ready pods Running but not Ready; old pods kept; ProgressDeadlineExceeded"
    else bad "never-ready rollout in an unexpected state: $nr"; fi
else bad "no ProgressDeadlineExceeded on deployment x"; fi

# 4. deleting the owner garbage-collects dependents (background propagation)
k delete deploy x --wait=false >/dev/null
gone() { [[ -z $(k get rs,pods -l app=x -o name 2>/dev/null) ]]; }
if poll 60 gone; then ok "garbage collector removed the ReplicaSets and Pods of deployment x"
else bad "dependents of deployment x still there"; fi
k create configmap owner >/dev/null
uid=$(k get configmap owner -o jsonpath='{.metadata.uid}')
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: dependent
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: owner, uid: "$uid"}]
EOF
k delete configmap owner >/dev/null
cm_gone() { ! k get configmap dependent; }
if poll 60 cm_gone; then ok "garbage collector removed a dependent ConfigMap"
else bad "dependent ConfigMap still there"; fi

# 5. the audit log records writes by user
audit=$dir/logs/audit.log
if [[ -f $audit ]]; then
    n=$(grep -F "\"namespace\":\"$ns\"" "$audit" | grep -F '"verb":"create"' | grep -cF '"username":"admin"' || true)
    if ((n > 0)); then
        ok "audit log records admin's creates in $ns ($n)"
    else bad "no admin create in $ns in $audit"; fi
else echo "skip: no audit log at $audit (not a cluster from up.sh?)"; fi

# 6. namespace deletion finishes
k create deployment y --image=example/y:1 --replicas=3 >/dev/null
k rollout status deploy/y --timeout=60s >/dev/null || bad "deployment y did not become available"
trap - EXIT
if kubectl delete namespace "$ns" --timeout=120s >/dev/null; then ok "namespace $ns deleted"
else bad "namespace $ns not deleted within 120s"; fi

echo "$pass passed, $fail failed"
((fail == 0))
