#!/usr/bin/env bash
# The stand-in for Dockerfile.engine's and Dockerfile.operator's Rust base image
# (docker.io/library/rust:<version>-slim-bookworm, which cannot be pulled here): what that image
# holds, made on this machine without a registry.
#
#   - a Debian bookworm root filesystem with gcc, libc6-dev and ca-certificates (the C toolchain
#     that build scripts use), made by mmdebstrap from the Debian archive this machine's apt
#     uses (mmdebstrap itself unpacked from its package, not installed);
#   - the Rust toolchain of rust-toolchain.toml, copied from this machine's rustup (rustc, cargo,
#     the standard library; no documentation) into /usr/local;
#   - the official image's environment: CARGO_HOME=/usr/local/cargo, PATH with its bin.
#
# It is committed as localhost/sqe-rust-base:<rust version> into buildah's storage under
# target/images/buildah, and its name printed as the last line. The Debian tree is cached as
# ${SQE_CACHE_DIR:-$HOME/.cache/sqe}/rust-base-bookworm-<hash>/rootfs.tar.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SQE_CACHE_DIR:-$HOME/.cache/sqe}
rust=$(awk -F'"' '/^channel/ { print $2 }' "$root/rust-toolchain.toml")
sysroot=$(cd "$root" && rustc --print sysroot)
[[ $("$sysroot/bin/rustc" --version) == "rustc $rust "* ]] || { echo "rust-base.sh: $sysroot is not Rust $rust" >&2; exit 1; }
image=localhost/sqe-rust-base:$rust
log() { echo "rust-base: $*" >&2; }

store=$root/target/images/buildah
SQE_BUILDAH=${SQE_BUILDAH:-$("$root/e2e/cluster/debs.sh" | tail -1)/bin/buildah}
export SQE_BUILDAH
source "$root/images/buildah.sh"
if bh inspect --type image "$image" >/dev/null 2>&1; then echo "$image"; exit 0; fi

key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
dir=$cache/rust-base-bookworm-$key
tmp=$(mktemp -d "$cache/rust-base.tmp.XXXXXX")
ctr=
trap '[[ -z $ctr ]] || bh rm "$ctr" >/dev/null 2>&1; rm -rf "$tmp"; bh_cleanup' EXIT
t0=$SECONDS
if [[ ! -f $dir/rootfs.tar ]]; then
    log "making the Debian tree with mmdebstrap"
    (cd "$tmp" && apt-get download mmdebstrap >/dev/null 2>&1) || { apt-get update -qq && (cd "$tmp" && apt-get download mmdebstrap >/dev/null); }
    dpkg-deb -x "$tmp"/mmdebstrap_*.deb "$tmp/mmdebstrap"
    PATH=$tmp/mmdebstrap/usr/bin:$PATH perl "$tmp/mmdebstrap/usr/bin/mmdebstrap" --quiet --mode=root --variant=apt \
        --include=gcc,libc6-dev,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' bookworm "$tmp/rootfs" >&2
    tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
    rm -rf "$dir" && mkdir -p "$dir" && mv "$tmp/rootfs.tar" "$dir/rootfs.tar"
    rm -rf "$tmp/rootfs"
fi

ctr=$(bh from scratch)
mnt=$(bh mount "$ctr")
tar -C "$mnt" -xf "$dir/rootfs.tar"
mkdir -p "$mnt/usr/local/cargo/bin"
for d in bin lib libexec etc; do [[ -d $sysroot/$d ]] && cp -a "$sysroot/$d/." "$mnt/usr/local/$d/"; done
bh unmount "$ctr" >/dev/null
bh config --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label "org.opencontainers.image.description=SQE's stand-in for rust:$rust-slim-bookworm" "$ctr"
bh commit --quiet "$ctr" "$image" >/dev/null
log "$image made in $((SECONDS - t0)) s"
echo "$image"
