#!/usr/bin/env bash
# Set up the environment, then reproduce every registered method on the quick preset.
# Extra arguments go to `reprolab reproduce` (e.g. `--seeds 3`, or method names).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MPLBACKEND=Agg
# Writes runs/reproduce-quick-<timestamp>/report.md (a fresh folder each time, so results never go stale).
exec .venv/bin/reprolab reproduce --preset quick "$@"
