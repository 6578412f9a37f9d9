"""Calibrate the ``hfoxsy-hfs2`` filament preset to the HfOxSy/HfS2 paper (Fig. 2d-f) under the 20+20 ramp.

Targets (``shared/reference/targets.toml`` [filament_hfoxsy_hfs2], tolerances of
issue 4): 16 states a device in the linear range, bin width 81 µS ± 10 %, mean
state σ 23.7 µS ± 25 %, R² ≥ 0.995 on both branches, ≥ 31 differential bins
with bin width > 2σ. The metrics are the extraction's own
(:func:`memdrift.mapping.extract.extract_record`), so what is fitted is what
``memdrift extract`` reports.

Stages (each a scipy.optimize call with a fixed seed, so a run is reproducible;
``--set NAME=VALUE`` overrides parameters of the start before them):

1. ``--global`` (optional): differential evolution over the mean-dynamics
   parameters (``SPACE``) on the noise-free nominal device's steady ramp cycle.
   Its cost is a smooth stand-in for the discrete metrics (``curve_cost``): for
   the best placement of a 16-state window in each branch, the deviation of its
   15 steps from the target bin width, an R² shortfall below 0.997, steps
   outside [0.55, 1.8] × the window mean, headroom steps not clearly outside the
   range (< 0.45 or > 2.1 × the mean step, how ``metrics.linear_range`` ends a
   range), the extraction's own state count, the 0.3-2 mS bounds the tests hold
   and room-temperature retention. Noise-free, because the mean curve does not
   depend on the site population.
1b. ``--local`` (optional, instead of or after ``--global``): adaptive
   Nelder-Mead on the same cost from the start, ``--local-rounds`` restarts of
   ``--local-maxfev`` evaluations; for a start already in the right regime.
1c. ``--curve`` (optional, after or instead of 1/1b): adaptive Nelder-Mead
   (``--curve-rounds`` restarts of ``--curve-maxfev`` evaluations) over the raw
   parameters ``CURVE_NAMES`` (log scale; gap_max is set, not searched), on the
   noise-free nominal steady ramp cycle, with a cost built on the extraction's
   own linear range (``extraction_cost``): per branch, ``metrics.linear_range``
   gives the states, the bin width (to ``--curve-bw``) and the R² (to a
   ``--curve-r2`` margin), with 16 states required and 17 preferred; the cycle
   held inside 0.42 mS and ``--curve-gmax``. Unlike ``curve_cost``, which fits
   one 16-state window and charges headroom steps that are not clearly outside
   it, this charges only what the extraction reports (the longest range), so a
   longer linear range with the right bin width is not penalised: why the
   earlier stages stayed at a potentiation bin width near 70 µS (a 17-state
   range over 0.78-1.9 mS) and this one does not.
2. ``--noise``: the site population M alone, by a secant in log M on a noisy
   ensemble, so that the mean state σ meets 23.7 µS (σ ∝ 1/√M).
3. ``--polish``: Nelder-Mead (``--polish-rounds`` restarts) over
   ``POLISH_NAMES`` on the noisy ensemble, minimising the squared relative
   misses of the extracted metrics (``metric_cost``); with ``--noise`` too, M is
   fitted again afterwards.

Why the model needed a RESET-only term (measured while calibrating): with the
hopping law the same for both polarities (dissolution apart), the step a pulse
makes at a given gap grows with its amplitude and width whichever way it moves
the gap. At the low-conductance end depression arrives with its strongest
pulses and potentiation leaves with its weakest (at the high end the reverse),
so the product of the two branches' first-to-last step ratios equals the product
of those strong/weak step ratios at the two ends — above 3 from the widths
alone for any 16-state window when a step is a rate times the width, while
R² ≥ 0.995 over 16 states allows about 1.6 a branch: both branches cannot have
near-equal steps over 16 states. Global runs with the symmetric law (up to 250
generations, ~32,000 evaluations) reached 16 linear states on potentiation
only. A depression-ward term acting mostly at high conductance lifts the bound;
dissolution cannot be it (it follows the filament temperature, which tracks the
pulse, and room-temperature retention forbids a low dissolution barrier). The
filament model's RESET field enhancement (``reset_field_enhancement_offset``
δ_R, ``reset_field_enhancement_slope`` β_R; ``memdrift/emulator/filament.py``)
is: under RESET bias γ_R(g) = γ0 + δ_R − (β + β_R)(g/1 nm)^α, stronger than SET
at narrow gaps and weaker at wide ones. Its leverage is largest where the hops
are field-driven (tilt ≫ kT), so the preset was moved there (commit a0e4900 and
before: ``--set`` overrides for little heating, γ0 ≈ 58 on a 3 nm layer,
Ea ≈ 1.28 eV so that retention holds, β_R/δ_R near the balance point found by
hand, refined with ``--local``, ``--noise`` and ``--polish``; its potentiation
bin width stayed near 70 µS). The shipped preset is that one refined with two
``--curve`` + ``--noise`` runs (gap_max set to 2.8 nm before the first, then
``--curve-gmax 1.88e-3``): the commands are in its [calibration] table and in
the one of the commit before it (started_from).

``--after NAME=VALUE`` sets parameters after the stages (a hand step, e.g. from
a scan on another seed; recorded in the command and in [calibration]).
Without a stage flag, only the residuals of the current preset are printed.
``--write`` stores the parameters and a [calibration] table (method, command,
seed, ensembles, metrics, residuals, met/not met) in the shipped preset.

    # the recorded run: the command in the preset's [calibration], from the
    # preset at the commit named there (started_from)
    python scripts/calibrate_hfoxsy.py --devices 200 --cycles 100     # check the shipped preset
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import optimize

from memdrift.emulator.engine import run_pulses
from memdrift.emulator.params import (
    BOLTZMANN_EV,
    FilamentParams,
    Preset,
    load_preset,
    save_preset,
)
from memdrift.emulator.pulses import ramp
from memdrift.errors import MemdriftError
from memdrift.mapping import metrics
from memdrift.mapping.extract import extract_record

PRESET = "hfoxsy-hfs2"
PRESET_PATH = Path(__file__).resolve().parents[1] / "memdrift" / "data" / "presets" / f"{PRESET}.toml"

#: Target values (targets.toml) and tolerances (issue 4).
TARGETS = {
    "states": 16,
    "bin_width_potentiation_S": 81.077e-6,
    "bin_width_depression_S": 80.520e-6,
    "bin_width_tolerance": 0.10,
    "state_sigma_mean_S": 23.700e-6,
    "state_sigma_tolerance": 0.25,
    "linear_fit_r2_min": 0.995,
    "differential_bins": 31,
}
BW_S = 81e-6  # the bin width both branches aim at (mean of the paper's two)

# Free mean-dynamics parameters: (name, low, high, searched in log). Four are
# reparametrised so that their bounds mean something whatever the others are:
# ``gamma_drop`` is the fraction of γ0 lost at the largest gap (sets β),
# ``reset_gamma_drop`` the further fraction lost there under RESET bias (sets β_R),
# ``reset_gamma_rise`` the RESET offset δ_R in units of γ0, and ``fmin_frac`` is
# F_min in units of γ0 · 1 V / t_ox.
SPACE = (
    ("activation_energy_ev", 0.7, 1.6, False),
    ("attempt_frequency_hz", 1e9, 1e14, True),    # with Ea: how steeply the hop rate rises with temperature
    ("field_enhancement", 0.3, 100.0, True),
    ("oxide_thickness_m", 3e-9, 20e-9, True),
    ("gamma_drop", 0.0, 1.2, False),
    ("field_enhancement_power", 0.5, 8.0, False),
    ("fmin_frac", 0.0, 0.5, False),
    ("tunnel_current_a", 1e-4, 1.0, True),
    ("tunnel_length_m", 0.1e-9, 0.8e-9, True),
    ("tunnel_voltage_v", 0.01, 0.5, True),
    ("series_resistance_ohm", 10.0, 2000.0, True),
    ("thermal_resistance_k_per_w", 1e5, 1e7, True),
    ("thermal_time_constant_s", 1e-9, 1e-7, True),
    ("gap_max_m", 1.0e-9, 3.0e-9, False),        # gap_min <= 1 nm <= gap_max: the retention tests start at 1 nm
    ("gap_min_m", 0.1e-9, 1.0e-9, False),
    ("dissolution_frequency_hz", 1e8, 1e16, True),
    ("dissolution_energy_ev", 1.0, 2.2, False),
    ("reset_gamma_drop", 0.0, 3.0, False),        # RESET bias: extra fraction of γ0 lost at the largest gap (β_R)
    ("reset_gamma_rise", -0.5, 3.0, False),       # RESET bias: γ0 offset δ_R in units of γ0
)


# --------------------------------------------------------------------------- parameter vector


def decode(x: np.ndarray, base: FilamentParams) -> FilamentParams:
    """Parameters from the search vector (gap_initial follows gap_max: cycling starts fully reset)."""
    v = {name: (math.exp(t) if log else float(t)) for (name, _lo, _hi, log), t in zip(SPACE, x)}
    gamma0, t_ox = v["field_enhancement"], v["oxide_thickness_m"]
    changes = {k: val for k, val in v.items() if k not in ("gamma_drop", "reset_gamma_drop", "reset_gamma_rise",
                                                           "fmin_frac")}
    changes["field_enhancement_slope"] = gamma0 * v["gamma_drop"] / (v["gap_max_m"] / 1e-9) ** v["field_enhancement_power"]
    changes["reset_field_enhancement_slope"] = \
        gamma0 * v["reset_gamma_drop"] / (v["gap_max_m"] / 1e-9) ** v["field_enhancement_power"]
    changes["reset_field_enhancement_offset"] = gamma0 * v["reset_gamma_rise"]
    changes["min_field_v_per_m"] = v["fmin_frac"] * gamma0 / t_ox
    changes["gap_initial_m"] = v["gap_max_m"]
    return base.replace(**changes)


def encode(p: FilamentParams) -> np.ndarray:
    s = p.scalars()
    v = dict(s)
    v["gamma_drop"] = s["field_enhancement_slope"] * (s["gap_max_m"] / 1e-9) ** s["field_enhancement_power"] \
        / s["field_enhancement"]
    v["reset_gamma_drop"] = s["reset_field_enhancement_slope"] * (s["gap_max_m"] / 1e-9) ** s["field_enhancement_power"] \
        / s["field_enhancement"]
    v["reset_gamma_rise"] = s["reset_field_enhancement_offset"] / s["field_enhancement"]
    v["fmin_frac"] = s["min_field_v_per_m"] * s["oxide_thickness_m"] / s["field_enhancement"]
    out = []
    for name, lo, hi, log in SPACE:
        val = min(max(v[name], lo), hi)
        out.append(math.log(val) if log else val)
    return np.array(out)


def bounds() -> list[tuple[float, float]]:
    return [(math.log(lo), math.log(hi)) if log else (lo, hi) for _n, lo, hi, log in SPACE]


# --------------------------------------------------------------------------- costs


def branch_cost(curve: np.ndarray, sign: float) -> float:
    """Smooth stand-in for "16 linear states of bin width BW_S" on one branch's 20 reads (see module doc)."""
    d = sign * np.diff(curve)
    best = math.inf
    x = np.arange(16.0)
    for j in range(curve.size - 15):
        inside = d[j:j + 15]
        outside = np.concatenate([d[:j], d[j + 15:]])
        c = float(np.sum((inside / BW_S - 1.0) ** 2))
        # headroom reads must move the right way (the gradual-ramp test holds the mean monotonic)
        c += 10.0 * float(np.sum(np.maximum(0.08 - outside / BW_S, 0.0) ** 2))
        mean = inside.mean()
        if mean > 0.05 * BW_S:
            r2 = np.corrcoef(x, curve[j:j + 16])[0, 1] ** 2
            rel = inside / mean
            out = outside / mean
            c += (max(0.0, 0.997 - r2) / 0.003) ** 2
            c += 10.0 * float(np.sum(np.maximum(0.55 - rel, 0.0) ** 2 + np.maximum(rel - 1.8, 0.0) ** 2))
            c += 10.0 * float(np.sum(np.minimum(np.maximum(out - 0.45, 0.0), np.maximum(2.1 - out, 0.0)) ** 2))
        best = min(best, c)
    return best


