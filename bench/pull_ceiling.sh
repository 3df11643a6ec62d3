#!/usr/bin/env bash
# The transfer ceiling for pull_large: `curl -o /dev/null` of the same 256 MiB blob from
# Bulwark and from nginx serving it as a static file. Usage: pull_ceiling.sh BULWARK_URL DIR,
# with the password of Bulwark's superuser in BULWARK_ADMIN_PASSWORD.
set -euo pipefail
url=${1:?bulwark url}; dir=${2:?work dir}; mib=${MIB:-256}
password=${BULWARK_ADMIN_PASSWORD:?the password of the superuser admin}
mkdir -p "$dir/static"
command -v nginx >/dev/null || { apt-get install -y -qq nginx-light >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }; }
head -c $((mib * 1024 * 1024)) /dev/urandom > "$dir/static/blob"
digest="sha256:$(sha256sum "$dir/static/blob" | cut -d' ' -f1)"
curl -sf -u "admin:$password" -X POST -H 'Content-Type: application/octet-stream' \
  -T "$dir/static/blob" "$url/v2/bench/ceiling/blobs/uploads?digest=$digest" >/dev/null
blob_url="$url/v2/bench/ceiling/blobs/$digest"
auth=$(python3 "$(dirname "$0")/registry_auth.py" "$blob_url" admin "$password")
cat > "$dir/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/nginx.err;
events {}
http { access_log off; sendfile on; server { listen 127.0.0.1:5103; root $dir/static; } }
CONF
nginx -c "$dir/nginx.conf" & ngx=$!
trap 'kill $ngx 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:5103/blob -r 0-0 && break; sleep 0.1; done
# best CURL_ARGS...
best() {
  local b=0
  for _ in 1 2 3; do
    s=$(curl -sf -o /dev/null -w '%{speed_download}' "$@")
    b=$(python3 -c "print(max($b, $s / 1048576))")
  done
  printf '%.0f' "$b"
}
echo "| curl -o /dev/null, $mib MiB | MiB/s (best of 3) |"
echo "|---|---|"
echo "| bulwark GET /v2/…/blobs/<digest> | $(best -H "Authorization: $auth" "$blob_url") |"
echo "| nginx static file (sendfile) | $(best http://127.0.0.1:5103/blob) |"
