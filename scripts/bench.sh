#!/usr/bin/env bash
# Credit-ledger benchmark on PostgreSQL: charges per second through the real CreditLedger, with the
# exactness invariant (2,000 concurrent 2-credit charges against 1,000 credits → exactly 500) checked
# before and after. Starts its own throwaway PostgreSQL cluster on loopback with durable defaults
# (fsync on), runs once with synchronous_commit=on and once with it off, appends the results (date,
# machine, command) to docs/benchmarks.md, and stops the cluster. Needs root, like scripts/test.sh.
# Then the chat gateway benchmark: the same loads of completions straight to the Langflow emulator and
# through the adapter (on the same PostgreSQL): added latency p50/p99 at a steady rate (open loop),
# requests/s at saturation (closed loop), and the adapter's peak memory; then the same on the embedded
# SQLite database, at a steady rate it can carry (--chat-sqlite-rate, default 100/s).
#
# Then knowledge uploads through the adapter's public endpoint to the RAGFlow emulator (same PostgreSQL): rounds of
# --uploads concurrent large files (--upload-mb, capped at the adapter's per-file limit: its default, or
# --upload-limit-mb) and a series of small ones; MB/s, and the adapter's peak memory before and after them (target: ≤ 250 MB, growth ≤ 64 MB).
#
# Then the end-to-end pipelines on PostgreSQL and RabbitMQ started by scripts/services.sh: N Create orders
# announced over STOMP until done (target 30 s, no duplicates) and usage reporting for N resources (target
# 30 s; a second run posts nothing; after M more charges only those are posted).
#
#   scripts/bench.sh [--only ledger|chat|upload|orders|usage] [--charges N] [--workers N] [--customers 1,64]
#                    [--chat-requests N] [--chat-workers N] [--chat-rate N] [--chat-sqlite-rate N] [--uploads 8] [--upload-mb 64] [--upload-limit-mb N]
#                    [--orders 500] [--resources 10000] [--no-record]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/services.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

CHARGES=30000 WORKERS=16 CUSTOMERS=1,64 RECORD=docs/benchmarks.md ONLY="" CHAT_REQUESTS=20000 CHAT_WORKERS=16 CHAT_RATE=500 CHAT_SQLITE_RATE=100 UPLOADS=8 UPLOAD_MB=64 UPLOAD_LIMIT_MB="" ORDERS=500 RESOURCES=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --charges) CHARGES="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --customers) CUSTOMERS="$2"; shift 2 ;;
    --chat-requests) CHAT_REQUESTS="$2"; shift 2 ;;
    --chat-workers) CHAT_WORKERS="$2"; shift 2 ;;
    --chat-rate) CHAT_RATE="$2"; shift 2 ;;
    --chat-sqlite-rate) CHAT_SQLITE_RATE="$2"; shift 2 ;;
    --uploads) UPLOADS="$2"; shift 2 ;;
    --upload-mb) UPLOAD_MB="$2"; shift 2 ;;
    --upload-limit-mb) UPLOAD_LIMIT_MB="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --no-record) RECORD=""; shift ;;
    --orders) ORDERS="$2"; shift 2 ;;
    --resources) RESOURCES="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

log() { printf '[bench.sh] %s\n' "$*" >&2; }

[ -x "$PG_BIN/initdb" ] || { log "installing postgresql-15"; DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null; }

