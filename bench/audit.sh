#!/usr/bin/env bash
# What the action log costs pulls, and whether it keeps every one: regbench's manifest_get
# against two servers started alike in the same run, the action log off and on, twice each
# in alternation (the machine is shared: alternating spreads its noise over both). Then the
# server with the log stops gracefully and `bulwark logs export --kind pull` counts the pull
# entries, which must be at least the GETs regbench saw succeed (it also pulls while setting
# up). The runs on the server with the log add up to at least $PULLS pulls (default 50000).
# Usage: bench/audit.sh [regbench args...]; results in $OUT (default a temp dir).
set -euo pipefail
. "$(dirname "$0")/common.sh"
PULLS="${PULLS:-50000}"
DURATION="${DURATION:-45}"

start() { # data dir name, port, whether the log is on
  BULWARK_LOG__ACCESS=false BULWARK_LOG__LEVEL=warn BULWARK_AUDIT__ENABLED="$3" \
    "$bin" serve --listen "127.0.0.1:$2" --data-dir "$OUT/$1" >"$OUT/$1.log" 2>&1 &
  echo $!
}
off_pid=$(start off 5111 false)
on_pid=$(start on 5112 true)
trap 'kill $off_pid $on_pid 2>/dev/null || true' EXIT
wait_ready 5111 5112

bench() { # label, port, pid, round
  "$venv/bin/python" "$harness/regbench.py" --url "http://127.0.0.1:$2" --pid "$3" \
    --user admin --password "$BULWARK_ADMIN_PASSWORD" --only manifest_get \
    --duration "$DURATION" --label "$1" --json-out "$OUT/$1-$4.json" "${@:5}" >/dev/null \
    || echo "$1 round $4 reported errors"
}
# Off first, then on first: whichever runs second in a round meets a warmer machine.
bench off 5111 "$off_pid" 1 "$@"
bench on 5112 "$on_pid" 1 "$@"
bench on 5112 "$on_pid" 2 "$@"
bench off 5111 "$off_pid" 2 "$@"

# A graceful stop writes what the queue holds (the server is not this shell's child).
kill -TERM "$on_pid"
while kill -0 "$on_pid" 2>/dev/null; do sleep 0.1; done
entries=$("$bin" logs export --kind pull --data-dir "$OUT/on" 2>/dev/null | wc -l)
verify=$("$bin" logs verify --data-dir "$OUT/on" 2>&1 | tail -1)

python3 - "$OUT" "$entries" "$PULLS" "$verify" <<'EOF'
import json, sys
out, entries, wanted, verify = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def runs(label):
    docs = [json.load(open(f"{out}/{label}-{r}.json")) for r in (1, 2)]
    return [next(x for x in d["results"] if x["scenario"] == "manifest_get") for d in docs]
off, on = runs("off"), runs("on")
rate = lambda rs: sum(r["requests_ok"] for r in rs) / sum(r["duration_s"] for r in rs)
cpu = lambda rs: sum(r.get("server_cpu_s") or 0 for r in rs) * 1e3 / sum(r["requests_ok"] for r in rs)
pulls = sum(r["requests_ok"] for r in on)
print("| | action log off | action log on |")
print("|---|---|---|")
print(f"| manifest GET req/s (2 runs) | {rate(off):,.0f} | {rate(on):,.0f} |")
print(f"| p99 ms (per run) | {', '.join(str(r['p99_ms']) for r in off)} | {', '.join(str(r['p99_ms']) for r in on)} |")
print(f"| server CPU ms per request | {cpu(off):.3f} | {cpu(on):.3f} |")
print()
print(f"on/off throughput ratio: {rate(on) / rate(off):.3f}; on/off server CPU per request: {cpu(on) / cpu(off):.3f}")
print(f"pulls answered with the log on: {pulls}; pull entries stored: {entries}; {verify}")
if pulls < wanted:
    print(f"fewer than {wanted} pulls: raise DURATION")
if entries < pulls:
    sys.exit(f"MISSING ENTRIES: {pulls - entries}")
EOF
