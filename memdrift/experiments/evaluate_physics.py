"""The physics-in-the-loop study of ``memdrift evaluate --program physics`` beside the record route.

One digitally trained, hardware-aware trained network (the record's HWAT, as the
accuracy study) is deployed twice on the same periphery and seeds:

``statistical``  the record route: aihwkit draws each weight from the record's levels, Student-t
                 program error and power-law drift (Arrhenius at the aging temperature);
``physics``      every weight programmed on its own emulated device pair
                 (:mod:`memdrift.mapping.physics_program`), aged by the emulator, and held in the
                 tiles as those conductances (:mod:`memdrift.mapping.physics_tiles`).

``accuracy`` is over (mode, repeat, temperature, time); time 0 is the programmed state (no aging).
A physics repeat is a fresh emulated ensemble (seed + repeat); a statistical repeat a fresh draw.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from memdrift.emulator.params import FilamentParams
from memdrift.experiments import evaluate
from memdrift.experiments.datasets import Split

MODES = ("digital", "statistical", "physics")
UNITS = {"devices": "1", "pulses": "1", "energy_j": "J", "time_serial_s": "s", "time_row_parallel_s": "s",
         "out_of_band": "1"}
LONG = {"devices": "emulated devices (two per weight)", "pulses": "write pulses emulated",
        "energy_j": "energy of the write pulses emulated", "time_serial_s": "programming time, one device at a time",
        "time_row_parallel_s": "programming time, one array row at a time (its slowest device)",
        "out_of_band": "devices whose final read is outside the write-verify band"}


def study_physics(record: Mapping[str, Any], network: str, data: Split, s: evaluate.Settings, *,
                  params: FilamentParams, preset: str, scheme: str, ages_s: Sequence[float] = (),
                  temperatures_k: Sequence[float] = (300.0,), threads: int = 1,
                  chunk_devices: int | None = None, dask_workers: int = 0) -> xr.Dataset:
    import contextlib

    with contextlib.ExitStack() as stack:
        client = None
        if dask_workers:
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(LocalCluster(n_workers=int(dask_workers), threads_per_worker=1,
                                                       processes=True, dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        return _study_physics(record, network, data, s, params=params, preset=preset, scheme=scheme,
                              ages_s=ages_s, temperatures_k=temperatures_k, threads=threads,
                              chunk_devices=chunk_devices, client=client)


def _study_physics(record: Mapping[str, Any], network: str, data: Split, s: evaluate.Settings, *,
                   params: FilamentParams, preset: str, scheme: str, ages_s: Sequence[float],
                   temperatures_k: Sequence[float], threads: int, chunk_devices: int | None,
                   client: Any) -> xr.Dataset:
    from memdrift.mapping import physics_program, physics_tiles

    s = s.checked()
    clock: dict[str, float] = {}
    tic = time.perf_counter()
    net, digital, cfg, _direct = evaluate._deployed(record, network, data, s)
    hw = evaluate.hardware_aware_train(evaluate.to_analog(net, cfg, s.device), data, s)
    clock["training"] = time.perf_counter() - tic
    phys = copy.deepcopy(hw)
    targets = physics_tiles.tile_weights(phys)
    times = np.array(sorted({0.0, *(float(t) for t in ages_s)}))
    temps = np.array(sorted({float(t) for t in temperatures_k}))
    acc = np.empty((len(MODES), s.repeats, temps.size, times.size))
    acc[0] = digital
    tic = time.perf_counter()
    for i, temp in enumerate(temps):
        evaluate.set_noise(hw, temperature_k=float(temp))
        for j, t in enumerate(times):
            acc[1, :, i, j] = evaluate._programmed_repeats(hw, data, s, float(t))
    clock["statistical_inference"] = time.perf_counter() - tic
    ages = [(float(T), float(t)) for T in temps for t in times if t > 0]
    first = None
    clock.update(fit=0.0, program=0.0, age=0.0, physics_inference=0.0)
    for r in range(s.repeats):
        prog = physics_program.program_network(
            params, targets, scheme=scheme, seed=s.seed + r, threads=threads, ages=ages,
            chunk_devices=chunk_devices or physics_program.CHUNK_DEVICES, progress=s.progress,
            fit=None if first is None else first.fit, client=client)
        for key in ("fit", "program", "age"):
            clock[key] += prog.wall_s.get(key, 0.0)
        first = first or prog
        physics_tiles.install(phys, prog)
        tic = time.perf_counter()
        for i, temp in enumerate(temps):
            physics_tiles.select_age(phys, float(temp))
            for j, t in enumerate(times):
                acc[2, r, i, j] = evaluate.program_and_test(phys, data, t_inference_s=float(t),
                                                            seed=s.seed + 1000 + r, eval_batch=s.eval_batch)
        clock["physics_inference"] += time.perf_counter() - tic
    ds = evaluate._result(acc, list(MODES), s, record, network, data, "physics",
                          {"temperature": ("temperature", temps, {"units": "K", "long_name": "aging temperature"}),
                           "time": ("time", times, {"units": "s", "long_name": "time since the end of programming"})},
                          ("temperature", "time"))
    ds = evaluate._cost(ds, record, net)
    for name in [v for v in ds.data_vars if str(v).startswith("programming_")]:
        ds = ds.rename({name: "statistical_" + str(name)})
    _accounting(ds, first)
    fit = first.fit
    ds.attrs.update({"title": f"memdrift evaluate: physics in the loop ({scheme}), {network} on {data.name}",
                     "program": "physics", "scheme": scheme, "preset": preset,
                     "physics_g_min_S": first.g_min_s, "physics_g_max_S": first.g_max_s,
                     "ramp_fit_slope_S_per_pulse": fit.slope_s_per_pulse, "ramp_fit_intercept_S": fit.intercept_s,
                     "ramp_fit_range": f"pulses {fit.start}..{fit.stop - 1} (0-based) of the ramp's potentiation",
                     "emulator_threads": int(threads)})
    for key, value in clock.items():
        ds.attrs[f"wall_{key}_s"] = float(value)
    return ds


def _accounting(ds: xr.Dataset, prog: Any) -> None:
    acc = prog.accounting()
    layers = np.arange(len(acc["devices"]))
    for key, values in acc.items():
        name = "physics_" + key.removesuffix("_j").removesuffix("_s")
        ds[name + "_per_layer"] = xr.DataArray(values, dims=("layer",), coords={"layer": layers},
                                               attrs={"units": UNITS[key], "long_name": LONG[key] + ", per layer"})
        ds[name] = xr.DataArray(values.sum(), attrs={"units": UNITS[key], "long_name": LONG[key] + ", network"})
    ds["layer"].attrs.update(units="1", long_name="analog layer index")
    n_pulses, devices = prog.pulse_histogram()
    ds["physics_devices_by_pulses"] = xr.DataArray(devices, dims=("pulses",), coords={"pulses": n_pulses},
                                                   attrs={"units": "1", "long_name": "devices programmed with "
                                                          "that many write pulses"})
    ds["pulses"].attrs.update(units="1", long_name="write pulses of one device")


def table(ds: xr.Dataset) -> str:
    """Side by side: accuracy (mean ± std over repeats) per aging point, then the programming cost."""
    mean, std = ds.accuracy.mean("repeat") * 100, ds.accuracy.std("repeat") * 100
    lines = [f"{'T (K)':>7} {'t (s)':>10} " + " ".join(f"{m:>17}" for m in ds["mode"].values)]
    for temp in ds["temperature"].values:
        for t in ds["time"].values:
            cells = [f"{float(mean.sel(mode=m, temperature=temp, time=t)):6.2f} ± "
                     f"{float(std.sel(mode=m, temperature=temp, time=t)):4.2f} %" for m in ds["mode"].values]
            lines.append(f"{temp:>7g} {t:>10g} " + " ".join(f"{c:>17}" for c in cells))
    lines.append(f"{'programming':<26} {'statistical (record)':>22} {'physics (' + ds.attrs['scheme'] + ')':>24}")
    for key, label in (("energy", "energy"), ("pulses", "pulses"), ("time_serial", "time serial"),
                       ("time_row_parallel", "time row-parallel")):
        stat = ds.get(f"statistical_programming_{key}")
        phys = ds[f"physics_{key}"]
        unit = phys.attrs["units"]
        stat_s = f"{float(stat):.4g} {unit}" if stat is not None else "n/a"
        lines.append(f"{label:<26} {stat_s:>22} {float(phys):>21.4g} {unit}")
    loop = "" if ds.attrs["scheme"] == "write-verify" else " (open loop: the band is only a yardstick)"
    lines.append(f"devices outside the write-verify band: {int(ds['physics_out_of_band'])} of "
                 f"{int(ds['physics_devices'])}{loop}")
    return "\n".join(lines)


#: seconds of each unit ``--age`` accepts (a year is 365 days)
DURATION_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 3.1536e7}


def parse_duration(text: str) -> float:
    """Seconds of ``text``: a number with an optional unit (s, min, h, d, w, y), e.g. ``1d``, ``10y``, ``3600``."""
    from memdrift.errors import MemdriftError, check_range

    raw = str(text).strip()
    for unit in sorted(DURATION_UNITS, key=len, reverse=True):
        if raw.endswith(unit):
            number, scale = raw[: -len(unit)], DURATION_UNITS[unit]
            break
    else:
        number, scale = raw, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise MemdriftError(f"age = {text!r} is not a duration; allowed: a number with an optional unit "
                            f"({', '.join(DURATION_UNITS)}), e.g. 1d, 1y, 3600") from None
    return check_range("age", value, 0.0, 1e10, low_open=True, unit="s")


def plot(ds: xr.Dataset, path: Any) -> None:
    """Accuracy against aging time, statistical and physics routes, one line per aging temperature
    (mean ± 1 s.d. over the repeats; time 0, the programmed state, drawn at the axis' left end)."""
    from memdrift.experiments import figstyle

    plt = figstyle.pyplot()
    acc = ds.accuracy * 100
    mean, std = acc.mean("repeat"), acc.std("repeat")
    times = ds["time"].values.astype(float)
    shown = np.where(times > 0, times, min(times[times > 0].min() / 10, 1.0) if (times > 0).any() else 1.0)
    fig, ax = plt.subplots(figsize=(6.0, 4.2), layout="constrained")
    ax.axhline(float(mean.sel(mode="digital").mean()), color="0.6", lw=1, ls=":", label="digital")
    for mode, style in (("statistical", "--"), ("physics", "-")):
        for temp in ds["temperature"].values:
            ax.errorbar(shown, mean.sel(mode=mode, temperature=temp), yerr=std.sel(mode=mode, temperature=temp),
                        marker="o", ms=3, capsize=3, ls=style, label=f"{mode}, {temp:g} K")
    ax.set_xscale("log")
    ax.set_xlabel("time since the end of programming (s); leftmost point: as programmed")
    ax.set_ylabel("test-set classification accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title(f"{ds.attrs.get('network')} on {ds.attrs.get('dataset')}: physics ({ds.attrs.get('scheme')}) "
                 "vs record", fontsize=10)
    figstyle.save(fig, path)
