#!/usr/bin/env bash
# Set up (see scripts/setup.sh), build and install IBM aihwkit with torch (see
# scripts/install-aihwkit.sh; the built wheel is cached, so only the first run
# on a machine takes minutes), lint and type-check (scripts/lint.sh), then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-aihwkit.sh
export PATH="$PWD/.venv/bin:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
bash scripts/lint.sh
exec .venv/bin/python -m pytest -q "$@"
