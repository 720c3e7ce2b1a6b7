#!/usr/bin/env bash
# `make bench`: installs what the report needs (the stack's tools, k6, matplotlib in
# .venv), builds the API and admin CLI with the `local` profile, and runs tools/bench.py,
# which starts a fresh `make run`, runs every scenario and writes docs/benchmarks.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
localstack/install.sh
if ! .venv/bin/python -c 'import matplotlib' 2>/dev/null; then
  echo "[bench] pip install matplotlib into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check "matplotlib>=3.7,<4"
fi
cargo build --profile "${RUSHCART_PROFILE:-local}" -p rushcart-local-api -p rushcart-admin -p rushcart-dynamodb -p rushcart-capacity
cargo build --profile "${RUSHCART_PROFILE:-local}" -p rushcart-local-api --example verify_cost
exec .venv/bin/python tools/bench.py
