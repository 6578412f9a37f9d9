#!/usr/bin/env bash
# Lint and type-check (CI runs this before the tests): ruff's E/F/W rules on the whole repository,
# stricter rule sets and 120 columns on the public and extension-point modules, mypy --strict on them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
STRICT=(memdrift/api.py memdrift/constants.py memdrift/models.py)
"$PY" -m ruff check .
"$PY" -m ruff check --select E,F,W,B,UP,I,SIM,RUF,ANN --ignore ANN401 "${STRICT[@]}"
"$PY" -m mypy
