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

# Python clients (oras-py) and the benchmark's aiohttp, in a cached virtual environment.
venv="$cache/venv"
if ! "$venv/bin/python" -c 'import oras, aiohttp' >/dev/null 2>&1; then
  echo "creating Python environment in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q oras aiohttp
fi
export BULWARK_TEST_PYTHON="$venv/bin/python"

# One PostgreSQL for the whole run; the tests create a database each.
pg_dir=$(mktemp -d /tmp/bulwark-pg.XXXXXX)
chmod 755 "$pg_dir"
trap 'scripts/postgres.sh stop "$pg_dir/pg"; rm -rf "$pg_dir"' EXIT
BULWARK_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pg_dir/pg")
export BULWARK_TEST_POSTGRES_URL

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
