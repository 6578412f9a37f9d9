"""End-to-end rate of ``memdrift pulse`` (CLI start-up, kernel, dataset assembly, netCDF write) beside the
kernel-only rate, with the split of the time, in one run.

    .venv/bin/python bench/bench_pulse_end_to_end.py [--devices 100000] [--threads 2] [--repeats 3]
                                                    [--compression]

The end-to-end runs are the real command in a fresh process (``python -m memdrift pulse --device
hfoxsy-hfs2 --devices N --cycles 1``: one 40-pulse ramp cycle), so start-up counts; wall time and the
child's CPU time (user + system) are both printed, since a loaded host shows in the first and not the
second. The split comes from one more fresh process that runs the same command in-process
(``memdrift.experiments.cli.main``) with timers around its phases: interpreter and imports, what
comes before the first kernel call (argument checks, the preset), the parameter draws, the compiled
kernel, the dataset assembly of each chunk (``build_dataset``, the flags, the envelope check), the
tail (last kernel call to the file renamed into place: the writer finishing the last chunk), and the
writer thread's own CPU time, which overlaps the kernel. The kernel-only rate is the compiled
``run_cycle`` on the same ensemble in this process. ``--compression`` also prints, per variable, the
size and write time of each netCDF filter candidate (none, zlib 1, shuffle + zlib 1, shuffle + zlib 4)
on the written data: the measurement behind :func:`memdrift.data.io.measured_compression`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESET = "hfoxsy-hfs2"
PULSES_PER_CYCLE = 40


def command(devices: int, threads: int, out: Path, extra: list[str]) -> list[str]:
    return ["pulse", "--device", PRESET, "--devices", str(devices), "--cycles", "1", "--threads", str(threads),
            "--quiet", "-o", str(out), *extra]


def end_to_end(devices: int, threads: int, out: Path, extra: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "memdrift", *command(devices, threads, out, extra)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def kernel_only(devices: int, threads: int) -> tuple[float, float]:
    """Wall and CPU of the compiled ``run_cycle`` alone on the whole ensemble (its inputs prepared first)."""
    import numpy as np

    from memdrift import ext
    from memdrift.emulator import engine, filament
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.pulses import from_name

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = load_preset(PRESET).params
    train = from_name("ramp")
    kernel = ext.load("_filament", columns=filament.COLUMNS)
    keys = engine.device_keys(0, devices, 0)
    table, gap0 = engine.parameter_table(params, keys)
    state = engine.kernel_state(gap0, table[:, filament.COL["ambient_temperature_k"]].copy())
    out = [np.empty((devices, train.n_pulses)) for _ in range(4)]
    pulse_flags = np.zeros((devices, train.n_pulses))
    counters = np.zeros(devices, dtype=np.uint64)
    start, cpu = time.perf_counter(), time.process_time()
    kernel.run_cycle(engine.segment_table(train), state, table, keys, counters, *out, 1, threads, pulse_flags)
    return time.perf_counter() - start, time.process_time() - cpu


# --------------------------------------------------------------------------- the split (child process)

def split_child(devices: int, threads: int, out: Path, launched: float) -> None:
    """Run the command in this fresh process with timers around its phases; print them as JSON."""
    started = time.time()
    import threading

    import memdrift.data.envelope as envelope
    import memdrift.emulator.engine as engine
    from memdrift import ext
    from memdrift.data import flags
    from memdrift.experiments import cli

    imported = time.time()
    imported_cpu = time.process_time()
    phases: dict[str, float] = {}
    marks: dict[str, float] = {}

    inside: set[str] = set()

    def timed(owner, name: str, label: str) -> None:
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if label in inside:  # the envelope check attaches flags too: count that time once
                return real(*args, **kwargs)
            inside.add(label)
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                inside.discard(label)
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - start
        setattr(owner, name, wrapper)

    timed(engine, "parameter_table", "parameter draw")
    for owner, name in ((engine, "build_dataset"), (flags, "attach"), (envelope, "apply")):
        timed(owner, name, "dataset assembly")
    compiled = ext.load("_filament", columns=engine.filament.COLUMNS)

    class Kernel:
        def __getattr__(self, name):
            return getattr(compiled, name)

        @staticmethod
        def run_cycle(*args):
            start = time.perf_counter()
            marks.setdefault("first kernel call", start)
            try:
                return compiled.run_cycle(*args)
            finally:
                marks["last kernel return"] = time.perf_counter()
                phases["kernel"] = phases.get("kernel", 0.0) + marks["last kernel return"] - start

    real_load = ext.load
    ext.load = lambda name, **kw: Kernel() if name == "_filament" else real_load(name, **kw)
    real_run = threading.Thread.run

    def run_and_count(self):
        try:
            real_run(self)
        finally:
            if self.name == "memdrift-writer":
                phases["writer thread CPU"] = time.thread_time()
    threading.Thread.run = run_and_count

    start = time.perf_counter()
    assert cli.main(command(devices, threads, out, [])) == 0
    end = time.perf_counter()
    span = marks["last kernel return"] - marks["first kernel call"]
    print(json.dumps({
        "interpreter start": started - launched,
        "imports": imported - started,
        "start-up CPU (interpreter + imports)": imported_cpu,
        "before the first kernel call": marks["first kernel call"] - start,
        "parameter draw (kernel thread)": phases["parameter draw"],
        "kernel (kernel thread)": phases["kernel"],
        # the span less the kernel and the draws (the first draw lies before the span: a few ms too little)
        "kernel thread idle between chunks": max(0.0, span - phases["kernel"] - phases["parameter draw"]),
        "dataset assembly (main thread, beside the kernel)": phases["dataset assembly"],
        "writer thread CPU (beside the kernel)": phases["writer thread CPU"],
        "tail (last kernel return to the file in place)": end - marks["last kernel return"],
        "total": time.time() - launched,
        "total CPU": time.process_time(),
        "file MB": out.stat().st_size / 1e6,
    }))


def split(devices: int, threads: int, out: Path) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, "--split-child", "--devices", str(devices), "--threads",
                             str(threads), "--output", str(out), "--launched", repr(time.time())],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- compression candidates

def compression_table(path: Path) -> None:
    import netCDF4
    import xarray as xr

    ds = xr.open_dataset(path).load()
    print(f"\n{'variable':<17} {'filter':<15} {'MB':>7} {'write s':>8} {'CPU s':>6}")
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
                v.set_var_chunk_cache(size=0)
                start, cpu = time.perf_counter(), time.process_time()
                v[:] = var.values
                nc.sync()
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(f"{name:<17} {label:<15} {probe.stat().st_size / 1e6:7.1f} {seconds:8.2f} {cpu:6.2f}")
            probe.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs of each")
    ap.add_argument("--compression", action="store_true", help="also print the filter candidates' sizes and times")
    ap.add_argument("--split-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.split_child:
        split_child(args.devices, args.threads, args.output, args.launched)
        return
    pulses = args.devices * PULSES_PER_CYCLE
    print(f"memdrift pulse --device {PRESET} --devices {args.devices} --cycles 1 --threads {args.threads} "
          f"({pulses:.3g} device-pulses); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as root:
        out = Path(root) / "pulse.nc"
        best = {}
        for label, extra in (("end to end, float64", []), ("end to end, --float32", ["--float32"])):
            runs = [end_to_end(args.devices, args.threads, out, extra) for _ in range(args.repeats)]
            wall, cpu = best[label] = min(runs)
            print(f"{label:<26} wall {wall:6.2f} s  CPU {cpu:6.2f} s  {pulses / wall:9.3g} device-pulses/s  "
                  f"file {out.stat().st_size / 1e6:.1f} MB  (walls: {', '.join(f'{w:.2f}' for w, _ in runs)})")
        kernel_wall, kernel_cpu = min(kernel_only(args.devices, args.threads) for _ in range(args.repeats))
        print(f"{'kernel only (run_cycle)':<26} wall {kernel_wall:6.2f} s  CPU {kernel_cpu:6.2f} s  "
              f"{pulses / kernel_wall:9.3g} device-pulses/s")
        print(f"ratio end to end (float64) / kernel only: {kernel_wall / best['end to end, float64'][0]:.2f}")
        parts = min((split(args.devices, args.threads, out) for _ in range(args.repeats)), key=lambda s: s["total"])
        print(f"\nsplit of the fastest of {args.repeats} instrumented runs (seconds of wall time unless noted):")
        for key, value in parts.items():
            print(f"  {key:<50} {value:7.3f}")
        print(f"  {'device-pulses/s (instrumented)':<50} {pulses / parts['total']:9.3g}")
        if args.compression:
            end_to_end(args.devices, args.threads, out, [])
            compression_table(out)


if __name__ == "__main__":
    main()
