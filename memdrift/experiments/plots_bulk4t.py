"""Figures of the bulk four-terminal film: vacancy and temperature maps at chosen FFP events, R vs event.

Input is a dataset from ``simulate_scheme(..., "ffp", snapshot_events=...)`` (or read back from netCDF);
output PNGs are written atomically through matplotlib's Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from memdrift.data.io import atomic_path
from memdrift.errors import MemdriftError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return Path(path)


def plot_resistance(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0) -> Path:
    """R13 after each FFP event, both branches, with the amplitude used."""
    if "resistance" not in ds:
        raise MemdriftError("dataset has no 'resistance' variable; allowed: an ffp dataset")
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for c in range(ds.sizes["cycle"]):
        r = ds.resistance.isel(device=device, cycle=c).values
        ok = np.isfinite(r)
        label = str(ds.branch.values[c]) if "branch" in ds.coords else f"cycle {c}"
        ax.plot(np.flatnonzero(ok) + 1, r[ok], ".", ms=2, label=label)
        if "amplitude" in ds and ds.amplitude.ndim == 3:
            a = ds.amplitude.isel(device=device, cycle=c).values
            ax2.plot(np.flatnonzero(ok) + 1, a[ok], ".", ms=2)
    ax.set_ylabel("R13 (ohm)")
    ax.legend()
    ax2.set_ylabel("Vw (V)")
    ax2.set_xlabel("pulse event")
    fig.suptitle(f"{ds.attrs.get('preset', '')} {ds.attrs.get('scheme', '')}, device {device}")
    return _save(fig, path)


def plot_maps(ds: xr.Dataset, path: str | os.PathLike[str], device: int = 0, cycle: int = 0) -> Path:
    """Vacancy count and temperature maps at the dataset's snapshot events (top row: n, bottom row: T)."""
    if "vacancy_map" not in ds:
        raise MemdriftError("dataset has no 'vacancy_map'; allowed: an ffp dataset run with snapshot_events")
    plt = _pyplot()
    snaps = ds.snapshot.values
    fig, axes = plt.subplots(2, len(snaps), figsize=(3.2 * len(snaps), 6), squeeze=False)
    vac = ds.vacancy_map.isel(device=device, cycle=cycle).values
    temp = ds.temperature_map.isel(device=device, cycle=cycle).values
    vmax = np.nanmax(vac)
    tmin, tmax = np.nanmin(temp), np.nanmax(temp)
    for k, ev in enumerate(snaps):
        # x runs T1 -> T3 (left to right), y runs T4 -> T2 (bottom to top)
        im = axes[0, k].imshow(vac[k].T, origin="lower", cmap="viridis", vmin=0, vmax=vmax)
        axes[0, k].set_title(f"event {ev}: vacancies")
        im2 = axes[1, k].imshow(temp[k].T, origin="lower", cmap="inferno", vmin=tmin, vmax=tmax)
        axes[1, k].set_title(f"event {ev}: T (K)")
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.8, label="vacancies per cell")
    fig.colorbar(im2, ax=axes[1, :].tolist(), shrink=0.8, label="K")
    return _save(fig, path)
