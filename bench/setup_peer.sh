#!/usr/bin/env bash
# Installs the benchmark's peer, llama.cpp through llama-cpp-python, into bench/.venv.
# llama-cpp-python builds llama.cpp from source with cmake: about 10 minutes on 2 cores.
# Usage: bash bench/setup_peer.sh   (then: cargo run --release -p airlock-bench)
set -euo pipefail
cd "$(dirname "$0")"

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"

if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -q
        apt-get install -y -q cmake build-essential
    else
        echo "setup_peer.sh: needs cmake and a C++ compiler (apt-get install cmake build-essential)" >&2
        exit 1
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# llama.cpp's default build: GGML_NATIVE, i.e. -march=native for this machine's CPU.
# The [server] extra is llama.cpp's own OpenAI-compatible server, the peer of the server load test.
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" .venv/bin/pip install --no-cache-dir "llama-cpp-python[server]==${VERSION}"
.venv/bin/python -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)'
