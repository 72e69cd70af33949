#!/usr/bin/env bash
# Regenerates openapi/cmp-adapter.json from the adapter's endpoints (the test that guards it writes it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CMP_UPDATE_OPENAPI=1 dotnet test tests/CmpWaldurAdapter.IntegrationTests --filter "FullyQualifiedName~OpenApiDocumentTests" --nologo -v q
echo "openapi/cmp-adapter.json updated"
