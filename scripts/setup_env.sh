#!/usr/bin/env bash
# Create .venv (if needed) and install reprolab with every method's dependencies at the tested versions.
# torch is pinned in the same pip step: an unpinned torch would resolve to a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "reprolab needs Python >= 3.11")'
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.reprolab-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ constraints.txt -nt "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt \
        "torch==2.13.0" -e ".[all,test]"
    touch "$STAMP"
fi
