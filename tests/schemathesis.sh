#!/usr/bin/env bash
# Runs schemathesis (PyPI) against a real `castellan` on its embedded default:
# every operation of /openapi.json, every check, stateful links included.
#
#   bash tests/schemathesis.sh CASTELLAN_BINARY SCHEMATHESIS_BINARY
#
# CI=true pins the seed so a run is repeatable; elsewhere every run draws new cases.
set -euo pipefail
bin=$(realpath "$1")
st=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/castellan-st.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)
pid=
stop() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT
cd "$work"
CASTELLAN_HTTP_LISTEN=127.0.0.1:$port CASTELLAN_MANAGEMENT_LISTEN=127.0.0.1:$mport \
    "$bin" quickstart >quickstart.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    grep -q "API key" quickstart.log 2>/dev/null && break
    sleep 0.1
done
key=$(awk '/API key:/ {print $3}' quickstart.log)
[ -n "$key" ] || { cat quickstart.log; echo "castellan did not start" >&2; exit 1; }
seed=()
[ "${CI:-}" = true ] && seed=(--seed 20261128)
# Rotating the API key would revoke the key this run authenticates with. The
# "created resource not found" check is left out here: see schemathesis.toml (the
# command line's `--checks all` outranks the file's setting).
"$st" --config-file "$here/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
    -H "x-api-key: $key" --checks all --exclude-checks ensure_resource_availability \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" \
    --exclude-path '/api/administrators/{id}/apikey' "${seed[@]}"