def retention_penalty(p: FilamentParams) -> float:
    """Zero unless a programmed state would be lost at 300 K: dissolution moving G by more than 3 % in
    1e5 s (targets.toml), or symmetric hops more often than once per 1e4 s a site (their random walk
    is the retention noise)."""
    kt = BOLTZMANN_EV * 300.0
    rate = p.dissolution_frequency_hz * math.exp(-p.dissolution_energy_ev / kt)
    relative = p.hop_distance_m * rate * 1e5 / p.tunnel_length_m
    hops = p.attempt_frequency_hz * math.exp(-p.activation_energy_ev / kt) * 1e4
    return 10.0 * (max(0.0, math.log10(max(relative, 1e-300) / 0.03)) ** 2 + max(0.0, math.log10(max(hops, 1e-300))) ** 2)


def linear_states(curve: np.ndarray) -> int:
    """States of one branch as the extraction counts them (0 when it finds no linear range, or when
    the range barely moves: noise-free, a curve creeping by nano-siemens is "linear" too)."""
    try:
        start, stop = metrics.linear_range(curve)
    except MemdriftError:
        return 0
    return stop - start if metrics.bin_width(curve[start:stop]) > 0.3 * BW_S else 0


def curve_cost(mean_cycle: np.ndarray, previous_cycle: np.ndarray | None = None) -> float:
    c = 0.2 * (branch_cost(mean_cycle[:20], 1.0) + branch_cost(mean_cycle[20:], -1.0))
    # the extraction's own count, capped at the target: the record keeps the fewer of the two branches
    short = [max(0, TARGETS["states"] - linear_states(b)) for b in (mean_cycle[:20], mean_cycle[20:])]
    c += 2.0 * sum(short) + 2.0 * max(short)
    if previous_cycle is not None:  # the steady cycle, not a transient
        c += 10.0 * float(np.sum(((mean_cycle - previous_cycle) / BW_S) ** 2))
    c += 100.0 * (max(0.0, 0.4e-3 - mean_cycle.min()) / BW_S) ** 2
    c += 100.0 * (max(0.0, mean_cycle.max() - 1.9e-3) / BW_S) ** 2
    return c


