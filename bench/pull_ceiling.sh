#!/usr/bin/env bash
# Pulls measured with curl, a client that is never the bottleneck (it neither hashes nor
# runs an interpreter), beside regbench's pull_large and concurrent_pull: one 256 MiB blob,
# and 32 concurrent pulls of one 32 MiB blob, from Bulwark, from the reference registry and
# from nginx serving the same file (sendfile). Usage: pull_ceiling.sh BULWARK_URL PEER_URL DIR,
# with the password of Bulwark's superuser in BULWARK_ADMIN_PASSWORD.
set -euo pipefail
url=${1:?bulwark url}; peer=${2:?peer url}; dir=${3:?work dir}
password=${BULWARK_ADMIN_PASSWORD:?the password of the superuser admin}
mkdir -p "$dir/static"
command -v nginx >/dev/null || { apt-get install -y -qq nginx-light >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }; }
head -c $((256 * 1024 * 1024)) /dev/urandom > "$dir/static/large"
head -c $((32 * 1024 * 1024)) /dev/urandom > "$dir/static/small"
cat > "$dir/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/nginx.err;
events {}
http { access_log off; sendfile on; server { listen 127.0.0.1:5103; root $dir/static; } }
CONF
nginx -c "$dir/nginx.conf" & ngx=$!
trap 'kill $ngx 2>/dev/null || true; rm -rf "$dir/static"' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:5103/large -r 0-0 && break; sleep 0.1; done

# push BASE FILE [CURL_ARGS...] -> the blob's URL on that registry
push() {
  local base=$1 file=$2; shift 2
  local digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  local location
  location=$(curl -sf "$@" -X POST -D - -o /dev/null "$base/v2/bench/ceiling/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case $location in /*) location="$base$location" ;; esac
  case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sf "$@" -X PUT -H 'Content-Type: application/octet-stream' -T "$file" \
    "$location${sep}digest=$digest" >/dev/null
  echo "$base/v2/bench/ceiling/blobs/$digest"
}
# single URL [CURL_ARGS...]: best of 3, MiB/s
single() {
  local b=0 s
  for _ in 1 2 3; do
    s=$(curl -sf -o /dev/null -w '%{speed_download}' "$@") || { echo "pull failed: $*" >&2; exit 1; }
    b=$(python3 -c "print(max($b, $s / 1048576))")
  done
  printf '%.0f' "$b"
}
# concurrent URL [CURL_ARGS...]: 32 pulls at once, aggregate MiB/s of each of 3 rounds
concurrent() {
  local rounds=()
  for _ in 1 2 3; do
    local pids=() t0 t1
    t0=$(date +%s.%N)
    for _ in $(seq 32); do curl -sf -o /dev/null "$@" & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid" || { echo "pull failed: $*" >&2; exit 1; }; done
    t1=$(date +%s.%N)
    rounds+=("$(python3 -c "print(round(32 * 32 / ($t1 - $t0)))")")
  done
  echo "${rounds[*]}" | sed 's| | / |g'
}

bw_large=$(push "$url" "$dir/static/large" -u "admin:$password")
bw_small=$(push "$url" "$dir/static/small" -u "admin:$password")
# Pulls carry a token, as regbench's do (a password would be hashed on every request).
bw_auth=(-H "Authorization: $(python3 "$(dirname "$0")/registry_auth.py" "$bw_large" admin "$password")")
peer_large=$(push "$peer" "$dir/static/large")
peer_small=$(push "$peer" "$dir/static/small")

echo "| curl, MiB/s | distribution | bulwark | nginx (sendfile) |"
echo "|---|---|---|---|"
echo "| one 256 MiB pull, best of 3 | $(single "$peer_large") | $(single "${bw_auth[@]}" "$bw_large") | $(single http://127.0.0.1:5103/large) |"
echo "| 32 concurrent pulls of 32 MiB, aggregate, 3 rounds | $(concurrent "$peer_small") | $(concurrent "${bw_auth[@]}" "$bw_small") | $(concurrent http://127.0.0.1:5103/small) |"
