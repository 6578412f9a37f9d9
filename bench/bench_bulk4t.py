"""Wall time of a feedforward (FFP) HRS -> LRS run on the bulk four-terminal film, compiled vs SciPy reference.

One device of the `tio2x-4t` preset (32 x 32 by default), conditioned and
initialised to HRS, then the closed loop read -> Vw(r) -> 0.8 s write -> read
until it crosses LRS (about 500 events, Poisson hops on). Both backends start
from the same vacancy map with the same Vw(r) table; only the loop is timed.
Prints the time per device for each, and their ratio, on one core; then how
the compiled path scales with the ensemble (devices share one core unless
--threads says otherwise).

    python bench/bench_bulk4t.py [--grid 32] [--max-events 800] [--scale 1,4,16] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from memdrift.emulator.bulk4t_schemes import (PAPER_AMPLITUDES_V, Bulk4TDevices, build_dr_map, run_ffp,
                                                  run_identical)
    from memdrift.emulator.params import load_preset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=32)
    ap.add_argument("--max-events", type=int, default=800)
    ap.add_argument("--map-pulses", type=int, default=100)
    ap.add_argument("--scale", default="1,4,16", help="ensemble sizes for the compiled scaling run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()

    preset = load_preset("tio2x-4t")
    params = preset.params.replace(grid_x=float(args.grid), grid_y=float(args.grid))
    hrs, lrs = preset.calibration.get("hrs_ohm", 880.0), preset.calibration.get("lrs_ohm", 740.0)

    t0 = time.perf_counter()
    cal = Bulk4TDevices(params, 1, seed=0)
    cal.condition(2)
    table = build_dr_map(run_identical(cal, PAPER_AMPLITUDES_V, 2.0, args.map_pulses, hrs_ohm=hrs, lrs_ohm=lrs),
                         ffp_width_s=0.8, target_ohm=0.28)
    cal.approach(hrs, -1.0, reset_ohm=lrs)
    start = cal.n.copy()
    print(f"setup (compiled: conditioning, dR map of {2 * len(PAPER_AMPLITUDES_V)} x {args.map_pulses} pulses, "
          f"initialisation): {time.perf_counter() - t0:.1f} s")

    def ffp(backend: str, devices: int = 1, threads: int = 1) -> tuple[float, np.ndarray]:
        dev = Bulk4TDevices(params, devices, seed=1, backend=backend, threads=threads)
        dev.n = np.repeat(start, devices, axis=0)
        t = time.perf_counter()
        res = run_ffp(dev, table["vw_table"], table["dr_map_resistance"], max_events=args.max_events,
                      hrs_ohm=hrs, lrs_ohm=lrs, branches=(+1.0,), initialise=False)
        return time.perf_counter() - t, res["events"][:, 0]

    t_c, ev_c = ffp("compiled")
    print(f"compiled : {t_c:8.3f} s per device   ({ev_c[0]} events, {1e3 * t_c / ev_c[0]:.3f} ms per event "
          f"incl. its read)")
    if not args.skip_reference:
        t_r, ev_r = ffp("reference")
        print(f"reference: {t_r:8.3f} s per device   ({ev_r[0]} events, {1e3 * t_r / ev_r[0]:.3f} ms per event "
              f"incl. its read)")
        per_event = (t_r / ev_r[0]) / (t_c / ev_c[0])
        print(f"ratio    : {t_r / t_c:8.1f} x per device, {per_event:.1f} x per event")
    print(f"scaling (compiled, {args.threads} thread(s)):")
    for d in (int(x) for x in args.scale.split(",")):
        t, ev = ffp("compiled", d, args.threads)
        print(f"  {d:5d} devices: {t:8.3f} s, {t / d:.3f} s per device, events {ev.min()}-{ev.max()}")


if __name__ == "__main__":
    main()
