#!/usr/bin/env bash
# `make coldstart`: each function's cold start, on this machine, for the release build
# of the host's architecture (the arm64 packages cannot run here): process start → first
# Runtime API poll (init), and the first invocation with its sample event, median of
# RUNS (default 7) runs, against a fresh local stack.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The size verdict of package.sh does not matter here, only the binaries, which are
# taken out of their zips.
[ -f target/lambda-x86_64/get-balance/bootstrap.zip ] || ARCH=x86_64 "$ROOT/tools/package.sh" >/dev/null || true
[ -f target/lambda-x86_64/get-balance/bootstrap.zip ] || { echo "no x86_64 release build" >&2; exit 1; }
for zip in target/lambda-x86_64/*/bootstrap.zip; do
  python3 -c 'import sys, zipfile, os; d=os.path.dirname(sys.argv[1]); zipfile.ZipFile(sys.argv[1]).extract("bootstrap", d); os.chmod(os.path.join(d, "bootstrap"), 0o755)' "$zip"
done
cargo build --quiet --profile local -p rushcart-coldstart -p rushcart-admin
exec "$ROOT/localstack/with-stack.sh" bash -c '
  set -euo pipefail
  export RUSHCART_TABLE_PREFIX=cold TABLE_NAME=cold-main OUTBOX_TABLE_NAME=cold-outbox
  target/local/rushcart-admin provision --feed-env .local/cold-feed.env >/dev/null
  set -a; . .local/cold-feed.env; set +a
  target/local/rushcart-admin seed --users 10 >/dev/null
  export DATA_PLATFORM_URL=http://127.0.0.1:9/unused
  for bin in $(grep -E "^\s+Binary: " template.yaml | awk "{print \$2}" | sort -u); do
    target/local/rushcart-coldstart --bin "target/lambda-x86_64/$bin/bootstrap" --event "events/$bin.json" --runs "${RUNS:-7}" --name "$bin"
  done'
