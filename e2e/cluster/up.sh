#!/usr/bin/env bash
# Starts a local Kubernetes control plane for the e2e tests, the way controller-runtime's envtest
# does, plus kube-controller-manager, kube-scheduler and kwok (3 fake nodes whose pods really
# start, become ready and roll):
#
#   etcd -> kube-apiserver (own CA, client certs, RBAC, audit log) -> kube-controller-manager,
#   kube-scheduler -> fake Nodes -> kwok
#
# Everything listens on 127.0.0.1 on free ports. Files (the cluster dir,
# ${SQE_CLUSTER_DIR:-$PWD/target/cluster}):
#
#   kubeconfig          admin kubeconfig (CN=admin, O=system:masters); printed at the end
#   cluster.env         KUBECONFIG, ports, bin dir, as shell assignments
#   pki/                CAs, serving and client certs, service-account keys
#   audit-policy.yaml   Metadata level for every request
#   logs/               <component>.log and audit.log (the previous run's are in logs.prev/)
#   pids/               <component>.pid
#   etcd/               etcd data (removed by down.sh)
#
# Environment:
#   SQE_CLUSTER_DIR      cluster dir (default $PWD/target/cluster)
#   SQE_CACHE_DIR        binaries cache root, see build.sh
#   SQE_CLUSTER_TIMEOUT  seconds to wait for each component to become ready (default 180)
#   SQE_APISERVER_PORT   fixed kube-apiserver port (default: a free one)
#   SQE_FAKE_NODES       number of fake nodes (default 3)
#
# Stop with down.sh. If the cluster of this dir is already up and healthy, up.sh says so and
# exits 0.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${SQE_CLUSTER_DIR:-$PWD/target/cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
timeout=${SQE_CLUSTER_TIMEOUT:-180}
nodes=${SQE_FAKE_NODES:-3}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { echo "up.sh: $*" >&2; }
# mkca, mkcert, mkkubeconfig, free_ports
source "$here/common.sh"
die() { log "$*"; exit 1; }

for c in openssl curl kubectl; do
    command -v "$c" >/dev/null || die "$c is not on PATH"
done

if [[ -n ${KUBECONFIG:-} && $KUBECONFIG != "$dir/kubeconfig" ]]; then
    log "note: KUBECONFIG is set ($KUBECONFIG); the e2e suite uses that cluster, not this one."
fi

