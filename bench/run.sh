#!/usr/bin/env bash
# Benchmarks Bulwark against the CNCF reference registry, both in the same run, with the
# shared harness (../shared/bench/regbench.py). Usage: bench/run.sh [regbench args...]
# e.g. bench/run.sh --scale 0.1 for a smoke run. Results go to $OUT (default a temp dir).
set -euo pipefail
. "$(dirname "$0")/common.sh"

start_pair

"$venv/bin/python" "$harness/regbench.py" --url http://127.0.0.1:5101 --pid "$peer_pid" \
  --label distribution --json-out "$OUT/peer.json" "$@" || echo "peer run reported errors"
"$venv/bin/python" "$harness/regbench.py" --url http://127.0.0.1:5102 --pid "$bulwark_pid" \
  --user admin --password "$BULWARK_ADMIN_PASSWORD" \
  --label bulwark --json-out "$OUT/bulwark.json" "$@" || echo "bulwark run reported errors"
"$venv/bin/python" "$harness/regbench.py" --compare "$OUT/peer.json" "$OUT/bulwark.json" | tee "$OUT/compare.md"
if command -v wrk >/dev/null && [ -z "${NO_WRK:-}" ]; then
  python3 bench/wrk.py "distribution=http://127.0.0.1:5101=$peer_pid=$OUT/peer.json" \
    "bulwark=http://127.0.0.1:5102=$bulwark_pid=$OUT/bulwark.json" \
    --user admin --password "$BULWARK_ADMIN_PASSWORD" | tee "$OUT/wrk.md"
fi
bench/pull_ceiling.sh http://127.0.0.1:5102 http://127.0.0.1:5101 "$OUT/ceiling" | tee "$OUT/ceiling.md"
bench/client_ceiling.sh http://127.0.0.1:5102 http://127.0.0.1:5101 "$OUT/client-ceiling" |
  tee "$OUT/client-ceiling.md"
echo "bulwark peak RSS over the whole run (VmHWM): $(grep VmHWM /proc/$bulwark_pid/status)"
echo "results in $OUT"
