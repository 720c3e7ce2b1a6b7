# rushcart — two commands do all the set-up on a fresh machine:
#   make run    the local AWS stack + the API on http://127.0.0.1:3000 with demo data
#   make test   every test, including integration tests against the local stack
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
export SAM_CLI_TELEMETRY := 0

.PHONY: help install run test template-check lint openapi fuzz faults soak soak-bounded drill bench bench-balance bench-coupons bench-payment bench-top bench-capacity package sam-build coldstart clean-stack

help:
	@echo "make run    local stack + API on http://127.0.0.1:$${PORT:-3000} with demo data (Ctrl-C stops)"
	@echo "make test   lint, then unit, handler, template and integration tests"
	@echo "make lint   cargo fmt --check, clippy -D warnings and cargo-deny (part of make test)"
	@echo "make openapi         write the API's OpenAPI 3.1 document to docs/openapi.json"
	@echo "make fuzz            schemathesis, thoroughly, against a local API of its own (make test runs a short pass)"
	@echo "make test-races      the race tests under the DynamoDB capacity model (CAPACITY_SCALE, default 0.2; make test runs it too)"
	@echo "make faults          the fault suite, thoroughly: each dependency paused, cut off and slowed mid-rush → docs/reliability.md (make test runs a short pass)"
	@echo "make soak            the soak: a mixed load while a seeded nemesis breaks things, then the history checker → docs/soak.md (make test runs a short pass)"
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

# The race tests under DynamoDB's capacity model (issue 28): every test app's tables
# sit behind a model of their own (RUSHCART_TEST_CAPACITY) at CAPACITY_SCALE, default
# 0.2 (a partition takes 200 write and 600 read units a second: the rushes on one item
# throttle, and the run stays short). tests/src/capacity.rs says what a test may accept
# there: a 503 that changed nothing, from one item or one user's partition past its
# ceiling; never a 500, never an oversell. About a minute of tests after the build;
# make test runs it as its "races" phase.
# In the pass: every test of the files in RACE_TESTS but those in RACE_SKIPS. Left out:
#   a_payment_retried_after_six_hundred_…   600 charges on one user's partition: about 2
#       minutes at 0.2 (measured 118 s); it checks a lookup, not a race.
#   two_thousand_refused_payments_…   2,000 payments of one order's item (about 100 s),
#       and a refusal's failure record is best-effort (shared/src/orders/use_cases.rs:
#       logged and dropped when it fails), so a throttled record loses a count and
#       "every refusal is counted, exactly" cannot hold under the model.
#   top.rs's two_hundred_requests_…, with_redis_stopped_…, after_a_sale_…   count the
#       cache's computations or time its refresh window.
#   The files not listed: issue_budget, throttle, faults and faults_under_load count
#       calls or time windows; mid_commit and conflicts put a fault proxy of their own
#       in front (no model there); capacity.rs runs a model of its own; the rest
#       (recovery, events, feed, http_edge …) run no rush.
RACE_TESTS := auth balance coupons coupon_gate key_races order_life orders refunds stock_buckets top
RACE_SKIPS := a_payment_retried_after_six_hundred_later_ledger_entries_gets_its_first_answer \
	two_thousand_refused_payments_leave_the_order_one_small_item_and_it_can_still_be_paid \
	two_hundred_requests_on_a_cold_cache_compute_the_answer_once \
	with_redis_stopped_the_answer_still_comes_and_the_cache_is_used_again_once_it_is_back \
	after_a_sale_the_answer_is_stale_at_most_one_refresh_period
.PHONY: test-races
test-races: install
	RUSHCART_TEST_CAPACITY=$${CAPACITY_SCALE:-0.2} localstack/with-stack.sh \
		cargo test -p rushcart-tests $(addprefix --test ,$(RACE_TESTS)) -- $(addprefix --skip ,$(RACE_SKIPS))

# The soak (issue 29; tests/src/bin/rushcart-soak.rs says what it does and checks): a
# mixed load for SOAK_SECONDS (default 600) against a local API and feed of its own,
# while a nemesis seeded by SOAK_SEED breaks a dependency or kills a process every
# SOAK_CALM seconds (default 20-60); then the checker over the history and the tables.
# SOAK_SEEDS="11 12" runs several seeds in turn (default: SOAK_SEED, else a random one).
# CAPACITY=aws puts DynamoDB's capacity model (CAPACITY_SCALE, default 0.2) between the
# soak's proxies and the engine, and adds throttle storms to the faults.
# The `local` profile; each run's history and report in .local/soak/seed-<N>/; docs/soak.md
# and its chart from the runs (tools/soak.py), written whether or not they passed.
SOAK_SEEDS ?= $(or $(SOAK_SEED),$(shell echo $$RANDOM))
soak: install
	cargo build --profile local -p rushcart-local-api -p rushcart-admin -p rushcart-dynamodb
	cargo build --profile local -p rushcart-tests --bin rushcart-soak
	@.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check "matplotlib>=3.8,<4"
	status=0; reports=""; for seed in $(SOAK_SEEDS); do \
		rm -rf .local/soak/seed-$$seed; \
		SOAK_SEED=$$seed SOAK_OUT=$(CURDIR)/.local/soak/seed-$$seed SOAK_BIN=$(CURDIR)/target/local \
			RUSHCART_DYNAMODB_BIN=$(CURDIR)/target/local/rushcart-dynamodb SOAK_CAPACITY=$${CAPACITY:-off} CAPACITY=off \
			localstack/with-stack.sh target/local/rushcart-soak || status=1; \
		[ -f .local/soak/seed-$$seed/report.json ] && reports="$$reports .local/soak/seed-$$seed/report.json"; \
	done; \
	if [ -n "$$reports" ]; then .venv/bin/python tools/soak.py $$reports; fi; exit $$status

# make test's bounded soak: 120 s of load with a calm of 10-25 s, seed 10 (its schedule:
# the feed killed, the API killed twice, DynamoDB cut, moto paused), the debug binaries
# `make test` built; about 3 minutes with the stack and the checker. No docs written.
soak-bounded:
	SOAK_SECONDS=120 SOAK_CALM=10-25 SOAK_SEED=10 SOAK_OUT=$(CURDIR)/.local/soak/bounded SOAK_BIN=$(CURDIR)/target/debug \
		localstack/with-stack.sh target/debug/rushcart-soak

drill: install
	cargo build --profile local -p rushcart-local-api -p rushcart-admin -p rushcart-dynamodb
	@.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/pip install --quiet --disable-pip-version-check "matplotlib>=3.8,<4"
	.venv/bin/python tools/drill.py

# The capacity benchmark (issue 28): every hot path under the DynamoDB capacity model,
# unsharded and sharded side by side (k6/capacity-bench.sh says which), in a stack of its
# own (CAPACITY_SCALE, default 0.02: a partition takes 20 write units a second;
# CAPACITY_SECONDS, default 60 per run). About 11 minutes; make bench runs it too and
# writes its figures into docs/benchmarks.md.
bench-capacity: install
	cargo build --profile local -p rushcart-local-api -p rushcart-admin -p rushcart-dynamodb -p rushcart-capacity
	RUSHCART_DYNAMODB_BIN=$(CURDIR)/target/local/rushcart-dynamodb RUSHCART_CAPACITY_BIN=$(CURDIR)/target/local/rushcart-capacity \
		CAPACITY=aws CAPACITY_SCALE=$${CAPACITY_SCALE:-0.02} localstack/with-stack.sh k6/capacity-bench.sh

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