alive() { # <component>: its pid file names a live process (a zombie is not)
    local f=$dir/pids/$1.pid pid
    [[ -f $f ]] || return 1
    pid=$(<"$f")
    kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

# --- already running? -------------------------------------------------------------------------
running=0
for c in "${components[@]}"; do alive "$c" && running=$((running + 1)); done
if ((running == ${#components[@]})) && [[ -f $dir/kubeconfig ]] &&
    kubectl --kubeconfig "$dir/kubeconfig" get --raw=/readyz >/dev/null 2>&1; then
    log "cluster in $dir is already up"
    echo "KUBECONFIG=$dir/kubeconfig"
    exit 0
fi
if ((running > 0)); then
    die "part of a cluster is still running in $dir (see $dir/pids); run $here/down.sh first"
fi

# --- binaries ---------------------------------------------------------------------------------
bin=$("$here/build.sh" | tail -1)
for c in "${components[@]}"; do [[ -x $bin/$c ]] || die "missing $bin/$c"; done

# --- fresh state ------------------------------------------------------------------------------
rm -rf "$dir/pids" "$dir/etcd" "$dir/logs.prev" "$dir/kubeconfig" "$dir/flexvolume"
[[ -d $dir/logs ]] && mv "$dir/logs" "$dir/logs.prev"
mkdir -p "$dir/pids" "$dir/logs" "$dir/pki" "$dir/etcd"
chmod 700 "$dir/etcd" "$dir/pki"

# On any failure: show what the failing component said, stop what was started, keep logs.
started=0
on_exit() {
    local rc=$?
    if ((rc != 0 && started)); then
        log "start-up failed; stopping what was started (logs kept in $dir/logs)"
        SQE_CLUSTER_DIR=$dir "$here/down.sh" >&2 || true
    fi
}
trap on_exit EXIT

# --- ports --------------------------------------------------------------------------------------
read -r etcd_port etcd_peer_port api_port kcm_port sched_port kwok_port < <(free_ports 6)
api_port=${SQE_APISERVER_PORT:-$api_port}

# --- PKI ----------------------------------------------------------------------------------------
pki=$dir/pki
days=3650
if [[ ! -f $pki/client-ca.crt || ! -f $pki/sa.pub || ! -f $pki/kwok.crt || ! -f $pki/front-proxy-client.crt || ! -f $pki/apiserver-kubelet-client.crt ]]; then
    log "creating CAs and certificates in $pki"
    rm -f "$pki"/*
    mkca ca sqe-e2e-ca                 # signs serving certs; clients trust it
    mkca client-ca sqe-e2e-client-ca   # signs client certs; the API server trusts it
    mkca front-proxy-ca sqe-e2e-front-proxy-ca # request-header auth (aggregated APIs, delegated authn)
    mkcert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
    mkcert serving ca "/CN=kube-apiserver" serverAuth \
        "DNS:localhost,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1"
    mkcert admin client-ca "/O=system:masters/CN=admin" clientAuth
    mkcert kube-controller-manager client-ca "/CN=system:kube-controller-manager" clientAuth
    mkcert kube-scheduler client-ca "/CN=system:kube-scheduler" clientAuth
    # kwok plays every kubelet (node and pod status, leases, pod deletion)
    mkcert kwok client-ca "/O=system:masters/CN=system:kwok" clientAuth
    # the API server's identity towards kubelets (logs, exec, port-forward on a real node)
    mkcert apiserver-kubelet-client client-ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    chmod 600 "$pki"/*.key
fi

# --- kubeconfigs ----------------------------------------------------------------------------------
server=https://127.0.0.1:$api_port
for c in kube-controller-manager kube-scheduler kwok; do mkkubeconfig "$pki/$c.kubeconfig" "$c"; done

# --- audit policy -----------------------------------------------------------------------------------
cat >"$dir/audit-policy.yaml" <<'EOF'
# Every request at Metadata level (who, what, verb, response code; no bodies), logged once
# when the response is complete.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
EOF

# --- process helpers --------------------------------------------------------------------------------
start() { # <component> <binary> [args...]: in its own session, pid to pids/, output to logs/
    local name=$1
    shift
    started=1
    # shellcheck disable=SC2016 # $$ and $1 are for the inner bash
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' start "$dir/pids/$name.pid" "$@" \
        </dev/null >"$dir/logs/$name.log" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do [[ -s $dir/pids/$name.pid ]] && break; sleep 0.1; done
    [[ -s $dir/pids/$name.pid ]] || die "$name did not start"
}

wait_for() { # <component> <description> <command...>: poll until the command succeeds
    local name=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$name"; then
            log "$name exited; last lines of $dir/logs/$name.log:"
            tail -n 30 "$dir/logs/$name.log" >&2 || true
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout}s waiting for $what; last lines of $dir/logs/$name.log:"
            tail -n 30 "$dir/logs/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    log "$what ($((SECONDS - t0))s)"
}

admin=(--cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key")
t0=$SECONDS

# --- etcd ------------------------------------------------------------------------------------------
start etcd "$bin/etcd" \
    --name=sqe-e2e \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster="sqe-e2e=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync=true \
    --log-level=warn
etcd_health() { curl -sf "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
wait_for etcd "etcd ready on 127.0.0.1:$etcd_port" etcd_health

# --- kube-apiserver ----------------------------------------------------------------------------------
start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$api_port" \
    --tls-cert-file="$pki/serving.crt" \
    --tls-private-key-file="$pki/serving.key" \
    --client-ca-file="$pki/client-ca.crt" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --endpoint-reconciler-type=none \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" \
    --proxy-client-key-file="$pki/front-proxy-client.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --audit-policy-file="$dir/audit-policy.yaml" \
    --audit-log-path="$dir/logs/audit.log" \
    --audit-log-maxsize=0 \
    --profiling=false
api_ready() { curl -sf "${admin[@]}" "$server/readyz"; }
wait_for kube-apiserver "kube-apiserver ready on $server" api_ready

# The admin kubeconfig is written once the API server answers.
mkkubeconfig "$dir/kubeconfig" admin
kc=(kubectl --kubeconfig "$dir/kubeconfig")

# --- kube-controller-manager and kube-scheduler ---------------------------------------------------------
start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$pki/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$pki/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$pki/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$kcm_port" \
    --tls-cert-file="$pki/serving.crt" \
    --tls-private-key-file="$pki/serving.key" \
    --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/client-ca.crt" \
    --cluster-signing-key-file="$pki/client-ca.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --flex-volume-plugin-dir="$dir/flexvolume" \
    --leader-elect=false \
    --profiling=false
start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$pki/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$pki/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$pki/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$sched_port" \
    --tls-cert-file="$pki/serving.crt" \
    --tls-private-key-file="$pki/serving.key" \
    --leader-elect=false \
    --profiling=false
kcm_ready() { curl -sf --cacert "$pki/ca.crt" "https://127.0.0.1:$kcm_port/healthz"; }
sched_ready() { curl -sf --cacert "$pki/ca.crt" "https://127.0.0.1:$sched_port/healthz"; }
wait_for kube-controller-manager "kube-controller-manager healthy on 127.0.0.1:$kcm_port" kcm_ready
wait_for kube-scheduler "kube-scheduler healthy on 127.0.0.1:$sched_port" sched_ready

# --- fake nodes and kwok -----------------------------------------------------------------------------------
for ((i = 0; i < nodes; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    topology.kubernetes.io/zone: zone-$((i % 3))
status:
  allocatable: {cpu: "16", memory: 64Gi, pods: "110"}
  capacity: {cpu: "16", memory: 64Gi, pods: "110"}
EOF
done >"$dir/fake-nodes.yaml"
((nodes == 0)) || "${kc[@]}" apply -f "$dir/fake-nodes.yaml" >/dev/null

start kwok "$bin/kwok" \
    --kubeconfig="$pki/kwok.kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=10.244.0.0/16 \
    --node-ip=10.0.1.1 \
    --node-lease-duration-seconds=40 \
    --server-address="127.0.0.1:$kwok_port" \
    -c "$here/stages.yaml"
nodes_ready() {
    local n
    n=$("${kc[@]}" get nodes -l type=kwok \
        -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
    ((n == nodes))
}
wait_for kwok "$nodes fake nodes Ready" nodes_ready

# Pods can only be created once the service-account controller has made the default SA.
default_sa() { "${kc[@]}" -n default get serviceaccount default; }
wait_for kube-controller-manager "default service account created" default_sa

cat >"$dir/cluster.env" <<EOF
KUBECONFIG=$dir/kubeconfig
SQE_CLUSTER_DIR=$dir
SQE_K8S_BIN=$bin
SQE_APISERVER_URL=$server
SQE_ETCD_URL=http://127.0.0.1:$etcd_port
SQE_KCM_PORT=$kcm_port
SQE_SCHEDULER_PORT=$sched_port
SQE_KWOK_PORT=$kwok_port
SQE_AUDIT_LOG=$dir/logs/audit.log
EOF

log "cluster up in $((SECONDS - t0))s: $server (etcd :$etcd_port, controller-manager :$kcm_port, scheduler :$sched_port, kwok :$kwok_port)"
log "audit log: $dir/logs/audit.log; stop with $here/down.sh"
echo "KUBECONFIG=$dir/kubeconfig"
