#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the distributed tests and benchmarks.
#
#   .ci/postgres.sh start         install Debian's postgresql if initdb is missing, create a
#                                 cluster in a new mktemp dir under /tmp listening on 127.0.0.1
#                                 only, on a free port, trust auth on loopback, with databases
#                                 `optuna` and `mlflow`. Prints shell assignments on stdout
#                                 (eval-able) and writes the same lines to DIR/env:
#                                     PG_CI_DIR=/tmp/pgci.XXXXXX
#                                     PGPORT=54321
#                                     PGURL=postgresql://postgres@127.0.0.1:54321
#   .ci/postgres.sh start DIR     same in DIR, which must not exist or be one of our clusters;
#                                 on a live cluster it only reprints the assignments.
#   .ci/postgres.sh stop DIR      stop the cluster and remove DIR (no-op if already gone).
#                                 Refuses any DIR that this script did not create.
#   .ci/postgres.sh createdb DIR NAME   create one more database (no-op if it exists).
#
# Usage in a shell:   eval "$(.ci/postgres.sh start)"; trap '.ci/postgres.sh stop "$PG_CI_DIR"' EXIT
# initdb refuses to run as root: as root the server runs as the `postgres` user (runuser).
# The cluster is for tests only: fsync is off, and anyone on this machine may connect as postgres.
set -euo pipefail

MARKER=".postgres-sh-cluster"   # written by `start`; `stop` removes nothing without it

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Newest installed server binaries (Debian keeps them off PATH in /usr/lib/postgresql/N/bin).
find_bindir() {
    local d
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/psql" ]]; then
        printf '%s' "$d"
    elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
    fi
}

install_postgres() {
    [[ $EUID -eq 0 ]] || die "PostgreSQL is not installed and we are not root: apt-get install postgresql"
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
    log "installing Debian's postgresql (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # The package's postinst creates a default cluster on 5432; we never use it.
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
}

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
# Runs from / so that the postgres user never trips over a cwd it cannot enter.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

own() {
    if [[ $EUID -eq 0 ]]; then chown postgres: "$@"; fi
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        local p
        for _ in $(seq 50); do
            p=$(( 20000 + RANDOM % 40000 ))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
                echo "$p"; return 0
            fi
        done
        die "no free port found"
    fi
}

ours() { [[ -f "$1/$MARKER" ]]; }

is_running() {
    local dir="$1" bindir
    ours "$dir" && [[ -f "$dir/env" && -f "$dir/bindir" ]] || return 1
    bindir="$(cat "$dir/bindir")"
    as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

cmd_start() {
    local dir="${1:-}" bindir port="" attempt db
    if [[ -n "$dir" ]]; then
        if is_running "$dir"; then
            cat "$dir/env"
            return 0
        fi
        # Never reuse (and later delete) a directory that is not ours.
        if [[ -e "$dir" ]] && ! ours "$dir"; then
            die "$dir exists and was not created by postgres.sh; give a new path or none"
        fi
    fi

    bindir="$(find_bindir)"
    if [[ -z "$bindir" ]]; then
        install_postgres
        bindir="$(find_bindir)"
        [[ -n "$bindir" ]] || die "postgresql installed but initdb was not found"
    fi
    if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        die "no 'postgres' user to run the server as (initdb refuses root); install Debian's postgresql"
    fi

    # Under /tmp, not $TMPDIR: pytest's tmp dirs are 0700 root and the postgres user cannot enter.
    if [[ -z "$dir" ]]; then
        dir="$(mktemp -d "${PG_CI_TMPDIR:-/tmp}/pgci.XXXXXX")"
    else
        mkdir -p "$dir"
    fi
    touch "$dir/$MARKER"
    rm -rf "${dir:?}/data"
    chmod 0700 "$dir"
    own "$dir"
    printf '%s\n' "$bindir" >"$dir/bindir"

    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 \
        || as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
            --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }

    # Only the unix socket in $dir and 127.0.0.1 are accepted; nothing else at all.
    cat >"$dir/data/pg_hba.conf" <<'EOF'
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
    own "$dir/data/pg_hba.conf"

    # A free port can be taken between choosing it and binding it: try a few.
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -s \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null 2>&1; then
            break
        fi
        log "start on port $port failed (attempt $attempt); server.log:"
        tail -n 5 "$dir/server.log" >&2 || true
        port=""
    done
    [[ -n "$port" ]] || die "could not start the server (see $dir/server.log)"

    for db in optuna mlflow; do
        as_owner "$bindir/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres \
            -c "CREATE DATABASE $db" >/dev/null
    done

    cat >"$dir/env" <<EOF
PG_CI_DIR=$dir
PGPORT=$port
PGURL=postgresql://postgres@127.0.0.1:$port
EOF
    cat "$dir/env"
}

cmd_createdb() {
    local dir="${1:?usage: postgres.sh createdb DIR NAME}" name="${2:?usage: postgres.sh createdb DIR NAME}"
    local bindir port
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || die "database name must match [a-z_][a-z0-9_]*: $name"
    is_running "$dir" || die "no running postgres.sh cluster in $dir"
    bindir="$(cat "$dir/bindir")"
    port="$(sed -n 's/^PGPORT=//p' "$dir/env")"
    if ! as_owner "$bindir/psql" -X -qtA -h "$dir" -p "$port" -U postgres -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
        as_owner "$bindir/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres \
            -c "CREATE DATABASE $name" >/dev/null
    fi
    echo "postgresql://postgres@127.0.0.1:$port/$name"
}

cmd_stop() {
    local dir="${1:-}" bindir
    [[ -n "$dir" ]] || die "usage: postgres.sh stop DIR"
    [[ -e "$dir" ]] || return 0
    # Only ever delete a directory that `start` created (it holds our marker file).
    ours "$dir" || die "$dir was not created by postgres.sh (no $MARKER); not touching it"
    # Belt and braces: a cluster folder never holds a repository or a project.
    [[ ! -e "$dir/.git" && ! -e "$dir/pyproject.toml" ]] || die "$dir looks like a project; not touching it"
    if [[ -f "$dir/bindir" && -f "$dir/data/postmaster.pid" ]]; then
        bindir="$(cat "$dir/bindir")"
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 -s stop >/dev/null 2>&1 || true
    fi
    rm -rf "${dir:?}"
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    createdb) shift; cmd_createdb "$@" ;;
    *) echo "usage: $0 start [DIR] | stop DIR | createdb DIR NAME" >&2; exit 2 ;;
esac
