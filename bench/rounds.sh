#!/usr/bin/env bash
# regbench scenarios against the reference registry and Bulwark in ROUNDS interleaved rounds
# (peer, then Bulwark, each round), with the median ratio: on a shared machine one round
# moves by ±20 %. Usage: bench/rounds.sh [ROUNDS [SCENARIOS]] (default 5 rounds of
# pull_large,concurrent_pull). Results in $OUT.
set -euo pipefail
. "$(dirname "$0")/common.sh"
rounds=${1:-5}
scenarios=${2:-pull_large,concurrent_pull}

start_pair

for round in $(seq "$rounds"); do
  "$venv/bin/python" "$harness/regbench.py" --url http://127.0.0.1:5101 --pid "$peer_pid" \
    --label distribution --only "$scenarios" --json-out "$OUT/peer-$round.json" >/dev/null
  "$venv/bin/python" "$harness/regbench.py" --url http://127.0.0.1:5102 --pid "$bulwark_pid" \
    --user admin --password "$BULWARK_ADMIN_PASSWORD" --label bulwark \
    --only "$scenarios" --json-out "$OUT/bulwark-$round.json" >/dev/null
done

python3 - "$OUT" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
# The headline figure of each scenario, as regbench's README names it.
metric = {"push_large": "MiB_per_s", "push_chunked": "MiB_per_s", "pull_large": "MiB_per_s",
          "push_small_image": "images_per_s", "manifest_get": "req_per_s",
          "blob_head": "req_per_s", "concurrent_pull": "aggregate_MiB_per_s"}
rows = {}
for r in range(1, rounds + 1):
    for side in ("peer", "bulwark"):
        for res in json.load(open(f"{out}/{side}-{r}.json"))["results"]:
            if res["scenario"] in metric:
                value = res[metric[res["scenario"]]]
                if side == "peer":
                    rows.setdefault(res["scenario"], []).append([value, None])
                else:
                    rows[res["scenario"]][-1][1] = value
print("| scenario (headline figure) | rounds: distribution → bulwark (ratio) | median ratio |")
print("|---|---|---|")
for name, pairs in rows.items():
    cells = ", ".join(f"{p:,.0f} → {b:,.0f} ({b / p:.2f}×)" for p, b in pairs)
    print(f"| {name} | {cells} | {statistics.median(b / p for p, b in pairs):.2f}× |")
PY
