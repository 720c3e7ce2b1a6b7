# rushcart — two commands do all the set-up on a fresh machine:
#   make run    the local AWS stack + the API on http://127.0.0.1:3000 with demo data
#   make test   every test, including integration tests against the local stack
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
export SAM_CLI_TELEMETRY := 0

.PHONY: help install run test template-check lint openapi fuzz faults drill bench bench-balance bench-coupons bench-payment bench-top bench-capacity package sam-build coldstart clean-stack

help:
	@echo "make run    local stack + API on http://127.0.0.1:$${PORT:-3000} with demo data (Ctrl-C stops)"
	@echo "make test   lint, then unit, handler, template and integration tests"
	@echo "make lint   cargo fmt --check, clippy -D warnings and cargo-deny (part of make test)"
	@echo "make openapi         write the API's OpenAPI 3.1 document to docs/openapi.json"
	@echo "make fuzz            schemathesis, thoroughly, against a local API of its own (make test runs a short pass)"
	@echo "make faults          the fault suite, thoroughly: each dependency paused, cut off and slowed mid-rush → docs/reliability.md (make test runs a short pass)"
	@echo "make drill           the incident drill (docs/runbook.md): overload, throttles, shedding → docs/drill.md"
	@echo "make bench          the whole load report: fresh make run, every scenario, audit → docs/benchmarks.md"
	@echo "make bench-balance   k6 balance scenario against a running 'make run'"
	@echo "make bench-coupons   k6 coupon rushes (gate off/on) against a running 'make run'"
	@echo "make bench-payment   k6 payment and checkout flow against a running 'make run'"
	@echo "make bench-top       k6 top-5 reads, cached and uncached, against a running 'make run'"
	@echo "make bench-capacity  one coupon's issues/s under the DynamoDB capacity model, unsharded and sharded"
	@echo "make package         cargo lambda build --release (arm64; ARCH=x86_64) and zipped sizes"
	@echo "make sam-build       sam build (rust-cargolambda, offline) into .aws-sam/build, ready for sam deploy"
	@echo "make coldstart       each function's init and first invocation, median of 7"
	@echo "make test-browser    Swagger UI at /docs in headless Chromium: every operation listed, get-balance tried out (fresh stack; debug binaries)"
	@echo "make docs-screenshot the same, and its screenshot → docs/swagger-ui.png"

install:
	@localstack/install.sh

run:
	@localstack/run.sh

# Every phase timed, the times printed at the end (tools/test.sh says what each runs).
test:
	@tools/test.sh

# The fault suite (tests/tests/faults_under_load.rs), thoroughly: 8 s faults, 6 s of calm
# after each, 128 clients, the `local` profile (about 5 minutes with the build); writes
# docs/reliability.md and its chart. make test runs the same test in its bounded form:
# 3 s faults, 64 clients, debug build, about 2 minutes.
faults: install
	@.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check "matplotlib>=3.8,<4"
	cargo test --profile local -p rushcart-tests --test faults_under_load --no-run
	mkdir -p .local
	@# The report is written (and drawn) whether or not every invariant held.
	rm -f .local/faults.json; status=0; \
	FAULTS_REPORT=$(CURDIR)/.local/faults.json FAULTS_LOG=$(CURDIR)/.local/faults-functions.log FAULT_SECONDS=$${FAULT_SECONDS:-8} CALM_SECONDS=$${CALM_SECONDS:-6} FAULT_WORKERS=$${FAULT_WORKERS:-128} \
		localstack/with-stack.sh cargo test --profile local -p rushcart-tests --test faults_under_load -- --nocapture || status=$$?; \
	if [ -f .local/faults.json ]; then .venv/bin/python tools/faults.py .local/faults.json .local/faults-functions.log; fi; exit $$status

drill: install
	cargo build --profile local -p rushcart-local-api -p rushcart-admin -p rushcart-dynamodb
	@.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check "matplotlib>=3.8,<4"
	.venv/bin/python tools/drill.py

# The capacity benchmark (issue 28): one coupon's issues a second under the DynamoDB
# capacity model, on one counter item and on its default shards, in a stack of its own
# (CAPACITY_SCALE, default 0.05: a partition takes 50 write units a second;
# CAPACITY_SECONDS, default 60 per run). About 3 minutes with the build.
bench-capacity: install
	cargo build --profile local -p rushcart-local-api -p rushcart-admin -p rushcart-dynamodb -p rushcart-capacity
	RUSHCART_DYNAMODB_BIN=$(CURDIR)/target/local/rushcart-dynamodb RUSHCART_CAPACITY_BIN=$(CURDIR)/target/local/rushcart-capacity \
		CAPACITY=aws CAPACITY_SCALE=$${CAPACITY_SCALE:-0.05} localstack/with-stack.sh k6/capacity-bench.sh

openapi:
	cargo run -q -p rushcart-admin -- openapi > docs/openapi.json

fuzz: install
	cargo build -p rushcart-local-api -p rushcart-admin
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} FUZZ_SEED=$${FUZZ_SEED:-$$RANDOM} localstack/with-api.sh tests/fuzz/fuzz.sh

# checkov scans SAM's resources with its CloudFormation framework (its "serverless" one
# reads serverless.yml, not SAM); it fails on any failed check, and the template itself
# says why each check it skips does not apply (Metadata: checkov: skip). --skip-download:
# nothing fetched from Prisma Cloud, so it runs offline.
template-check: install
	$(VENV)/cfn-lint template.yaml
	$(VENV)/sam validate --region us-east-1
	$(VENV)/sam validate --lint --region us-east-1
	.local/checkov-venv/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download

# cargo-deny (deny.toml): open-source licences only, one crypto provider (no ring,
# openssl-sys or native-tls), crates from crates.io only. The advisories check needs the
# RustSec database from the network, which these machines lack: deny.toml says how.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	@[ -x .local/cargo-deny/bin/cargo-deny ] || localstack/install.sh
	.local/cargo-deny/bin/cargo-deny deny --offline --log-level error check bans licenses sources

bench:
	tools/bench.sh

bench-balance: install
	k6/run.sh balance

bench-coupons: install
	k6/coupon-bench.sh

bench-payment: install
	k6/payment-bench.sh

bench-top: install
	k6/top-bench.sh

package:
	tools/package.sh

sam-build:
	localstack/install-packaging.sh
	PATH="$(CURDIR)/.venv/bin:$$PATH" SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 $(VENV)/sam build --beta-features

coldstart:
	tools/coldstart.sh

# The browser test: Swagger UI at /docs in Debian's headless Chromium (playwright-core)
# against a fresh stack and the debug binaries that make test's cargo build leaves.
.PHONY: test-browser docs-screenshot
test-browser:
	tests/browser/run.sh

docs-screenshot:
	tests/browser/screenshot.sh

clean-stack:
	-localstack/stack.sh stop .local/run
	rm -rf .local/stack-*
