#!/usr/bin/env bash
# Set up the environment, lint, then run the whole test suite on 2 workers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MPLBACKEND=Agg HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 REPROLAB_PROGRESS=0
# TensorBoard import costs ~2 s of CPU per CLI run; tests/core/test_tensorboard.py turns it on where it is tested
export REPROLAB_TENSORBOARD=0
.venv/bin/ruff check src tests benchmarks
.venv/bin/mkdocs build --strict --quiet  # the docs and the API reference build without a warning
status=0
.venv/bin/python -m pytest -n 2 --dist loadgroup -q --durations=15 tests "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests"  # not a failure by the project's rule; nothing ran
    exit 0
fi
exit "$status"
