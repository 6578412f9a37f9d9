"""Throughput of the filament pulse engine: compiled core vs the vectorised NumPy reference.

Device-pulses per second through the paper's 40-pulse ramp cycle (each pulse
followed by a 20 µs zero-bias gap and a 30 µs read, all simulated), for the
`hfoxsy-hfs2` preset with Poisson noise on. Prints both throughputs and their
ratio at one size in the same run, then how the compiled core scales from
1,000 to 1,000,000 devices.

    python bench/bench_filament.py [--devices 100000] [--threads 2] [--max-devices 1000000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _kernel_run(params, train, devices: int, threads: int, backend: str, seed: int = 0
                ) -> tuple[float, float, float]:
    """Wall seconds for one cycle of ``devices`` through ``train``, sub-steps per pulse and CPU seconds of the
    process (timed region = physics only; on a loaded host the wall time is the CPU time spread over fewer
    cores than asked for)."""
    from memdrift.emulator import engine, filament

    keys = engine.device_keys(seed, devices)
    table, gap0 = engine.parameter_table(params, keys)
    segments = engine.segment_table(train)
    t_amb = table[:, filament.COL["ambient_temperature_k"]].copy()
    n_pulse = train.n_pulses
    if backend == "compiled":
        from memdrift.ext import _filament

        state = engine.kernel_state(gap0, t_amb)
        counters = np.zeros(devices, dtype=np.uint64)
        outs = [np.empty((devices, n_pulse)) for _ in range(4)]
        start, cpu = time.perf_counter(), time.process_time()
        _filament.run_cycle(segments, state, table, keys, counters, *outs, 1, threads)
        elapsed = time.perf_counter() - start
        return elapsed, float(state[:, 3].mean() / n_pulse), time.process_time() - cpu
    state = filament.DeviceState(gap0, t_amb)
    rng = np.random.default_rng(seed)
    start, cpu = time.perf_counter(), time.process_time()
    filament.run_cycle_reference(segments, state, table, rng)
    return time.perf_counter() - start, float("nan"), time.process_time() - cpu


def main() -> None:
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.pulses import ramp

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--reference-devices", type=int, default=None,
                    help="ensemble for the NumPy reference (default: same as --devices)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-devices", type=int, default=1_000_000)
    ap.add_argument("--tolerance", type=float, default=None,
                    help="integration_tolerance (default: the preset's)")
    ap.add_argument("--preset", default="hfoxsy-hfs2",
                    help="preset name or TOML (e.g. examples/presets/hfoxsy-physical-candidate.toml)")
    ap.add_argument("--converged", action="store_true",
                    help="the class's default stepping (tolerance, temperature step, thermal error control) "
                         "instead of the preset's calibrated one")
    ap.add_argument("--thermal-error", type=float, default=None,
                    help="thermal_step_error_fraction (0: the temperature-step bound alone)")
    args = ap.parse_args()

    from memdrift.emulator.params import FilamentParams

    params = load_preset(args.preset).params
    if args.converged:
        d = FilamentParams()
        params = params.replace(integration_tolerance=d.integration_tolerance,
                                max_temperature_step_k=d.max_temperature_step_k,
                                thermal_step_error_fraction=d.thermal_step_error_fraction)
    if args.tolerance is not None:
        params = params.replace(integration_tolerance=args.tolerance)
    if args.thermal_error is not None:
        params = params.replace(thermal_step_error_fraction=args.thermal_error)
    train = ramp()
    n_pulse = train.n_pulses
    print(f"filament ramp cycle: {n_pulse} pulses + reads, preset {args.preset}, noise on, "
          f"integration_tolerance {params.integration_tolerance:g}, temperature step "
          f"{params.max_temperature_step_k:g} K, thermal_step_error_fraction {params.thermal_step_error_fraction:g}, "
          f"{os.cpu_count()} CPUs")

    _kernel_run(params, train, 1000, args.threads, "compiled")  # warm-up (page faults, OpenMP pool)
    t_fast, steps, cpu_fast = _kernel_run(params, train, args.devices, args.threads, "compiled")
    fast = args.devices * n_pulse / t_fast
    n_ref = args.reference_devices or args.devices
    t_ref, _, cpu_ref = _kernel_run(params, train, n_ref, 1, "reference")
    ref = n_ref * n_pulse / t_ref
    print(f"compiled  ({args.threads} threads): {fast:12.4g} device-pulses/s  ({args.devices} devices, "
          f"{t_fast:.3f} s wall, {cpu_fast:.3f} s CPU, {steps:.2f} sub-steps per pulse incl. gap and read)")
    print(f"reference (NumPy, vectorised):   {ref:12.4g} device-pulses/s  ({n_ref} devices, {t_ref:.3f} s wall, "
          f"{cpu_ref:.3f} s CPU)")
    print(f"ratio compiled / reference: {fast / ref:.1f}x")

    t1, _, cpu1 = _kernel_run(params, train, args.devices, 1, "compiled")
    print(f"compiled 1 thread: {args.devices * n_pulse / t1:.4g} device-pulses/s ({t1:.3f} s wall, {cpu1:.3f} s CPU); "
          f"thread speed-up {t1 / t_fast:.2f}x")

    print("\nscaling (compiled):")
    print(f"{'devices':>10} {'seconds':>10} {'device-pulses/s':>16} {'s per device-pulse':>20}")
    n = 1000
    while n <= args.max_devices:
        t, _, _ = _kernel_run(params, train, n, args.threads, "compiled")
        print(f"{n:>10d} {t:>10.4f} {n * n_pulse / t:>16.4g} {t / (n * n_pulse):>20.3e}")
        n *= 10


if __name__ == "__main__":
    main()
