#!/usr/bin/env bash
# Writes a kubeconfig for another user of a cluster from up.sh: a client certificate with
# CN=<user> and O=<group>... signed by the cluster's client CA. Use it to run the operator (or a
# test) under its own identity, so RBAC applies to it and the audit log tells its writes apart
# from admin's. The user has no permissions until a (Cluster)RoleBinding grants them.
#
#   user-kubeconfig.sh <user> [group...]      prints the path of the kubeconfig it wrote:
#                                             $SQE_CLUSTER_DIR/users/<user>.kubeconfig
set -euo pipefail

[[ $# -ge 1 && $1 =~ ^[A-Za-z0-9:._@-]+$ ]] || { echo "usage: $0 <user> [group...]" >&2; exit 2; }
user=$1
shift
dir=${SQE_CLUSTER_DIR:-$PWD/target/cluster}
pki=$dir/pki
env_file=$dir/cluster.env
[[ -f $env_file && -f $pki/client-ca.key ]] || { echo "$0: no running cluster in $dir (run up.sh)" >&2; exit 1; }
server=$(sed -n 's/^SQE_APISERVER_URL=//p' "$env_file")

subj=""
for g in "$@"; do subj+="/O=$g"; done
subj+="/CN=$user"
out=$dir/users
mkdir -p "$out"
chmod 700 "$out"
key=$out/$user.key crt=$out/$user.crt cfg=$out/$user.kubeconfig
openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "$subj" -keyout "$key" -out "$out/$user.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$out/$user.ext"
openssl x509 -req -in "$out/$user.csr" -CA "$pki/client-ca.crt" -CAkey "$pki/client-ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$out/$user.ext" -out "$crt" 2>/dev/null
rm -f "$out/$user.csr" "$out/$user.ext"
chmod 600 "$key"

rm -f "$cfg"
kubectl config --kubeconfig "$cfg" set-cluster sqe-e2e --server "$server" --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
kubectl config --kubeconfig "$cfg" set-credentials "$user" --client-certificate "$crt" --client-key "$key" --embed-certs >/dev/null
kubectl config --kubeconfig "$cfg" set-context sqe-e2e --cluster sqe-e2e --user "$user" >/dev/null
kubectl config --kubeconfig "$cfg" use-context sqe-e2e >/dev/null
chmod 600 "$cfg"
echo "$cfg"
