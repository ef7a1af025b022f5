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

# Starts a local redis-server for $REDIS_URL unless one answers already.
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
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync everysec --save '' --daemonize yes --logfile "$dir/redis.log"
  for _ in $(seq 1 100); do redis_answers && return; sleep 0.1; done
  echo "redis-server did not start; see $dir/redis.log" >&2
  exit 1
}
