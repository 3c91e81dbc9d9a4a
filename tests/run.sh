#!/usr/bin/env bash
# `npm test`: type-check everything, then run every test file (in parallel, see vitest.config.ts).
# Extra arguments go to vitest, e.g. `npm test -- tests/stack`.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== tsc --noEmit"
npx tsc --noEmit -p tsconfig.json
echo "== vitest run"
npx vitest run "$@"
