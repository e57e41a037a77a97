#!/usr/bin/env bash
# Regenerates the wrapper modules in gomod/ for other versions (then commit gomod/ and run
# build.sh, which builds into a new cache dir keyed by the versions):
#
#   gen-gomod.sh <k8s version> <etcd version> <kwok version>   e.g. v1.34.4 v3.6.16 v0.8.0
#
# k8s: k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
# ./staging/...; a dependent module must replace each with the matching v0.<minor>.<patch>.
# The list is read from that version's own go.mod, with its godebug lines.
# etcd: the server module's go.mod replaces its sibling modules with ../api etc.; pin them to
# the same release. kwok needs nothing special.
set -euo pipefail

[[ $# == 3 ]] || { echo "usage: $0 <k8s vX.Y.Z> <etcd v3.X.Y> <kwok v0.X.Y>" >&2; exit 2; }
k8s=$1 etcd=$2 kwok=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${SQE_CACHE_DIR:-$HOME/.cache/sqe}
export GOMODCACHE=${SQE_GO_MODCACHE:-$cache/go/mod} GOFLAGS=-modcacherw GOWORK=off

k8s_mod=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')
k8s_go=$(awk '$1 == "go" { print $2; exit }' "$k8s_mod")
staging_version=v0.${k8s#v1.}

d=$here/gomod/k8s
mkdir -p "$d"
rm -f "$d/go.mod" "$d/go.sum"
{
    echo "// Wrapper module: builds kube-apiserver, kube-controller-manager and kube-scheduler"
    echo "// from k8s.io/kubernetes on the Go module proxy. Regenerate with ../../gen-gomod.sh."
    echo "module sqe.local/e2e/cluster/k8s"
    echo
    echo "go $k8s_go"
    echo
    grep '^godebug' "$k8s_mod" || true
    echo
    echo "require k8s.io/kubernetes $k8s"
    echo
    echo "replace ("
    grep '=> ./staging/src/' "$k8s_mod" | awk -v v="$staging_version" '{ print "\t" $1 " => " $1 " " v }'
    echo ")"
} >"$d/go.mod"
(cd "$d" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$k8s" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$k8s" "k8s.io/kubernetes/cmd/kube-scheduler@$k8s")

etcd_mod=$(cd /tmp && go mod download -json "go.etcd.io/etcd/server/v3@$etcd" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')
etcd_go=$(awk '$1 == "go" { print $2; exit }' "$etcd_mod")
d=$here/gomod/etcd
mkdir -p "$d"
rm -f "$d/go.mod" "$d/go.sum"
{
    echo "// Wrapper module: builds the etcd server (go.etcd.io/etcd/server/v3, whose go.mod has"
    echo "// replaces, so \`go install\` refuses it). The replaces pin etcd's sibling modules to the"
    echo "// same release, as upstream's ../api etc. would. Regenerate with ../../gen-gomod.sh."
    echo "module sqe.local/e2e/cluster/etcd"
    echo
    echo "go $etcd_go"
    echo
    echo "require go.etcd.io/etcd/server/v3 $etcd"
    echo
    echo "replace ("
    grep -E '^\s*go\.etcd\.io/etcd/[a-z/0-9]+ => \.\./' "$etcd_mod" | awk -v v="$etcd" '{ print "\t" $1 " => " $1 " " v }'
    echo ")"
} >"$d/go.mod"
(cd "$d" && go get -tool "go.etcd.io/etcd/server/v3@$etcd")

kwok_mod=$(cd /tmp && go mod download -json "sigs.k8s.io/kwok@$kwok" | sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p')
kwok_go=$(awk '$1 == "go" { print $2; exit }' "$kwok_mod")
d=$here/gomod/kwok
mkdir -p "$d"
rm -f "$d/go.mod" "$d/go.sum"
{
    echo "// Wrapper module: builds kwok, pinned by go.sum like the other two."
    echo "// Regenerate with ../../gen-gomod.sh."
    echo "module sqe.local/e2e/cluster/kwok"
    echo
    echo "go $kwok_go"
} >"$d/go.mod"
(cd "$d" && go get -tool "sigs.k8s.io/kwok/cmd/kwok@$kwok")

echo "gen-gomod.sh: wrapper modules for k8s $k8s, etcd $etcd, kwok $kwok written to $here/gomod" >&2
echo "gen-gomod.sh: if the kwok version changed, refresh stages.yaml from its kustomize/stage/ (keep the SQE: changes)" >&2
