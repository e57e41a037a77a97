# Helpers sourced by up.sh and ../node/up.sh: certificates (written into $pki, signed for $days
# days), kubeconfigs (pointing at $server) and free ports.

mkca() { # <name> <CN>
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days $days -subj "/CN=$2" \
        -keyout "$pki/$1.key" -out "$pki/$1.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        2>/dev/null
}
mkcert() { # <name> <ca> <subject> <extendedKeyUsage> [subjectAltName]
    openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "$3" \
        -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$4"
        [[ -n ${5:-} ]] && echo "subjectAltName=$5"
    } >"$pki/$1.ext"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -CAcreateserial \
        -days $days -sha256 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
    rm -f "$pki/$1.csr" "$pki/$1.ext"
}
mkkubeconfig() { # <file> <client cert name>
    local f=$1
    rm -f "$f"
    kubectl config --kubeconfig "$f" set-cluster sqe-e2e --server "$server" \
        --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
    kubectl config --kubeconfig "$f" set-credentials "$2" \
        --client-certificate "$pki/$2.crt" --client-key "$pki/$2.key" --embed-certs >/dev/null
    kubectl config --kubeconfig "$f" set-context sqe-e2e --cluster sqe-e2e --user "$2" >/dev/null
    kubectl config --kubeconfig "$f" use-context sqe-e2e >/dev/null
    chmod 600 "$f"
}
free_ports() { # <n>: n distinct free TCP ports on 127.0.0.1 (all bound at once, then released)
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
