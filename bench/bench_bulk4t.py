"""Wall time of a feedforward (FFP) HRS -> LRS run on the bulk four-terminal film, compiled vs SciPy reference.

One device of the `tio2x-4t` preset (32 x 32 by default), conditioned and
initialised to HRS, then the closed loop read -> Vw(r) -> 0.8 s write -> read
until it crosses LRS (about 500 events, Poisson hops on). Both backends start
from the same vacancy map with the same Vw(r) table; only the loop is timed.
The two are run alternately ``--repeats`` times (a shared host's load then
falls on both alike); prints the time per device for each, best and median, and
their ratios, on one core; then how the compiled path scales with the ensemble
(devices share one core unless --threads says otherwise).

``--contact RHO`` then replays the same table from the same map on the film with Pt contacts of that specific
contact resistivity (ohm m2): such a film, uncalibrated, does not reach LRS, so it runs ``--max-events`` events
and the cost is compared per event.

    python bench/bench_bulk4t.py [--grid 32] [--max-events 800] [--repeats 3] [--scale 1,4,16] [--threads 1]
                                 [--contact 1e-9]
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
    ap.add_argument("--repeats", type=int, default=3, help="alternating compiled/reference runs")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--contact", type=float, default=0.0, help="contact resistivity of the per-event comparison")
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

    def ffp(backend: str, devices: int = 1, threads: int = 1, film=params) -> tuple[float, np.ndarray]:
        dev = Bulk4TDevices(film, devices, seed=1, backend=backend, threads=threads)
        dev.n = np.repeat(start, devices, axis=0)
        t = time.perf_counter()
        res = run_ffp(dev, table["vw_table"], table["dr_map_resistance"], max_events=args.max_events,
                      hrs_ohm=hrs, lrs_ohm=lrs, branches=(+1.0,), initialise=False)
        return time.perf_counter() - t, res["events"][:, 0]

    ffp("compiled")  # untimed warm-up: imports and first touch of the arrays
    runs: dict[str, list[float]] = {"compiled": [], "reference": []}
    events: dict[str, int] = {}
    for _ in range(max(1, args.repeats)):
        for backend in ("compiled",) if args.skip_reference else ("compiled", "reference"):
            t, ev = ffp(backend)
            runs[backend].append(t)
            events[backend] = int(ev[0])
            print(f"  {backend:9s}: {t:8.3f} s  ({ev[0]} events)", flush=True)
    for backend, times in runs.items():
        if times:
            best, med = min(times), float(np.median(times))
            print(f"{backend:9s}: best {best:8.3f} s, median {med:8.3f} s per device   ({events[backend]} events, "
                  f"{1e3 * best / events[backend]:.3f} ms per event incl. its read, best)")
    if runs["reference"]:
        bc, br = min(runs["compiled"]), min(runs["reference"])
        mc, mr = float(np.median(runs["compiled"])), float(np.median(runs["reference"]))
        per_event = (br / events["reference"]) / (bc / events["compiled"])
        print(f"ratio    : {br / bc:8.1f} x per device (best), {mr / mc:.1f} x (median), {per_event:.1f} x per event (best)")
    print(f"scaling (compiled, {args.threads} thread(s)):")
    for d in (int(x) for x in args.scale.split(",")):
        t, ev = ffp("compiled", d, args.threads)
        print(f"  {d:5d} devices: {t:8.3f} s, {t / d:.3f} s per device, events {ev.min()}-{ev.max()}")
    if args.contact > 0:
        film = params.replace(contact_resistivity_ohm_m2=args.contact)
        print(f"Pt contacts, rho_c = {args.contact:g} ohm m2 (same table and start, per event):")
        for backend in ("compiled",) if args.skip_reference else ("compiled", "reference"):
            t, ev = ffp(backend, film=film)
            print(f"  {backend:9s}: {t:8.3f} s, {ev[0]} events, {1e3 * t / ev[0]:.3f} ms per event", flush=True)


if __name__ == "__main__":
    main()
