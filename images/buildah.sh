# Sourced by images/build.sh and e2e/node/up.sh: `bh <buildah args>` runs the cached buildah
# with its storage, runtime state, CNI config and signature policy under $store (the caller
# sets it: target/images/buildah), never the system's. buildah (as root) still creates
# /var/cache/containers and /var/lib/containers for its caches: when they did not exist
# before, `bh_cleanup` (run it at exit) removes them again.
store=${store:?set store (the buildah directory) before sourcing buildah.sh}
mkdir -p "$store/cni"
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$store/policy.json"
bh_created=()
for _d in /var/cache/containers /var/lib/containers; do [[ -e $_d ]] || bh_created+=("$_d"); done
bh() {
    local cmd=$1
    shift
    local extra=()
    case $cmd in
    bud | build) extra=(--signature-policy "$store/policy.json" --isolation chroot --cni-config-dir "$store/cni") ;;
    push | from | pull) extra=(--signature-policy "$store/policy.json") ;;
    esac
    "${SQE_BUILDAH:-buildah}" --root "$store/root" --runroot "$store/run" --storage-driver vfs \
        --registries-conf /dev/null "$cmd" "${extra[@]}" "$@"
}
bh_cleanup() { local d; for d in "${bh_created[@]}"; do rm -rf "$d"; done; }
