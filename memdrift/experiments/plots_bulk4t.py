"""Figures of the bulk four-terminal film: vacancy and temperature maps at chosen FFP events, R vs event.

Input is a dataset from ``simulate_scheme(..., "ffp", snapshot_events=...)`` (or read back from netCDF);
output PNGs are written atomically through matplotlib's Agg backend. ``plot_scheme`` is what
``memdrift pulse --plot`` draws: both panels in one file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import xarray as xr

from memdrift.experiments import figstyle
from memdrift.errors import MemdriftError, field_error


def _save(fig, path: str | os.PathLike[str]) -> Path:
    return figstyle.save(fig, path, bbox_inches="tight")


def _draw_resistance(ax, ax2, ds: xr.Dataset, device: int) -> None:
    """R13 (and the write amplitude, when the dataset has one per event) against the event number."""
    resistance = ds.resistance
    if "time" in resistance.dims:
        # retention: R against time at each bake temperature
        temps = ds.temperature
        for k, temp in enumerate(temps.values):
            ax.semilogx(ds.time.values, resistance.isel(device=device, temperature=k).values, "o-", ms=3,
                        label=f"{temp:.0f} {figstyle.attributes(temps)[1] or ''}".strip())
        ax.set_xlabel(figstyle.label(ds.time))
        ax.set_ylabel(figstyle.label(resistance))
        ax.legend(title=figstyle.label(temps), fontsize=8, title_fontsize=8)
        figstyle.plain_ticks(ax, axis="y")
        ax2.set_visible(False)
        return
    has_amplitude = "amplitude" in ds and ds.amplitude.ndim == 3
    for c in range(ds.sizes["cycle"]):
        r = resistance.isel(device=device, cycle=c).values
        ok = np.isfinite(r)
        name = str(ds.branch.values[c]) if "branch" in ds.coords else None
        # identical-pulse runs have no branch per cycle: matplotlib's cycle tells their amplitudes apart
        colour = {"color": figstyle.branch_colour(name)} if name in figstyle.BRANCH_COLOURS else {}
        ax.plot(np.flatnonzero(ok) + 1, r[ok], ".", ms=2, label=name or f"cycle {c}", **colour)
        if has_amplitude:
            a = ds.amplitude.isel(device=device, cycle=c).values
            ax2.plot(np.flatnonzero(ok) + 1, a[ok], ".", ms=2, **colour)
    if "snapshot" in ds.coords:
        last = int(np.max(np.sum(np.isfinite(resistance.isel(device=device).values), axis=-1)))
        for ev in ds.snapshot.values:
            if ev <= last:
                ax.axvline(ev, color="0.6", lw=0.6, ls=":")
    ax.set_ylabel(figstyle.label(resistance))
    figstyle.plain_ticks(ax, axis="y")
    # identical-pulse runs have one curve per amplitude: a legend would bury the plot
    if ds.sizes["cycle"] <= 4:
        ax.legend(markerscale=4)
    event = "FFP event" if "events" in ds else "pulse"
    if has_amplitude:
        ax2.set_ylabel(figstyle.label(ds.amplitude))
        ax2.set_xlabel(event)
    else:
        ax2.set_visible(False)
        ax.set_xlabel(event)


def _finest_segmentation(ds: xr.Dataset) -> int | None:
    """The largest level count the dataset was segmented into (None without segmentation)."""
    counts = [int(name.removeprefix("skipped_level_n")) for name in ds.data_vars
              if name.startswith("skipped_level_n")]
    return max(counts) if counts else None


def _draw_levels(ax, ds: xr.Dataset, device: int, n: int) -> None:
    """Offset of each segmented level from its target (level spacings), with the ensemble's skipped levels
    (CPD 80 %) marked: a skipped level lies outside the +-0.5 band in most devices."""
    from memdrift.emulator.segmentation import SKIP_OFFSET

    offsets = ds[f"level_offset_n{n}"]
    skipped = ds[f"skipped_level_n{n}"].values.astype(bool)  # (cycle, level)
    ax.axhspan(-SKIP_OFFSET, SKIP_OFFSET, color="0.9", zorder=0, label=f"|offset| <= {SKIP_OFFSET:g}: level reached")
    for c in range(ds.sizes["cycle"]):
        name = str(ds.branch.values[c]) if "branch" in ds.coords else f"cycle {c}"
        y = offsets.isel(device=device, cycle=c).values
        level = np.arange(1, y.size + 1)
        colour = figstyle.branch_colour(name)
        ax.plot(level, y, ".", ms=2, color=colour, label=f"{name}, device {device}")
        on = skipped[c]
        ax.plot(level[on], y[on], "x", ms=5, color=colour,
                label=f"{name}: skipped at CPD 80 % over the devices ({int(on.sum())} of {n})")
    ax.set_xlabel(f"level (n = {n}), in the order the branch passes them")
    ax.set_ylabel(figstyle.label(offsets))
    ax.legend(fontsize=7, markerscale=2, loc="best")


def plot_resistance(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0) -> Path:
    """R13 after each FFP event, both branches, with the amplitude used."""
    if "resistance" not in ds:
        raise MemdriftError("dataset has no 'resistance' variable; allowed: an ffp dataset")
    plt = figstyle.pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    _draw_resistance(ax, ax2, ds, device)
    fig.suptitle(f"{ds.attrs.get('preset', '')} {ds.attrs.get('scheme', '')}, device {device}")
    return _save(fig, path)


def _film_extent_um(ds: xr.Dataset) -> tuple[float, float] | None:
    """Width of the film along x (T1 -> T3) and y (T4 -> T2) in µm, from the run's parameters."""
    side = ds.attrs.get("parameters.side_length_m")
    if side is None:
        return None
    nx, ny = ds.sizes["x"], ds.sizes["y"]
    # cells are square: the side length spans the longer grid direction
    cell_um = float(side) * 1e6 / max(nx, ny)
    return nx * cell_um, ny * cell_um


