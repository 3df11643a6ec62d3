#!/usr/bin/env bash
# Benchmarks the scale-out configuration (a node over PostgreSQL and an S3 store, Garage)
# next to the embedded default (SQLite and files), both in the same run, with the shared
# harness (../shared/bench/regbench.py). PostgreSQL runs with its default durability
# (fsync, synchronous commit), Garage with its defaults (no fsync).
# Usage: bench/scaleout.sh [regbench args...]. Results go to $OUT (default a temp dir).
set -euo pipefail
. "$(dirname "$0")/common.sh"
# PostgreSQL runs as its own user, which must reach its directory under $OUT.
chmod 755 "$OUT"

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  scripts/garage.sh stop "$OUT/garage"
  scripts/postgres.sh stop "$OUT/pg"
}
trap cleanup EXIT
pg_url=$(PG_DURABLE=1 scripts/postgres.sh start "$OUT/pg")
psql "$pg_url" -qc "CREATE DATABASE bench"
while IFS='=' read -r key value; do declare "$key=$value"; done < <(scripts/garage.sh start "$OUT/garage")

export BULWARK_LOG__ACCESS=false BULWARK_LOG__LEVEL=warn
"$bin" serve --listen 127.0.0.1:5102 --data-dir "$OUT/embedded" >"$OUT/embedded.log" 2>&1 &
embedded_pid=$!
pids+=("$embedded_pid")
BULWARK_DATABASE__URL="${pg_url%/postgres}/bench" \
  BULWARK_STORAGE__S3__ENDPOINT="$BULWARK_TEST_S3_ENDPOINT" \
  BULWARK_STORAGE__S3__BUCKET="$BULWARK_TEST_S3_BUCKET" \
  BULWARK_STORAGE__S3__REGION="$BULWARK_TEST_S3_REGION" \
  BULWARK_STORAGE__S3__ACCESS_KEY_ID="$BULWARK_TEST_S3_ACCESS_KEY_ID" \
  BULWARK_STORAGE__S3__SECRET_ACCESS_KEY="$BULWARK_TEST_S3_SECRET_ACCESS_KEY" \
  BULWARK_STORAGE__S3__PATH_STYLE=true \
  "$bin" serve --listen 127.0.0.1:5103 --data-dir "$OUT/scaleout" >"$OUT/scaleout.log" 2>&1 &
scaleout_pid=$!
pids+=("$scaleout_pid")
for port in 5102 5103; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

"$venv/bin/python" "$harness/regbench.py" --url http://127.0.0.1:5102 --pid "$embedded_pid" \
  --user admin --password "$BULWARK_ADMIN_PASSWORD" \
  --label embedded --json-out "$OUT/embedded.json" "$@" || echo "embedded run reported errors"
"$venv/bin/python" "$harness/regbench.py" --url http://127.0.0.1:5103 --pid "$scaleout_pid" \
  --user admin --password "$BULWARK_ADMIN_PASSWORD" \
  --label scale-out --json-out "$OUT/scaleout.json" "$@" || echo "scale-out run reported errors"
"$venv/bin/python" "$harness/regbench.py" --compare "$OUT/embedded.json" "$OUT/scaleout.json" | tee "$OUT/compare.md"
echo "peak RSS (VmHWM): embedded $(grep VmHWM /proc/$embedded_pid/status | awk '{print $2, $3}')," \
  "scale-out $(grep VmHWM /proc/$scaleout_pid/status | awk '{print $2, $3}')"
echo "results in $OUT"
