#!/usr/bin/env bash
# Throwaway test services on loopback: a PostgreSQL cluster and a RabbitMQ broker with web-STOMP.
# Sourced by scripts/test.sh and scripts/dev-services.sh. Needs root (apt, su postgres).
#   services_start DIR   installs what is missing, starts both, exports CMP_TEST_* variables
#   services_stop DIR    stops both and removes DIR

PG_BIN=/usr/lib/postgresql/15/bin

services_log() { printf '[services] %s\n' "$*" >&2; }

services_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

services_install() {
  local need=()
  [ -x "$PG_BIN/initdb" ] || need+=(postgresql-15)
  command -v rabbitmq-server >/dev/null 2>&1 || need+=(rabbitmq-server)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v yamllint >/dev/null 2>&1 || need+=(yamllint)
  if [ ${#need[@]} -gt 0 ]; then
    services_log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian may start a broker on install; ours runs on its own ports and node name.
    (service rabbitmq-server stop || true) >/dev/null 2>&1
  fi
}

services_start() {
  local dir="$1"
  services_install
  mkdir -p "$dir" && chmod 755 "$dir"
  local pg_port amqp stomp plain_stomp api dist node
  pg_port="$(services_free_port)"; amqp="$(services_free_port)"; stomp="$(services_free_port)"
  plain_stomp="$(services_free_port)"; api="$(services_free_port)"; dist="$(services_free_port)"
  node="cmptest$$@localhost"

  services_log "starting PostgreSQL on 127.0.0.1:$pg_port"
  mkdir -p "$dir/pg" && chown postgres "$dir/pg"
  su postgres -s /bin/sh -c "$PG_BIN/initdb -D $dir/pg/data -A trust -U postgres >/dev/null"
  su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $dir/pg/data -l $dir/pg/log -w -o \"-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500\" start >/dev/null"

  services_log "starting RabbitMQ (web-STOMP on 127.0.0.1:$stomp)"
  mkdir -p "$dir/rmq"
  cat > "$dir/rmq/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$amqp
stomp.listeners.tcp.1 = 127.0.0.1:$plain_stomp
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $stomp
management.tcp.ip = 127.0.0.1
management.tcp.port = $api
loopback_users = none
CONF
  echo '[rabbitmq_management,rabbitmq_web_stomp].' > "$dir/rmq/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$dir/rmq"
  cat > "$dir/rmq/env" <<ENV
export RABBITMQ_NODENAME=$node
export RABBITMQ_CONFIG_FILE=$dir/rmq/rabbitmq RABBITMQ_ENABLED_PLUGINS_FILE=$dir/rmq/enabled_plugins
export RABBITMQ_MNESIA_BASE=$dir/rmq/mnesia RABBITMQ_LOG_BASE=$dir/rmq/log RABBITMQ_PID_FILE=$dir/rmq/pid
export RABBITMQ_DIST_PORT=$dist ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
ENV
  ( . "$dir/rmq/env"; rabbitmq-server -detached; rabbitmqctl wait "$dir/rmq/pid" --timeout 120 >/dev/null
    rabbitmqctl add_user cmp-test cmp-test >/dev/null
    rabbitmqctl set_user_tags cmp-test administrator >/dev/null
    rabbitmqctl set_permissions --vhost / cmp-test '.*' '.*' '.*' >/dev/null )

  cat > "$dir/env" <<ENV
export CMP_TEST_POSTGRES="Host=127.0.0.1;Port=$pg_port;Username=postgres;Database=postgres"
export CMP_TEST_RABBITMQ_WS="ws://127.0.0.1:$stomp/ws"
export CMP_TEST_RABBITMQ_API="http://127.0.0.1:$api/api/"
export CMP_TEST_RABBITMQ_USER=cmp-test CMP_TEST_RABBITMQ_PASSWORD=cmp-test
export CMP_TEST_RABBITMQ_NODE=$node
ENV
  . "$dir/env"
}

services_stop() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  services_log "stopping services"
  # Either may already be gone (a crash, a reboot): stopping then is not an error.
  if [ -f "$dir/pg/data/postmaster.pid" ]; then su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $dir/pg/data -m immediate stop" >/dev/null 2>&1 || true; fi
  if [ -f "$dir/rmq/env" ]; then ( . "$dir/rmq/env"; rabbitmqctl stop >/dev/null 2>&1 ) || true; fi
  rm -rf "$dir"
}
