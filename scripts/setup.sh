#!/usr/bin/env bash
# Create .venv (if missing) and install memdrift with its compiled core, editable,
# plus the test tools. Safe to re-run: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# meson and ninja live in the venv; the editable loader calls them again on import.
export PATH="$PWD/.venv/bin:$PATH"
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip
# Build tools first: the editable install builds without isolation so that
# meson-python can rebuild the Cython kernels on import after an edit.
"$VPY" -m pip install -q "meson-python>=0.16" "meson>=1.4" ninja "cython>=3.0" "numpy>=2.0"
"$VPY" -m pip install -q --no-build-isolation -e ".[test]"
