#!/usr/bin/env bash
# Stops every process up.sh started for a cluster dir (kwok first, etcd last), removes the etcd
# data, the kubeconfig, cluster.env and users/; keeps logs/ (and pki/, reused by the next up.sh).
#
#   SQE_CLUSTER_DIR   cluster dir (default $PWD/target/cluster)
#   SQE_STOP_TIMEOUT  seconds to wait for each process after SIGTERM before SIGKILL (default 15)
set -euo pipefail

dir=${SQE_CLUSTER_DIR:-$PWD/target/cluster}
grace=${SQE_STOP_TIMEOUT:-15}
log() { echo "down.sh: $*" >&2; }

if [[ ! -d $dir ]]; then
    log "no cluster dir $dir; nothing to stop"
    exit 0
fi

# A stopped process stays a zombie until whoever adopted it reaps it; count that as gone.
running() { # <pid>
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

stop() { # <component>
    local name=$1 f=$dir/pids/$1.pid pid
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    if [[ $pid =~ ^[0-9]+$ ]] && running "$pid"; then
        # Guard against a recycled pid: only signal the process if it still runs our binary.
        if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "/$name "; then
            log "pid $pid of $name runs something else now; not touching it"
        else
            kill -TERM "$pid" 2>/dev/null || true
            local deadline=$((SECONDS + grace))
            while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
            if running "$pid"; then
                log "$name (pid $pid) ignored SIGTERM for ${grace}s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
                while running "$pid"; do sleep 0.1; done
            fi
            log "stopped $name (pid $pid)"
            stopped+=("$pid")
        fi
    fi
    rm -f "$f"
}
stopped=()

for c in sqe-operator kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$c"; done
# up.sh has exited, so its processes were adopted by PID 1 (or a subreaper), which may take a
# moment to reap them; wait a little so a `pgrep` right after down.sh sees no <defunct> entries.
deadline=$((SECONDS + 5))
for pid in "${stopped[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
done
rmdir "$dir/pids" 2>/dev/null || true
rm -rf "$dir/etcd" "$dir/flexvolume" "$dir/kubeconfig" "$dir/cluster.env" "$dir/users"
log "cluster in $dir stopped; logs kept in $dir/logs"
