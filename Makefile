# Coatcheck: `make run` serves the shop, `make test` runs every test. Both install what is
# missing first (and check versions, not just presence). Nothing here downloads a binary from
# outside the package registries.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO_LEPTOS_VERSION := 0.3.10
BINARYEN_VERSION     := 132.0.0
# The wasm-bindgen CLI must match the library exactly: read it from the lock file.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)

# Tools installed outside the clone are reused across clones (like a CI cache).
TOOLS_DIR ?= $(HOME)/.cache/coatcheck-tools
CARGO_BIN := $(HOME)/.cargo/bin
export PATH := $(TOOLS_DIR)/binaryen/node_modules/.bin:$(CARGO_BIN):$(PATH)

TIMED := .ci/timed

.PHONY: help tools wasm-target cargo-leptos wasm-bindgen wasm-opt chromium postgres redis nginx e2e-deps nextest \
        build run test test-rust test-e2e lint clean bench wrk soak lighthouse profile

help:
	@echo "make run    build in release mode and serve http://127.0.0.1:3000"
	@echo "make test   run the Rust tests and the Playwright suite"
	@echo "make lint   rustfmt --check and clippy (ssr and hydrate)"
	@echo "make bench  load-test the release server against baselines; writes bench/RESULTS.md"
	@echo "make soak   the crash, shutdown and property tests, many rounds (about 10 minutes)"
	@echo "make lighthouse  Lighthouse mobile and desktop figures of the release build; writes bench/LIGHTHOUSE.md"
	@echo "make profile  perf flame graph of cart writes on SQLite; writes bench/profile/cart-write-sqlite.svg"

## ---- tools -------------------------------------------------------------------------------

tools: wasm-target cargo-leptos wasm-bindgen wasm-opt

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
	  || rustup target add wasm32-unknown-unknown

cargo-leptos:
	@if cargo leptos --version 2>/dev/null | grep -q " $(CARGO_LEPTOS_VERSION)$$"; then \
	  echo "cargo-leptos $(CARGO_LEPTOS_VERSION) present"; \
	else \
	  echo "installing cargo-leptos $(CARGO_LEPTOS_VERSION) (about 15 minutes, once per machine)"; \
	  cargo install cargo-leptos --version $(CARGO_LEPTOS_VERSION) --locked --features no_downloads; \
	fi

wasm-bindgen:
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "wasm-bindgen not found in Cargo.lock"; exit 1; }
	@if wasm-bindgen --version 2>/dev/null | grep -q " $(WASM_BINDGEN_VERSION)$$"; then \
	  echo "wasm-bindgen $(WASM_BINDGEN_VERSION) present"; \
	else \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; \
	fi

# npm's binaryen: Debian's binaryen 108 produces wasm that never hydrates.
wasm-opt:
	@if [ "$$(node -p "try{require('$(TOOLS_DIR)/binaryen/node_modules/binaryen/package.json').version}catch(e){''}")" = "$(BINARYEN_VERSION)" ]; then \
	  echo "binaryen $(BINARYEN_VERSION) present"; \
	else \
	  echo "installing binaryen $(BINARYEN_VERSION) from npm"; \
	  mkdir -p $(TOOLS_DIR)/binaryen; \
	  npm install --prefix $(TOOLS_DIR)/binaryen --no-audit --no-fund binaryen@$(BINARYEN_VERSION); \
	fi

# cargo-nextest runs each test in a process of its own, all in parallel, and names and kills
# a test that hangs (.config/nextest.toml) instead of eating CI's time limit.
nextest:
	@if cargo nextest --version >/dev/null 2>&1; then \
	  echo "cargo-nextest present"; \
	else \
	  echo "installing cargo-nextest"; \
	  cargo install cargo-nextest --locked; \
	fi

chromium:
	@if [ -x /usr/bin/chromium ]; then \
	  echo "chromium present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
	  echo "Chromium is missing: run 'sudo apt-get install -y chromium' (Debian's package)"; exit 1; \
	fi

