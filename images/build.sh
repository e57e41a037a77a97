#!/usr/bin/env bash
# Builds the engine and operator images with buildah (no daemon) from Dockerfile.engine and
# Dockerfile.operator, and writes them as archives that containerd imports
# (`ctr -n k8s.io images import`), with their sizes.
#
#   build.sh [--from-source]
#   build.sh --engine-only     only the engine image: with SQE_STAMP_VERSION=<v> its binary is
#                              stamped with that version (images/stamp-version.sh) and tagged <v>,
#                              archive target/images/sqe-<v>.tar: a second image of the same source
#                              for upgrade tests; SQE_IMAGE_ENV="K=V ..." adds environment
#                              variables to that image (e.g. SQE_TEST_PROTOCOL_VERSION=2: a build
#                              of the worker protocol constant one ahead)
#
# Default: only the Dockerfiles' last stage runs. The binaries `make build` made are staged by
# images/rootfs.sh into target/images/<image>/rootfs and handed to buildah as the named build
# context `dist`, which replaces the Dockerfile stage of that name: the workspace is not
# compiled a second time. --from-source runs every stage (cargo-chef, the workspace build) on the
# Rust base image SQE_RUST_IMAGE (a localhost/ image: nothing is pulled from a registry).
#
# Environment: SQE_CACHE_DIR, TARGET_DIR (where `make build` put the binaries; default target),
# IMAGE_TAG (default the workspace
# version), IMAGE_REPOSITORY (default ghcr.io/sqe-dev), SQE_BUILDAH (a buildah to use).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
from_source=0 engine_only=0
case "${1:-}" in
--from-source) from_source=1 ;;
--engine-only) engine_only=1 ;;
"") ;;
*) echo "usage: $0 [--from-source|--engine-only]" >&2; exit 2 ;;
esac

target=${TARGET_DIR:-target}
bin=$target/release
out=$root/target/images # always in the checkout: the suites and the node look here
version=$(awk -F'"' '/^\[workspace.package\]/ { p = 1 } p && /^version/ { print $2; exit }' Cargo.toml)
stamp=${SQE_STAMP_VERSION:-}
SQE_IMAGE_ENV=${SQE_IMAGE_ENV:-}
tag=${IMAGE_TAG:-${stamp:-$version}}
repo=${IMAGE_REPOSITORY:-ghcr.io/sqe-dev}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)

tools=$(e2e/cluster/debs.sh)
export SQE_BUILDAH=${SQE_BUILDAH:-$tools/bin/buildah}
mkdir -p "$out"
store=$out/buildah
source images/buildah.sh
trap bh_cleanup EXIT

log() { echo "images: $*" >&2; }

build() { # <name> <dockerfile> <rootfs args...>
    local image=$repo/$1:$tag name=$1 dockerfile=$2 context=()
    shift 2
    [[ -n $stamp ]] && name=$name-$stamp # its own staging dir and archive
    local t0=$SECONDS
    if [[ $from_source == 0 ]]; then
        images/rootfs.sh "$out/$name/rootfs" "$@"
        if [[ -n $stamp ]]; then images/stamp-version.sh "$out/$name/rootfs/usr/local/bin/sqe-server" "$stamp"; fi
        context=(--build-context "dist=$out/$name")
    else
        # No registry is reachable here, and nothing may be pulled from one: the Rust base
        # image must already be in buildah's storage under a localhost/ name.
        [[ ${SQE_RUST_IMAGE:-} == localhost/* ]] || {
            log "--from-source needs SQE_RUST_IMAGE=localhost/<a Rust 1.95 image in $store> (no stand-in builder base is made yet; docs/images.md)"
            exit 2
        }
        context=(--build-arg "RUST_IMAGE=$SQE_RUST_IMAGE" --layers)
    fi
    local envs=()
    for kv in ${SQE_IMAGE_ENV:-}; do envs+=(--env "$kv"); done
    bh bud --timestamp "$epoch" "${envs[@]}" \
        --build-arg VERSION="$tag" --build-arg REVISION="$revision" --build-arg CREATED="$created" \
        "${context[@]}" -f "$dockerfile" -t "$image" . >"$out/$name.build.log" 2>&1 ||
        { tail -30 "$out/$name.build.log" >&2; log "building $image failed (log: $out/$name.build.log)"; exit 1; }
    rm -f "$out/$name.tar"
    bh push --quiet "$image" "docker-archive:$out/$name.tar:$image" >/dev/null
    local layers unpacked compressed
    layers=$(tar -tf "$out/$name.tar" | grep -c '\.tar$\|/layer.tar$' || true)
    unpacked=$(stat -c %s "$out/$name.tar")
    compressed=$(gzip -1 -c "$out/$name.tar" | wc -c)
    printf '%s\t%s\t%d\t%d\t%d\n' "$name" "$image" "$unpacked" "$compressed" "$((SECONDS - t0))" >>"$out/sizes.tsv"
    log "$image: $((unpacked / 1000000)) MB uncompressed, $((compressed / 1000000)) MB gzip, $layers layer(s), $((SECONDS - t0)) s -> $out/$name.tar"
}

[[ -z $stamp$SQE_IMAGE_ENV || $engine_only == 1 ]] || { log "SQE_STAMP_VERSION and SQE_IMAGE_ENV need --engine-only"; exit 2; }
[[ -n $stamp ]] || rm -f "$out/sizes.tsv"
if [[ $from_source == 0 ]]; then
    for exe in sqe-server sqe-cli sqe-operator; do
        [[ -x $bin/$exe ]] || { log "$bin/$exe is missing: run make build first"; exit 1; }
    done
fi
build sqe Dockerfile.engine "$bin/sqe-server=sqe-server,sqe-worker" "$bin/sqe-cli"
[[ $engine_only == 1 ]] || build sqe-operator Dockerfile.operator "$bin/sqe-operator"
