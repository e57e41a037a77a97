#!/usr/bin/env bash
# Runs after `make cluster-up`: installs the SqeCluster CRD and the operator's RBAC, starts
# sqe-operator against the cluster under its own identity (so the ClusterRole is what it can do),
# and applies the hybrid sample with a users Secret, so `kubectl get sqe` shows it reconciling.
# down.sh stops the operator with the rest (its pid is in <cluster dir>/pids).
#
#   SQE_CLUSTER_DIR     cluster dir (default $PWD/target/cluster)
#   SQE_OPERATOR_BIN    default $PWD/target/release/sqe-operator
#   SQE_SERVER_BIN      default $PWD/target/release/sqe-server (hashes the sample password)
#   SQE_OPERATOR_ADDR   its /metrics /healthz /readyz (default 127.0.0.1:8090)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${SQE_CLUSTER_DIR:-$PWD/target/cluster}
bin=${SQE_OPERATOR_BIN:-$root/target/release/sqe-operator}
server=${SQE_SERVER_BIN:-$root/target/release/sqe-server}
addr=${SQE_OPERATOR_ADDR:-127.0.0.1:8090}
export KUBECONFIG=$dir/kubeconfig
log() { echo "install-sqe.sh: $*" >&2; }

[[ -x $bin ]] || { log "no operator binary at $bin (run make build)"; exit 1; }
kubectl apply --server-side -f "$root/crds/sqecluster.yaml" >/dev/null
deadline=$((SECONDS + 60))
until [[ $(kubectl get crd sqeclusters.sqe.dev -o jsonpath="{.status.conditions[?(@.type=='Established')].status}" 2>/dev/null) == True ]]; do
    ((SECONDS < deadline)) || { log "the CRD was not established within 60s"; exit 1; }
    sleep 0.2
done
kubectl create namespace sqe-system --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
kubectl apply --server-side -n sqe-system -k "$root/config/rbac" >/dev/null
log "CRD and RBAC installed"

user=system:serviceaccount:sqe-system:sqe-operator
generated=$("$root/e2e/cluster/user-kubeconfig.sh" "$user" system:serviceaccounts)
# KUBECONFIG is a ':'-separated list, so the file name must not contain ':'.
cp "$generated" "$dir/sqe-operator.kubeconfig"

mkdir -p "$dir/pids" "$dir/logs"
if [[ -f $dir/pids/sqe-operator.pid ]] && kill -0 "$(<"$dir/pids/sqe-operator.pid")" 2>/dev/null; then
    log "sqe-operator already running (pid $(<"$dir/pids/sqe-operator.pid"))"
else
    KUBECONFIG=$dir/sqe-operator.kubeconfig nohup "$bin" run --listen-addr "$addr" \
        --leader-elect --lease-namespace sqe-system --identity local-operator \
        >"$dir/logs/sqe-operator.log" 2>&1 &
    echo $! >"$dir/pids/sqe-operator.pid"
    deadline=$((SECONDS + 30))
    until curl -fsS "http://$addr/readyz" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)) || ! kill -0 "$(<"$dir/pids/sqe-operator.pid")" 2>/dev/null; then
            log "sqe-operator did not become ready; its log:"
            tail -20 "$dir/logs/sqe-operator.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    log "sqe-operator running (pid $(<"$dir/pids/sqe-operator.pid")), metrics at http://$addr/metrics, log $dir/logs/sqe-operator.log"
fi

# The sample: user `demo`, password `demo` (a local toy cluster only).
hash=$(printf 'demo\n' | "$server" hash-password)
kubectl create secret generic sqe-users --from-literal=users="demo:$hash" \
    --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
kubectl apply --server-side -f "$root/config/samples/sqecluster-hybrid.yaml" >/dev/null
if kubectl wait --for=condition=Ready sqe/sqe-demo --timeout=60s >/dev/null; then
    kubectl get sqe
else
    log "sqe-demo is not Ready yet; kubectl describe sqe sqe-demo"
fi
echo "export KUBECONFIG=$dir/kubeconfig   # then: kubectl get sqe -w"