# The PostgreSQL server binaries for the tests (.ci/with-postgres starts a throw-away server).
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "postgresql present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	else \
	  echo "PostgreSQL is missing: run 'sudo apt-get install -y postgresql' (Debian's package)"; exit 1; \
	fi

# Debian's redis-server, for the private Redis servers the tests start (never a daemon).
redis:
	@if command -v redis-server >/dev/null 2>&1; then \
	  echo "redis-server present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; \
	else \
	  echo "redis-server is missing: run 'sudo apt-get install -y redis-server' (Debian's package)"; exit 1; \
	fi

e2e-deps: chromium
	@cd end2end && npm ci --no-audit --no-fund

## ---- build and run ---------------------------------------------------------------------------

build: tools
	@$(TIMED) "release build" cargo leptos build --release
	@wasm=target/site/pkg/coatcheck.$$(sed -n 's/^wasm: *//p' target/release/hash.txt).wasm; \
	  ls -l "$$wasm" | awk '{print "release wasm: " $$5 " bytes"}'; \
	  gzip -c "$$wasm" | wc -c | awk '{print "release wasm gzip: " $$1 " bytes"}'

run: build
	target/release/coatcheck serve

## ---- tests --------------------------------------------------------------------------------------

test: tools nextest postgres redis nginx e2e-deps
	@$(TIMED) "lint" $(MAKE) --no-print-directory lint
	@$(TIMED) "rust tests" $(MAKE) --no-print-directory test-rust
	@$(TIMED) "release build" $(MAKE) --no-print-directory build
	@$(TIMED) "playwright" $(MAKE) --no-print-directory test-e2e

# Every test in parallel, no retries (.config/nextest.toml): once on SQLite, once on a private,
# throw-away PostgreSQL server (each test on a database of its own; .ci/with-postgres); the
# integration tests again with the sessions on a private Redis (.ci/with-redis; each test
# server on a Redis database of its own): on SQLite + Redis all but the SQL store's own
# mechanisms (below), on PostgreSQL + Redis the multi-instance ones; then the doc examples,
# which nextest does not run.
test-rust: nextest postgres redis
	cargo nextest run --workspace --features ssr
	.ci/with-postgres cargo nextest run --workspace --features ssr -E "kind(test)"
	.ci/with-redis cargo nextest run --workspace --features ssr -E "kind(test) $(NOT_ON_REDIS)"
	.ci/with-postgres .ci/with-redis cargo nextest run --workspace --features ssr -E "kind(test) & test(/^cluster::/)"
	cargo test --workspace --features ssr --doc

# What the Redis run leaves out: the Redis store's own tests (each starts its own servers; run
# above already), and tests of mechanisms only the SQL store has — the sweep of expired rows
# (Redis expires keys itself), the upgrade of sessions stored before IDs were hashed, and an
# admin list filled by SQL inserts.
# Their Redis counterparts are in tests/it/sessions_on_redis.rs.
NOT_ON_REDIS := & !test(/^sessions_on_redis::/) \
  & !test(=sessions::expired_sessions_are_swept_and_their_rows_closed) \
  & !test(=sessions::session_ids_are_hashed_at_rest_and_old_sessions_carried_over) \
  & !test(=sessions::the_admin_list_pages_and_filters_a_thousand_sessions)

# The suite against the release server on SQLite, and its shopper and admin journeys again
# against two instances on a throw-away PostgreSQL behind nginx, with their sessions on a
# throw-away Redis (project js-cluster).
E2E_ADMIN_EMAIL    := admin@example.com
E2E_ADMIN_PASSWORD := admin password for the e2e suite
# On failure the failed tests are printed again last, after the servers' logs.
test-e2e: postgres redis nginx
	@rm -f end2end/test-results/failures.txt
	COATCHECK_ADMIN_EMAIL='$(E2E_ADMIN_EMAIL)' COATCHECK_PASSWORD='$(E2E_ADMIN_PASSWORD)' \
	  .ci/with-postgres .ci/with-redis .ci/cluster 2 bash -c 'cd end2end && npx playwright test' \
	  || { echo "== failed Playwright tests:"; cat end2end/test-results/failures.txt 2>/dev/null; exit 1; }

nginx:
	@if [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null; then \
	  echo "nginx present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light; \
	else \
	  echo "nginx is missing: run 'sudo apt-get install -y nginx-light' (Debian's package)"; exit 1; \
	fi

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --features ssr -- -D warnings
	cargo clippy -p app -p coatcheck --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

## ---- benchmarks and soak ---------------------------------------------------------------

wrk:
	@if command -v wrk >/dev/null; then \
	  echo "wrk present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; \
	else \
	  echo "wrk is missing: run 'sudo apt-get install -y wrk' (Debian's package)"; exit 1; \
	fi

# Not part of `make test`: it takes the whole machine for about five minutes.
# The PostgreSQL rows: a throw-away server (.ci/with-postgres), one instance started by the
# bench, and two behind nginx (.ci/cluster). The Redis rows: a throw-away Redis
# (.ci/with-redis), one instance on SQLite + Redis started by the bench (again with appendfsync
# everysec), and two on PostgreSQL + Redis behind nginx (a second .ci/cluster, inside the first).
bench: build wrk postgres redis nginx
	cargo build --release -p coatcheck-bench
	.ci/with-postgres .ci/cluster 2 bash -c 'BENCH_PG_CLUSTER_URL=$$E2E_CLUSTER_URL BENCH_PG_CLUSTER_DATABASE_URL=$$DATABASE_URL \
	  .ci/with-redis .ci/cluster 2 target/release/coatcheck-bench'

# Lighthouse 12 (npm) in Debian's Chromium against the release server on SQLite: four pages,
# mobile and desktop, medians of LIGHTHOUSE_RUNS runs (bench/lighthouse/run.mjs).
LIGHTHOUSE_RUNS ?= 3
lighthouse: build chromium
	cd bench/lighthouse && npm ci --no-audit --no-fund && node run.mjs --runs $(LIGHTHOUSE_RUNS) --out ../LIGHTHOUSE.md

# A flame graph of cart writes on SQLite, with the costs by thread, crate and system call
# (bench/profile/cart-write.sh): perf (Debian's linux-perf), inferno, and the server built with
# frame pointers and line tables in target/profiling (the release build's own binary has
# neither, so perf could not walk its stacks).
profile: build wrk
	@command -v perf >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf; }
	@command -v inferno-flamegraph >/dev/null || cargo install inferno --version 0.12.8 --locked
	CARGO_TARGET_DIR=target/profiling RUSTFLAGS="-C force-frame-pointers=yes" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
	  cargo build --release -p coatcheck --no-default-features --features ssr --bin coatcheck
	bench/profile/cart-write.sh

# The reliability tests, repeated: kill -9 rounds, SIGTERM rounds, thousands of cart sequences.
soak:
	SOAK_ROUNDS=$${SOAK_ROUNDS:-25} PROPTEST_CASES=$${PROPTEST_CASES:-2000} \
	  cargo test --features ssr --test it -- reliability:: cart_properties:: hostile::

clean:
	cargo clean
