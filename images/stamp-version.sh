#!/usr/bin/env bash
# Gives a built SQE binary another version: rewrites the 64-byte slot behind the marker
# `SQE_VERSION_SLOT=` (engine/core/src/version.rs) in place. The same source then yields two
# images with different versions without a second compile, as Go's `-ldflags -X` does; the
# engine reports the stamped version everywhere (system.runtime.nodes, heartbeats, version()).
#
#   stamp-version.sh <binary> <version>
set -euo pipefail
[[ $# == 2 ]] || { echo "usage: $0 <binary> <version>" >&2; exit 2; }
python3 - "$1" "$2" <<'PY'
import sys
path, version = sys.argv[1], sys.argv[2].encode()
marker, slot_len = b"SQE_VERSION_SLOT=", 64
data = bytearray(open(path, "rb").read())
hits = []
start = data.find(marker)
while start != -1:
    # a slot: the marker, a non-empty version, NUL padding to 64 bytes
    slot = data[start:start + slot_len]
    body = slot[len(marker):]
    end = body.find(b"\0")
    if end > 0 and all(b == 0 for b in body[end:]) and len(slot) == slot_len:
        hits.append(start)
    start = data.find(marker, start + 1)
if len(hits) != 1:
    sys.exit(f"stamp-version.sh: {path} has {len(hits)} version slots, expected exactly one")
if len(marker) + len(version) >= slot_len or not version:
    sys.exit(f"stamp-version.sh: version {version.decode()!r} does not fit the slot")
at = hits[0]
data[at:at + slot_len] = (marker + version).ljust(slot_len, b"\0")
open(path, "wb").write(data)
PY
