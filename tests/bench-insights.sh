#!/usr/bin/env bash
# The insights benchmark with its peers in one run: installs DuckDB and awscli (PyPI)
# and Garage if missing, starts Garage on a free loopback port, runs
# `castellan-bench insights` (10M events by default), and stops Garage.
#
#   bash tests/bench-insights.sh                  # the full run
#   bash tests/bench-insights.sh --events 1000000 # a quicker one
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cache=${CASTELLAN_CACHE:-$HOME/.cache/castellan}
mkdir -p "$cache"
say() { printf '[bench-insights] %s\n' "$*" >&2; }

venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null || [ ! -x "$venv/bin/aws" ]; then
    say "installing duckdb and awscli (PyPI)"
    "$venv/bin/pip" install -q --disable-pip-version-check duckdb awscli
fi
export CASTELLAN_TEST_PYTHON="$venv/bin/python"
export CASTELLAN_BENCH_AWS="$venv/bin/aws"

source "$here/tests/garage.sh"
trap garage_stop EXIT
garage_start

cargo build --release -q -p castellan-bench
"${CARGO_TARGET_DIR:-$here/target}/release/castellan-bench" insights "$@"
