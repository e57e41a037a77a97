#!/usr/bin/env bash
# Stages the runtime tree of an SQE image: the binaries (stripped), the shared libraries they
# load (from ldd), /etc/passwd and /etc/group with the image's user (UID/GID 1000), CA
# certificates, and an empty /tmp. The Dockerfiles' last stage copies this tree onto scratch,
# so the image holds nothing else: no shell, no package manager.
#
#   rootfs.sh <out-dir> <binary>[=<name>[,<alias>...]] ...
#
# <name> renames the binary in /usr/local/bin; each <alias> becomes a symlink to it (one
# executable that picks its role by the name it is started as: sqe-worker -> sqe-server).
# Both `make images` (binaries from `make build`) and the Dockerfiles' from-source builder run
# this script, so the two ways of building produce the same tree.
set -euo pipefail

usage() { echo "usage: $0 <out-dir> <binary>[=<name>[,<alias>...]] ..." >&2; exit 2; }
[[ $# -ge 2 ]] || usage
out=$1; shift

rm -rf "$out"
mkdir -p "$out"/usr/local/bin "$out"/etc/ssl/certs "$out"/tmp
chmod 1777 "$out"/tmp

libs=()
for spec in "$@"; do
    src=${spec%%=*}
    names=${spec#*=}; [[ $spec == *=* ]] || names=$(basename "$src")
    [[ -x $src ]] || { echo "rootfs.sh: $src is not an executable (run make build first)" >&2; exit 1; }
    IFS=, read -r name aliases <<<"$names"
    strip --strip-all -o "$out/usr/local/bin/$name" "$src"
    for alias in ${aliases//,/ }; do ln -sf "$name" "$out/usr/local/bin/$alias"; done
    # every resolved library, and the dynamic loader (the line without "=>")
    while read -r lib; do libs+=("$lib"); done < <(ldd "$src" | awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }')
    if ldd "$src" | grep -q "not found"; then
        echo "rootfs.sh: $src needs a library this machine does not have:" >&2
        ldd "$src" | grep "not found" >&2
        exit 1
    fi
done
for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
    # keep the path the loader looks for (e.g. /lib64/ld-linux-x86-64.so.2), copy the file
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
done

cat >"$out"/etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
sqe:x:1000:1000:sqe:/tmp:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$out"/etc/group <<'GROUP'
root:x:0:
sqe:x:1000:
nogroup:x:65534:
GROUP
# glibc resolves names through these (files first: /etc/hosts that the kubelet mounts)
echo "hosts: files dns" >"$out"/etc/nsswitch.conf

certs=${SQE_CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}
[[ -f $certs ]] || { echo "rootfs.sh: no CA bundle at $certs (install ca-certificates or set SQE_CA_CERTIFICATES)" >&2; exit 1; }
cp -L "$certs" "$out"/etc/ssl/certs/ca-certificates.crt
