#!/usr/bin/env bash
# Starts (up) or stops (down) the same throwaway PostgreSQL and RabbitMQ that scripts/test.sh uses, for
# running single tests from an editor:  scripts/dev-services.sh up && . .test-services/env
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/services.sh"
DIR=/tmp/cmp-adapter-dev-services
case "${1:-}" in
  up)
    services_stop "$DIR"
    services_start "$DIR"
    mkdir -p "$ROOT/.test-services"
    { cat "$DIR/env"; echo "export CMP_TEST_SERVICES_DIR=$DIR"; } > "$ROOT/.test-services/env"
    echo "Services are up. Run: . .test-services/env" ;;
  down)
    services_stop "$DIR"
    rm -rf "$ROOT/.test-services" ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
