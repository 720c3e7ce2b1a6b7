#!/usr/bin/env bash
# Runs a command against a fresh local stack of its own, then stops the stack,
# whatever the command's outcome:  localstack/with-stack.sh cargo test --workspace
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$ROOT/.local"
DIR="$(mktemp -d "$ROOT/.local/stack-XXXXXX")"
cleanup() { "$ROOT/localstack/stack.sh" stop "$DIR"; rm -rf "$DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
"$ROOT/localstack/stack.sh" start "$DIR"
set -a; . "$DIR/stack.env"; set +a
export RUSHCART_STACK_DIR="$DIR"
"$@"
