"""End-to-end rate of ``memdrift pulse`` (CLI start-up, kernel, envelope, netCDF write) beside the
kernel-only rate, in one run.

    .venv/bin/python bench/bench_pulse_end_to_end.py [--devices 100000] [--threads 2] [--repeats 2]
                                                    [--compression]

The end-to-end run is the real command in a fresh process (``python -m memdrift pulse --device
hfoxsy-hfs2 --devices N --cycles 1``: one 40-pulse ramp cycle), so start-up counts; wall time and the
child's CPU time (user + system) are both printed, since a slow or shared disk shows in the first
and not the second. The kernel-only rate is ``run_pulses`` on the same ensemble in this process.
``--compression`` also prints, per variable, the size and write time of each netCDF filter
candidate (none, zlib 1, shuffle + zlib 1, shuffle + zlib 4) on the written data: the measurement
behind :func:`memdrift.data.io.measured_compression`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESET = "hfoxsy-hfs2"


def end_to_end(devices: int, threads: int, out: Path, extra: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "memdrift", "pulse", "--device", PRESET, "--devices", str(devices),
                    "--cycles", "1", "--threads", str(threads), "--quiet", "-o", str(out), *extra], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def kernel_only(devices: int, threads: int) -> float:
    from memdrift.emulator.engine import run_pulses
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.pulses import from_name

    preset = load_preset(PRESET)
    start = time.perf_counter()
    run_pulses(preset.params, from_name("ramp"), devices=devices, cycles=1, threads=threads)
    return time.perf_counter() - start


def compression_table(path: Path) -> None:
    import netCDF4
    import xarray as xr

    ds = xr.open_dataset(path).load()
    print(f"\n{'variable':<17} {'filter':<15} {'MB':>7} {'write s':>8}")
    for name, var in ds.data_vars.items():
        if "device" not in var.dims:
            continue
        for label, kw in (("none", {}), ("zlib 1", {"zlib": True, "complevel": 1}),
                          ("shuffle+zlib 1", {"zlib": True, "complevel": 1, "shuffle": True}),
                          ("shuffle+zlib 4", {"zlib": True, "complevel": 4, "shuffle": True})):
            probe = path.with_suffix(".probe.nc")
            with netCDF4.Dataset(probe, "w") as nc:
                for dim in var.dims:
                    nc.createDimension(dim, var.sizes[dim])
                chunks = tuple(min(13107, s) if d == "device" else s for d, s in var.sizes.items())
                v = nc.createVariable(name, var.dtype, var.dims, chunksizes=chunks, **{"shuffle": False, **kw})
                start = time.perf_counter()
                v[:] = var.values
                nc.sync()
                seconds = time.perf_counter() - start
            print(f"{name:<17} {label:<15} {probe.stat().st_size / 1e6:7.1f} {seconds:8.2f}")
            probe.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs of each")
    ap.add_argument("--compression", action="store_true", help="also print the filter candidates' sizes and times")
    args = ap.parse_args()
    pulses = args.devices * 40
    print(f"memdrift pulse --device {PRESET} --devices {args.devices} --cycles 1 --threads {args.threads} "
          f"({pulses:.3g} device-pulses); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "pulse.nc"
        best = {}
        for label, extra in (("end to end, float64", []), ("end to end, --float32", ["--float32"])):
            runs = [end_to_end(args.devices, args.threads, out, extra) for _ in range(args.repeats)]
            wall, cpu = best[label] = min(runs)
            print(f"{label:<24} wall {wall:6.2f} s  CPU {cpu:6.2f} s  {pulses / wall:9.3g} device-pulses/s  "
                  f"file {out.stat().st_size / 1e6:.1f} MB")
        kernel = min(kernel_only(args.devices, args.threads) for _ in range(args.repeats))
        print(f"{'kernel only (run_pulses)':<24} wall {kernel:6.2f} s  {'':>14}{pulses / kernel:9.3g} device-pulses/s")
        print(f"ratio end to end (float64) / kernel only: {kernel / best['end to end, float64'][0]:.2f}")
        if args.compression:
            end_to_end(args.devices, args.threads, out, [])
            compression_table(out)


if __name__ == "__main__":
    main()
