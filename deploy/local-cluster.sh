#!/usr/bin/env bash
# The deploy/docker-compose.yml topology on one machine, without Docker: this machine's PostgreSQL
# and Redis, N feeds nodes on their own ports, one notifier, and Debian's nginx in front.
#
#   deploy/local-cluster.sh start [N]   N nodes (default 2); installs nginx with apt-get if missing
#   deploy/local-cluster.sh status      what runs, with each node's /readyz
#   deploy/local-cluster.sh stop        stop everything `start` started
#   deploy/local-cluster.sh env         the FEEDS_* settings of the nodes, as `export` lines
#   deploy/local-cluster.sh clean       stop, drop the cluster's database, delete the run folder
#
# Settings (environment): FEEDS_CLUSTER_RUN_DIR (deploy/.run), FEEDS_CLUSTER_LISTEN (127.0.0.1),
# FEEDS_CLUSTER_HTTP_PORT (8080, nginx), FEEDS_CLUSTER_NODE_PORT (8001: nodes on 8001, 8002, …),
# FEEDS_CLUSTER_PG_URL (postgresql://postgres@127.0.0.1:5432, an administrator's URL),
# FEEDS_CLUSTER_DB (feeds_cluster), FEEDS_CLUSTER_DB_ROLE (feeds_cluster: the role the processes
# connect as, made with the database and owning it, never a superuser, so row-level security applies),
# FEEDS_CLUSTER_REDIS_URL (redis://127.0.0.1:6379/0), FEEDS_CLUSTER_BIN (.venv/bin),
# FEEDS_CLUSTER_NGINX (nginx on PATH or /usr/sbin/nginx). FEEDS_PUBLIC_URL, FEEDS_ALLOWED_ORIGINS,
# FEEDS_SECRET_KEY and FEEDS_REDIS_PREFIX are taken from the environment when set; every other
# FEEDS_* variable (SMTP, log level, argon2 …) passes through to the nodes and the notifier.
# Without FEEDS_SMTP_HOST, emails land as .eml files in RUN_DIR/mail. docs/operations.md has more.
set -euo pipefail

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$DEPLOY_DIR")
RUN_DIR=${FEEDS_CLUSTER_RUN_DIR:-$DEPLOY_DIR/.run}
PIDS=$RUN_DIR/pids
LOGS=$RUN_DIR/logs
STATE=$RUN_DIR/cluster.env

say() { printf '%s\n' "$*"; }
die() { printf 'local-cluster: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    die "need root for: $* (run it yourself, then try again)"
  fi
}

# --- settings ---------------------------------------------------------------------------------

unique_list() { printf '%s\n' "$@" | awk '!seen[$0]++' | paste -sd, -; }

# A value in single quotes, for lines a shell reads back.
quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

