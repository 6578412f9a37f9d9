"""PNG figures for filament pulse-train datasets (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from memdrift.experiments import figstyle


def plot_pulse_summary(ds: xr.Dataset, params, path: str | Path, *, device: int = 0) -> Path:
    """Conductance vs pulse number for every cycle of one device with the mean over
    cycles (the paper's Fig. 2d), and the temperature transient of the SET pulse that
    moves the conductance most (where Joule heating matters), heated vs isothermal."""
    from memdrift.emulator.filament import trace_pulse

    plt = figstyle.pyplot()
    g = ds["conductance"]
    g_all, g_label, _ = figstyle.scaled(g)  # (device, cycle, pulse) in display units
    g_dev = g_all[device]
    pulse = ds["pulse"]
    n_cycles = g_dev.shape[0]
    fig, (ax_g, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    branch = ds["branch"].values if "branch" in ds.coords and ds["branch"].dims == ("pulse",) else None
    alpha = max(0.03, min(0.5, 5.0 / n_cycles))
    if branch is None:
        for row in g_dev:
            ax_g.plot(pulse.values, row, color="0.4", alpha=alpha, lw=0.8)
    else:
        for name in figstyle.BRANCH_COLOURS:
            on = branch == name
            if on.any():
                for row in g_dev[:, on]:
                    ax_g.plot(pulse.values[on], row, color=figstyle.branch_colour(name), alpha=alpha, lw=0.8)
                ax_g.plot([], [], color=figstyle.branch_colour(name), label=f"{name}, each cycle")
    ax_g.plot(pulse.values, g_dev.mean(axis=0), "k--", lw=2, label=f"mean of {n_cycles} cycles")
    if ds.sizes["device"] > 1:
        ax_g.plot(pulse.values, g_all.mean(axis=(0, 1)), color="0.5", lw=1.2,
                  label=f"ensemble mean ({ds.sizes['device']} devices)")
    ax_g.set_xlabel(figstyle.label(pulse))
    ax_g.set_ylabel(g_label)
    ax_g.set_title(f"{ds.attrs.get('preset', '')} — {ds.attrs.get('scheme', '')}, device {device}")
    ax_g.legend(loc="best", fontsize=8)

    g_us = g.isel(device=device).values
    step = np.diff(np.concatenate([g_us[:, -1:], g_us], axis=1), axis=1).mean(axis=0)
    step = np.where(ds["amplitude"].values > 0, step, -np.inf)
    hottest = int(np.argmax(step)) if np.isfinite(step).any() else 0
    gap_before = float(ds["gap"].isel(device=device, cycle=-1, pulse=hottest - 1)) if hottest > 0 \
        else float(params.gap_initial_m)
    amplitude = float(ds["amplitude"][hottest])
    width = float(ds["width"][hottest])
    tr = trace_pulse(params, amplitude, width, gap_before)
    iso = trace_pulse(params.replace(thermal_resistance_k_per_w=0.0), amplitude, width, gap_before)
    # not branch colours: this panel is one SET pulse, heated against isothermal
    # the transient's own arrays, labelled like the dataset's variables of the same quantities
    time = xr.DataArray(tr["time_s"], name="time_in_pulse", attrs={"long_name": "time in the pulse", "units": "s"})
    t_disp, t_label, t_factor = figstyle.scaled(time)
    gap = ds["gap"]
    gap_exp = figstyle.prefix_exponent("m", tr["gap_m"])
    ax_t.plot(t_disp, tr["temperature_k"], color="black", label="heated")
    ax_t.plot(iso["time_s"] * t_factor, iso["temperature_k"], color="0.55", ls=":", label="isothermal")
    ax_t.set_xlabel(t_label)
    ax_t.set_ylabel(figstyle.compose("filament temperature during the pulse", "K"))
    ax_t.set_title(f"pulse {hottest}: {amplitude:+.3f} V, {width * 1e9:.0f} ns (nominal device)")
    ax_gap = ax_t.twinx()
    g_factor = 10.0 ** -gap_exp
    ax_gap.plot(t_disp, tr["gap_m"] * g_factor, color="tab:purple", lw=1, label="gap (heated)")
    ax_gap.plot(iso["time_s"] * t_factor, iso["gap_m"] * g_factor, color="tab:purple", ls=":", lw=1,
                label="gap (isothermal)")
    ax_gap.set_ylabel(figstyle.compose(figstyle.attributes(gap)[0].replace(" after the pulse", " during the pulse"),
                                       figstyle.display_units("m", gap_exp)), color="tab:purple")
    lines = ax_t.get_lines() + ax_gap.get_lines()
    ax_t.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    return figstyle.save(fig, path)


def plot_write_verify(ds: xr.Dataset, path: str | Path, *, device: int = 0) -> Path:
    """Write-verify (ISPP): one device's reads attempt by attempt towards each target (band shaded),
    and over the ensemble the final conductances per target and the pulses each level took."""
    plt = figstyle.pyplot()
    fig, (ax_trace, ax_hist, ax_pulses) = plt.subplots(1, 3, figsize=(14, 4.2))
    g_label = figstyle.label(ds["conductance"], -6)
    final_label = figstyle.label(ds["conductance_final"], -6)
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
    ax_trace.set(xlabel="write pulse (all targets in turn)", ylabel=g_label,
                 title=f"device {device}: reads after each pulse")
    for lev, target in enumerate(targets):
        final = ds["conductance_final"].isel(level=lev).values * 1e6
        ax_hist.hist(final, bins=30, alpha=0.6, label=f"{target * 1e6:.0f} µS")
        ax_hist.axvline(target * 1e6, color="k", lw=0.8)
    ax_hist.set(xlabel=final_label, ylabel="devices", title=f"final reads (band ±{100 * tol:g} %)")
    ax_hist.legend(fontsize=8)
    pulses = ds["pulses"].values
    ax_pulses.boxplot([pulses[:, lev] for lev in range(len(targets))],
                      tick_labels=[f"{t * 1e6:.0f}" for t in targets])
    conv = 100 * ds["converged"].mean("device").values
    ax_pulses.set(xlabel=figstyle.label(ds["target"], -6), ylabel=figstyle.label(ds["pulses"]))
    ax_pulses.set_title("pulses per level; in band " + ", ".join(f"{c:.0f}" for c in conv) + " %", fontsize=9)
    fig.tight_layout()
    return figstyle.save(fig, path)
