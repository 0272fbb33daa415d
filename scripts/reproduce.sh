#!/usr/bin/env bash
# Set up the environment, then reproduce every registered method on the quick preset.
# Extra arguments go to `reprolab reproduce` (e.g. `--seeds 3`, or method names).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MPLBACKEND=Agg
exec .venv/bin/reprolab reproduce --preset quick --out "${REPRODUCE_OUT:-runs/reproduce-quick}" "$@"