load_settings() {
  LISTEN=${FEEDS_CLUSTER_LISTEN:-127.0.0.1}
  HTTP_PORT=${FEEDS_CLUSTER_HTTP_PORT:-8080}
  NODE_PORT=${FEEDS_CLUSTER_NODE_PORT:-8001}
  PG_URL=${FEEDS_CLUSTER_PG_URL:-postgresql://postgres@127.0.0.1:5432}
  PG_URL=${PG_URL%/}
  DB=${FEEDS_CLUSTER_DB:-feeds_cluster}
  DB_ROLE=${FEEDS_CLUSTER_DB_ROLE:-feeds_cluster}
  REDIS_URL=${FEEDS_CLUSTER_REDIS_URL:-redis://127.0.0.1:6379/0}
  BIN=${FEEDS_CLUSTER_BIN:-$REPO_DIR/.venv/bin}
  NGINX=${FEEDS_CLUSTER_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
  PUBLIC_URL=${FEEDS_PUBLIC_URL:-http://localhost:$HTTP_PORT}
  ALLOWED_ORIGINS=${FEEDS_ALLOWED_ORIGINS:-$(unique_list "$PUBLIC_URL" "http://localhost:$HTTP_PORT" "http://127.0.0.1:$HTTP_PORT")}
  REDIS_PREFIX=${FEEDS_REDIS_PREFIX:-feeds-cluster}
  NODES=${NODES:-2}
}

# `start` writes the settings it used, so that `status`, `stop` and `env` find the same cluster.
save_settings() {
  {
    for name in LISTEN HTTP_PORT NODE_PORT PG_URL DB DB_ROLE REDIS_URL BIN NGINX PUBLIC_URL ALLOWED_ORIGINS REDIS_PREFIX NODES; do
      printf '%s=%q\n' "$name" "${!name}"
    done
  } >"$STATE"
}

restore_settings() {
  load_settings
  if [ -f "$STATE" ]; then
    # shellcheck disable=SC1090
    . "$STATE"
  fi
}

secret_key() {
  if [ -n "${FEEDS_SECRET_KEY:-}" ]; then
    printf '%s' "$FEEDS_SECRET_KEY"
    return
  fi
  if [ ! -s "$RUN_DIR/secret.key" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_hex(32))' >"$RUN_DIR/secret.key")
  fi
  cat "$RUN_DIR/secret.key"
}

# The settings every node and the notifier share (docs/configuration.md); FEEDS_PORT is per node.
export_feeds_env() {
  local server=${PG_URL#*://}
  export FEEDS_DATABASE_URL="postgresql+asyncpg://$DB_ROLE@${server##*@}/$DB"
  export FEEDS_REDIS_URL=$REDIS_URL
  export FEEDS_REDIS_PREFIX=$REDIS_PREFIX
  FEEDS_SECRET_KEY=$(secret_key)
  export FEEDS_SECRET_KEY
  export FEEDS_PUBLIC_URL=$PUBLIC_URL
  export FEEDS_ALLOWED_ORIGINS=$ALLOWED_ORIGINS
  export FEEDS_TRUSTED_PROXIES=127.0.0.1/32
  export FEEDS_DATA_DIR=$RUN_DIR/data
  export FEEDS_FILES_DIR=$RUN_DIR/data/files
  export FEEDS_MAIL_DIR=$RUN_DIR/mail
  export FEEDS_HOST=127.0.0.1
  # Prometheus scrapes the nodes at 127.0.0.1:8001, … (nginx does not pass /metrics).
  export FEEDS_METRICS_ALLOW=${FEEDS_METRICS_ALLOW:-127.0.0.0/8,::1/128}
}

SHARED_VARS="FEEDS_DATABASE_URL FEEDS_REDIS_URL FEEDS_REDIS_PREFIX FEEDS_SECRET_KEY FEEDS_PUBLIC_URL
FEEDS_ALLOWED_ORIGINS FEEDS_TRUSTED_PROXIES FEEDS_DATA_DIR FEEDS_FILES_DIR FEEDS_MAIL_DIR FEEDS_HOST
FEEDS_METRICS_ALLOW"

node_port() { echo $((NODE_PORT + $1 - 1)); }

# --- processes ----------------------------------------------------------------------------------

# A process that exited but was not yet reaped by its parent (a zombie) counts as gone.
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# The pid in pids/NAME.pid, if that process is alive and still the program we started.
running_pid() {
  local file=$PIDS/$1.pid pid
  [ -s "$file" ] || return 1
  pid=$(cat "$file")
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "$2" || return 1
  echo "$pid"
}

pattern_of() {
  case $1 in
    nginx) echo 'nginx' ;;
    redis) echo 'redis-server' ;;
    *) echo 'feeds-server' ;;
  esac
}

# What `start` started, from the pid files: nginx, the nodes in order, the notifier, Redis.
names() {
  local f
  [ -d "$PIDS" ] || return 0
  [ -f "$PIDS/nginx.pid" ] && echo nginx
  for f in $(ls "$PIDS" | grep -E '^node-[0-9]+\.pid$' | sort -t- -k2 -n); do echo "${f%.pid}"; done
  [ -f "$PIDS/notifier.pid" ] && echo notifier
  [ -f "$PIDS/redis.pid" ] && echo redis
  return 0
}

# Run a command in the background, in its own session (a Ctrl-C at the terminal that ran `start`
# does not reach it), output into logs/NAME.log, pid into pids/NAME.pid.
spawn() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

wait_ready() {
  local name=$1 url=$2
  for _ in $(seq 1 150); do
    http_ok "$url" && return 0
    # nginx writes its pid file itself, a moment after it was started: only a dead process is final.
    if [ -s "$PIDS/$name.pid" ] && ! running_pid "$name" "$(pattern_of "$name")" >/dev/null; then break; fi
    sleep 0.2
  done
  say "$name did not become ready at $url; the end of $LOGS/$name.log:" >&2
  tail -n 20 "$LOGS/$name.log" >&2 2>/dev/null || true
  return 1
}

# Ask NAMEs to stop (SIGTERM; nginx: SIGQUIT, its graceful stop), wait for all of them together,
# then SIGKILL whatever outlived the wait (20 s: a node's graceful shutdown takes at most 10 s).
stop_all() {
  local name pid signal entry still pids=()
  for name in "$@"; do
    if pid=$(running_pid "$name" "$(pattern_of "$name")"); then
      signal=TERM
      [ "$name" = nginx ] && signal=QUIT
      kill -s "$signal" "$pid" 2>/dev/null || true
      pids+=("$name:$pid")
    fi
    rm -f "$PIDS/$name.pid"
  done
  for _ in $(seq 1 200); do
    still=0
    for entry in "${pids[@]}"; do alive "${entry#*:}" && still=1; done
    [ "$still" = 0 ] && break
    sleep 0.1
  done
  for entry in "${pids[@]}"; do
    if alive "${entry#*:}"; then
      kill -s KILL "${entry#*:}" 2>/dev/null || true
      say "${entry%%:*} (pid ${entry#*:}) outlived the wait: killed"
    else
      say "stopped ${entry%%:*} (pid ${entry#*:})"
    fi
  done
}

# --- the services this machine already has ---------------------------------------------------

ensure_venv() {
  [ -x "$BIN/feeds-server" ] && return 0
  [ "$BIN" = "$REPO_DIR/.venv/bin" ] || die "no feeds-server in FEEDS_CLUSTER_BIN=$BIN"
  say "installing feeds_server into $REPO_DIR/.venv"
  [ -x "$REPO_DIR/.venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$REPO_DIR/.venv"
  "$BIN/python" -m pip install --quiet --upgrade pip
  "$BIN/python" -m pip install --quiet -e "$REPO_DIR"
}

ensure_nginx() {
  [ -x "$NGINX" ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "nginx is not installed (and no apt-get to install it)"
  say "installing nginx (Debian package)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null ||
    { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; }
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  [ -x "$NGINX" ] || die "nginx did not install"
}

is_local_host() { case $1 in 127.0.0.1 | localhost | ::1 | '[::1]') return 0 ;; *) return 1 ;; esac; }

# host and port of a URL like scheme://[user[:password]@]host[:port][/path]
url_host() { local r=${1#*://}; r=${r%%/*}; r=${r##*@}; echo "${r%:*}"; }
url_port() { local r=${1#*://}; r=${r%%/*}; r=${r##*@}; [ "${r##*:}" != "$r" ] && echo "${r##*:}" || echo "$2"; }

ensure_postgres() {
  local host port
  host=$(url_host "$PG_URL")
  port=$(url_port "$PG_URL" 5432)
  command -v psql >/dev/null 2>&1 || die "psql is not installed (Debian: apt-get install postgresql)"
  if ! pg_isready -q -h "$host" -p "$port" 2>/dev/null; then
    is_local_host "$host" && command -v pg_ctlcluster >/dev/null 2>&1 || die "PostgreSQL at $host:$port is not reachable"
    say "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -n 1)" main start
    touch "$RUN_DIR/postgresql.started"
    for _ in $(seq 1 30); do pg_isready -q -h "$host" -p "$port" && break; sleep 1; done
  fi
  if [ -z "$(psql "$PG_URL/postgres" -qtAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_ROLE'")" ]; then
    psql "$PG_URL/postgres" -q -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE \"$DB_ROLE\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS" >/dev/null
    say "created role $DB_ROLE"
  fi
  if [ -z "$(psql "$PG_URL/postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    psql "$PG_URL/postgres" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$DB\" OWNER \"$DB_ROLE\"" >/dev/null
    say "created database $DB, owned by $DB_ROLE"
  fi
}

ensure_redis() {
  local host port
  redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return 0
  host=$(url_host "$REDIS_URL")
  port=$(url_port "$REDIS_URL" 6379)
  is_local_host "$host" && command -v redis-server >/dev/null 2>&1 || die "Redis at $REDIS_URL is not reachable"
  say "starting Redis on $host:$port (pub/sub only, nothing kept on disk)"
  redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --pidfile "$PIDS/redis.pid" --logfile "$LOGS/redis.log" --dir "$RUN_DIR"
  for _ in $(seq 1 30); do redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "Redis did not start; see $LOGS/redis.log"
}

render_nginx_conf() {
  local servers="" i line
  for i in $(seq 1 "$NODES"); do
    servers+="        server 127.0.0.1:$(node_port "$i") max_fails=3 fail_timeout=10s;"$'\n'
  done
  while IFS= read -r line; do
    if [[ $line == *@UPSTREAM_SERVERS@* ]]; then
      printf '%s' "$servers"
      continue
    fi
    line=${line//@RUN_DIR@/$RUN_DIR}
    line=${line//@LISTEN@/$LISTEN}
    line=${line//@HTTP_PORT@/$HTTP_PORT}
    line=${line//@USER@/$(id -un)}
    printf '%s\n' "$line"
  done <"$DEPLOY_DIR/nginx-local.conf.template" >"$RUN_DIR/nginx.conf"
}

# --- commands -----------------------------------------------------------------------------------

cmd_start() {
  NODES=${1:-2}
  [[ $NODES =~ ^[1-9][0-9]*$ ]] || die "the number of nodes must be a whole number from 1, got '$NODES'"
  local name
  for name in $(names); do
    running_pid "$name" "$(pattern_of "$name")" >/dev/null && die "already running ($name); run 'stop' first"
  done
  load_settings
  mkdir -p "$PIDS" "$LOGS" "$RUN_DIR/data/files" "$RUN_DIR/mail" "$RUN_DIR/nginx"
  ensure_venv
  ensure_nginx
  save_settings
  ensure_postgres
  ensure_redis
  export_feeds_env
  # Each WebSocket is a file descriptor: let the nodes and nginx have as many as this user may.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

  "$BIN/feeds-server" migrate >>"$LOGS/migrate.log" 2>&1 || { tail -n 20 "$LOGS/migrate.log" >&2; die "migration failed"; }

  local i port
  for i in $(seq 1 "$NODES"); do
    port=$(node_port "$i")
    spawn "node-$i" env FEEDS_PORT="$port" "$BIN/feeds-server" serve --no-migrate
  done
  spawn notifier "$BIN/feeds-server" notifier
  for i in $(seq 1 "$NODES"); do
    wait_ready "node-$i" "http://127.0.0.1:$(node_port "$i")/readyz" || { cmd_stop >/dev/null; die "node-$i failed to start"; }
  done

  render_nginx_conf
  "$NGINX" -q -t -p "$RUN_DIR/nginx/" -c "$RUN_DIR/nginx.conf" -e "$LOGS/nginx-error.log" >>"$LOGS/nginx-error.log" 2>&1 ||
    { tail -n 5 "$LOGS/nginx-error.log" >&2; cmd_stop >/dev/null; die "nginx refused its configuration ($RUN_DIR/nginx.conf)"; }
  "$NGINX" -p "$RUN_DIR/nginx/" -c "$RUN_DIR/nginx.conf" -e "$LOGS/nginx-error.log"
  wait_ready nginx "http://127.0.0.1:$HTTP_PORT/readyz" || { cmd_stop >/dev/null; die "nginx failed to start"; }
  running_pid notifier feeds-server >/dev/null || { tail -n 20 "$LOGS/notifier.log" >&2; cmd_stop >/dev/null; die "the notifier exited"; }

  local count="$NODES nodes"
  [ "$NODES" = 1 ] && count="1 node"
  say "feeds cluster up: $count behind nginx at http://$LISTEN:$HTTP_PORT (public URL $PUBLIC_URL)"
  say "database $DB, Redis $REDIS_URL (prefix $REDIS_PREFIX), logs in $LOGS"
  if [ -z "${FEEDS_SMTP_HOST:-}" ]; then say "emails: $RUN_DIR/mail"; fi
}

cmd_status() {
  restore_settings
  local name pid any=0 down=0 detail
  for name in $(names); do
    any=1
    detail=""
    case $name in
      node-*) detail="http://127.0.0.1:$(node_port "${name#node-}")" ;;
      nginx) detail="http://$LISTEN:$HTTP_PORT" ;;
    esac
    if pid=$(running_pid "$name" "$(pattern_of "$name")"); then
      if [ -n "$detail" ]; then
        if http_ok "$detail/readyz"; then detail="$detail ready"; else detail="$detail NOT READY"; down=1; fi
      fi
      printf '%-10s pid %-8s running  %s\n' "$name" "$pid" "$detail"
    else
      printf '%-10s %-12s stopped\n' "$name" ""
      down=1
    fi
  done
  if [ "$any" = 0 ]; then
    say "not running"
    return 3
  fi
  [ "$down" = 0 ] || return 1
}

cmd_stop() {
  restore_settings
  # The balancer first (no new requests), then the nodes and the worker, then the Redis they used.
  local all
  all=$(names)
  stop_all $(grep -x nginx <<<"$all" || true)
  stop_all $(grep -E '^(node-[0-9]+|notifier)$' <<<"$all" || true)
  stop_all $(grep -x redis <<<"$all" || true)
  if [ -f "$RUN_DIR/postgresql.started" ]; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -n 1)" main stop && say "stopped PostgreSQL"
    rm -f "$RUN_DIR/postgresql.started"
  fi
  return 0
}

cmd_env() {
  restore_settings
  mkdir -p "$RUN_DIR"
  export_feeds_env
  local name
  for name in $SHARED_VARS; do
    printf 'export %s=%s\n' "$name" "$(quote "${!name}")"
  done
  printf 'export FEEDS_PORT=%s\n' "$(node_port 1)"
}

cmd_clean() {
  cmd_stop
  restore_settings
  if command -v psql >/dev/null 2>&1 && pg_isready -q -h "$(url_host "$PG_URL")" -p "$(url_port "$PG_URL" 5432)" 2>/dev/null; then
    psql "$PG_URL/postgres" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null && say "dropped database $DB"
  fi
  rm -rf "$RUN_DIR"
  say "removed $RUN_DIR"
}

case ${1:-} in
  start) cmd_start "${2:-2}" ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  clean) cmd_clean ;;
  *)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
