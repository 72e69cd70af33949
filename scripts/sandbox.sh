#!/usr/bin/env bash
# The product on this machine in one command: SQLite plus in-process emulators of Waldur, Langflow and RAGFlow.
# Builds cmp-adapter, then runs `cmp-adapter sandbox` (arguments are passed on, e.g. --port 8081); Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/CmpWaldurAdapter/CmpWaldurAdapter.csproj -c Release -v q -clp:ErrorsOnly -nologo >&2
exec src/CmpWaldurAdapter/bin/Release/net10.0/cmp-adapter sandbox "$@"
