#!/usr/bin/env bash
# Builds the Trino client image of the e2e client pods (Containerfile beside this script) with
# buildah: the Python of the project's venv (its interpreter and standard library) and, from the
# venv, the `trino` package and its requirements. Image localhost/sqe-e2e/trino-client:<version>,
# cached by that version, the Python version and this directory's files:
#
#   ${SQE_CACHE_DIR:-$HOME/.cache/sqe}/trino-client-image-<version>-<hash>/trino-client.tar
#
# and copied to target/images/, where e2e/node/up.sh imports every archive into the node.
# Prints the image name. Environment: VENV (the project's venv), SQE_CACHE_DIR.
#
# Why Python and not the Trino CLI: the CLI and the JDBC driver send a password only over
# HTTPS ("TLS/SSL is required for authentication with username and password"), and SQE's
# Trino port speaks plain HTTP; the Python client allows it with allow_insecure_auth.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
cache=${SQE_CACHE_DIR:-$HOME/.cache/sqe}
venv_py=${VENV:?set VENV to the project venv}/bin/python
log() { echo "trino-client image: $*" >&2; }

# the distributions to copy: trino and its requirements (markers evaluated here), and where
# the interpreter and its standard library live
read -r version base pyver < <("$venv_py" - <<'PY'
import importlib.metadata as md, re, sys, sysconfig
print(md.version("trino"), sys.base_prefix, f"{sys.version_info.major}.{sys.version_info.minor}")
PY
)
key=$(cat "$here/Containerfile" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
dir=$cache/trino-client-image-$version-py$pyver-$key
out=$root/target/images
image=localhost/sqe-e2e/trino-client:$version
mkdir -p "$out"
if [[ -f $dir/trino-client.tar ]]; then
    cp "$dir/trino-client.tar" "$out/trino-client.tar"
    echo "$image"
    exit 0
fi

t0=$SECONDS
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/trino-client-image.tmp.XXXXXX")
store=$out/buildah
SQE_BUILDAH=${SQE_BUILDAH:-$("$root/e2e/cluster/debs.sh" | tail -1)/bin/buildah}
export SQE_BUILDAH
source "$root/images/buildah.sh"
trap 'rm -rf "$tmp"; bh_cleanup' EXIT

rootfs=$tmp/rootfs
# the base tree (passwd, CA bundle, /tmp, the interpreter and the libraries it loads)
"$root/images/rootfs.sh" "$rootfs" "$base/bin/python$pyver=python3"
stdlib=$rootfs/usr/local/lib/python$pyver
mkdir -p "$stdlib/site-packages"
tar -C "$base/lib/python$pyver" --exclude=./site-packages --exclude=./test --exclude=./idlelib \
    --exclude=./tkinter --exclude=./turtledemo --exclude=./ensurepip --exclude='__pycache__' \
    --exclude='config-*' -cf - . | tar -C "$stdlib" -xf -
# trino and its requirements, file by file from the venv's records
"$venv_py" - "$stdlib/site-packages" <<'PY'
import importlib.metadata as md, re, shutil, sys
from pathlib import Path
from packaging.markers import Marker
dest = Path(sys.argv[1])
seen, todo = set(), ["trino"]
while todo:
    name = todo.pop()
    if name.lower().replace("_", "-") in seen:
        continue
    seen.add(name.lower().replace("_", "-"))
    dist = md.distribution(name)
    for f in dist.files or []:
        src = Path(dist.locate_file(f))
        if f.parts[0].startswith("..") or "__pycache__" in f.parts or not src.is_file():
            continue
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / f)
    for req in dist.requires or []:
        spec, _, marker = req.partition(";")
        if marker and not Marker(marker).evaluate():
            continue
        todo.append(re.split(r"[\s<>=!~\[(]", spec.strip())[0])
print(" ".join(sorted(seen)), file=sys.stderr)
PY
# and the C libraries the extension modules load (libssl, libcrypto, libffi, libz, ...)
while read -r lib; do
    [[ -e $rootfs$lib ]] && continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done < <(find "$stdlib" -name '*.so' -exec ldd {} \; 2>/dev/null | awk '/=> \// { print $3 }' | sort -u)

bh bud --timestamp 0 --build-arg TRINO_CLIENT_VERSION="$version" --build-context "dist=$tmp" \
    -f "$here/Containerfile" -t "$image" "$here" >"$tmp/build.log" 2>&1 ||
    { tail -30 "$tmp/build.log" >&2; log "building $image failed"; exit 1; }
bh push --quiet "$image" "docker-archive:$tmp/trino-client.tar:$image" >/dev/null
rm -rf "$dir" && mkdir -p "$dir"
mv "$tmp/trino-client.tar" "$dir/trino-client.tar"
cp "$dir/trino-client.tar" "$out/trino-client.tar"
log "$image: $(($(stat -c %s "$dir/trino-client.tar") / 1000000)) MB, $((SECONDS - t0)) s"
echo "$image"