def _scale_bar_um(width_um: float) -> float:
    """A round length near a quarter of the map width (1, 2 or 5 times a power of ten, in µm)."""
    target = width_um / 4.0
    power = 10.0 ** math.floor(math.log10(target))
    return max(m * power for m in (1.0, 2.0, 5.0) if m * power <= target)


def _spatial_axes(ax, extent: tuple[float, float] | None, *, x_label: bool, y_label: bool) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    if extent is None:
        ax.set_xlabel("x cell (T1 -> T3)" if x_label else "")
        ax.set_ylabel("y cell (T4 -> T2)" if y_label else "")
        return
    ax.tick_params(labelsize=6)
    if x_label:
        ax.set_xlabel("x, T1 -> T3 (µm)", fontsize=7)
    if y_label:
        ax.set_ylabel("y, T4 -> T2 (µm)", fontsize=7)
    bar = _scale_bar_um(extent[0])
    ax.add_artist(AnchoredSizeBar(ax.transData, bar, f"{bar:g} µm", "lower right", pad=0.3, color="white",
                                  frameon=False, size_vertical=extent[1] / 60, fontproperties={"size": 6}))


def _draw_maps(fig, ds: xr.Dataset, device: int, cycles: list[int]) -> None:
    """Rows of vacancy and temperature maps (one pair of rows per cycle), one column per snapshot event,
    drawn over the film's area in µm with a scale bar."""
    snaps = ds.snapshot.values
    axes = fig.subplots(2 * len(cycles), len(snaps), squeeze=False)
    vac_var, temp_var = ds.vacancy_map, ds.temperature_map
    vac_all = vac_var.isel(device=device).values
    temp_all = temp_var.isel(device=device).values
    extent = _film_extent_um(ds)
    image_extent = None if extent is None else (0.0, extent[0], 0.0, extent[1])
    # one colour scale per quantity across the figure, so maps can be compared by eye; the vacancy scale
    # spans what the film holds (not from zero) because switching moves a few per cent of the content
    vmin, vmax = _finite_range(vac_all)
    tmin, tmax = _finite_range(temp_all)
    for row, cycle in enumerate(cycles):
        label = str(ds.branch.values[cycle]) if "branch" in ds.coords else f"cycle {cycle}"
        vac, temp = vac_all[cycle], temp_all[cycle]
        im = im2 = None
        for k, ev in enumerate(snaps):
            a_n, a_t = axes[2 * row, k], axes[2 * row + 1, k]
            if not np.any(np.isfinite(vac[k])):
                # the branch ended before this event
                a_n.set_title(f"{label}, event {ev}:\nnot reached", fontsize=8)
                a_n.set_axis_off()
                a_t.set_axis_off()
                continue
            # x runs T1 -> T3 (left to right), y runs T4 -> T2 (bottom to top)
            im = a_n.imshow(vac[k].T, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, extent=image_extent)
            a_n.set_title(f"{label}, event {ev}:\nvacancies", fontsize=8)
            im2 = a_t.imshow(temp[k].T, origin="lower", cmap="inferno", vmin=tmin, vmax=tmax, extent=image_extent)
            a_t.set_title(f"{label}, event {ev}:\nT during the write", fontsize=8)
            _spatial_axes(a_n, extent, x_label=False, y_label=k == 0)
            _spatial_axes(a_t, extent, x_label=True, y_label=k == 0)
        if im is not None:
            for image, var, ax_row in ((im, vac_var, axes[2 * row, :]), (im2, temp_var, axes[2 * row + 1, :])):
                figstyle.colour_bar(fig, image, ax_row.tolist(), var, width=28, shrink=0.9)


