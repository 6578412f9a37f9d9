"""Sweep throughput on Dask: one vs two local worker processes in the same run.

A CPU-bound sweep (every point a real ensemble through the paper's 20 + 20 ramp
on the ``hfoxsy-hfs2`` preset, storing its part file as a real sweep does) is run
three times on the same spec: serially in this process, on a LocalCluster of one
worker and on one of two workers (clusters started and warmed before timing).
It prints the speed-up 1 → 2 workers (goal >= 1.8x) and the per-point
scheduling overhead (goal < 5 %):

    overhead per point = (workers x wall - sum of the points' own compute seconds) / points

relative to the mean compute seconds of a point; the compute seconds are timed
inside the task on the worker, so everything else (serialisation, scheduling,
result transfer, writing the part file, idle tails) counts as overhead. The
three runs must give identical datasets; the bench checks that too.

    python bench/bench_sweep.py [--points 16] [--devices 384] [--cycles 10] [--preset hfoxsy-hfs2]
    python bench/bench_sweep.py --scheme ffp [--points 8] [--devices 1] [--grid 16]

``--scheme ffp`` sweeps the FFP window's high edge (0.2-0.6 ohm) on the ``tio2x-4t``
film instead: every point calibrates a dR map and runs HRS -> LRS -> HRS.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def make_ffp_spec(points: int, devices: int, grid: int):
    from memdrift.experiments.sweep import parse_spec

    highs = ", ".join(f"{0.2 + 0.4 * i / max(1, points - 1):.4f}" for i in range(points))
    return parse_spec(f"""
[sweep]
name = "bench-ffp"
seed = 1
devices = {devices}
[scheme]
base = "ffp"
window_low_ohm = 0.1
levels = 128
[device]
preset = "tio2x-4t"
grid = {grid}
[axes]
window_high_ohm = [{highs}]
""")


def make_spec(points: int, devices: int, cycles: int, preset: str):
    from memdrift.experiments.sweep import parse_spec

    side = max(2, round(points ** 0.5))
    other = max(1, points // side)
    amps = ", ".join(f"{0.9 + 0.1 * i / max(1, side - 1):.4f}" for i in range(side))
    widths = ", ".join(f"{(300 + 100 * i / max(1, other - 1)) * 1e-9:.4e}" for i in range(other))
    text = f"""
[sweep]
name = "bench"
seed = 1
devices = {devices}
cycles = {cycles}
[scheme]
base = "ramp"
[device]
preset = "{preset}"
[axes]
amplitude_end_v = [{amps}]
width_end_s = [{widths}]
[metrics]
store = ["differential_bins", "state_sigma", "bin_width"]
"""
    return parse_spec(text)


def timed(spec, mode: str, client=None) -> dict:
    from memdrift.experiments.sweep import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        run = run_sweep(spec, Path(tmp) / "bench.nc", mode=mode, client=client)
    return {"wall": run.wall_seconds, "compute": sum(run.point_seconds), "n": len(run.point_seconds),
            "startup": run.startup_seconds, "dataset": run.dataset}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--devices", type=int, default=None, help="ensemble size (default 384; ffp: 1)")
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--preset", default="hfoxsy-hfs2")
    ap.add_argument("--scheme", choices=("ramp", "ffp"), default="ramp")
    ap.add_argument("--grid", type=int, default=16, help="ffp: cells per side of the film")
    args = ap.parse_args()
    if args.devices is None:
        args.devices = 1 if args.scheme == "ffp" else 384

    import xarray as xr
    from distributed import Client, LocalCluster

    if args.scheme == "ffp":
        spec = make_ffp_spec(args.points, args.devices, args.grid)
        warm = make_ffp_spec(2, 1, 4)
        what = f"{spec.devices} device(s), {args.grid} x {args.grid} film, FFP HRS -> LRS -> HRS), preset tio2x-4t"
    else:
        spec = make_spec(args.points, args.devices, args.cycles, args.preset)
        warm = make_spec(2, 8, 2, args.preset)
        what = f"{spec.devices} devices x {spec.cycles} cycles x 40 pulses), preset {args.preset}"
    print(f"sweep: {spec.n_points} points x ({what}; host {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    results = {"serial (no Dask)": timed(spec, "serial")}
    for workers in (1, 2):
        start = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            started = time.perf_counter() - start
            timed(warm, "client", client)  # warm: imports, first calls
            res = timed(spec, "client", client)
        res["cluster_start"] = started
        res["workers"] = workers
        results[f"{workers} worker{'s' if workers > 1 else ''}"] = res

    ref = results["serial (no Dask)"]["dataset"]
    for name, res in results.items():
        xr.testing.assert_identical(ref, res["dataset"])

    print(f"{'run':>18} {'wall s':>8} {'compute s':>10} {'mean point s':>13} {'overhead/point s':>17} "
          f"{'overhead %':>11}")
    for name, res in results.items():
        w = res.get("workers", 1)
        per_point = res["compute"] / res["n"]
        over = (w * res["wall"] - res["compute"]) / res["n"]
        print(f"{name:>18} {res['wall']:8.2f} {res['compute']:10.2f} {per_point:13.3f} {over:17.4f} "
              f"{100 * over / per_point:10.1f}%")
    one, two = results["1 worker"], results["2 workers"]
    speedup = one["wall"] / two["wall"]
    print(f"cluster start-up: 1 worker {one['cluster_start']:.1f} s, 2 workers {two['cluster_start']:.1f} s "
          "(not in the walls above)")
    print(f"speed-up 1 -> 2 workers: {speedup:.2f}x (goal >= 1.8x); "
          f"2-worker overhead {100 * (2 * two['wall'] - two['compute']) / two['compute']:.1f} % of compute "
          f"(goal < 5 %); load average {os.getloadavg()[0]:.2f} at end")
    print("results identical across serial, 1 and 2 workers: yes")


if __name__ == "__main__":
    main()
