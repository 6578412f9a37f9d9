"""PNG figures for filament pulse-train datasets (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from memdrift.data.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pulse_summary(ds: xr.Dataset, params, path: str | Path, *, device: int = 0) -> Path:
    """Conductance vs pulse number for every cycle of one device with the mean over
    cycles (the paper's Fig. 2d), and the temperature transient of the SET pulse that
    moves the conductance most (where Joule heating matters), heated vs isothermal."""
    from memdrift.emulator.filament import trace_pulse

    plt = _pyplot()
    g_us = ds["conductance"].isel(device=device).values * 1e6  # (cycle, pulse)
    n_pulse = g_us.shape[1]
    pulse_no = np.arange(1, n_pulse + 1)
    fig, (ax_g, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for row in g_us:
        ax_g.plot(pulse_no, row, color="tab:blue", alpha=max(0.03, min(0.5, 5.0 / len(g_us))), lw=0.8)
    ax_g.plot(pulse_no, g_us.mean(axis=0), "k--", lw=2, label=f"mean of {len(g_us)} cycles")
    ens = ds["conductance"].values.mean(axis=(0, 1)) * 1e6
    if ds.sizes["device"] > 1:
        ax_g.plot(pulse_no, ens, color="tab:red", lw=1.2, label=f"ensemble mean ({ds.sizes['device']} devices)")
    ax_g.set_xlabel("pulse number")
    ax_g.set_ylabel("conductance (µS)")
    ax_g.set_title(f"{ds.attrs.get('preset', '')} — {ds.attrs.get('scheme', '')}, device {device}")
    ax_g.legend(loc="best", fontsize=8)

    step = np.diff(np.concatenate([g_us[:, -1:], g_us], axis=1), axis=1).mean(axis=0)
    step = np.where(ds["amplitude"].values > 0, step, -np.inf)
    hottest = int(np.argmax(step)) if np.isfinite(step).any() else 0
    gap_before = float(ds["gap"].isel(device=device, cycle=-1, pulse=hottest - 1)) if hottest > 0 \
        else float(params.gap_initial_m)
    amplitude = float(ds["amplitude"][hottest])
    width = float(ds["width"][hottest])
    tr = trace_pulse(params, amplitude, width, gap_before)
    ax_t.plot(tr["time_s"] * 1e9, tr["temperature_k"], color="tab:red", label="heated")
    iso = trace_pulse(params.replace(thermal_resistance_k_per_w=0.0), amplitude, width, gap_before)
    ax_t.plot(iso["time_s"] * 1e9, iso["temperature_k"], color="tab:gray", ls=":", label="isothermal")
    ax_t.set_xlabel("time in pulse (ns)")
    ax_t.set_ylabel("filament temperature (K)")
    ax_t.set_title(f"pulse {hottest + 1}: {amplitude:+.3f} V, {width * 1e9:.0f} ns (nominal device)")
    ax_gap = ax_t.twinx()
    ax_gap.plot(tr["time_s"] * 1e9, tr["gap_m"] * 1e9, color="tab:blue", lw=1, label="gap (heated)")
    ax_gap.plot(iso["time_s"] * 1e9, iso["gap_m"] * 1e9, color="tab:blue", ls=":", lw=1, label="gap (isothermal)")
    ax_gap.set_ylabel("gap (nm)", color="tab:blue")
    lines = ax_t.get_lines() + ax_gap.get_lines()
    ax_t.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)


def plot_write_verify(ds: xr.Dataset, path: str | Path, *, device: int = 0) -> Path:
    """Write-verify (ISPP): one device's reads attempt by attempt towards each target (band shaded),
    and over the ensemble the final conductances per target and the pulses each level took."""
    plt = _pyplot()
    fig, (ax_trace, ax_hist, ax_pulses) = plt.subplots(1, 3, figsize=(14, 4.2))
    tol = float(ds.attrs["scheme.tolerance"])
    targets = ds["target"].values
    offset = 0
    for lev, target in enumerate(targets):
        reads = ds["conductance"].isel(device=device, level=lev).values
        reads = reads[np.isfinite(reads)]
        x = offset + np.arange(reads.size)
        ax_trace.plot(x, reads * 1e6, "o-", ms=3)
        ax_trace.axhspan(target * (1 - tol) * 1e6, target * (1 + tol) * 1e6, xmin=0, xmax=1, alpha=0.12)
        offset += max(reads.size, 1)
    ax_trace.set(xlabel="write pulse (all targets in turn)", ylabel="conductance read (µS)",
                 title=f"device {device}: reads after each pulse")
    for lev, target in enumerate(targets):
        final = ds["conductance_final"].isel(level=lev).values * 1e6
        ax_hist.hist(final, bins=30, alpha=0.6, label=f"{target * 1e6:.0f} µS")
        ax_hist.axvline(target * 1e6, color="k", lw=0.8)
    ax_hist.set(xlabel="final conductance (µS)", ylabel="devices", title=f"final reads (band ±{100 * tol:g} %)")
    ax_hist.legend(fontsize=8)
    pulses = ds["pulses"].values
    ax_pulses.boxplot([pulses[:, lev] for lev in range(len(targets))],
                      tick_labels=[f"{t * 1e6:.0f}" for t in targets])
    conv = 100 * ds["converged"].mean("device").values
    ax_pulses.set(xlabel="target (µS)", ylabel="write pulses")
    ax_pulses.set_title("pulses per level; in band " + ", ".join(f"{c:.0f}" for c in conv) + " %", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
