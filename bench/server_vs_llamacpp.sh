#!/usr/bin/env bash
# The server against llama.cpp's own server (llama-cpp-python[server], installed by
# bench/setup_peer.sh) on the same GGUF, 2 threads each, one after the other in this one
# invocation: the same bounded load test (crates/server/examples/load_test.rs, OpenAI chat,
# /v1/chat/completions, greedy) at 1 and 4 clients against each, then the ratio of aggregate tokens/s.
# llama.cpp's server runs through bench/llamacpp_server.py (no AMX extra buffer type, as the other peer).
# Usage: bash bench/server_vs_llamacpp.sh [REQUESTS] [MAX_TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
requests="${1:-16}"
max_tokens="${2:-64}"
cargo build -q --release -p airlock -p airlock-server --example load_test
target="${CARGO_TARGET_DIR:-target}/release"
model="$("$target/airlock" pull 2>/dev/null | tail -1)"   # the default model's path, fetched once
[ -f "$model" ] || { echo "airlock pull did not give a model path: $model" >&2; exit 1; }

wait_up() { for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/$2" >/dev/null && return 0; sleep 0.5; done; return 1; }
load() { "$target/examples/load_test" --url "127.0.0.1:$1" --clients 1,4 --requests "$requests" \
    --max-tokens "$max_tokens" --workloads openai --time-limit 600; }

"$target/airlock" serve --port 18090 --model "$model" >/tmp/airlock-serve.log 2>&1 &
pid=$!
wait_up 18090 health
ours="$(load 18090)"
kill "$pid"; wait "$pid" 2>/dev/null || true

bench/.venv/bin/python bench/llamacpp_server.py --model "$model" --n_threads 2 --n_ctx 2048 \
    --port 18091 >/tmp/llamacpp-serve.log 2>&1 &
pid=$!
wait_up 18091 v1/models
theirs="$(load 18091)"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "airlock serve:"; echo "$ours"
echo; echo "llama.cpp server (llama-cpp-python):"; echo "$theirs"
rate() { echo "$1" | awk -F'|' -v c="$2" '$3+0==c && $2 ~ /openai/ {gsub(/ /,"",$8); print $8}'; }
echo
for c in 1 4; do
    a="$(rate "$ours" $c)"; b="$(rate "$theirs" $c)"
    echo "clients $c: airlock $a tok/s, llama.cpp $b tok/s, ratio $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2fx", a/b}')"
done
