#!/usr/bin/env bash
# Pulls with registry token authentication against anonymous pulls of public repositories,
# on one Bulwark (release build, anonymous access on, access log off, the rest default: the
# action log is on) in the same run: regbench's pull scenarios driven by bench/auth_pull.py,
# each scenario in both modes back to back over rounds, then wrk on each mode's manifest and
# blob (bench/wrk.py, which fetches the token mode's token the way regbench does), twice in
# opposite orders.
# Usage: bench/auth.sh [auth_pull.py args: --rounds N, regbench's --scale, --only…]
# e.g. bench/auth.sh --scale 0.1 --rounds 1 for a smoke run. Results go to $OUT (default a
# temp dir).
set -euo pipefail
. "$(dirname "$0")/common.sh"

url=http://127.0.0.1:5104
BULWARK_AUTH__ANONYMOUS_ACCESS=true BULWARK_LOG__ACCESS=false BULWARK_LOG__LEVEL=warn \
  "$bin" serve --listen "${url#http://}" --data-dir "$OUT/bulwark" >"$OUT/bulwark.log" 2>&1 &
bulwark_pid=$!
trap 'kill $bulwark_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.1; done

"$venv/bin/python" bench/auth_pull.py --url "$url" --pid "$bulwark_pid" \
  --user admin --password "$BULWARK_ADMIN_PASSWORD" --json-out "$OUT/auth.json" "$@" \
  2>"$OUT/auth.jsonl" | tee "$OUT/auth.md"
if command -v wrk >/dev/null && [ -z "${NO_WRK:-}" ]; then
  for mode in anonymous token; do
    # The first round's paths of this mode, as wrk.py reads them from regbench's results.
    python3 -c 'import json, sys
doc = json.load(open(sys.argv[1]))
json.dump({"results": [r for r in doc["results"] if r["mode"] == sys.argv[2] and r["round"] == 1]},
          open(sys.argv[3], "w"))' "$OUT/auth.json" "$mode" "$OUT/$mode-paths.json"
  done
  for order in "anonymous token" "token anonymous"; do
    servers=()
    for mode in $order; do servers+=("$mode=$url=$bulwark_pid=$OUT/$mode-paths.json"); done
    python3 bench/wrk.py "${servers[@]}" --user admin --password "$BULWARK_ADMIN_PASSWORD"
  done | tee "$OUT/wrk.md"
fi
echo "bulwark peak RSS over the whole run (VmHWM): $(grep VmHWM /proc/$bulwark_pid/status)"
echo "results in $OUT"
