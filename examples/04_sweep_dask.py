"""04 — sweep a pulse scheme on a Dask cluster.

    python examples/04_sweep_dask.py [OUT_DIR]

A 2 x 2 grid (first ramp amplitude x device-to-device spread of the barrier) of
tiny ensembles on a LocalCluster of two single-threaded workers. Pass the
cluster's address the same way to any ``dask.distributed`` scheduler
(``memdrift sweep SPEC.toml --scheduler tcp://HOST:8786``); results are the same
bits whichever cluster computes them.
"""

import sys
from pathlib import Path

from dask.distributed import LocalCluster

from memdrift.experiments import sweep

SPEC = """
[sweep]
name = "example-04"
seed = 5
devices = 2
cycles = 4

[scheme]
base = "ramp"
pulses_per_branch = 10
width_start_s = 3.5e-7
width_end_s = 3.5e-7
amplitude_end_v = 0.995

[device]
preset = "hfoxsy-hfs2"

[axes]
amplitude_start_v = [0.7, 0.8]
"variation.activation_energy_ev" = [0.0, 0.02]

[metrics]
store = ["differential_bins", "state_sigma", "bin_width"]
"""

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples")
if __name__ == "__main__":  # the workers are processes: they import this file without running it
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run = sweep.run_sweep(sweep.parse_spec(SPEC), out / "04_sweep.nc", mode="scheduler",
                              scheduler=cluster.scheduler_address)
    ds = run.dataset
    print(f"{run.computed} points computed, {run.reused} reused from {out / '04_sweep.nc'}.parts")
    for a in ds["amplitude_start_v"].values:
        for s in ds["variation.activation_energy_ev"].values:
            p = ds.sel(amplitude_start_v=a, **{"variation.activation_energy_ev": s})
            print(f"start {a:.2f} V, Ea spread {s:.2f}: {int(p['differential_bins'])} differential bins, "
                  f"state σ {float(p['state_sigma']) * 1e6:.1f} µS")
    print(f"wrote {out / '04_sweep.nc'}")
