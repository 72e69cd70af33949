#!/usr/bin/env bash
# Runs every test of CmpWaldurAdapter on a fresh Debian machine: installs what is missing, starts a
# throwaway PostgreSQL cluster and a RabbitMQ broker (web-STOMP) on loopback, builds, runs all test
# projects, stops what it started, and ends with one line: "N passed, N failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d /tmp/cmp-adapter-test.XXXXXX)"
chmod 755 "$WORK"
RESULTS="$ROOT/artifacts/test-results"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
PG_BIN=/usr/lib/postgresql/15/bin
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

log() { printf '[test.sh] %s\n' "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# --- 1. Packages -------------------------------------------------------------------------------
need=()
[ -x "$PG_BIN/initdb" ] || need+=(postgresql-15)
command -v rabbitmq-server >/dev/null 2>&1 || need+=(rabbitmq-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v yamllint >/dev/null 2>&1 || need+=(yamllint)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts the broker on install where it can; ours runs on its own ports and node name.
  (service rabbitmq-server stop || true) >/dev/null 2>&1
fi

# --- 2. Services -------------------------------------------------------------------------------
PG_PORT="$(free_port)"
RMQ_NODE="cmptest$$@localhost"
RMQ_AMQP="$(free_port)"; RMQ_STOMP="$(free_port)"; RMQ_API="$(free_port)"; RMQ_DIST="$(free_port)"
export RABBITMQ_NODENAME="$RMQ_NODE"

cleanup() {
  set +e
  log "stopping services"
  [ -f "$WORK/pg/data/postmaster.pid" ] && su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $WORK/pg/data -m immediate stop" >/dev/null 2>&1
  rabbitmqctl -n "$RMQ_NODE" stop >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
su postgres -s /bin/sh -c "$PG_BIN/initdb -D $WORK/pg/data -A trust -U postgres >/dev/null"
su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $WORK/pg/data -l $WORK/pg/log -w -o \"-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500\" start >/dev/null"
export CMP_TEST_POSTGRES="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres"

log "starting RabbitMQ (web-STOMP on 127.0.0.1:$RMQ_STOMP)"
mkdir -p "$WORK/rmq"
cat > "$WORK/rmq/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$RMQ_AMQP
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $RMQ_STOMP
management.tcp.ip = 127.0.0.1
management.tcp.port = $RMQ_API
loopback_users = none
CONF
echo '[rabbitmq_management,rabbitmq_web_stomp].' > "$WORK/rmq/enabled_plugins"
chown -R rabbitmq:rabbitmq "$WORK/rmq"
export RABBITMQ_CONFIG_FILE="$WORK/rmq/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$WORK/rmq/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$WORK/rmq/mnesia" RABBITMQ_LOG_BASE="$WORK/rmq/log" RABBITMQ_PID_FILE="$WORK/rmq/pid" \
  RABBITMQ_DIST_PORT="$RMQ_DIST" ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
rabbitmq-server -detached
rabbitmqctl -n "$RMQ_NODE" wait "$WORK/rmq/pid" --timeout 120 >/dev/null
rabbitmqctl -n "$RMQ_NODE" add_user cmp-test cmp-test >/dev/null
rabbitmqctl -n "$RMQ_NODE" set_user_tags cmp-test administrator >/dev/null
rabbitmqctl -n "$RMQ_NODE" set_permissions -p / cmp-test '.*' '.*' '.*' >/dev/null
export CMP_TEST_RABBITMQ_WS="ws://127.0.0.1:$RMQ_STOMP/ws"
export CMP_TEST_RABBITMQ_API="http://127.0.0.1:$RMQ_API/api/"
export CMP_TEST_RABBITMQ_USER=cmp-test CMP_TEST_RABBITMQ_PASSWORD=cmp-test
export CMP_TEST_RABBITMQ_NODE="$RMQ_NODE"

# --- 3. Build and test -------------------------------------------------------------------------
log "building"
dotnet build CmpWaldurAdapter.sln -c Release --nologo -v q -clp:ErrorsOnly

status=0
for project in tests/*Tests/*.csproj; do
  name="$(basename "$project" .csproj)"
  log "running $name"
  dotnet test "$project" -c Release --no-build --nologo \
    --blame-hang-timeout 5m \
    --logger "trx;LogFileName=$name.trx" --results-directory "$RESULTS" \
    --logger "console;verbosity=minimal" || status=1
done

# --- 4. Totals ---------------------------------------------------------------------------------
passed=0; failed=0
for project in tests/*Tests/*.csproj; do
  name="$(basename "$project" .csproj)"
  trx="$RESULTS/$name.trx"
  if [ ! -f "$trx" ]; then
    log "$name produced no results: counted as a failure"
    failed=$((failed + 1))
    continue
  fi
  counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n1)"
  p="$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")"
  f="$(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")"
  passed=$((passed + p)); failed=$((failed + f))
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
