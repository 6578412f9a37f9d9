"""The film-level study of ``memdrift evaluate --program physics --scheme ffp-levels`` beside the record route.

The TiO2-x paper's weight transfer (as the ``bits`` study: a digitally trained
network, no HWAT, one device per weight against a reference, the tile's largest
|w| at the window's ends) at each bit depth, deployed twice on the same periphery:

``statistical``  the record route: ``2^bits`` levels with the record's Student-t program error
                 resampled to that count (:func:`memdrift.experiments.evaluate.study_bits`);
``physics``      every weight on a level of a film drawn from an emulated pool
                 (:mod:`memdrift.mapping.film_pool`), held in the tiles as those conductances
                 (:mod:`memdrift.mapping.physics_tiles`).

``accuracy`` is over (mode, repeat, bits). A physics repeat is a fresh pool (seed + repeat) with fresh
draws; a statistical repeat a fresh draw of program error.

With ``ages_s`` the pool's films are aged by their own zero-bias physics
(:mod:`memdrift.mapping.film_pool`, "Aging from the film's own physics") and ``accuracy`` is over
(mode, repeat, bits, temperature, time), time 0 the programmed state, as the filament route's; the
statistical route then draws with the record's drift (Arrhenius at the aging temperature).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from memdrift.experiments import evaluate
from memdrift.experiments.datasets import Split
from memdrift.experiments.evaluate_physics import LONG, UNITS

MODES = ("digital", "statistical", "physics")
POOL_FILMS = 8
POOL_REALISATIONS = 2
REFERENCE_ATTRS = {
    "fixed": "G_ref = (g_min + g_max) / 2, an ideal reference",
    "aged-film": "aged-film: one reference film per input line of a tile, drawn from the pool, at G_ref = (g_min + "
                 "g_max) / 2 as programmed and aged by its film's own change held from its middle state"}


def study_film_levels(record: Mapping[str, Any], network: str, data: Split, s: evaluate.Settings, *,
                      params: Any, preset: str, calibration: Mapping[str, Any] | None = None,
                      pool: int = POOL_FILMS, realisations: int = POOL_REALISATIONS,
                      grid: int | None = None, map_pulses: int = 100, threads: int = 1,
                      chunk_devices: int | None = None, ages_s: Sequence[float] = (),
                      temperatures_k: Sequence[float] = (300.0,), age_levels: int | None = None,
                      reference: str = "fixed", age_mode: str = "anchors", **_: Any) -> xr.Dataset:
    from memdrift.mapping import film_pool, physics_tiles
    from memdrift.mapping.aihwkit_bridge import inference_config

    s = s.checked()
    clock = {"training": 0.0, "pool": 0.0, "pool_cpu": 0.0, "program": 0.0, "statistical_inference": 0.0,
             "physics_inference": 0.0}
    tic = time.perf_counter()
    net = evaluate.train_digital(network, data, s)
    digital = evaluate.accuracy(net, data.x_test, data.y_test, batch=s.eval_batch)
    clock["training"] = time.perf_counter() - tic
    times = np.array(sorted({0.0, *(float(t) for t in ages_s)}))
    temps = np.array(sorted({float(t) for t in temperatures_k}))
    aging = times.size > 1
    ages = [(float(T), float(t)) for T in temps for t in times if t > 0]
    levels = film_pool.AGE_LEVELS if age_levels is None else int(age_levels)
    if aging:
        clock.update(aging=0.0, aging_cpu=0.0)
    bits = np.asarray(s.bits_values, dtype=int)
    per_state = ({"age_mode": "realisations", "age_bits": tuple(int(b) for b in bits)}
                 if aging and age_mode == "realisations" else {})
    pools = []
    for r in range(s.repeats):
        p = film_pool.build_pool(params, films=pool, realisations=realisations, seed=s.seed + r, threads=threads,
                                 grid=grid, map_pulses=map_pulses, calibration=dict(calibration or {}),
                                 progress=s.progress, ages=ages, age_levels=levels,
                                 **({"reference": True} if reference == "aged-film" else {}), **per_state)
        clock["pool"] += p.wall_s
        clock["pool_cpu"] += p.cpu_s
        if p.aging is not None:
            clock["aging"] += p.aging.wall_s
            clock["aging_cpu"] += p.aging.cpu_s
        pools.append(p)
    # without aging the layout (mode, repeat, bits) of the unaged study; with it two more axes
    acc = np.empty((len(MODES), s.repeats, bits.size) + ((temps.size, times.size) if aging else ()))
    acc[0] = digital
    per_bits: list[dict[str, np.ndarray]] = []
    hist: list[np.ndarray] = []
    for j, b in enumerate(bits):
        cfg = inference_config(record, levels=2 ** int(b), w_range=s.bits_weight_range, dtod=s.dtod,
                               ir_drop=s.ir_drop, hwat_noise=0.0, drift=False, mapping="single", tile=s.tile)
        tic = time.perf_counter()
        if not aging:
            acc[1, :, j] = evaluate._programmed_repeats(evaluate.to_analog(net, cfg, s.device), data, s)
        else:
            drifting = evaluate.to_analog(net, inference_config(
                record, levels=2 ** int(b), w_range=s.bits_weight_range, dtod=s.dtod, ir_drop=s.ir_drop,
                hwat_noise=0.0, drift=True, mapping="single", tile=s.tile), s.device)
            for i, temp in enumerate(temps):
                evaluate.set_noise(drifting, temperature_k=float(temp))
                for k, t in enumerate(times):
                    acc[1, :, j, i, k] = evaluate._programmed_repeats(drifting, data, s, float(t))
        clock["statistical_inference"] += time.perf_counter() - tic
        phys = evaluate.to_analog(net, cfg, s.device)
        targets = physics_tiles.tile_weights(phys)
        for r in range(s.repeats):
            tic = time.perf_counter()
            prog = film_pool.program_network(pools[r], targets, int(b), seed=s.seed + r,
                                             chunk_devices=chunk_devices or 1 << 20, reference=reference,
                                             **({"age_mode": "realisations"} if per_state else {}))
            clock["program"] += time.perf_counter() - tic
            if r == 0:
                per_bits.append(prog.accounting())
                hist.append(prog.pulse_histogram()[1])
            physics_tiles.install(phys, prog)
            tic = time.perf_counter()
            if not aging:
                acc[2, r, j] = evaluate.program_and_test(phys, data, t_inference_s=0.0, seed=s.seed + 1000 + r,
                                                         eval_batch=s.eval_batch)
            for i, temp in enumerate(temps if aging else ()):
                physics_tiles.select_age(phys, float(temp))
                for k, t in enumerate(times):
                    acc[2, r, j, i, k] = evaluate.program_and_test(phys, data, t_inference_s=float(t),
                                                                   seed=s.seed + 1000 + r, eval_batch=s.eval_batch)
            clock["physics_inference"] += time.perf_counter() - tic
    coords = {"bits": ("bits", bits, {"units": "1", "long_name": "weight resolution (2^bits levels of one film)"})}
    if aging:
        coords.update({"temperature": ("temperature", temps, {"units": "K", "long_name": "aging temperature"}),
                       "time": ("time", times, {"units": "s", "long_name": "time since the end of programming"})})
    ds = evaluate._result(acc, list(MODES), s, record, network, data, "physics", coords, tuple(coords))
    ds = evaluate._cost(ds, record, net)
    for name in [v for v in ds.data_vars if str(v).startswith("programming_")]:
        ds = ds.rename({name: "statistical_" + str(name)})
    _accounting(ds, per_bits, hist, bits)
    _pool_vars(ds, pools[0], bits)
    ds.attrs.update({"title": f"memdrift evaluate: physics in the loop (ffp-levels), {network} on {data.name}",
                     "program": "physics", "scheme": "ffp-levels", "preset": preset, "pool_films": int(pool),
                     "pool_realisations": int(realisations),
                     "pool_grid": f"{pools[0].grid[0]} x {pools[0].grid[1]}",
                     "pool_map_pulses": int(map_pulses), "physics_g_min_S": pools[0].g_min_s,
                     "physics_g_max_S": pools[0].g_max_s, "emulator_threads": int(threads),
                     "physics_reference": REFERENCE_ATTRS[reference],
                     "physics_energy_attribution": "each weight: the emulated FFP events of its drawn realisation "
                                                   "from HRS to its level; pool overhead reported apart",
                     "aging": ("none (no --age)" if not aging else
                               "each (film, realisation, level) state the weights sit on held at zero bias on its "
                               "own; a weight holds its reading + its own state's change" if per_state else
                               "each film of the pool held at zero bias from its anchor states; a weight on film f "
                               "at level j holds its reading + film f's change interpolated at target j")})
    if aging:
        ds.attrs["aging_levels"] = levels
        if per_state:
            ds.attrs["aging_mode"] = "realisations"
            ds.attrs["aging_realisation_states"] = int(pools[0].aging.realisation_states)
            ds.attrs["wall_aging_realisations_s"] = float(sum(p.aging.realisation_wall_s for p in pools))
        _aging_vars(ds, pools[0])
    for key, value in clock.items():
        ds.attrs[f"cpu_{key[:-4]}_s" if key.endswith("_cpu") else f"wall_{key}_s"] = float(value)
    return ds


def _aging_vars(ds: xr.Dataset, pool: Any) -> None:
    """Repeat 0's pool: the anchors, and each film's change at each (temperature, time) of the study."""
    a = pool.aging
    ds["aging_anchor_conductance"] = xr.DataArray(a.anchors_s, dims=("aging_anchor",), attrs={
        "units": "S", "long_name": "window conductances at which each film is aged"})
    ds["aging_anchor"] = np.arange(a.anchors_s.size)
    ds["aging_anchor"].attrs.update(units="1", long_name="aging anchor index")
    temps, times = ds["temperature"].values, ds["time"].values
    delta = np.zeros((pool.films, a.anchors_s.size, temps.size, times.size))
    steps = np.zeros(delta.shape, dtype=np.int64)
    for i, temp in enumerate(temps):
        for k, t in enumerate(times):
            if t > 0:
                delta[:, :, i, k] = a.delta_s[(float(temp), float(t))]
                steps[:, :, i, k] = a.steps[(float(temp), float(t))]
    dims = ("pool_film", "aging_anchor", "temperature", "time")
    if a.reference_reached_s is not None:
        ref = np.zeros((pool.films, temps.size, times.size))
        for i, temp in enumerate(temps):
            for k, t in enumerate(times):
                if t > 0:
                    ref[:, i, k] = a.reference_delta_s[(float(temp), float(t))]
        ds["aging_reference_conductance_change"] = xr.DataArray(ref, dims=("pool_film", "temperature", "time"), attrs={
            "units": "S", "long_name": "conductance change of a film held at zero bias from its state at the "
                                       "window's middle (the aged-film reference), read at the film's ambient "
                                       "(repeat 0's pool)"})
    ds["aging_conductance_change"] = xr.DataArray(delta, dims=dims, attrs={
        "units": "S", "long_name": "conductance change of a film held at zero bias from its anchor state, read "
                                   "at the film's ambient (repeat 0's pool)"})
    ds["aging_relaxation_steps"] = xr.DataArray(steps, dims=dims, attrs={
        "units": "1", "long_name": "relaxation steps of that hold (repeat 0's pool)"})


def _accounting(ds: xr.Dataset, per_bits: Sequence[dict[str, np.ndarray]], hist: Sequence[np.ndarray],
                bits: np.ndarray) -> None:
    layers = np.arange(len(per_bits[0]["devices"]))
    for key in per_bits[0]:
        values = np.stack([a[key] for a in per_bits])
        name = "physics_" + key.removesuffix("_j").removesuffix("_s")
        long = LONG[key].replace(" (two per weight)", " (one film level per weight)")
        if key == "out_of_band":
            long = "weights whose level the drawn realisation does not reach (no reading within half a spacing)"
        ds[name + "_per_layer"] = xr.DataArray(values, dims=("bits", "layer"), coords={"layer": layers},
                                               attrs={"units": UNITS[key], "long_name": long + ", per layer"})
        ds[name] = xr.DataArray(values.sum(axis=1), dims=("bits",),
                                attrs={"units": UNITS[key], "long_name": long + ", network"})
    ds["layer"].attrs.update(units="1", long_name="analog layer index")
    width = max(h.size for h in hist)
    counts = np.zeros((len(hist), width), dtype=np.int64)
    for i, h in enumerate(hist):
        counts[i, :h.size] = h
    ds["physics_devices_by_pulses"] = xr.DataArray(counts, dims=("bits", "pulses"),
                                                   coords={"pulses": np.arange(width)},
                                                   attrs={"units": "1", "long_name": "weights programmed with that "
                                                          "many FFP events (repeat 0)"})
    ds["pulses"].attrs.update(units="1", long_name="FFP events of one weight's device")


def _pool_vars(ds: xr.Dataset, pool: Any, bits: np.ndarray) -> None:
    from memdrift.mapping import film_pool

    summary = film_pool.pool_summary(pool, bits)
    longs = {"levels": "levels asked (2^bits)", "reached_mean": "levels a realisation reaches, mean over the pool",
             "reached_min": "levels a realisation reaches, least over the pool",
             "unreached": "(realisation, level) pairs of the pool with no reading within half a spacing",
             "spread_spacings": "spread of a level over the pool's realisations (s.d., mean over levels), "
                                "in level spacings"}
    for key, values in summary.items():
        ds[f"pool_{key}"] = xr.DataArray(values, dims=("bits",), attrs={"units": "1", "long_name": longs[key]})
    dims = ("pool_film", "pool_realisation")
    ds["pool_events"] = xr.DataArray(pool.events, dims=dims,
                                     attrs={"units": "1", "long_name": "FFP events of a potentiation branch HRS "
                                            "to LRS (repeat 0's pool)"})
    for part in ("conditioning", "map", "return"):
        for key, unit in (("pulses", "1"), ("energy_j", "J"), ("time_s", "s")):
            values = pool.overhead[f"{part}_{key}"]
            ds[f"pool_{part}_{key.removesuffix('_j').removesuffix('_s')}"] = xr.DataArray(
                values, dims=("pool_film",), attrs={"units": unit, "long_name": f"pool overhead, {part}: {key} "
                                                    "per film (repeat 0's pool)"})
    for d in dims:
        ds[d] = np.arange(ds.sizes[d])
        ds[d].attrs.update(units="1", long_name=d.replace("_", " ") + " index")


def table(ds: xr.Dataset) -> str:
    """Accuracy per bit depth (mean ± std over repeats), then the programming cost and the unreached levels;
    with aging, the accuracy per bit depth and aging point first."""
    mean, std = ds.accuracy.mean("repeat") * 100, ds.accuracy.std("repeat") * 100
    lines = []
    if "time" in ds.accuracy.dims:
        lines.append(f"{'bits':>5} {'T (K)':>7} {'t (s)':>10} " + " ".join(f"{m:>17}" for m in ds["mode"].values))
        for b in ds["bits"].values:
            for temp in ds["temperature"].values:
                for t in ds["time"].values:
                    at = dict(bits=b, temperature=temp, time=t)
                    cells = [f"{float(mean.sel(mode=m, **at)):6.2f} ± {float(std.sel(mode=m, **at)):4.2f} %"
                             for m in ds["mode"].values]
                    lines.append(f"{b:>5} {temp:>7g} {t:>10g} " + " ".join(f"{c:>17}" for c in cells))
        lines.append(f"aging: {ds.attrs['aging_levels']} anchors per film, "
                     f"{ds.attrs['wall_aging_s']:.1f} s wall ({ds.attrs['cpu_aging_s']:.1f} s CPU) over the pools"
                     + (f"; every weight's own state: {ds.attrs['aging_realisation_states']} realisation states "
                        f"held (repeat 0), {ds.attrs['wall_aging_realisations_s']:.1f} s wall over the pools"
                        if "aging_realisation_states" in ds.attrs else ""))
        mean, std = mean.isel(temperature=0, time=0), std.isel(temperature=0, time=0)
        lines.append("as programmed:")
    lines.append(f"{'bits':>5} " + " ".join(f"{m:>17}" for m in ds["mode"].values)
                 + f" {'unreached weights':>18} {'energy (J)':>11} {'events':>10}")
    for b in ds["bits"].values:
        cells = [f"{float(mean.sel(mode=m, bits=b)):6.2f} ± {float(std.sel(mode=m, bits=b)):4.2f} %"
                 for m in ds["mode"].values]
        lines.append(f"{b:>5} " + " ".join(f"{c:>17}" for c in cells)
                     + f" {int(ds['physics_out_of_band'].sel(bits=b)):>18}"
                     f" {float(ds['physics_energy'].sel(bits=b)):>11.4g} {int(ds['physics_pulses'].sel(bits=b)):>10}")
    stat = ds.get("statistical_programming_energy")
    if stat is not None:
        lines.append(f"record's estimate of the programming energy: {float(stat):.4g} J (physics above: the "
                     "emulated events, each weight from HRS to its level)")
    lines.append(f"pool: {ds.attrs['pool_films']} films x {ds.attrs['pool_realisations']} realisations, "
                 f"{ds.attrs['pool_grid']} grid, built in {ds.attrs['wall_pool_s']:.1f} s wall "
                 f"({ds.attrs['cpu_pool_s']:.1f} s CPU)")
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: Any) -> None:
    """Accuracy against bit depth, one line per mode (mean ± 1 s.d. over the repeats); with aging, accuracy
    against aging time, one panel per bit depth, one line per route and temperature."""
    if "time" in ds.accuracy.dims:
        _plot_aging(ds, path)
        return
    shown = ds.copy()
    shown.attrs["study"] = f"film levels of a {ds.attrs.get('pool_films')}-film pool vs record"
    evaluate.plot(shown, path)


def _plot_aging(ds: xr.Dataset, path: Any) -> None:
    from memdrift.experiments import figstyle

    plt = figstyle.pyplot()
    acc = ds.accuracy * 100
    mean, std = acc.mean("repeat"), acc.std("repeat")
    times = ds["time"].values.astype(float)
    shown = np.where(times > 0, times, min(times[times > 0].min() / 10, 1.0))
    bits = ds["bits"].values
    fig, axes = plt.subplots(1, bits.size, figsize=(3.2 * bits.size + 1.0, 3.6), layout="constrained",
                             squeeze=False, sharey=True)
    for ax, b in zip(axes[0], bits):
        ax.axhline(float(mean.sel(mode="digital", bits=b).mean()), color="0.6", lw=1, ls=":", label="digital")
        for mode, style in (("statistical", "--"), ("physics", "-")):
            for temp in ds["temperature"].values:
                at = dict(mode=mode, bits=b, temperature=temp)
                ax.errorbar(shown, mean.sel(**at), yerr=std.sel(**at), marker="o", ms=3, capsize=3, ls=style,
                            label=f"{mode}, {temp:g} K")
        ax.set_xscale("log")
        ax.set_title(f"{b} bits", fontsize=10)
        ax.set_xlabel("time since programming (s)")
    axes[0][0].set_ylabel("test-set classification accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{ds.attrs.get('network')} on {ds.attrs.get('dataset')}: film levels aged by the film's physics "
                 "vs record (leftmost point: as programmed)", fontsize=10)
    figstyle.save(fig, path)
