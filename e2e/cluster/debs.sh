#!/usr/bin/env bash
# Container tools from Debian packages, unpacked into a cache directory instead of installed:
# buildah (images without a daemon) and what a real Kubernetes node needs beside the kubelet
# (containerd, runc, the CNI plugins, iptables, conntrack, ipset, socat). Nothing is written
# outside the cache; the system's package database is not touched.
#
#   ${SQE_CACHE_DIR:-$HOME/.cache/sqe}/debs-<release>-<hash>/
#       root/      the unpacked packages (dpkg -x)
#       bin/       one wrapper per tool: sets LD_LIBRARY_PATH (and XTABLES_LIBDIR) to root/ and
#                  execs it, so the tools run without being installed; put it first on PATH
#       versions   the package versions it holds
#
# Prints that directory as the last line on stdout. Idempotent: when it is complete, it
# returns at once. The key hashes this script, so a change of the package list refetches.
# --print-dir: only print the directory (no check, no download).
set -euo pipefail

# what the tools are, then the libraries they link that a minimal Debian may lack
packages=(
    buildah golang-github-containers-common skopeo
    containerd runc containernetworking-plugins
    iptables conntrack socat ipset
    libgpgme11 libip6tc2 libip4tc2 libxtables12 libnetfilter-conntrack3 libnfnetlink0
    libnftnl11 libmnl0 libwrap0 libipset13 libdevmapper1.02.1 libseccomp2 libassuan0
    libgpg-error0
)
# tool -> the executable in root/ (xtables binaries pick their command from argv[0])
tools=(
    buildah=usr/bin/buildah skopeo=usr/bin/skopeo
    containerd=usr/bin/containerd containerd-shim-runc-v2=usr/bin/containerd-shim-runc-v2
    ctr=usr/bin/ctr runc=usr/sbin/runc
    iptables=usr/sbin/xtables-nft-multi iptables-save=usr/sbin/xtables-nft-multi
    iptables-restore=usr/sbin/xtables-nft-multi ip6tables=usr/sbin/xtables-nft-multi
    ip6tables-save=usr/sbin/xtables-nft-multi ip6tables-restore=usr/sbin/xtables-nft-multi
    conntrack=usr/sbin/conntrack socat=usr/bin/socat ipset=usr/sbin/ipset
)

release=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
cache=${SQE_CACHE_DIR:-$HOME/.cache/sqe}
key=debs-$release-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
dir=$cache/$key

[[ ${1:-} == --print-dir ]] && { echo "$dir"; exit 0; }
if [[ -f $dir/.complete ]]; then echo "$dir"; exit 0; fi
command -v apt-get >/dev/null || { echo "debs.sh: needs apt-get (a Debian or Ubuntu machine)" >&2; exit 1; }

log() { echo "debs.sh: $*" >&2; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/$key.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" "$tmp/root" "$tmp/bin"

fetch() { (cd "$tmp/debs" && apt-get download "${packages[@]}") >&2 2>"$tmp/apt.err"; }
if ! fetch; then
    log "apt-get download failed ($(tail -1 "$tmp/apt.err")); refreshing the package lists once"
    apt-get update -qq >&2 && fetch || { cat "$tmp/apt.err" >&2; exit 1; }
fi
for deb in "$tmp"/debs/*.deb; do
    dpkg-deb -x "$deb" "$tmp/root"
    dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$tmp/versions"
done

libpath=$dir/root/usr/lib/x86_64-linux-gnu:$dir/root/lib/x86_64-linux-gnu
for entry in "${tools[@]}"; do
    name=${entry%%=*} target=${entry#*=}
    [[ -x $tmp/root/$target ]] || { log "no $target in the packages (for $name)"; exit 1; }
    cat >"$tmp/bin/$name" <<WRAP
#!/bin/bash
LD_LIBRARY_PATH=$libpath\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} XTABLES_LIBDIR=$dir/root/usr/lib/x86_64-linux-gnu/xtables exec -a $name $dir/root/$target "\$@"
WRAP
    chmod +x "$tmp/bin/$name"
done
ln -s root/usr/lib/cni "$tmp/cni-bin"
# the wrappers name $dir: move into place first, then check that every tool starts
rm -rf "$dir"
mv "$tmp" "$dir"
# older unpackings of another package list
for old in "$cache"/debs-"$release"-*; do [[ $old == "$dir" || $old == *.tmp.* ]] || rm -rf "$old"; done
trap - EXIT
for entry in "${tools[@]}"; do
    name=${entry%%=*}
    if LD_LIBRARY_PATH=$libpath ldd "$dir/root/${entry#*=}" 2>/dev/null | grep "not found" >&2; then
        log "$name needs a library none of the packages has (add it to the list above)"
        rm -rf "$dir"; exit 1
    fi
done
"$dir/bin/buildah" --version >/dev/null
"$dir/bin/iptables" --version >/dev/null
touch "$dir/.complete"
log "unpacked $(wc -l <"$dir/versions") packages into $dir ($(du -sh "$dir" | cut -f1))"
echo "$dir"