def _finite_range(x: np.ndarray) -> tuple[float, float]:
    if not np.any(np.isfinite(x)):
        return 0.0, 1.0
    lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
    # a uniform map (heating off: T = T0 everywhere) still needs a non-empty colour range
    pad = max(abs(hi) * 1e-6, 1e-9)
    return lo, max(hi, lo + pad)


def plot_maps(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0, cycle: int = 0) -> Path:
    """Vacancy count and temperature maps at the dataset's snapshot events (top row: n, bottom row: T)."""
    if "vacancy_map" not in ds:
        raise MemdriftError("dataset has no 'vacancy_map'; allowed: an ffp dataset run with snapshot_events")
    plt = figstyle.pyplot()
    fig = plt.figure(figsize=(3.2 * ds.sizes["snapshot"], 6), layout="constrained")
    _draw_maps(fig, ds, device, [cycle])
    return _save(fig, path)


def plot_scheme(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0) -> Path:
    """One PNG summarising any bulk scheme dataset: R13 vs event number (and Vw); with a segmentation, the
    level offsets of the finest level count with the skipped levels marked; and, when the dataset holds
    snapshots, the vacancy and temperature maps at those events for every branch below it."""
    if "resistance" not in ds:
        raise MemdriftError("dataset has no 'resistance' variable; allowed: a bulk4t scheme dataset")
    if not 0 <= int(device) < ds.sizes["device"]:
        raise field_error("device", device, f"[0, {ds.sizes['device'] - 1}]")
    plt = figstyle.pyplot()
    maps = "vacancy_map" in ds and ds.sizes.get("snapshot", 0) > 0
    n_levels = _finest_segmentation(ds)
    cycles = list(range(ds.sizes["cycle"])) if maps else []
    n_cols = ds.sizes["snapshot"] if maps else 0
    width = max(8.0, 2.3 * n_cols + 1.5)
    heights = [5.0] + ([3.0] if n_levels else []) + ([4.4 * len(cycles)] if maps else [])
    fig = plt.figure(figsize=(width, sum(heights)), layout="constrained")
    parts = list(fig.subfigures(len(heights), 1, height_ratios=heights)) if len(heights) > 1 else [fig]
    top = parts.pop(0)
    ax, ax2 = top.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    _draw_resistance(ax, ax2, ds, device)
    title = f"{ds.attrs.get('preset', '')} {ds.attrs.get('scheme', '')}, device {device}"
    if "events" in ds:
        ev = ds.events.isel(device=device).values
        title += " (events: " + ", ".join(f"{b} {int(e)}" for b, e in zip(ds.branch.values, ev)) + ")"
    top.suptitle(title)
    if n_levels:
        _draw_levels(parts.pop(0).subplots(), ds, device, n_levels)
    if maps:
        _draw_maps(parts.pop(0), ds, device, cycles)
    return _save(fig, path)