WORK="$(mktemp -d /tmp/cmp-adapter-bench.XXXXXX)"
chmod 755 "$WORK"
stop() {
  services_stop "$WORK/services"
  [ -f "$WORK/pg/data/postmaster.pid" ] && su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $WORK/pg/data -m fast stop" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap stop EXIT

PORT="$(services_free_port)"
PG_SETTINGS="-p $PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB"
log "starting PostgreSQL on 127.0.0.1:$PORT ($PG_SETTINGS)"
mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
su postgres -s /bin/sh -c "$PG_BIN/initdb -D $WORK/pg/data -A trust -U postgres >/dev/null"
su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D $WORK/pg/data -l $WORK/pg/log -w -o \"$PG_SETTINGS\" start >/dev/null"
SERVER="Host=127.0.0.1;Port=$PORT;Username=postgres;Database=postgres"

log "building the benchmark (Release)"
dotnet build tests/CmpWaldurAdapter.Benchmarks -c Release --nologo -v q -clp:ErrorsOnly
BENCH=tests/CmpWaldurAdapter.Benchmarks/bin/Release/net10.0/CmpWaldurAdapter.Benchmarks.dll

status=0
for commit in $([ -z "$ONLY" ] || [ "$ONLY" = ledger ] && echo on off); do
  args=(--server "$SERVER" --charges "$CHARGES" --workers "$WORKERS" --customers "$CUSTOMERS" --synchronous-commit "$commit"
        --label "credit ledger, synchronous_commit=$commit")
  [ -n "$RECORD" ] && args+=(--record "$RECORD")
  log "running with synchronous_commit=$commit"
  BENCH_COMMAND="scripts/bench.sh --charges $CHARGES --workers $WORKERS --customers $CUSTOMERS" dotnet "$BENCH" "${args[@]}" || status=1
done
if [ -z "$ONLY" ] || [ "$ONLY" = chat ]; then
  args=(chat --rate "$CHAT_RATE" --requests "$CHAT_REQUESTS" --workers "$CHAT_WORKERS" --database Postgres)
  [ -n "$RECORD" ] && args+=(--record "$RECORD")
  log "running the chat gateway benchmark"
  CMP_TEST_POSTGRES="$SERVER" BENCH_COMMAND="scripts/bench.sh --only chat --chat-rate $CHAT_RATE --chat-requests $CHAT_REQUESTS --chat-workers $CHAT_WORKERS" \
    dotnet "$BENCH" "${args[@]}" || status=1
  args=(chat --rate "$CHAT_SQLITE_RATE" --requests "$((CHAT_REQUESTS / 2))" --workers "$CHAT_WORKERS" --database Sqlite)
  [ -n "$RECORD" ] && args+=(--record "$RECORD")
  log "running the chat gateway benchmark on SQLite"
  BENCH_COMMAND="scripts/bench.sh --only chat --chat-sqlite-rate $CHAT_SQLITE_RATE --chat-requests $CHAT_REQUESTS --chat-workers $CHAT_WORKERS" \
    dotnet "$BENCH" "${args[@]}" || status=1
fi

if [ -z "$ONLY" ] || [ "$ONLY" = upload ]; then
  args=(upload --uploads "$UPLOADS" --upload-mb "$UPLOAD_MB")
  [ -n "$UPLOAD_LIMIT_MB" ] && args+=(--limit-mb "$UPLOAD_LIMIT_MB")
  [ -n "$RECORD" ] && args+=(--record "$RECORD")
  log "running the upload benchmark"
  CMP_TEST_POSTGRES="$SERVER" BENCH_COMMAND="scripts/bench.sh --only upload --uploads $UPLOADS --upload-mb $UPLOAD_MB${UPLOAD_LIMIT_MB:+ --upload-limit-mb $UPLOAD_LIMIT_MB}" \
    dotnet "$BENCH" "${args[@]}" || status=1
fi

# The pipelines: their own PostgreSQL (fsync off, as the tests run) and RabbitMQ with web-STOMP.
if [ -z "$ONLY" ] || [ "$ONLY" = orders ] || [ "$ONLY" = usage ]; then
  log "starting PostgreSQL and RabbitMQ for the pipeline benchmarks"
  services_start "$WORK/services"
  for scenario in orders usage; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$scenario" ] && continue
    args=("$scenario" --orders "$ORDERS" --resources "$RESOURCES")
    [ "$scenario" = usage ] && args=("$scenario" --resources "$RESOURCES")
    [ "$scenario" = orders ] && args=("$scenario" --orders "$ORDERS")
    [ -n "$RECORD" ] && args+=(--record "$RECORD")
    log "running the $scenario pipeline"
    BENCH_COMMAND="scripts/bench.sh --only $scenario --orders $ORDERS --resources $RESOURCES" dotnet "$BENCH" "${args[@]}" || status=1
  done
fi
exit $status
