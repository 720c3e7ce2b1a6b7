#!/usr/bin/env bash
# What `make package` needs beyond `make test`: cargo-lambda and zig (PyPI, into the
# project venv) and Rust's std for the Lambda targets. Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/localstack/install.sh"
if [ ! -x "$ROOT/.venv/bin/cargo-lambda" ]; then
  echo "[install] pip install cargo-lambda ziglang into .venv" >&2
  "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda>=1.9,<2" ziglang
fi
for target in aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
