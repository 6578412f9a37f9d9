#!/usr/bin/env bash
# Set up (see scripts/setup.sh), then emulate the HfOxSy/HfS2 preset under the
# paper's 20 + 20 amplitude/width ramp: 100 cycles on 1,000 devices, written to
# out/ramp.nc with a PNG summary (conductance vs pulse, temperature transient).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p out
memdrift pulse --device hfoxsy-hfs2 --scheme ramp --devices 1000 --cycles 100 --seed 0 \
  --threads "$(nproc)" -o out/ramp.nc --plot out/ramp.png "$@"
