#!/usr/bin/env bash
# Adds a real node to the local control plane (../cluster/up.sh must be up): containerd + runc,
# the bridge CNI, a kubelet, kube-proxy (iptables), kube-router (NetworkPolicies) and CoreDNS, all as host processes with
# their own directories under $SQE_CLUSTER_DIR/node. Pods really run: the images of
# `make images` are imported into its containerd (imagePullPolicy: Never or IfNotPresent).
#
# The network rule: traffic stays on 127.0.0.0/8 and the bridge this script creates
# ($SQE_NODE_BRIDGE, $SQE_NODE_CIDR). Forwarding from the bridge to anywhere else is dropped
# (FORWARD rules inserted first), nothing is masqueraded, CoreDNS forwards nothing and pods
# get no upstream resolver. Sysctls the kubelet and the bridge change are recorded and
# restored by down.sh, which also removes every rule, mount, cgroup and directory it made.
#
# Environment: SQE_CLUSTER_DIR (default target/cluster), SQE_CACHE_DIR, SQE_NODE_NAME
# (default sqe-node), SQE_NODE_BRIDGE (default sqe-br0), SQE_NODE_CIDR (default
# 10.77.0.0/24: the bridge takes .1), SQE_NODE_IMAGES (archives to import; default
# target/images/*.tar).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${SQE_CLUSTER_DIR:-$PWD/target/cluster}
dir=$(cd "$dir" && pwd)
node=$dir/node
name=${SQE_NODE_NAME:-sqe-node}
bridge=${SQE_NODE_BRIDGE:-sqe-br0}
cidr=${SQE_NODE_CIDR:-10.77.0.0/24}
prefix=${cidr%.*/*}
node_ip=$prefix.1
mask=${cidr#*/}
dns_ip=10.0.0.10 # in the API server's service range (10.0.0.0/24)
timeout=${SQE_CLUSTER_TIMEOUT:-180}

