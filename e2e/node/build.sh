#!/usr/bin/env bash
# Builds what a real node runs beside containerd: the kubelet and kube-proxy (from the same
# k8s.io/kubernetes release as the control plane, through the wrapper module gomod/k8s),
# CoreDNS (gomod/coredns), and the pause binary of the sandbox image (gcc -static of the
# release's build/pause/linux/pause.c), into a cache directory keyed by the versions:
#
#   ${SQE_CACHE_DIR:-$HOME/.cache/sqe}/node-k8s-<v>-coredns-<v>/bin
#
# Prints that directory as the last line on stdout. Idempotent, like ../cluster/build.sh.
# Environment: SQE_CACHE_DIR, SQE_GO_NICE (default 19), SQE_GO_MODCACHE, SQE_GO_BUILDCACHE.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
gomod=$here/gomod
modver() { # <go.mod> <module path>
    awk -v m="$2" '($1 == m || $1 == "require" && $2 == m) { for (i = 1; i <= NF; i++) if ($i ~ /^v[0-9]/) { print $i; exit } }' "$1"
}
k8s_version=$(modver "$gomod/k8s/go.mod" k8s.io/kubernetes)
coredns_version=$(modver "$gomod/coredns/go.mod" github.com/coredns/coredns)
[[ -n $k8s_version && -n $coredns_version ]] || { echo "node/build.sh: versions not found in $gomod" >&2; exit 1; }

cache=${SQE_CACHE_DIR:-$HOME/.cache/sqe}
bin=$cache/node-k8s-$k8s_version-coredns-$coredns_version/bin
binaries=(kubelet kube-proxy coredns pause)
stamp_now=$(cat "$gomod"/{k8s,coredns}/go.{mod,sum} "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [[ -f $bin/.stamp && $(<"$bin/.stamp") == "$stamp_now" ]]; then
    ok=1
    for b in "${binaries[@]}"; do [[ -x $bin/$b ]] || ok=0; done
    if [[ $ok == 1 ]]; then echo "$bin"; exit 0; fi
fi

command -v go >/dev/null || { echo "node/build.sh: go is not on PATH" >&2; exit 1; }
command -v gcc >/dev/null || { echo "node/build.sh: gcc is not on PATH (for the pause binary)" >&2; exit 1; }
export GOMODCACHE=${SQE_GO_MODCACHE:-$cache/go/mod}
export GOCACHE=${SQE_GO_BUILDCACHE:-$cache/go/build}
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw" CGO_ENABLED=0 GOWORK=off
mkdir -p "$GOMODCACHE" "$GOCACHE" "$(dirname "$bin")"
nice=(nice -n "${SQE_GO_NICE:-19}")
tmp=$(mktemp -d "$(dirname "$bin")/bin.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { echo "node/build.sh: $*" >&2; }
t0=$SECONDS

log "building kubelet, kube-proxy $k8s_version"
info=$(cd "$gomod/k8s" && go mod download -json "k8s.io/kubernetes@$k8s_version")
k8s_date=$(sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "$(sed -n 's/.*"Info": *"\([^"]*\)".*/\1/p' <<<"$info")")
k8s_dir=$(sed -n 's/.*"Dir": *"\([^"]*\)".*/\1/p' <<<"$info")
minor=${k8s_version#v*.}; minor=${minor%%.*}
major=${k8s_version#v}; major=${major%%.*}
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$k8s_date -X $p.gitCommit="
done
(cd "$gomod/k8s" && "${nice[@]}" go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
log "kubelet, kube-proxy done after $((SECONDS - t0))s"

log "building coredns $coredns_version"
(cd "$gomod/coredns" && "${nice[@]}" go build -trimpath -ldflags "-s -w" -o "$tmp/coredns" github.com/coredns/coredns)
log "coredns done after $((SECONDS - t0))s"

gcc -Os -static -DVERSION="\"$k8s_version-sqe\"" -o "$tmp/pause" "$k8s_dir/build/pause/linux/pause.c"
strip "$tmp/pause"

"$tmp/kubelet" --version >&2
"$tmp/coredns" -version | head -1 >&2
echo "$stamp_now" >"$tmp/.stamp"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
log "built in $((SECONDS - t0))s into $bin"
echo "$bin"
