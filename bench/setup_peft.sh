#!/usr/bin/env bash
# Installs the trainer benchmark's peer, PEFT on PyTorch (CPU), into bench/.venv-peft.
# Usage: bash bench/setup_peft.sh   (then: cargo run --release -p airlock-bench -- train --steps 16)
# The versions are the ones the PEFT reference adapters in ../shared/reference were made with.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv-peft/bin/python ]; then
    python3 -m venv .venv-peft
fi
.venv-peft/bin/pip install --no-cache-dir -q \
    "torch==${TORCH_VERSION:-2.15.0}" "transformers==5.24.0" "peft==0.21.2" "gguf==0.19.0" numpy
.venv-peft/bin/python -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'