log() { echo "node/up.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[[ $(id -u) == 0 ]] || die "a real node needs root (namespaces, cgroups, iptables)"
[[ -f $dir/cluster.env ]] || die "no control plane in $dir: run make cluster-up first"
# shellcheck disable=SC1091
source "$dir/cluster.env"
[[ -f $node/pids/kubelet.pid ]] && kill -0 "$(<"$node/pids/kubelet.pid")" 2>/dev/null &&
    { log "the node in $node is already up"; exit 0; }

tools=$("$repo/e2e/cluster/debs.sh" | tail -1)
nodebin=$("$here/build.sh" | tail -1)
routerbin=$("$here/build-kube-router.sh" | tail -1)
export PATH=$tools/bin:$PATH
cni_bin=$tools/root/usr/lib/cni
for t in containerd containerd-shim-runc-v2 ctr runc iptables ipset conntrack socat; do
    command -v "$t" >/dev/null || die "$t missing from $tools/bin"
done

mkdir -p "$node"/{pids,logs,pki,containerd,cni/net.d,cni/ipam,kubelet,pod-logs}
# down.sh runs the cleanup modes of these binaries: it finds them here, and never builds them
printf 'SQE_NODE_BIN=%s\nSQE_NODE_ROUTER_BIN=%s\n' "$nodebin" "$routerbin" >"$node/binaries.env"
chmod 700 "$node/pki"
pki=$dir/pki
days=3650
server=$SQE_APISERVER_URL
# mkcert, mkkubeconfig, free_ports
# shellcheck source=../cluster/common.sh
source "$repo/e2e/cluster/common.sh"

started=0
on_exit() {
    local rc=$?
    if ((rc != 0 && started)); then
        log "start-up failed; tearing the node down (logs kept in $node/logs)"
        SQE_CLUSTER_DIR=$dir "$here/down.sh" >&2 || true
    fi
}
trap on_exit EXIT

# --- what down.sh restores ----------------------------------------------------------------
if [[ ! -f $node/restore.env ]]; then
    {
        for s in net.ipv4.ip_forward kernel.panic kernel.panic_on_oops vm.overcommit_memory \
            net.bridge.bridge-nf-call-iptables; do
            v=$(sysctl -n "$s" 2>/dev/null) && echo "sysctl $s=$v"
        done
        # directories the kubelet, containerd and CNI hard-code: removed on teardown only when
        # they did not exist before
        for d in /var/lib/kubelet /var/log/containers /var/log/pods /run/containerd /var/lib/cni /run/netns /etc/cni; do
            [[ -e $d ]] || echo "rmdir $d"
        done
    } >"$node/restore.env"
fi
started=1

# --- the bridge, and the rules that keep traffic on this machine --------------------------
if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$node_ip/$mask" dev "$bridge"
fi
ip link set "$bridge" up
uplinks=$(ip -o route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }' | sort -u)
iptables -N SQE-NODE-FORWARD 2>/dev/null || iptables -F SQE-NODE-FORWARD
iptables -A SQE-NODE-FORWARD -i "$bridge" ! -o "$bridge" -j DROP
for up in $uplinks; do iptables -A SQE-NODE-FORWARD -o "$up" -j DROP; done
iptables -C FORWARD -j SQE-NODE-FORWARD 2>/dev/null || iptables -I FORWARD 1 -j SQE-NODE-FORWARD
ip6tables -N SQE-NODE-FORWARD 2>/dev/null || ip6tables -F SQE-NODE-FORWARD
ip6tables -A SQE-NODE-FORWARD -i "$bridge" -j DROP
ip6tables -C FORWARD -j SQE-NODE-FORWARD 2>/dev/null || ip6tables -I FORWARD 1 -j SQE-NODE-FORWARD
sysctl -qw net.ipv4.ip_forward=1

# --- certificates and kubeconfigs -----------------------------------------------------------
if [[ ! -f $pki/node-$name.crt ]]; then
    mkcert "node-$name" client-ca "/O=system:nodes/CN=system:node:$name" clientAuth
    mkcert "node-$name-serving" ca "/CN=$name" serverAuth "DNS:$name,IP:$node_ip"
    mkcert kube-proxy client-ca "/CN=system:kube-proxy" clientAuth
    mkcert coredns client-ca "/CN=system:sqe-coredns" clientAuth
fi
[[ -f $pki/kube-router.crt ]] || mkcert kube-router client-ca "/CN=system:sqe-kube-router" clientAuth
mkkubeconfig "$node/pki/kubelet.kubeconfig" "node-$name"
mkkubeconfig "$node/pki/kube-proxy.kubeconfig" kube-proxy
mkkubeconfig "$node/pki/coredns.kubeconfig" coredns
mkkubeconfig "$node/pki/kube-router.kubeconfig" kube-router
kc=(kubectl --kubeconfig "$KUBECONFIG")

read -r kubelet_port kubelet_healthz proxy_healthz proxy_metrics stream_port router_health < <(free_ports 6)
api_port=${SQE_APISERVER_URL##*:}

start() { # <name> <binary> [args...]: in its own session, pid to pids/, output to logs/
    local n=$1
    shift
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' start "$node/pids/$n.pid" "$@" \
        </dev/null >"$node/logs/$n.log" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do [[ -s $node/pids/$n.pid ]] && break; sleep 0.1; done
    [[ -s $node/pids/$n.pid ]] || die "$n did not start"
}
alive() { [[ -f $node/pids/$1.pid ]] && kill -0 "$(<"$node/pids/$1.pid")" 2>/dev/null; }
wait_for() { # <name> <description> <command...>
    local n=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$n"; then log "$n exited:"; tail -n 30 "$node/logs/$n.log" >&2; exit 1; fi
        if ((SECONDS >= deadline)); then log "timed out waiting for $what:"; tail -n 30 "$node/logs/$n.log" >&2; exit 1; fi
        sleep 0.2
    done
    log "$what ($((SECONDS - t0))s)"
}
t0=$SECONDS

# --- the API server, reachable from pods -----------------------------------------------------
# It listens on 127.0.0.1 only; pods reach the `kubernetes` Service (10.0.0.1:443), whose
# endpoint is this forwarder on the bridge address.
start apiserver-forward socat "TCP-LISTEN:$api_port,bind=$node_ip,fork,reuseaddr" "TCP:127.0.0.1:$api_port"
# endpoint_slice <name> <namespace> <service> <port lines>: the Service's endpoint is this host
endpoint_slice() {
    cat <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $1
  namespace: $2
  labels:
    kubernetes.io/service-name: $3
    endpointslice.kubernetes.io/managed-by: sqe-e2e-node
addressType: IPv4
endpoints:
- addresses: ["$node_ip"]
  conditions: {ready: true}
ports:
$4
EOF
}
endpoint_slice kubernetes-sqe-node default kubernetes "- {name: https, port: $api_port, protocol: TCP}" |
    "${kc[@]}" apply -f - >/dev/null

# user_role NAME USER RULES: a ClusterRole sqe-e2e:NAME with RULES (YAML list items), bound to the
# certificate user USER (the node's own components authenticate with client certificates).
user_role() {
    cat <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "sqe-e2e:$1"}
rules:
$3
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "sqe-e2e:$1"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "sqe-e2e:$1"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$2"}
EOF
}

# --- containerd -----------------------------------------------------------------------------
cat >"$node/containerd/config.toml" <<EOF
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
[grpc]
  address = "$node/containerd/containerd.sock"
[ttrpc]
  address = "$node/containerd/containerd.sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # the VM's bounding set lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "$stream_port"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$tools/root/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$node/cni/net.d"
EOF
cat >"$node/cni/net.d/10-sqe.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "sqe-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$node/cni/ipam",
        "ranges": [[{"subnet": "$cidr", "gateway": "$node_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
ctr_=(ctr --address "$node/containerd/containerd.sock" -n k8s.io)
start containerd containerd --config "$node/containerd/config.toml"
wait_for containerd "containerd serving" "${ctr_[@]}" version

# images: the sandbox (pause, built from the release's source) and SQE's own
pause_tar=$node/pause.tar
if [[ ! -f $pause_tar ]]; then
    ctx=$(mktemp -d)
    cp "$nodebin/pause" "$ctx/pause"
    printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
    store=$repo/target/images/buildah
    SQE_BUILDAH=$tools/bin/buildah
    # shellcheck source=../../images/buildah.sh
    source "$repo/images/buildah.sh"
    bh bud -t registry.k8s.io/pause:3.10 "$ctx" >/dev/null
    bh push --quiet registry.k8s.io/pause:3.10 "docker-archive:$pause_tar:registry.k8s.io/pause:3.10" >/dev/null
    bh_cleanup
    rm -rf "$ctx"
fi
images=("$pause_tar")
if [[ -n ${SQE_NODE_IMAGES:-} ]]; then
    read -r -a more <<<"$SQE_NODE_IMAGES"
    images+=("${more[@]}")
else
    for f in "$repo"/target/images/*.tar; do [[ -f $f ]] && images+=("$f"); done
fi
for img in "${images[@]}"; do
    "${ctr_[@]}" images import --no-unpack=false "$img" >/dev/null
    log "imported $(basename "$img")"
done

# --- kubelet --------------------------------------------------------------------------------
printf '# no upstream resolver: pods with dnsPolicy Default resolve nothing\n' >"$node/resolv.conf"
cat >"$node/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
enableServer: true
tlsCertFile: $pki/node-$name-serving.crt
tlsPrivateKeyFile: $pki/node-$name-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/client-ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupsPerQOS: true
failSwapOn: false
failCgroupV1: false
protectKernelDefaults: false
makeIPTablesUtilChains: true
clusterDomain: cluster.local
clusterDNS: [$dns_ip]
resolvConf: $node/resolv.conf
podLogsDir: $node/pod-logs
containerRuntimeEndpoint: unix://$node/containerd/containerd.sock
imageServiceEndpoint: unix://$node/containerd/containerd.sock
# images are imported, never pulled: never collect them, never evict for disk
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "200Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 60
serializeImagePulls: false
nodeStatusReportFrequency: 10s
shutdownGracePeriod: 0s
EOF
start kubelet "$nodebin/kubelet" \
    --config="$node/kubelet.yaml" \
    --kubeconfig="$node/pki/kubelet.kubeconfig" \
    --root-dir="$node/kubelet" \
    --cert-dir="$node/pki" \
    --node-ip="$node_ip" \
    --hostname-override="$name" \
    --node-labels="sqe.dev/node=real"
node_ready() {
    [[ $("${kc[@]}" get node "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}
wait_for kubelet "node $name Ready" node_ready

# --- kube-proxy -----------------------------------------------------------------------------
cat >"$node/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $node/pki/kube-proxy.kubeconfig}
hostnameOverride: $name
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
mode: iptables
clusterCIDR: $cidr
nodePortAddresses: ["$node_ip/32"]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy "$nodebin/kube-proxy" --config="$node/kube-proxy.yaml"
proxy_ready() { curl -sf "http://127.0.0.1:$proxy_healthz/healthz"; }
wait_for kube-proxy "kube-proxy synced" proxy_ready

# --- NetworkPolicies, enforced: kube-router with only its firewall ---------------------------
# It filters the pods' traffic in the FORWARD, INPUT and OUTPUT chains with ipsets of the
# policies' peers; traffic from the node itself (the kubelet's probes) stays allowed.
user_role kube-router system:sqe-kube-router "- apiGroups: [\"\"]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]" | "${kc[@]}" apply -f - >/dev/null
start kube-router "$routerbin/kube-router" \
    --kubeconfig="$node/pki/kube-router.kubeconfig" \
    --hostname-override="$name" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --enable-ipv6=false \
    --service-cluster-ip-range=10.0.0.0/24 \
    --health-port="$router_health" --metrics-port=0
router_ready() { curl -sf "http://127.0.0.1:$router_health/healthz"; }
wait_for kube-router "kube-router enforcing NetworkPolicies" router_ready

# --- CoreDNS: cluster names only, nothing forwarded ------------------------------------------
user_role coredns system:sqe-coredns "- apiGroups: [\"\"]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]" | "${kc[@]}" apply -f - >/dev/null
"${kc[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $dns_ip
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
EOF
endpoint_slice kube-dns-sqe-node kube-system kube-dns "- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}" | "${kc[@]}" apply -f - >/dev/null
cat >"$node/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $node_ip
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $node/pki/coredns.kubeconfig sqe-e2e
        pods insecure
    }
    cache 5
}
.:53 {
    bind $node_ip
    errors
}
EOF
start coredns "$nodebin/coredns" -conf "$node/Corefile"
dns_ready() { python3 - "$node_ip" <<'EOF'
import socket, struct, sys
# an A query for kubernetes.default.svc.cluster.local, answered with at least one record
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
for label in "kubernetes.default.svc.cluster.local".split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(q, (sys.argv[1], 53))
r = s.recv(512)
sys.exit(0 if struct.unpack(">H", r[6:8])[0] > 0 else 1)
EOF
}
wait_for coredns "CoreDNS answers kubernetes.default.svc on $node_ip:53" dns_ready

cat >"$node/node.env" <<EOF
SQE_NODE_NAME=$name
SQE_NODE_IP=$node_ip
SQE_NODE_CIDR=$cidr
SQE_NODE_BRIDGE=$bridge
SQE_NODE_CONTAINERD=$node/containerd/containerd.sock
SQE_NODE_TOOLS=$tools/bin
EOF
log "node $name up in $((SECONDS - t0))s: pods on $cidr (bridge $bridge), DNS $dns_ip; images: ${images[*]##*/}"
log "import more images: $tools/bin/ctr --address $node/containerd/containerd.sock -n k8s.io images import <tar>"
