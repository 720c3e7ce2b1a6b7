#!/usr/bin/env bash
# `make test`: every phase in turn, each timed, and the times printed at the end whether
# or not a phase failed (a newcomer's first run spends most of it installing and
# compiling; the test phases are what a change costs).
#   install      the stack's tools, the crates, the venvs (localstack/install.sh)
#   checks       the template (cfn-lint, sam validate, checkov) and the lints (fmt, clippy)
#   compile      cargo build --workspace --all-targets
#   tests        cargo test --workspace: unit, handler, template and integration tests
#   races        the race tests again, under DynamoDB's capacity model at 0.2 (make
#                test-races; budget 2 minutes of tests, about 1 today; stopped at 5)
#   soak         the soak, bounded: 2 minutes of mixed load, a seeded nemesis (the feed
#                and the API killed, DynamoDB cut, moto paused), the history checker
#                (make soak-bounded; budget 4 minutes, 2.5 today; stopped at 7)
#   backends     the LocalStack-in-Docker backend, built and shown to fail loudly here
#   browser      Swagger UI in headless Chromium (about 25 s)
#   fuzz         schemathesis, a bounded seeded pass (about a minute; make fuzz runs long)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

phases=()
failed=""
report() {
  echo
  echo "make test, by phase:"
  for line in "${phases[@]}"; do echo "  $line"; done
  [ -z "$failed" ] || echo "  FAILED: $failed"
}
trap report EXIT

phase() { # name command…
  local name=$1 started=$SECONDS status
  shift
  echo "=== $name: $*"
  "$@"
  status=$?
  phases+=("$(printf '%-9s %4d s%s' "$name" $((SECONDS - started)) "$([ $status = 0 ] || echo "  (exit $status)")")")
  return $status
}

# The first three stop the run: nothing after them can pass without them.
phase install localstack/install.sh || { failed=install; exit 1; }
phase checks make --no-print-directory template-check lint || { failed=checks; exit 1; }
phase compile cargo build --workspace --all-targets || { failed=compile; exit 1; }
phase tests localstack/with-stack.sh cargo test --workspace --no-fail-fast || failed="$failed tests"
# Budget: 2 minutes of tests (the build is the compile phase's). A hang is stopped at 5
# minutes and fails the phase, not the run.
phase races timeout 300 make --no-print-directory test-races || failed="$failed races"
phase soak timeout 420 make --no-print-directory soak-bounded || failed="$failed soak"
phase backends cargo test -p rushcart-tests --features testcontainers --test backends || failed="$failed backends"
phase browser tests/browser/run.sh || failed="$failed browser"
phase fuzz env FUZZ_EXAMPLES=20 FUZZ_SEED=1 localstack/with-api.sh tests/fuzz/fuzz.sh || failed="$failed fuzz"
[ -z "$failed" ]
