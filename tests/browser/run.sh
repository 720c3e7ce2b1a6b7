#!/usr/bin/env bash
# The browser test (make test-browser), end to end: installs what is missing (the
# stack's tools and Swagger UI's assets, Chromium, playwright-core), then runs
# tests/browser/docs.spec.mjs against a local API of its own on a fresh stack
# (localstack/with-api.sh: sign-in on, feed off), which stops whatever the outcome.
# RUSHCART_SCREENSHOT names where the screenshot goes. About 25 s.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v node >/dev/null || { echo "[browser] node is missing (Node.js 20 or later)" >&2; exit 2; }
"$ROOT/localstack/install.sh"
"$ROOT/tests/browser/install.sh"
started=$(date +%s)
status=0
"$ROOT/localstack/with-api.sh" node "$ROOT/tests/browser/docs.spec.mjs" || status=$?
echo "[browser] $([ "$status" -eq 0 ] && echo PASS || echo "FAIL ($status)") in $(( $(date +%s) - started )) s" >&2
exit "$status"
