# Garage, a real S3-compatible server, for the tests and the insights benchmark.
# Sourced by tests/run.sh and tests/bench-insights.sh:
#
#   source tests/garage.sh
#   garage_start      # installs Garage (cargo install, once), starts a single node on
#                     # free loopback ports with a private data directory, creates a key
#                     # and a bucket, and exports CASTELLAN_TEST_S3_{ENDPOINT,REGION,BUCKET,
#                     # ACCESS_KEY_ID,SECRET_ACCESS_KEY}
#   garage_stop       # stops it and removes its directory
#
# Needs: `cache` (the cache directory) and `say` from the sourcing script.

GARAGE_VERSION=2.5.0

garage_install() {
    GARAGE_BIN="$cache/garage-$GARAGE_VERSION/bin/garage"
    if [ ! -x "$GARAGE_BIN" ]; then
        say "installing Garage $GARAGE_VERSION (cargo install; a few minutes, once)"
        # sqlite as the metadata engine, bundled: no system library needed. Optimized
        # lightly: it serves a few test objects, and -O1 builds in about half the time
        # of the release default's -O3 on two cores.
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
            --no-default-features --features bundled-libs,sqlite \
            --root "$cache/garage-$GARAGE_VERSION" \
            --target-dir "$cache/garage-build"
        rm -rf "$cache/garage-build"
    fi
}

garage_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

garage_start() {
    garage_install
    GARAGE_DIR=$(mktemp -d /tmp/castellan-garage.XXXXXX)
    local s3_port rpc_port admin_port
    s3_port=$(garage_port)
    rpc_port=$(garage_port)
    admin_port=$(garage_port)
    cat >"$GARAGE_DIR/garage.toml" <<EOF
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
EOF
    chmod 600 "$GARAGE_DIR/garage.toml"
    local g="$GARAGE_BIN -c $GARAGE_DIR/garage.toml"
    $g server >"$GARAGE_DIR/log" 2>&1 &
    GARAGE_PID=$!
    local i
    for i in $(seq 1 100); do
        if $g status >/dev/null 2>&1; then break; fi
        if ! kill -0 "$GARAGE_PID" 2>/dev/null; then
            cat "$GARAGE_DIR/log" >&2
            say "Garage did not start"
            return 1
        fi
        sleep 0.2
    done
    local node key_id secret
    node=$($g node id -q 2>/dev/null | cut -d@ -f1)
    $g layout assign -z local -c 1G "$node" >/dev/null
    $g layout apply --version 1 >/dev/null
    key_id="GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
    secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    $g key import --yes -n castellan-test "$key_id" "$secret" >/dev/null
    $g bucket create castellan-test >/dev/null
    $g bucket allow --read --write --owner castellan-test --key castellan-test >/dev/null
    export CASTELLAN_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
    export CASTELLAN_TEST_S3_REGION=garage
    export CASTELLAN_TEST_S3_BUCKET=castellan-test
    export CASTELLAN_TEST_S3_ACCESS_KEY_ID="$key_id"
    export CASTELLAN_TEST_S3_SECRET_ACCESS_KEY="$secret"
    say "Garage $GARAGE_VERSION on $CASTELLAN_TEST_S3_ENDPOINT (bucket castellan-test)"
}

garage_stop() {
    if [ -n "${GARAGE_PID:-}" ]; then
        kill "$GARAGE_PID" 2>/dev/null || true
        wait "$GARAGE_PID" 2>/dev/null || true
        GARAGE_PID=
    fi
    if [ -n "${GARAGE_DIR:-}" ]; then
        rm -rf "$GARAGE_DIR"
        GARAGE_DIR=
    fi
}
