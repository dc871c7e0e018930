#!/usr/bin/env bash
# make profile: a flame graph of Coatcheck's cart writes on SQLite (bench/README.md, "Where a
# cart write's time goes"). Starts the profiling build of the server (frame pointers, line
# tables: target/profiling) on a temporary database, stores 500 sessions with a cart line
# each, drives `POST /api/cart/add` over them with wrk (2 threads, 64 connections, like
# make bench) and samples the server with `perf record -g` for PROFILE_SECONDS (10). Writes
# bench/profile/cart-write-sqlite.svg (inferno) and prints the costs by thread and by crate.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PROFILE_SERVER:-target/profiling/release/coatcheck}
SECONDS_RUN=${PROFILE_SECONDS:-10}
OUT=bench/profile/cart-write-sqlite.svg
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

DATABASE_URL="sqlite://$WORK/shop.db" LEPTOS_SITE_ADDR="127.0.0.1:$PORT" \
LEPTOS_SITE_ROOT=target/site RUST_LOG=warn \
COATCHECK_NEW_SESSIONS_BURST=1000000000 COATCHECK_REGISTRATIONS_PER_ADDRESS=1000000000 \
COATCHECK_MAX_ANONYMOUS_SESSIONS=1000000000 "$BIN" serve > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done

# 500 sessions, one cart line each (the cookies wrk spreads its writes over).
for _ in $(seq 500); do
  curl -s -D - -o /dev/null -X POST -H 'accept: text/html' -d 'product_id=4&quantity=1' \
    "http://127.0.0.1:$PORT/api/cart/add" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(id=[^;]*\).*/\1/p'
done > "$WORK/cookies.txt"
{ echo "PRODUCTS = 15"; cat bench/cart.lua; } > "$WORK/cart.lua"
export BENCH_COOKIES="$WORK/cookies.txt"
wrk -t2 -c64 -d2s -s "$WORK/cart.lua" "http://127.0.0.1:$PORT/" > /dev/null
perf record -F 499 -g -p "$SERVER" -o "$WORK/perf.data" -- sleep "$SECONDS_RUN" > /dev/null 2>&1 &
PERF=$!
wrk -t2 -c64 -d"${SECONDS_RUN}s" --latency -s "$WORK/cart.lua" "http://127.0.0.1:$PORT/" \
  | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx'
wait "$PERF"
perf script -i "$WORK/perf.data" 2> /dev/null | inferno-collapse-perf --all > "$WORK/folded.txt"
inferno-flamegraph --minwidth 0.2 --title "Coatcheck: cart writes on SQLite ($(git rev-parse --short HEAD), perf -F 499 -g, ${SECONDS_RUN} s)" \
  < "$WORK/folded.txt" > "$OUT"
echo "written to $OUT"
python3 bench/profile/costs.py "$WORK/folded.txt"
