#!/usr/bin/env bash
# Starts a throwaway Garage (an S3-compatible object store) on loopback ports for tests, with
# one bucket and one key, and prints where they are as BULWARK_TEST_S3_*=VALUE lines;
# `garage.sh stop DIR` stops it. Usage: garage.sh start DIR
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
garage=$(command -v garage || echo "$HOME/.cargo/bin/garage")
[ -x "$garage" ] || { echo "garage not found: cargo install garage --locked" >&2; exit 1; }
g() { "$garage" -c "$dir/garage.toml" "$@"; }
case $cmd in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    read -r rpc s3 admin < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
    # Durability is not under test: no fsync; SQLite metadata (no large LMDB map).
    cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
metadata_fsync = false
data_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"

[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
    chmod 600 "$dir/garage.toml"
    RUST_LOG=warn nohup "$garage" -c "$dir/garage.toml" server >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
    g status >/dev/null || { echo "garage did not start; see $dir/log" >&2; exit 1; }
    node=$(g node id -q | cut -c1-64)
    g layout assign -z dc1 -c 1G "$node" >/dev/null
    g layout apply --version 1 >/dev/null
    # Garage wants GK + 24 hex digits for a key id and 64 hex digits for its secret.
    key_id="GK$(openssl rand -hex 12)"; secret=$(openssl rand -hex 32)
    g key import --yes -n bulwark-test "$key_id" "$secret" >/dev/null
    # The new layout takes a moment to be in force everywhere.
    for _ in $(seq 50); do g bucket create bulwark-test >/dev/null 2>&1 && break; sleep 0.2; done
    g bucket allow --read --write --owner --key bulwark-test bulwark-test >/dev/null
    echo "BULWARK_TEST_S3_ENDPOINT=http://127.0.0.1:$s3"
    echo "BULWARK_TEST_S3_BUCKET=bulwark-test"
    echo "BULWARK_TEST_S3_REGION=garage"
    echo "BULWARK_TEST_S3_ACCESS_KEY_ID=$key_id"
    echo "BULWARK_TEST_S3_SECRET_ACCESS_KEY=$secret"
    ;;
  stop)
    if [ -f "$dir/pid" ]; then
      pid=$(cat "$dir/pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    ;;
esac
