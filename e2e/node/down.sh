#!/usr/bin/env bash
# Tears down the real node of ./up.sh and leaves the machine as it was: the pods' containers
# and shims, the kubelet, kube-proxy (and its rules: kube-proxy --cleanup), kube-router (its
# rules and ipsets), CoreDNS,
# containerd, the forwarder; the KUBE-*, CNI-* and SQE-NODE-* iptables chains; the mounts
# under the node directory and the network namespaces of its pods; the kubepods cgroups; the
# bridge; the sysctls and the hard-coded directories recorded by up.sh. Logs are kept in
# $SQE_CLUSTER_DIR/node/logs. Safe to run twice, and when up.sh failed half-way.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${SQE_CLUSTER_DIR:-$PWD/target/cluster}
node=$dir/node
bridge=${SQE_NODE_BRIDGE:-sqe-br0}
log() { echo "node/down.sh: $*" >&2; }

[[ -d $node ]] || { log "no node in $dir; nothing to tear down"; exit 0; }
[[ -f $node/node.env ]] && source "$node/node.env" && bridge=$SQE_NODE_BRIDGE
SQE_NODE_BIN= SQE_NODE_ROUTER_BIN=
# shellcheck disable=SC1091
[[ -f $node/binaries.env ]] && source "$node/binaries.env"
tools=$("$repo/e2e/cluster/debs.sh" --print-dir 2>/dev/null | tail -1)
[[ -d $tools/bin ]] && export PATH=$tools/bin:$PATH

stop() { # <name> [signal]: the process of pids/<name>.pid and wait for it
    local f=$node/pids/$1.pid pid
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -"${2:-TERM}" "$pid" 2>/dev/null
        local deadline=$((SECONDS + 15))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null; sleep 0.2; }
        log "stopped $1 (pid $pid)"
    fi
    rm -f "$f"
}

# 1. the kubelet first, so it restarts nothing; then every container: the shims of this
#    containerd (found by its socket path) and the processes in the kubepods cgroups
stop kubelet
sock=$node/containerd/containerd.sock
# a shim runs as `containerd-shim-runc-v2 -namespace k8s.io -id <id> -address <sock>`
shims() { pgrep -f "containerd-shim-runc-v2 .*-address $sock" || true; }
in_kubepods() {
    local d
    for d in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods /sys/fs/cgroup/unified/kubepods; do
        [[ -d $d ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -u
}
for pid in $(in_kubepods); do kill -KILL "$pid" 2>/dev/null; done
for pid in $(shims); do kill -KILL "$pid" 2>/dev/null; done
deadline=$((SECONDS + 10))
while [[ -n $(in_kubepods)$(shims) ]] && ((SECONDS < deadline)); do sleep 0.1; done
stop containerd
stop coredns
stop apiserver-forward
if [[ -f $node/kube-proxy.yaml ]]; then
    stop kube-proxy
    [[ -x $SQE_NODE_BIN/kube-proxy ]] && "$SQE_NODE_BIN/kube-proxy" --cleanup --config="$node/kube-proxy.yaml" >>"$node/logs/kube-proxy-cleanup.log" 2>&1
fi

if [[ -f $node/pids/kube-router.pid ]]; then
    stop kube-router
    [[ -x $SQE_NODE_ROUTER_BIN/kube-router ]] && "$SQE_NODE_ROUTER_BIN/kube-router" --cleanup-config >>"$node/logs/kube-router-cleanup.log" 2>&1
fi

# 2. iptables: our chains, and what the kubelet, kube-proxy and the CNI plugins left
if command -v iptables >/dev/null; then
    for ipt in iptables ip6tables; do
        for table in filter nat mangle raw; do
            chains=$("$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-|SQE-NODE-)/ { print $2 }')
            [[ -n $chains ]] || continue
            # drop the jumps from the built-in chains to them, then the chains
            "$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-A" && $2 !~ /^(KUBE-|CNI-|SQE-NODE-)/ && / -j (KUBE-|CNI-|SQE-NODE-)/' |
                while read -r rule; do
                    read -r -a words <<<"${rule/-A/-D}"
                    "$ipt" -t "$table" "${words[@]}" 2>/dev/null
                done
            for c in $chains; do "$ipt" -t "$table" -F "$c" 2>/dev/null; done
            for c in $chains; do "$ipt" -t "$table" -X "$c" 2>/dev/null; done
        done
    done
fi

# ... and the ipsets kube-router made for the policies' peers (once no rule refers to them)
if command -v ipset >/dev/null; then
    for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router-)'); do ipset destroy "$set" 2>/dev/null; done
fi

# 3. mounts under the node directory (overlay snapshots, shm, kubelet volumes), deepest first
for _ in 1 2 3; do
    mounts=$(awk -v p="$node/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
    [[ -n $mounts ]] || break
    for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
# network namespaces of pods (cni-<uuid>, made by containerd under /run/netns)
for ns in /run/netns/cni-*; do
    [[ -e $ns ]] || continue
    umount "$ns" 2>/dev/null; rm -f "$ns"
done

# 4. cgroups: kubepods in every hierarchy, children first
for root in /sys/fs/cgroup/*/; do
    [[ -d $root/kubepods ]] || continue
    find "$root/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
done

# 5. the bridge (the pods' veths went with their namespaces)
ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge"

# 6. sysctls, and the directories that did not exist before up.sh
if [[ -f $node/restore.env ]]; then
    while read -r what arg; do
        case $what in
        sysctl) sysctl -qw "$arg" 2>/dev/null ;;
        rmdir) rm -rf "$arg" ;;
        esac
    done <"$node/restore.env"
    rm -f "$node/restore.env"
fi

# the node's state; logs stay for a post-mortem
for d in containerd kubelet cni pod-logs pids pki; do rm -rf "${node:?}/$d"; done
rm -f "$node/node.env" "$node/binaries.env" "$node/pause.tar"
log "node in $node torn down (logs in $node/logs)"
