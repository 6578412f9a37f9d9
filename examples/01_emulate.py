"""01 — emulate a pulse train on an ensemble of filament cells and write it as netCDF.

    python examples/01_emulate.py [OUT_DIR]        (default OUT_DIR: out/examples)

64 HfOxSy/HfS2 cells, 5 cycles of the paper's 20 + 20 amplitude/width ramp.
The file regenerates itself: its attributes hold the parameters and the scheme.
"""

import sys
from pathlib import Path

import numpy as np

from memdrift.data.io import open_dataset, write_dataset
from memdrift.emulator.engine import params_from_attrs, run_pulses, train_from_dataset
from memdrift.emulator.params import load_preset
from memdrift.emulator.pulses import ramp

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples")
preset = load_preset("hfoxsy-hfs2")
ds = run_pulses(preset.params, ramp(), devices=64, cycles=5, seed=0, preset=preset.name)
path = write_dataset(ds, out / "01_ramp.nc")

g_us = ds["conductance"].mean(("device", "cycle")).values * 1e6
print(f"wrote {path}: conductance {ds['conductance'].dims}, {ds.sizes['device']} devices")
print(f"ensemble-mean read after pulse 1 / 20 / 40: {g_us[0]:.0f} / {g_us[19]:.0f} / {g_us[39]:.0f} µS")

back = open_dataset(path)
again = run_pulses(params_from_attrs(back.attrs), train_from_dataset(back), devices=64, cycles=5,
                   seed=int(back.attrs["seed"]), preset=back.attrs["preset"])
print("regenerated from the file alone, same bits:",
      bool(np.array_equal(again["conductance"].values, back["conductance"].values)))
