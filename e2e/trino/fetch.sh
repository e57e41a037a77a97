#!/usr/bin/env bash
# Downloads the real Trino reference stack that the e2e suite compares SQE against, into a
# cache directory keyed by the Trino version:
#
#   ${CACHE_DIR:-$HOME/.cache/sqe}/trino-476/
#     server/                       trino-server-core-476 (bin/, lib/, plugin/)
#     server/plugin/tpch/           the TPC-H connector (trino-tpch-476.zip)
#     server/plugin/memory/         the memory connector (trino-memory-476.zip), for DDL/DML
#     trino-cli.jar                 trino-cli-476-executable.jar (run with `java -jar`)
#     trino-jdbc.jar                trino-jdbc-476.jar
#     flight-sql-jdbc-driver.jar    org.apache.arrow:flight-sql-jdbc-driver:18.3.0
#
# Every file is checked against the .sha1 that the Maven repository serves next to it,
# downloaded to a temporary name and renamed into place only when complete, so an interrupted
# run never leaves something that a later run takes for done. With a warm cache nothing is
# downloaded. Prints the cache directory as the last line on stdout (progress goes to stderr).
#
# Environment:
#   CACHE_DIR    cache root (default ~/.cache/sqe)
#   MAVEN_REPO   Maven repository base URL (default: Maven Central)
#
# Trino 476 needs Java 24+: trino_reference.py runs it with $TRINO_JAVA_HOME
# (default /usr/lib/jvm/temurin-25-jdk-amd64).
set -euo pipefail

TRINO_VERSION=476
FLIGHT_JDBC_VERSION=18.3.0
repo=${MAVEN_REPO:-https://repo1.maven.org/maven2}
repo=${repo%/}

cache=${CACHE_DIR:-$HOME/.cache/sqe}
dir=$cache/trino-$TRINO_VERSION

log() { echo "trino/fetch.sh: $*" >&2; }
# a progress bar on a terminal, quiet (errors only) elsewhere, e.g. in CI logs
progress=(-sS)
[[ -t 2 ]] && progress=(--progress-bar)

mkdir -p "$dir"
tmpdir=$(mktemp -d "$dir/.tmp.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT

# download <group/artifact path> <file name in the repository> <destination>
# Fetches the .sha1 first, then the file to a temp name, checks it, renames it atomically.
download() {
    local path=$1 name=$2 dest=$3 url want got part
    url="$repo/$path/$name"
    want=$(curl -fsSL --retry 3 --retry-delay 2 "$url.sha1") || { log "cannot fetch $url.sha1"; exit 1; }
    want=$(printf '%s' "$want" | tr -d '[:space:]' | cut -c1-40)
    [[ $want =~ ^[0-9a-f]{40}$ ]] || { log "bad or missing checksum at $url.sha1: '$want'"; exit 1; }
    if [[ -f $dest ]] && [[ $(sha1sum "$dest" | cut -d' ' -f1) == "$want" ]]; then
        return 0
    fi
    log "downloading $url"
    part=$(mktemp "$dest.part.XXXXXX")
    if ! curl -fL --retry 3 --retry-delay 2 "${progress[@]}" -o "$part" "$url"; then
        rm -f "$part"
        log "download failed: $url"
        exit 1
    fi
    got=$(sha1sum "$part" | cut -d' ' -f1)
    if [[ $got != "$want" ]]; then
        rm -f "$part"
        log "SHA-1 mismatch for $url: got $got, expected $want"
        exit 1
    fi
    chmod 0644 "$part"
    mv -f "$part" "$dest"
}

# A file that is already in place and has its stamp (the SHA-1 it was verified against) is
# taken as done without asking the network: a warm cache downloads nothing, not even .sha1s.
jar() { # <repo path> <name> <dest name>
    local dest=$dir/$3
    if [[ -f $dest && -f $dest.sha1-ok ]] && [[ $(sha1sum "$dest" | cut -d' ' -f1) == "$(<"$dest.sha1-ok")" ]]; then
        return 0
    fi
    download "$1" "$2" "$dest"
    sha1sum "$dest" | cut -d' ' -f1 >"$dest.sha1-ok.tmp"
    mv -f "$dest.sha1-ok.tmp" "$dest.sha1-ok"
}

g=io/trino
jar "$g/trino-cli/$TRINO_VERSION" "trino-cli-$TRINO_VERSION-executable.jar" trino-cli.jar
chmod 0755 "$dir/trino-cli.jar"
jar "$g/trino-jdbc/$TRINO_VERSION" "trino-jdbc-$TRINO_VERSION.jar" trino-jdbc.jar
jar "org/apache/arrow/flight-sql-jdbc-driver/$FLIGHT_JDBC_VERSION" \
    "flight-sql-jdbc-driver-$FLIGHT_JDBC_VERSION.jar" flight-sql-jdbc-driver.jar

# The server: extracted into a scratch dir and renamed to server/ in one step, with
# server/.complete written last inside the scratch dir before the rename.
if [[ ! -f $dir/server/.complete ]]; then
    download "$g/trino-server-core/$TRINO_VERSION" "trino-server-core-$TRINO_VERSION.tar.gz" \
        "$tmpdir/server.tar.gz"
    log "extracting the server"
    mkdir "$tmpdir/server"
    tar -xzf "$tmpdir/server.tar.gz" -C "$tmpdir/server" --strip-components=1
    rm -f "$tmpdir/server.tar.gz"
    [[ -f $tmpdir/server/lib/io.trino_trino-main-$TRINO_VERSION.jar ]] \
        || { log "unexpected layout of trino-server-core-$TRINO_VERSION.tar.gz"; exit 1; }
    echo "trino-server-core-$TRINO_VERSION" >"$tmpdir/server/.complete"
    rm -rf "$dir/server"
    mv "$tmpdir/server" "$dir/server"
fi

# Connector plugins (trino-server-core has none): each zip holds one top-level directory
# trino-<name>-476/ with the plugin's jars, and Trino loads each directory under plugin/ as one
# plugin. Extracted in the scratch dir, renamed to server/plugin/<name>; the marker
# server/.plugin-<name>.complete (outside the plugin dir: Trino puts every file there on the
# plugin's class path) is written after the rename.
plugin() { # <name>
    local name=$1 tops
    [[ -f $dir/server/.plugin-$name.complete ]] && return 0
    download "$g/trino-$name/$TRINO_VERSION" "trino-$name-$TRINO_VERSION.zip" "$tmpdir/$name.zip"
    mkdir -p "$dir/server/plugin" "$tmpdir/$name"
    unzip -q "$tmpdir/$name.zip" -d "$tmpdir/$name"
    rm -f "$tmpdir/$name.zip"
    shopt -s nullglob
    tops=("$tmpdir/$name"/*/)
    shopt -u nullglob
    if [[ ${#tops[@]} == 1 ]] && compgen -G "${tops[0]}*.jar" >/dev/null; then
        mv "${tops[0]%/}" "$tmpdir/$name.plugin"
    elif compgen -G "$tmpdir/$name/*.jar" >/dev/null; then
        mv "$tmpdir/$name" "$tmpdir/$name.plugin"
    else
        log "unexpected layout of trino-$name-$TRINO_VERSION.zip"
        exit 1
    fi
    rm -rf "$dir/server/plugin/$name"
    mv "$tmpdir/$name.plugin" "$dir/server/plugin/$name"
    echo "trino-$name-$TRINO_VERSION" >"$dir/server/.plugin-$name.complete"
}
plugin tpch   # catalog tpch: the TPC-H tables, generated on the fly
plugin memory # catalog memory: tables in RAM, for CREATE TABLE / INSERT

echo "$dir"
