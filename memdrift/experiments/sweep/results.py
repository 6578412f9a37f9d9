"""A sweep's dataset (the axes as dimensions, one variable per metric, the Pareto mask) and its
analysis: the Pareto front, the table of the best points, the plot."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.errors import MemdriftError
from memdrift.experiments.sweep.spec import Axis, Point, SweepSpec, metric_meta


def assemble(spec: SweepSpec, points: Sequence[Point], results: Mapping[tuple[int, ...], Mapping[str, float]]
             ) -> xr.Dataset:
    """One dataset: the axes as dimensions (with units), one variable per metric, the Pareto mask."""
    dims = tuple(a.name for a in spec.axes)
    shape = spec.shape
    data = {m: np.full(shape, np.nan) for m in spec.metrics}
    seeds = np.zeros(shape, dtype=np.uint64)
    for point in points:
        seeds[point.index] = point.seed
        for m in spec.metrics:
            data[m][point.index] = results[point.index][m]
    coords = {}
    for axis in spec.axes:
        values = np.asarray(axis.values, dtype=np.int64 if axis.integer else np.float64)
        coords[axis.name] = xr.Variable((axis.name,), values,
                                        attrs={"units": axis.units, "long_name": _axis_long_name(axis, type(spec.base_params))})
    variables = {}
    for m in spec.metrics:
        units, long_name = metric_meta(m)
        variables[m] = xr.Variable(dims, data[m], attrs={"units": units, "long_name": long_name})
    variables["point_seed"] = xr.Variable(dims, seeds, attrs={"units": "1",
                                                              "long_name": "seed of the point's ensemble"})
    ds = xr.Dataset(variables, coords=coords)
    objectives = [spec.maximise, *spec.minimise]
    flat = np.stack([ds[m].values.reshape(-1) for m in objectives], axis=1)
    front = pareto_front(flat, [True] + [False] * len(spec.minimise)).reshape(shape)
    ds["pareto"] = xr.Variable(dims, front.astype(np.int8), attrs={
        "units": "1", "long_name": f"1 where no other point has more {spec.maximise} at no more "
                                   f"{' and '.join(spec.minimise)}"})
    from memdrift.data.schema import netcdf_attrs

    ds.attrs.update(netcdf_attrs({
        "Conventions": "CF-1.10", "title": f"memdrift sweep {spec.name}", "memdrift_version": __version__,
        "model": spec.base_params.model, "preset": spec.preset, "scheme": spec.scheme, "seed": spec.seed,
        "devices": spec.devices, "cycles": spec.cycles, "extractor": "memdrift.mapping.extract.extract_record",
        "extraction_schema": points[0].task["extraction_schema"] if points else "", "pareto_maximise": spec.maximise, "pareto_minimise": ",".join(spec.minimise),
        "description": spec.description, "spec_toml": spec.source_text,
    }))
    ds.attrs.update(netcdf_attrs(spec.scheme_options, "scheme."))
    ds.attrs.update(netcdf_attrs(spec.base_params.to_dict()["parameters"], "parameters."))
    ds.attrs.update(netcdf_attrs(spec.base_params.variation, "variation."))
    if spec.accuracy is not None:
        ds.attrs.update(netcdf_attrs(spec.accuracy, "accuracy."))
    return ds


def _axis_long_name(axis: Axis, params_class: type) -> str:
    if axis.kind == "variation":
        return f"relative lognormal device-to-device spread of {axis.target}"
    if axis.kind == "device":
        meta = {f.name: f.metadata for f in dataclasses.fields(params_class)}
        return meta[axis.name].get("meaning", axis.name)
    return f"pulse scheme option {axis.name}"


def pareto_front(values: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (points x objectives).

    A row is dominated when another is at least as good in every objective and
    better in one. Rows with a NaN objective are never on the front.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(maximise):
        raise MemdriftError(f"values has shape {v.shape}; allowed: (points, {len(maximise)}) for the objectives")
    sign = np.where(np.asarray(maximise, dtype=bool), -1.0, 1.0)
    cost = v * sign  # everything minimised from here on
    valid = np.all(np.isfinite(cost), axis=1)
    front = valid.copy()
    c = cost[valid]
    idx = np.flatnonzero(valid)
    for k, row in enumerate(c):
        dominated = np.all(c <= row, axis=1) & np.any(c < row, axis=1)
        if dominated.any():
            front[idx[k]] = False
    return front


def best_table(ds: xr.Dataset, limit: int = 10) -> str:
    """The Pareto points, most of the maximised metric first, as a plain text table."""
    maximise = str(ds.attrs["pareto_maximise"])
    minimise = [m for m in str(ds.attrs["pareto_minimise"]).split(",") if m]
    flat = ds.stack(point=list(ds[maximise].dims)) if ds[maximise].dims else ds.expand_dims("point")
    on = flat["pareto"].values.astype(bool)
    order = sorted(np.flatnonzero(on), key=lambda i: (-flat[maximise].values[i],
                                                      *(flat[m].values[i] for m in minimise)))[:limit]
    axes = list(ds[maximise].dims)
    cols = axes + [maximise] + minimise
    header = [f"{c} [{ds[c].attrs.get('units', '')}]" for c in cols]
    rows = [[f"{flat[c].values[i]:.4g}" for c in cols] for i in order]
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(r, widths)) for r in rows]
    n_front = int(on.sum())
    lines.append(f"({n_front} of {on.size} points on the Pareto front"
                 f"{f'; best {len(order)} shown' if n_front > len(order) else ''})")
    return "\n".join(lines)


def plot_pareto(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Maximised metric vs the first minimised one, coloured by the second; the front joined by a line and
    the points labelled by their sweep values (every point up to :data:`LABEL_ALL_POINTS`, else the front)."""
    from memdrift.experiments import figstyle

    plt = figstyle.pyplot()
    maximise = str(ds.attrs["pareto_maximise"])
    minimise = [m for m in str(ds.attrs["pareto_minimise"]).split(",") if m]
    x_name = minimise[0] if minimise else "energy_per_cycle"
    c_name = minimise[1] if len(minimise) > 1 else None
    x, x_label, _ = figstyle.scaled(ds[x_name], ds[x_name].values.reshape(-1))
    y, y_label, _ = figstyle.scaled(ds[maximise], ds[maximise].values.reshape(-1))
    on = ds["pareto"].values.reshape(-1).astype(bool)
    fig, ax = plt.subplots(figsize=(7.2, 5.2), layout="constrained")
    note = ""
    colour = None
    if c_name:
        c, c_label, _ = figstyle.scaled(ds[c_name], ds[c_name].values.reshape(-1))
        finite = c[np.isfinite(c)]
        span = float(finite.max() - finite.min()) if finite.size else 0.0
        scale = float(np.abs(finite).max()) if finite.size else 0.0
        if finite.size and span > COLOUR_MIN_SPAN * scale:
            colour = ds[c_name].values.reshape(-1)  # colour_bar picks the prefix of its ticks
        elif finite.size:
            # a colour scale over a spread this small would paint noise
            note = "\n" + textwrap.fill(f"{c_label.replace(chr(10), ' ')}: {np.median(finite):.4g} at every "
                                         f"point (spread {span:.2g})", 90)
    paint = {"c": colour, "cmap": "viridis"} if colour is not None else {"color": "0.4"}
    sc = ax.scatter(x, y, s=28, alpha=0.8, label="sweep points", **paint)
    if colour is not None:
        figstyle.colour_bar(fig, sc, ax, ds[c_name])
    order = np.argsort(x[on])
    ax.plot(x[on][order], y[on][order], "o-", color="crimson", mfc="none", ms=10, lw=1.2, label="Pareto front")
    axes = list(ds[maximise].dims)
    flat = [np.broadcast_to(ds[a].values.reshape([-1 if d == a else 1 for d in axes]), ds[maximise].shape).reshape(-1)
            for a in axes]
    label_these = np.arange(x.size) if x.size <= LABEL_ALL_POINTS else np.flatnonzero(on)
    shown = np.isfinite(x) & np.isfinite(y)
    middle = float(np.median(x[shown])) if shown.any() else 0.0
    for i in label_these:
        if shown[i]:
            text = "\n".join(f"{a} = {v[i]:.3g}" for a, v in zip(axes, flat))
            # text leans towards the middle of the plot, so that labels of the outermost points stay inside
            left = x[i] > middle
            ax.annotate(text, (x[i], y[i]), xytext=(-5 if left else 5, 4), textcoords="offset points",
                        ha="right" if left else "left", fontsize=6, color="0.25")
    if (~shown).any():
        note += f"\n{int((~shown).sum())} of {x.size} points have no {maximise} or {x_name} value and are not drawn"
    finite_x = x[np.isfinite(x)]
    if finite_x.size and np.all(finite_x > 0) and finite_x.max() / finite_x.min() > 20:
        ax.set_xscale("log")
    figstyle.plain_ticks(ax)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(str(ds.attrs.get("title", "memdrift sweep")) + note, fontsize=9)
    ax.legend(loc="best", fontsize=8)
    return figstyle.save(fig, path)


#: sweeps with at most this many points label every point with its sweep values; larger ones the front
LABEL_ALL_POINTS = 30
#: a colour scale is drawn only where the coloured metric varies by more than this fraction of its size
COLOUR_MIN_SPAN = 0.01
