#!/usr/bin/env bash
# Runs every test of CmpWaldurAdapter on a fresh Debian machine: installs what is missing, starts a
# throwaway PostgreSQL cluster and a RabbitMQ broker (web-STOMP) on loopback, builds, runs all test
# projects, stops what it started, and ends with one line: "N passed, N failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/services.sh
WORK="$(mktemp -d /tmp/cmp-adapter-test.XXXXXX)"
RESULTS="$ROOT/artifacts/test-results"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

log() { printf '[test.sh] %s\n' "$*" >&2; }

trap 'services_stop "$WORK"' EXIT
services_start "$WORK"

# --- 3. Build and test -------------------------------------------------------------------------
# First the Helm chart's plain YAML (templates/ is Go templates, ignored by the config); one check in the totals.
log "linting the Helm chart's YAML"
lint_passed=0; lint_failed=0
if yamllint -c charts/.yamllint charts/; then lint_passed=1; else lint_failed=1; fi

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
passed=$lint_passed; failed=$lint_failed
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
