# Sourced by .ci/run before `make test`: a throw-away PostgreSQL server on loopback for
# corpus_assets_tests/test_postgres_instance.py (the deploy/dagster.postgres.yaml profile).
#
# - installs Debian's `postgresql` with apt-get when no server binaries are found (CI runs
#   as root on Debian; elsewhere, install it yourself or leave the test to skip);
# - initdb + pg_ctl in a temporary folder, as the `postgres` user when run as root (the
#   server refuses root), listening on 127.0.0.1 only, on a free port, socket in the folder;
# - creates the database `corpus_test` and exports CORPUS_TEST_POSTGRES_URL, and
#   CORPUS_TEST_REQUIRE_POSTGRES=1 so the test fails rather than skips if it cannot connect;
# - stops the server and deletes the folder when the calling shell exits (trap on EXIT,
#   chained after any EXIT trap the calling shell already had, which still runs);
# - sourcing it again in the same shell reuses the running server (no second server);
# - a failed start stops what it had started at once (not only at shell exit).
# Any failure here is fatal: CI must not pass with the PostgreSQL test silently skipped.

corpus_pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    return 1
}

corpus_pg_as_owner() {
    # Run a server binary as the data folder's owner.
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

corpus_pg_stop() {
    if [ -n "${CORPUS_PG_DIR:-}" ] && [ -d "$CORPUS_PG_DIR" ]; then
        corpus_pg_as_owner "$CORPUS_PG_BIN/pg_ctl" -D "$CORPUS_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$CORPUS_PG_DIR"
        echo "postgres.sh: stopped the test server and removed $CORPUS_PG_DIR"
        CORPUS_PG_DIR=
    fi
}

corpus_pg_install_trap() {
    # Chain the caller's EXIT trap: ours first, then theirs (once; a second source of this
    # file must not chain itself twice).
    local previous
    previous=$(trap -p EXIT)
    case "$previous" in *corpus_pg_stop*) return 0 ;; esac
    # `trap -p` prints a shell-quoted `trap -- 'CMD' EXIT`: let the shell unquote it.
    if [ -n "$previous" ]; then eval "set -- $previous"; previous=$3; fi
    CORPUS_PG_PREVIOUS_EXIT_TRAP=$previous
    trap 'corpus_pg_stop; eval "${CORPUS_PG_PREVIOUS_EXIT_TRAP:-}"' EXIT
}

corpus_pg_start() {
    local port
    # Already started by this shell and still up: reuse it.
    if [ -n "${CORPUS_PG_DIR:-}" ] && [ -n "${CORPUS_PG_BIN:-}" ] && [ -d "$CORPUS_PG_DIR/data" ] \
        && corpus_pg_as_owner "$CORPUS_PG_BIN/pg_ctl" -D "$CORPUS_PG_DIR/data" status >/dev/null 2>&1; then
        echo "postgres.sh: reusing the test server already started by this shell (data in $CORPUS_PG_DIR)"
        return 0
    fi
    if ! CORPUS_PG_BIN=$(corpus_pg_bindir); then
        echo "postgres.sh: no PostgreSQL server found; installing Debian's postgresql"
        if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
            echo "postgres.sh: cannot install PostgreSQL (needs root and apt-get)" >&2
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null || return 1
        CORPUS_PG_BIN=$(corpus_pg_bindir) || { echo "postgres.sh: installed, but no initdb found" >&2; return 1; }
    fi
    CORPUS_PG_DIR=$(mktemp -d /tmp/corpus-pg.XXXXXX) || return 1
    corpus_pg_install_trap
    corpus_pg_start_in_dir || { corpus_pg_stop; return 1; }
}

corpus_pg_start_in_dir() {
    local port
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$CORPUS_PG_DIR" postgres || return 1
        chown postgres "$CORPUS_PG_DIR"
    fi
    chmod 700 "$CORPUS_PG_DIR"
    # A free loopback port (the kernel picks it; CI has python3 before the venv exists).
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
    corpus_pg_as_owner "$CORPUS_PG_BIN/initdb" -D "$CORPUS_PG_DIR/data" -U postgres -A trust \
        --encoding=UTF8 --locale=C --no-sync >"$CORPUS_PG_DIR/initdb.log" 2>&1 \
        || { cat "$CORPUS_PG_DIR/initdb.log" >&2; return 1; }
    corpus_pg_as_owner "$CORPUS_PG_BIN/pg_ctl" -D "$CORPUS_PG_DIR/data" -l "$CORPUS_PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $CORPUS_PG_DIR -c fsync=off" start >/dev/null \
        || { cat "$CORPUS_PG_DIR/server.log" >&2; return 1; }
    corpus_pg_as_owner "$CORPUS_PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres corpus_test || return 1
    export CORPUS_TEST_POSTGRES_URL="postgresql+psycopg2://postgres@127.0.0.1:$port/corpus_test"
    export CORPUS_TEST_REQUIRE_POSTGRES=1
    echo "postgres.sh: PostgreSQL $("$CORPUS_PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $CORPUS_PG_DIR)"
}

corpus_pg_start
