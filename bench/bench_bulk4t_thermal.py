"""Cost of the film's heat paths: one field solve (sigma -> phi -> T) per pulse, local sink vs substrate.

One device of `tio2x-4t` per grid, deterministic, pulses of 1 ns at 2 V on T2/T4 (one field solve and one
bounded step each; E_sigma = 0, so one potential and one heat solve per field). Prints, per grid and heat
path, the build time of the engine (the substrate's dense operator: two Cholesky factorisations of
cells x cells), pulses per second compiled and reference, and their ratio; the compiled and reference runs
alternate ``--repeats`` times and the best of each is kept.

    python bench/bench_bulk4t_thermal.py [--grids 16,32,64] [--pulses 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices
    from memdrift.emulator.params import load_preset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", default="16,32,64")
    ap.add_argument("--pulses", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    preset = load_preset("tio2x-4t")
    print("grid | heat path | engine build (s) | compiled pulses/s | reference pulses/s | ratio")
    for g in [int(x) for x in args.grids.split(",") if x]:
        for model in (0.0, 1.0):
            params = preset.params.replace(grid_x=float(g), grid_y=float(g), thermal_model=model)
            best = {"compiled": float("inf"), "reference": float("inf")}
            build = float("inf")
            for _ in range(args.repeats):
                for backend in best:
                    t = time.perf_counter()
                    dev = Bulk4TDevices(params, 1, seed=0, backend=backend, deterministic=True)
                    if backend == "compiled":
                        build = min(build, time.perf_counter() - t)
                    t = time.perf_counter()
                    for _ in range(args.pulses):
                        dev.write(2.0, 1e-9)
                    best[backend] = min(best[backend], (time.perf_counter() - t) / args.pulses)
            print(f"{g}^2 | {'substrate' if model else 'local sink'} | {build:.3f} | {1 / best['compiled']:.0f} | "
                  f"{1 / best['reference']:.0f} | {best['reference'] / best['compiled']:.1f}", flush=True)


if __name__ == "__main__":
    main()
