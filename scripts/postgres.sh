#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (Debian's package) on a loopback port for tests and prints
# its URL; `postgres.sh stop DIR` stops it. Usage: postgres.sh start DIR [PORT]
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
# initdb refuses to run as root: run the server as the postgres user then.
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case $cmd in
  start)
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    mkdir -p "$dir"
    # The server user must reach DIR: its parent directories need to be traversable.
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
    # Durability is not under test here: fsync off makes the suite faster. Benchmarks set
    # PG_DURABLE=1 to measure PostgreSQL's own defaults instead.
    durability="-c fsync=off -c synchronous_commit=off"
    [ -n "${PG_DURABLE:-}" ] && durability=""
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=500 $durability" >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    ;;
esac
