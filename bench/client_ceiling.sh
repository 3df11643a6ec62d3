#!/usr/bin/env bash
# What regbench's client can send and take in, whatever the server: its own code (push_large's
# monolithic push of 256 MiB, concurrent_pull's 32 pulls of one 32 MiB blob) against Bulwark,
# the reference registry and bench/ceiling/ideal_server.c, a server that does only the least
# any blob server must (sendfile for pulls; hash, write and fsync for pushes). Where Bulwark
# and the ideal server get the same figure, the client is the limit, not the server.
# Usage: client_ceiling.sh BULWARK_URL PEER_URL DIR, with the password of Bulwark's superuser
# in BULWARK_ADMIN_PASSWORD.
set -euo pipefail
url=${1:?bulwark url}; peer=${2:?peer url}; dir=${3:?work dir}
password=${BULWARK_ADMIN_PASSWORD:?the password of the superuser admin}
here=$(cd "$(dirname "$0")" && pwd)
python="$HOME/.cache/bulwark/benchvenv/bin/python"
harness="$here/../../shared/bench"
[ -f /usr/include/openssl/evp.h ] && command -v gcc >/dev/null ||
  apt-get install -y -qq gcc libc6-dev libssl-dev >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get install -y -qq gcc libc6-dev libssl-dev >/dev/null; }
mkdir -p "$dir/uploads"
gcc -O2 -pthread -o "$dir/ideal_server" "$here/ceiling/ideal_server.c" -lcrypto
head -c $((32 * 1024 * 1024)) /dev/urandom > "$dir/blob"
"$dir/ideal_server" 5104 "$dir/blob" "sha256:$(sha256sum "$dir/blob" | cut -d' ' -f1)" "$dir/uploads" &
ideal=$!
trap 'kill $ideal 2>/dev/null || true; rm -rf "$dir/uploads" "$dir/blob"' EXIT
sleep 0.3

run() { "$python" "$here/ceiling/client.py" "$harness" "$@" "$dir/blob"; }
run "$url" admin "$password" > "$dir/bulwark.json"
run "$peer" > "$dir/peer.json"
run http://127.0.0.1:5104 > "$dir/ideal.json"
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
res = {k: json.load(open(f"{d}/{k}.json")) for k in ("peer", "bulwark", "ideal")}
def cell(r, key):
    return " / ".join(f"{mibs} ({cpu} s)" for mibs, cpu in r[key])
print("| regbench's client code, MiB/s (client CPU s) | distribution | bulwark | ideal server |")
print("|---|---|---|---|")
for label, key in (("push of 256 MiB, 3 times", "push_MiB_per_s_and_client_cpu_s"),
                   ("32 concurrent pulls of 32 MiB, 3 rounds", "concurrent_pull_MiB_per_s_and_client_cpu_s")):
    print(f"| {label} | " + " | ".join(cell(res[k], key) for k in ("peer", "bulwark", "ideal")) + " |")
PY
