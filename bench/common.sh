# Sourced by the bench scripts: the shared harness and its Python environment, a release
# build of bulwark ($bin), the results directory ($OUT, default a temp dir), and the
# superuser's password, which the servers started from here create `admin` with.
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bulwark/target}"
harness=../shared/bench
venv="$HOME/.cache/bulwark/benchvenv"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$harness/requirements.txt"; }
cargo build --release -q -p bulwark
bin="$CARGO_TARGET_DIR/release/bulwark"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
export BULWARK_ADMIN_PASSWORD="${BULWARK_ADMIN_PASSWORD:-bench-admin-password}"

# wait_ready PORT...: waits (10 s at most each) until the server on each port answers `/v2/`.
wait_ready() {
  local port
  for port in "$@"; do
    for _ in $(seq 100); do
      curl -sf -u "admin:$BULWARK_ADMIN_PASSWORD" "http://127.0.0.1:$port/v2/" >/dev/null && break
      sleep 0.1
    done
  done
}

# start_pair: the reference registry on 5101 ($peer_pid) and Bulwark's embedded default on
# 5102 ($bulwark_pid, access log off as the peer's is), both stopped when the script exits,
# and their data (gigabytes after a full run) removed; the results stay in $OUT.
start_pair() {
  peer_pid=$("$harness/peer-registry.sh" 5101 "$OUT/peer")
  BULWARK_LOG__ACCESS=false BULWARK_LOG__LEVEL=warn \
    "$bin" serve --listen 127.0.0.1:5102 --data-dir "$OUT/bulwark" >"$OUT/bulwark.log" 2>&1 &
  bulwark_pid=$!
  trap 'kill $peer_pid $bulwark_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$OUT/peer" "$OUT/bulwark"' EXIT
  wait_ready 5101 5102
}
