#!/usr/bin/env bash
# Runs Bulwark's whole test suite. On a fresh machine it first installs what the tests
# drive: real clients from Debian's packages and a Python environment from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bulwark/target}"
cache="$HOME/.cache/bulwark"
mkdir -p "$cache"

# Debian packages: command -> package.
declare -A debs=(
  [skopeo]=skopeo [podman]=podman [buildah]=buildah [umoci]=umoci
  [docker-registry]=docker-registry [wrk]=wrk [curl]=curl [openssl]=openssl
  [rsyslogd]=rsyslog
)
missing=()
for cmd in "${!debs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${debs[$cmd]}")
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python clients (oras-py), the benchmark's aiohttp and the SBOM validators (CycloneDX's
# JSON schemas, spdx-tools), in a cached virtual environment.
venv="$cache/venv"
if ! "$venv/bin/python" -c 'import oras, aiohttp, cyclonedx.validation.json, spdx_tools' >/dev/null 2>&1; then
  echo "creating Python environment in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q oras aiohttp 'cyclonedx-python-lib[json-validation]' spdx-tools
fi
export BULWARK_TEST_PYTHON="$venv/bin/python"

# Garage, the S3-compatible store the S3 tests run against: built once (15-45 minutes on two
# cores) and reused from ~/.cargo/bin afterwards.
if ! command -v garage >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  echo "installing Garage with cargo install (once; 15-45 minutes)"
  env -u CARGO_TARGET_DIR cargo install garage --locked --target-dir "$HOME/.cache/garage-build"
fi

# One PostgreSQL and one Garage for the whole run; the tests create a database each and use
# a key prefix each.
pg_dir=$(mktemp -d /tmp/bulwark-pg.XXXXXX)
chmod 755 "$pg_dir"
trap 'scripts/postgres.sh stop "$pg_dir/pg"; scripts/garage.sh stop "$pg_dir/garage"; rm -rf "$pg_dir"' EXIT
BULWARK_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pg_dir/pg")
export BULWARK_TEST_POSTGRES_URL
garage_env=$(scripts/garage.sh start "$pg_dir/garage")
while IFS='=' read -r key value; do export "$key=$value"; done <<<"$garage_env"

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
