#!/usr/bin/env bash
# schemathesis with every check against $RUSHCART_API (run it through
# localstack/with-api.sh): the customer and public routes with user 1's token, the
# operator routes with an operator's. FUZZ_EXAMPLES (per operation and phase) and
# FUZZ_SEED bound it; make test runs a small seeded pass, make fuzz a thorough one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${RUSHCART_API:?run through localstack/with-api.sh}"
EXAMPLES="${FUZZ_EXAMPLES:-20}"
SEED="${FUZZ_SEED:-1}"

token() {
  curl -sf -X POST "$RUSHCART_API/_local/token" -H 'Content-Type: application/json' -d "$1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
customer="$(token '{"userId": 1}')"
operator="$(token '{"userId": 900, "admin": true}')"

fuzz() {
  "$ROOT/.venv/bin/st" --config-file "$ROOT/tests/fuzz/schemathesis.toml" run "$RUSHCART_API/openapi.json" \
    --max-examples "$EXAMPLES" --seed "$SEED" --workers 1 --request-timeout 15 \
    --suppress-health-check too_slow,filter_too_much "$@"
}
status=0
echo "fuzz: customer and public routes, $EXAMPLES examples each, seed $SEED" >&2
fuzz -H "Authorization: Bearer $customer" --exclude-tag operator || status=1
echo "fuzz: operator routes" >&2
fuzz -H "Authorization: Bearer $operator" --include-tag operator || status=1
exit "$status"
