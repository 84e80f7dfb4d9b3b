#!/usr/bin/env bash
# A private PostgreSQL cluster for tests and benchmarks, on a free loopback port,
# in a temporary directory. Installs Debian's postgresql when it is missing; as
# root, the server runs as the unprivileged user `nobody`.
#
#   eval "$(scripts/postgres.sh start)"   # exports INTAKE_TEST_PG_URL, INTAKE_PG_DIR
#   scripts/postgres.sh stop "$INTAKE_PG_DIR"
set -euo pipefail

find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    done
    return 1
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    if ! BIN=$(find_bin); then
        echo "installing postgresql (store tests on PostgreSQL)" >&2
        SUDO=""
        if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        BIN=$(find_bin)
    fi
    DIR=$(mktemp -d /tmp/intake-pg.XXXXXX)
    chmod 755 "$DIR"
    if [ "$(id -u)" = 0 ]; then chown nobody "$DIR"; fi
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_owner "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; exit 1; }
    # Many test databases at once; fsync stays on (durability is what is tested).
    cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 400
shared_buffers = 128MB
CONF
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >&2
    echo "export INTAKE_PG_DIR=$DIR"
    echo "export INTAKE_PG_BIN=$BIN"
    echo "export INTAKE_TEST_PG_URL=postgres://postgres@127.0.0.1:$PORT/postgres"
    ;;
stop)
    DIR=${2:?usage: postgres.sh stop DIR}
    BIN=$(find_bin)
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
    rm -rf "$DIR"
    ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
