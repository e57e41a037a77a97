#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go
# module proxy, through the wrapper modules in gomod/ (their go.sum pins every dependency),
# into a cache directory keyed by the three versions:
#
#   ${SQE_CACHE_DIR:-$HOME/.cache/sqe}/k8s-<v>-etcd-<v>-kwok-<v>/bin
#
# Prints that bin directory as the last line on stdout (everything else goes to stderr).
# Idempotent: when the five binaries are there and were built from the same wrapper modules,
# it returns at once.
#
#   build.sh               build if needed, print the bin dir
#   build.sh --print-dir   only print the bin dir (no check, no build)
#   build.sh --force       rebuild even if the binaries are there
#
# Environment:
#   SQE_CACHE_DIR    cache root (default ~/.cache/sqe)
#   SQE_GO_NICE      niceness of the Go build (default 19: a concurrent cargo build keeps the CPU)
#   SQE_GO_MODCACHE  GOMODCACHE to use (default $SQE_CACHE_DIR/go/mod)
#   SQE_GO_BUILDCACHE GOCACHE to use (default $SQE_CACHE_DIR/go/build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gomod=$here/gomod

# Versions come from the wrapper modules: one source of truth.
modver() { # <go.mod> <module path>
    local v
    v=$(awk -v m="$2" '($1 == m || $1 == "require" && $2 == m) { for (i = 1; i <= NF; i++) if ($i ~ /^v[0-9]/) { print $i; exit } }' "$1")
    [[ -n $v ]] || { echo "build.sh: no version of $2 in $1" >&2; exit 1; }
    echo "$v"
}
k8s_version=$(modver "$gomod/k8s/go.mod" k8s.io/kubernetes)
etcd_version=$(modver "$gomod/etcd/go.mod" go.etcd.io/etcd/server/v3)
kwok_version=$(modver "$gomod/kwok/go.mod" sigs.k8s.io/kwok)

cache=${SQE_CACHE_DIR:-$HOME/.cache/sqe}
key=k8s-${k8s_version}-etcd-${etcd_version}-kwok-${kwok_version}
bin=$cache/$key/bin
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

force=0
case "${1:-}" in
--print-dir) echo "$bin"; exit 0 ;;
--force) force=1 ;;
"") ;;
*) echo "usage: $0 [--print-dir|--force]" >&2; exit 2 ;;
esac

# The stamp records which wrapper modules the binaries were built from.
stamp_now=$(cat "$gomod"/{k8s,etcd,kwok}/go.{mod,sum} | sha256sum | cut -d' ' -f1)
if [[ $force == 0 && -f $bin/.stamp && $(<"$bin/.stamp") == "$stamp_now" ]]; then
    ok=1
    for b in "${binaries[@]}"; do [[ -x $bin/$b ]] || ok=0; done
    if [[ $ok == 1 ]]; then echo "$bin"; exit 0; fi
fi

command -v go >/dev/null || { echo "build.sh: go is not on PATH (Go >= 1.26 is needed)" >&2; exit 1; }

export GOMODCACHE=${SQE_GO_MODCACHE:-$cache/go/mod}
export GOCACHE=${SQE_GO_BUILDCACHE:-$cache/go/build}
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw" # keep the caller's flags; -modcacherw so `rm -rf` of the cache works
export CGO_ENABLED=0
export GOWORK=off
mkdir -p "$GOMODCACHE" "$GOCACHE" "$cache/$key"
nice=(nice -n "${SQE_GO_NICE:-19}")

# Build into a scratch dir and move into place at the end, so an interrupted build never
# leaves binaries that the check above would take for complete.
tmp=$(mktemp -d "$cache/$key/bin.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

log() { echo "build.sh: $*" >&2; }
t0=$SECONDS

# Release date of a module version, from the proxy's .info file (a reproducible buildDate).
moddate() { # <module path> <version>
    local info
    info=$(cd "$gomod/k8s" && go mod download -json "$1@$2" | sed -n 's/.*"Info": *"\([^"]*\)".*/\1/p')
    sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$info"
}

# --- Kubernetes --------------------------------------------------------------------------
log "building kube-apiserver, kube-controller-manager, kube-scheduler $k8s_version"
k8s_date=$(moddate k8s.io/kubernetes "$k8s_version")
minor=${k8s_version#v*.}; minor=${minor%%.*}
major=${k8s_version#v}; major=${major%%.*}
k8s_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    k8s_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$k8s_date -X $p.gitCommit="
done
(cd "$gomod/k8s" && "${nice[@]}" go build -trimpath -ldflags "$k8s_ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
log "kubernetes done after $((SECONDS - t0))s"

# --- etcd ----------------------------------------------------------------------------------
log "building etcd $etcd_version"
(cd "$gomod/etcd" && "${nice[@]}" go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
log "etcd done after $((SECONDS - t0))s"

# --- kwok ----------------------------------------------------------------------------------
log "building kwok $kwok_version"
(cd "$gomod/kwok" && "${nice[@]}" go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s_version#v}" \
    -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
log "kwok done after $((SECONDS - t0))s"

"$tmp/kube-apiserver" --version >&2
"$tmp/etcd" --version | head -1 >&2
echo "$stamp_now" >"$tmp/.stamp"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
log "built in $((SECONDS - t0))s into $bin"
echo "$bin"