def nominal_cycles(p: FilamentParams, cycles: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Conductance and peak temperature (cycle, pulse) of the noise-free nominal device."""
    ds = run_pulses(p.replace(variation={}), ramp(), devices=1, cycles=cycles, noise=False, preset=PRESET)
    return ds["conductance"].values[0], ds["temperature_peak"].values[0]


def nominal_cost(p: FilamentParams, cycle_cost) -> float:
    """``cycle_cost(last, previous)`` of the noise-free nominal device's steady cycle, plus the
    retention penalty and a ~1600 K ceiling on the filament; 1e4 for a device that misbehaves."""
    g, peak = nominal_cycles(p)
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        return 1e4
    c = cycle_cost(g[-1], g[-2]) + retention_penalty(p)
    c += (max(0.0, peak[-1].max() - 1600.0) / 100.0) ** 2  # keep the filament below ~1600 K
    return c


def global_cost(x: np.ndarray, base: FilamentParams) -> float:
    try:
        p = decode(x, base)
    except (MemdriftError, OverflowError):  # outside a parameter's allowed range
        return 1e4
    return nominal_cost(p, curve_cost)


# --------------------------------------------------------------------------- ensemble metrics


def ensemble(p: FilamentParams, devices: int, cycles: int, seed: int):
    return run_pulses(p, ramp(), devices=devices, cycles=cycles, seed=seed, threads=1, preset=PRESET)


def metrics_of(ds) -> dict:
    """The extraction's metrics (no level fits: they do not enter the targets)."""
    rec = extract_record(ds, levels=())
    br = rec["branches"]
    return {
        "states": rec["states"],
        "states_potentiation": br["potentiation"].get("states"),
        "states_depression": br["depression"].get("states"),
        "bin_width": rec["bin_width"],
        "bin_width_potentiation": br["potentiation"].get("bin_width"),
        "bin_width_depression": br["depression"].get("bin_width"),
        "state_sigma": rec["state_sigma"],
        "differential_bins": rec["differential_bins"],
        "linear_r2_potentiation": rec["linear_r2"]["potentiation"],
        "linear_r2_depression": rec["linear_r2"]["depression"],
        "g_min": rec["g_min"],
        "g_max": rec["g_max"],
    }


def residuals(m: dict) -> dict:
    """Signed residuals against the targets; ``met`` says which targets hold."""
    t = TARGETS
    res, met = {}, {}
    res["states"] = (m["states"] or 0) - t["states"]
    met["states"] = res["states"] >= 0
    for branch, key in (("potentiation", "bin_width_potentiation_S"), ("depression", "bin_width_depression_S")):
        v = m[f"bin_width_{branch}"]
        res[f"bin_width_{branch}"] = None if v is None else v / t[key] - 1.0
        met[f"bin_width_{branch}"] = v is not None and abs(v / t[key] - 1.0) <= t["bin_width_tolerance"]
    s = m["state_sigma"]
    res["state_sigma"] = None if s is None else s / t["state_sigma_mean_S"] - 1.0
    met["state_sigma"] = s is not None and abs(res["state_sigma"]) <= t["state_sigma_tolerance"]
    for branch in ("potentiation", "depression"):
        r2 = m[f"linear_r2_{branch}"]
        res[f"linear_r2_{branch}"] = None if r2 is None else r2 - t["linear_fit_r2_min"]
        met[f"linear_r2_{branch}"] = r2 is not None and r2 >= t["linear_fit_r2_min"]
    res["differential_bins"] = (m["differential_bins"] or 0) - t["differential_bins"]
    met["differential_bins"] = res["differential_bins"] >= 0
    return {"residuals": res, "met": met}


def metric_cost(m: dict) -> float:
    """Squared relative misses of the extracted metrics against the targets (the polish objective).

    Every term is the extraction's own number: states short of 16 on each branch
    (the record keeps the fewer), the two bin widths, the mean state σ, the R² of
    each branch below 0.996 (a margin over the 0.995 target), and the span and
    bounds (0.4-1.9 mS) of the mean cycle; a branch without a linear range costs as much as one
    state-less branch.
    """
    t = TARGETS
    c = 0.0
    for branch, key in (("potentiation", "bin_width_potentiation_S"), ("depression", "bin_width_depression_S")):
        states = m[f"states_{branch}"] or 0
        c += 4.0 * (max(0, t["states"] - states) / t["states"]) ** 2
        bw = m[f"bin_width_{branch}"]
        c += 1.0 if bw is None else (bw / t[key] - 1.0) ** 2
    s = m["state_sigma"]
    c += 1.0 if s is None else (s / t["state_sigma_mean_S"] - 1.0) ** 2
    # R² must hold with a margin: the check ensemble is larger than the fit ensemble
    for branch in ("potentiation", "depression"):
        r2 = m[f"linear_r2_{branch}"]
        c += 1.0 if r2 is None else (max(0.0, 0.996 - r2) / 0.002) ** 2
    # The switching window must not shrink to buy a small bin width: 16 states of 81 µS span
    # 1.2 mS, and tests/test_filament.py holds the ramp's span above 0.5 mS.
    c += 10.0 * (max(0.0, 0.6e-3 - (m["g_max"] - m["g_min"])) / 0.1e-3) ** 2
    # and stay inside the 0.3-2 mS the tests hold (the global stage's bounds)
    c += 10.0 * (max(0.0, 0.4e-3 - m["g_min"]) / 0.1e-3) ** 2 + 10.0 * (max(0.0, m["g_max"] - 1.9e-3) / 0.1e-3) ** 2
    return c


def polish_cost(x: np.ndarray, names: tuple[str, ...], base: FilamentParams, devices: int, cycles: int,
                seed: int) -> float:
    try:
        p = base.replace(**{n: float(math.exp(v)) for n, v in zip(names, x)})
    except (MemdriftError, OverflowError):  # outside a parameter's allowed range
        return 1e4
    ds = ensemble(p, devices, cycles, seed)
    if not np.all(np.isfinite(ds["conductance"].values)):
        return 1e4
    return metric_cost(metrics_of(ds)) + retention_penalty(p)


# --------------------------------------------------------------------------- stages


def stage_global(base: FilamentParams, seed: int, maxiter: int, popsize: int) -> FilamentParams:
    x0 = encode(base)
    print(f"global: start cost {global_cost(x0, base):.4g}", flush=True)
    t0 = time.perf_counter()

    def report(xk, convergence):
        report.n += 1
        if report.n % 10 == 0:
            print(f"  generation {report.n}: cost {global_cost(xk, base):.4g} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    report.n = 0
    res = optimize.differential_evolution(global_cost, bounds(), args=(base,), seed=seed, popsize=popsize,
                                          maxiter=maxiter, tol=1e-9, mutation=(0.5, 1.0), recombination=0.9,
                                          init="sobol", x0=x0, polish=False, callback=report)
    print(f"global: cost {res.fun:.4g} after {res.nit} generations, {res.nfev} evaluations")
    return decode(res.x, base)


def stage_local(base: FilamentParams, rounds: int, maxfev: int) -> FilamentParams:
    """Nelder-Mead (adaptive) on the global stage's cost, inside its bounds, from ``base``.

    For a start that is already in the right regime (e.g. set with ``--set``), this
    converges in a few thousand evaluations where differential evolution over the
    whole box needs tens of thousands; each round restarts from a fresh simplex.
    """
    lo = np.array([b[0] for b in bounds()])
    hi = np.array([b[1] for b in bounds()])

    def cost(x):
        inside = np.clip(x, lo, hi)
        return global_cost(inside, base) + 1e3 * float(np.sum((x - inside) ** 2))

    x = encode(base)
    print(f"local: start cost {cost(x):.4g}", flush=True)
    for r in range(rounds):
        res = optimize.minimize(cost, x, method="Nelder-Mead",
                                options={"maxfev": maxfev, "xatol": 1e-4, "fatol": 1e-4, "adaptive": True,
                                         "initial_simplex": x + np.vstack([np.zeros(x.size), 0.05 * np.diag(hi - lo)])})
        x = np.clip(res.x, lo, hi)
        print(f"local: round {r}: cost {res.fun:.4g} after {res.nfev} evaluations", flush=True)
    return decode(x, base)


#: Raw parameters of the --curve stage (searched in log). gap_max is not among them (it only clips): set it
#: with --set, gap_initial with it (cycling starts fully reset), before the stage.
CURVE_NAMES = ("field_enhancement", "field_enhancement_slope", "field_enhancement_power", "tunnel_current_a",
               "tunnel_length_m", "tunnel_voltage_v", "series_resistance_ohm", "thermal_resistance_k_per_w",
               "thermal_time_constant_s", "reset_field_enhancement_slope", "reset_field_enhancement_offset")


def extracted_branch(curve: np.ndarray) -> tuple[int, float, float]:
    """(states, bin width, R²) of one branch's linear range as the extraction finds it; (0, 0, 0) without one."""
    try:
        start, stop = metrics.linear_range(curve)
    except MemdriftError:
        return 0, 0.0, 0.0
    window = curve[start:stop]
    r2 = float(np.corrcoef(np.arange(window.size), window)[0, 1] ** 2)
    return stop - start, metrics.bin_width(window), r2


def extraction_cost(mean_cycle: np.ndarray, previous_cycle: np.ndarray, bw: float, r2_margin: float,
                    g_high: float) -> float:
    """Cost of the --curve stage on a (noise-free) mean cycle: the extraction's own numbers per branch
    (states short of 16 and of 17, bin width off ``bw`` in units of 4 %, R² below ``r2_margin``), a
    little of ``branch_cost`` to lead the search where the range is ill-defined, the 0.42 mS-``g_high``
    bounds and the steady cycle."""
    c = 0.0
    for curve in (mean_cycle[:20], mean_cycle[20:]):
        n, width, r2 = extracted_branch(curve)
        c += 3.0 * max(0, TARGETS["states"] - n) ** 2 + 1.0 * max(0, TARGETS["states"] + 1 - n)
        c += ((width / bw - 1.0) / 0.04) ** 2
        c += (max(0.0, r2_margin - r2) / 0.001) ** 2
    c += 0.05 * (branch_cost(mean_cycle[:20], 1.0) + branch_cost(mean_cycle[20:], -1.0))
    c += 100.0 * (max(0.0, 0.42e-3 - mean_cycle.min()) / 1e-5) ** 2
    c += 100.0 * (max(0.0, mean_cycle.max() - g_high) / 1e-5) ** 2
    c += 10.0 * float(np.sum(((mean_cycle - previous_cycle) / BW_S) ** 2))
    return c


def _curve_params(x: np.ndarray, base: FilamentParams) -> FilamentParams:
    return base.replace(**{n: float(math.exp(v)) for n, v in zip(CURVE_NAMES, x)})


def curve_fit_cost(x: np.ndarray, base: FilamentParams, bw: float, r2_margin: float, g_high: float) -> float:
    try:
        p = _curve_params(x, base)
    except (MemdriftError, OverflowError):  # outside a parameter's allowed range
        return 1e4
    if not 1e-9 <= p.gap_max_m <= 3e-9:  # the retention tests start at 1 nm; a gap wider than ~t_ox is not one
        return 1e4
    return nominal_cost(p, lambda last, previous: extraction_cost(last, previous, bw, r2_margin, g_high))


def stage_curve(base: FilamentParams, rounds: int, maxfev: int, bw: float, r2_margin: float,
                g_high: float) -> FilamentParams:
    """Adaptive Nelder-Mead on ``extraction_cost`` from ``base`` (each round a fresh simplex, 5 % in log)."""
    x = np.array([math.log(getattr(base, n)) for n in CURVE_NAMES])
    args = (base, bw, r2_margin, g_high)
    print(f"curve: start cost {curve_fit_cost(x, *args):.4g}", flush=True)
    for r in range(rounds):
        res = optimize.minimize(curve_fit_cost, x, args=args, method="Nelder-Mead",
                                options={"maxfev": maxfev, "xatol": 1e-5, "fatol": 1e-5, "adaptive": True,
                                         "initial_simplex": x + np.vstack([np.zeros(x.size), 0.05 * np.eye(x.size)])})
        x = res.x
        print(f"curve: round {r}: cost {res.fun:.4g} after {res.nfev} evaluations", flush=True)
    return _curve_params(x, base)


def parse_set(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE")
        out[name.strip()] = float(value)
    return out


def stage_noise(base: FilamentParams, devices: int, cycles: int, seed: int) -> FilamentParams:
    """Secant in log M on log σ: σ ∝ M^-1/2 is the starting slope."""
    target = TARGETS["state_sigma_mean_S"]

    def log_sigma(log_m):
        ds = ensemble(base.replace(site_population=float(math.exp(log_m))), devices, cycles, seed)
        s = metrics_of(ds)["state_sigma"]
        if s is None:  # no linear range: the cycle-to-cycle σ of every read instead
            s = float(np.mean(np.std(ds["conductance"].values[:, 1:], axis=1, ddof=1)))
        return math.log(s)

    x0 = math.log(base.site_population)
    f0 = log_sigma(x0) - math.log(target)
    best = (abs(f0), x0)
    x1 = x0 + 2.0 * f0  # the 1/√M law
    for _ in range(6):
        x1 = min(max(x1, math.log(10.0)), math.log(1e9))
        f1 = log_sigma(x1) - math.log(target)
        print(f"noise: M = {math.exp(x1):.4g}: σ/target - 1 = {math.exp(f1) - 1:+.3f}", flush=True)
        best = min(best, (abs(f1), x1))
        if abs(f1) < 0.01 or f1 == f0:
            break
        # σ also moves when the linear range picks other states, so a secant step on a small
        # ensemble can be wild: at most a factor e in M, and the best M seen is kept
        step = max(-1.0, min(1.0, -f1 * (x1 - x0) / (f1 - f0)))
        x0, f0, x1 = x1, f1, x1 + step
    return base.replace(site_population=float(round(math.exp(best[1]), -1)))


POLISH_NAMES = ("activation_energy_ev", "field_enhancement", "field_enhancement_slope", "tunnel_voltage_v",
                "series_resistance_ohm", "thermal_resistance_k_per_w", "tunnel_current_a", "site_population",
                "reset_field_enhancement_slope", "reset_field_enhancement_offset")


def stage_polish(base: FilamentParams, devices: int, cycles: int, seed: int, maxiter: int) -> FilamentParams:
    names = tuple(n for n in POLISH_NAMES if getattr(base, n) > 0)  # searched in log: the positive ones
    x0 = np.array([math.log(getattr(base, n)) for n in names])
    args = (names, base, devices, cycles, seed)
    print(f"polish: start cost {polish_cost(x0, *args):.4g}", flush=True)
    res = optimize.minimize(polish_cost, x0, args=args, method="Nelder-Mead",
                            options={"maxiter": maxiter, "xatol": 1e-3, "fatol": 1e-3,
                                     "initial_simplex": x0 + np.vstack([np.zeros(x0.size), 0.05 * np.eye(x0.size)])})
    print(f"polish: cost {res.fun:.4g} after {res.nit} iterations")
    return base.replace(**{n: float(math.exp(v)) for n, v in zip(names, res.x)})


def rounded(p: FilamentParams, digits: int = 4) -> FilamentParams:
    """Parameters to ``digits`` significant figures, so the preset reads cleanly (and round-trips)."""
    def r(v):
        return float(f"{v:.{digits}g}")
    return p.replace(**{k: r(v) for k, v in p.scalars().items()})


def _head() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=PRESET_PATH.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--global", dest="do_global", action="store_true", help="differential evolution (stage 1)")
    ap.add_argument("--local", action="store_true",
                    help="Nelder-Mead on the global cost from the start (stage 1 alternative)")
    ap.add_argument("--local-rounds", type=int, default=3)
    ap.add_argument("--local-maxfev", type=int, default=2500)
    ap.add_argument("--curve", action="store_true",
                    help="Nelder-Mead on the extraction's own numbers for the noise-free mean cycle (stage 1c)")
    ap.add_argument("--curve-rounds", type=int, default=3)
    ap.add_argument("--curve-maxfev", type=int, default=1500)
    ap.add_argument("--curve-bw", type=float, default=80e-6, help="bin width the --curve stage aims at (S)")
    ap.add_argument("--curve-r2", type=float, default=0.9965, help="R² margin of the --curve stage")
    ap.add_argument("--curve-gmax", type=float, default=1.92e-3, help="upper bound of the --curve stage's cycle (S)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a parameter of the start before the stages (repeatable; recorded)")
    ap.add_argument("--after", action="append", default=[], metavar="NAME=VALUE",
                    help="set a parameter after the stages, before the check (a hand step; recorded)")
    ap.add_argument("--noise", action="store_true", help="site population for the target σ (stage 2)")
    ap.add_argument("--polish", action="store_true", help="Nelder-Mead on the noisy ensemble (stage 3)")
    ap.add_argument("--polish-rounds", type=int, default=1, help="Nelder-Mead restarts")
    ap.add_argument("--seed", type=int, default=0, help="optimizer and emulation seed")
    ap.add_argument("--maxiter", type=int, default=300, help="generations (global) / iterations (polish)")
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--fit-devices", type=int, default=40)
    ap.add_argument("--fit-cycles", type=int, default=60)
    ap.add_argument("--devices", type=int, default=200, help="ensemble of the final check")
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--site-population", type=float, default=None,
                    help="set M after the fit (overrides the noise stage; recorded)")
    ap.add_argument("--start", default=PRESET, help="preset (name or .toml) to start from; default the shipped one")
    ap.add_argument("--write", action="store_true", help=f"store the result in {PRESET_PATH.name}")
    ap.add_argument("--note", default=None,
                    help="free text stored as [calibration] note with --write (what was done and why; not part of "
                         "the recorded command)")
    args = ap.parse_args(argv)

    preset = load_preset(args.start)
    params = preset.params.replace(**parse_set(args.set))
    if args.do_global:
        params = stage_global(params, args.seed, args.maxiter, args.popsize)
    if args.local:
        params = stage_local(params, args.local_rounds, args.local_maxfev)
    if args.curve:
        params = stage_curve(params, args.curve_rounds, args.curve_maxfev, args.curve_bw, args.curve_r2,
                             args.curve_gmax)
    if args.noise:
        params = stage_noise(rounded(params), args.fit_devices, args.fit_cycles, args.seed)
    for _ in range(args.polish_rounds if args.polish else 0):
        # a restart gives Nelder-Mead a fresh simplex: its own one collapses on the metrics' steps
        params = stage_polish(params, args.fit_devices, args.fit_cycles, args.seed, args.maxiter)
    if args.noise and args.polish:
        # the polish trades σ against the bin widths through the dynamics; M sets σ alone, so it is
        # re-fitted last (it barely moves the mean curve)
        params = stage_noise(rounded(params), args.fit_devices, args.fit_cycles, args.seed)
    params = rounded(params).replace(**parse_set(args.after))
    fitted_site_population = params.site_population
    if args.site_population is not None:
        params = params.replace(site_population=args.site_population)

    print(f"check: {args.devices} devices x {args.cycles} cycles, seed {args.seed}", flush=True)
    m = metrics_of(ensemble(params, args.devices, args.cycles, args.seed))
    r = residuals(m)
    for key, value in m.items():
        print(f"  {key:26s} {value}")
    for key, value in r["residuals"].items():
        print(f"  residual {key:24s} {value if value is None else round(value, 4)}  "
              f"{'met' if r['met'][key] else 'NOT met'}")
    for name, value in params.scalars().items():
        old = preset.params.scalars()[name]
        if value != old:
            print(f"  {name}: {old:g} -> {value:g}")

    if args.write:
        stages = [s for s, on in (("global", args.do_global), ("local", args.local), ("curve", args.curve),
                                  ("noise", args.noise),
                                  ("polish", args.polish)) if on]
        given = list(argv if argv is not None else sys.argv[1:])
        if "--note" in given:  # the note is stored on its own, not as part of the command
            i = given.index("--note")
            del given[i:i + 2]
        given = [a for a in given if not a.startswith("--note=")]
        command = "python scripts/calibrate_hfoxsy.py " + " ".join(given)
        calibration = {
            "status": "calibrated to reference/targets.toml [filament_hfoxsy_hfs2] (issue 4); see met/not_met",
            "method": {"global": "scipy.optimize.differential_evolution on the noise-free nominal steady ramp cycle "
                                 "(smooth stand-in for states/bin width/R2, see the script)",
                       "local": "scipy.optimize.minimize(Nelder-Mead, adaptive) on the global stage's cost",
                       "curve": "scipy.optimize.minimize(Nelder-Mead, adaptive) on the extraction's own metrics for the "
                                "noise-free nominal steady ramp cycle",
                       "noise": "secant in log(site_population) on a noisy ensemble for the mean state sigma",
                       "polish": "scipy.optimize.minimize(Nelder-Mead) on the noisy ensemble"}.get(stages[-1], "")
                      if stages else "check only",
            "stages": stages,
            "script": "scripts/calibrate_hfoxsy.py",
            "started_from": f"preset at commit {_head()}" if args.start == PRESET else f"{args.start} (--start)",
            "command": command.strip(),
            "seed": args.seed,
            **({"set_after_stages": parse_set(args.after)} if args.after else {}),
            **({"site_population_fitted": fitted_site_population} if args.site_population is not None else {}),
            **({"fit_ensemble": f"{args.fit_devices} devices x {args.fit_cycles} cycles"}
               if args.noise or args.polish else {}),  # the noisy stages' ensemble; none without them
            "check_ensemble": f"{args.devices} devices x {args.cycles} cycles",
            "metrics": {k: v for k, v in m.items() if v is not None},
            "residuals": {k: v for k, v in r["residuals"].items() if v is not None},
            "met": sorted(k for k, ok in r["met"].items() if ok),
            "not_met": sorted(k for k, ok in r["met"].items() if not ok),
            **({"note": args.note} if args.note else {}),
        }
        save_preset(Preset(PRESET, params, preset.description, preset.scheme, calibration), PRESET_PATH)
        print(f"wrote {PRESET_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
