#!/usr/bin/env bash
# Creates (or reuses) a virtualenv holding the official client libraries the server's end-to-end
# tests drive: `bash tests/python/setup.sh VENV_DIR`. Fails, never skips, when pip cannot install.
set -euo pipefail
venv="${1:?usage: setup.sh VENV_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$here/requirements.txt" "$venv/.airlock-requirements.txt"; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.airlock-requirements.txt"
fi
"$venv/bin/python" -c "import ollama, openai, requests, pydantic"
