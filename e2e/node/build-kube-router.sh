#!/usr/bin/env bash
# Builds kube-router (gomod/kube-router), the real node's NetworkPolicy controller: run with
# only its firewall on, it enforces NetworkPolicies with iptables and ipset on the bridge CNI.
# Cached by its go.mod/go.sum under
#
#   ${SQE_CACHE_DIR:-$HOME/.cache/sqe}/kube-router-<v>/bin
#
# and prints that directory as the last line on stdout. Environment as ./build.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod=$here/gomod/kube-router
version=$(awk '$1 == "github.com/cloudnativelabs/kube-router/v2" { print $2; exit }' "$mod/go.mod")
[[ -n $version ]] || { echo "build-kube-router.sh: no kube-router version in $mod/go.mod" >&2; exit 1; }
cache=${SQE_CACHE_DIR:-$HOME/.cache/sqe}
bin=$cache/kube-router-$version/bin
stamp_now=$(cat "$mod"/go.{mod,sum} "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [[ -x $bin/kube-router && -f $bin/.stamp && $(<"$bin/.stamp") == "$stamp_now" ]]; then
    echo "$bin"
    exit 0
fi

command -v go >/dev/null || { echo "build-kube-router.sh: go is not on PATH" >&2; exit 1; }
export GOMODCACHE=${SQE_GO_MODCACHE:-$cache/go/mod}
export GOCACHE=${SQE_GO_BUILDCACHE:-$cache/go/build}
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw" CGO_ENABLED=0 GOWORK=off
mkdir -p "$GOMODCACHE" "$GOCACHE" "$(dirname "$bin")"
tmp=$(mktemp -d "$(dirname "$bin")/bin.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
echo "build-kube-router.sh: building kube-router $version" >&2
p=github.com/cloudnativelabs/kube-router/v2/pkg/version
(cd "$mod" && nice -n "${SQE_GO_NICE:-19}" go build -trimpath \
    -ldflags "-s -w -X $p.Version=$version -X $p.BuildDate=" -o "$tmp/kube-router" \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
"$tmp/kube-router" --version >&2
echo "$stamp_now" >"$tmp/.stamp"
rm -rf "$bin"
mv "$tmp" "$bin"
trap - EXIT
echo "build-kube-router.sh: built in $((SECONDS - t0))s into $bin" >&2
echo "$bin"
