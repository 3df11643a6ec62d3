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
