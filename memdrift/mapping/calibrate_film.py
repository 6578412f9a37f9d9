"""Calibrate the four-terminal film to the TiO2−x paper's figures, on its own protocol.

``memdrift calibrate --targets bulk_tio2x_four_terminal`` (or :func:`calibrate_film`)
fits a ``bulk4t`` preset to what the paper reports for one film: HRS 880 Ω and LRS
740 Ω after the ±6 V, 100 s initialisation, then the feedforward-pulse (FFP)
figures of that film: events per branch (494 / 579), mean write power per branch
(240.7 / 114.6 mW) and the levels prone to be skipped at n = 512 (117 / 8) and
n = 32 (none). Stages:

1. ``init``: scipy least squares on the noise-free nominal film (deterministic hop
   counts, no device-to-device draw). Residuals ln(R / target) / ln(1 + 2 %) of
   the HRS and LRS read after the second ±6 V, 100 s loop on a fresh film (the
   first loop brings it to its cycled state); free are the conductivity scale
   (``conductivity_base_s_per_m`` with ``conductivity_vacancy_s_per_m`` at its
   start ratio) and the attempt frequency ν0 at the start's barrier E_a. A
   candidate whose initialisation is flagged (thermal ceiling, step budget) is
   charged, never accepted. Standard errors come from the Jacobian at the
   solution with the residuals in units of the 2 % tolerance: a parameter's
   error is the change that moves the figures across their tolerance.
2. ``check``: the paper's protocol, one film per seed (``ffp-segmentation``,
   Poisson hops, its own ΔR map, then FFP HRS → LRS → HRS): every figure judged
   against its band (events ± 50 / ± 60, power ± 35 %, skips within a factor 2
   of 117 and at most 16, none at n = 32, the skips at the high-R end in
   potentiation and the low-R end in depression).
3. ``mechanism``: the same films with Joule heating off, driven by the table
   mapped on the heated film: the paper's attribution of the skips to heating
   holds if at least 80 % of the potentiation skips go, both films crossing
   the window (a cold film that cannot switch skips nothing, and says only
   that heating drives the switching).
4. ``grid``: the check's first seed on a grid twice as fine in each direction:
   events within 5 %, skips within 20 % (the convergence criteria).

Nothing here changes a parameter the stages do not name: the heat path, contacts,
E_a and the grid are the start preset's, so the same calibration can be run on
each physical variant and the residuals compared (docs/calibration.md, "The
film").
"""

from __future__ import annotations

import dataclasses
import math
import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Sequence

import numpy as np

from memdrift.errors import MemdriftError

SECTION = "bulk_tio2x_four_terminal"
STAGES = ("init", "check", "mechanism", "grid")
#: the fitted parameters of the init stage, searched in log space
INIT_FREE = ("conductivity_base_s_per_m", "attempt_frequency_hz")
#: each init parameter stays within [start / span, start * span]
INIT_SPAN = 100.0
#: the initialisation: loops of +6 V then -6 V, each 100 s, on a fresh film; the last loop is read
INIT_LOOPS = 2
INIT_WIDTH_S = 100.0
#: the first pulse of the FFP's automatic initialisations in a calibrated preset (s): the shortest the
#: pulse sizing of ``Bulk4TDevices.initialise`` allows
INIT_FIRST_PULSE_S = 0.05
#: each initialisation pulse at most twice the one before: the stack candidate, slow for its first -6 V
#: pulses after the +6 V reset, otherwise overshoots HRS by 67 ohm (947 instead of 880 ohm, seed 0)
INIT_STEP_GROWTH = 2.0


@dataclass(frozen=True)
class FilmTargets:
    """The paper's figures for one film and the bands a calibrated film must meet."""

    hrs_ohm: float = 880.0
    lrs_ohm: float = 740.0
    resistance_tolerance: float = 0.02
    init_amplitude_v: float = 6.0
    events_potentiation: float = 494.0
    events_depression: float = 579.0
    events_band_potentiation: float = 50.0
    events_band_depression: float = 60.0
    power_potentiation_w: float = 0.2407
    power_depression_w: float = 0.1146
    power_tolerance: float = 0.35
    skipped_n512_potentiation: int = 117
    skipped_n512_depression: int = 8
    skipped_n512_depression_max: int = 16
    #: the potentiation skips may be at most this factor off the paper's
    skip_factor: float = 2.0
    #: share of the potentiation skips heating-off must remove
    mechanism_share: float = 0.8
    grid_events_tolerance: float = 0.05
    grid_skips_tolerance: float = 0.20

    @classmethod
    def from_reference(cls, section: str = SECTION) -> "FilmTargets":
        if section != SECTION:
            raise MemdriftError(f"targets = {section!r} is unknown for the film; allowed: {SECTION}")
        t = tomllib.loads(resources.files("memdrift.data").joinpath("reference", "targets.toml").read_text())[section]
        skips = t["skipped_levels_at_cpd80"]["n512"]
        return cls(hrs_ohm=float(t["hrs_ohm"]), lrs_ohm=float(t["lrs_ohm"]),
                   init_amplitude_v=float(t["initialisation_amplitude_V"]),
                   events_potentiation=float(t["ffp_events_potentiation"][0]),
                   events_depression=float(t["ffp_events_depression"][0]),
                   power_potentiation_w=float(t["ffp_power_potentiation_W"]),
                   power_depression_w=float(t["ffp_power_depression_W"]),
                   skipped_n512_potentiation=int(skips[0]), skipped_n512_depression=int(skips[1]))


# --------------------------------------------------------------------------- init stage


def nominal(params: Any) -> Any:
    """The film without device-to-device variation (the nominal device of a fit)."""
    return params.replace(variation={})


def init_figures(params: Any, targets: FilmTargets = FilmTargets()) -> dict[str, Any]:
    """HRS and LRS of the nominal film after ``INIT_LOOPS`` loops of ±6 V, 100 s (deterministic)."""
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices

    dev = Bulk4TDevices(nominal(params), 1, deterministic=True)
    flag = 0
    peak = 0.0
    steps = 0
    lrs = hrs = math.nan
    for _ in range(INIT_LOOPS):
        for sign in (+1.0, -1.0):
            rec = dev.write(sign * targets.init_amplitude_v, INIT_WIDTH_S)
            flag |= int(rec.flag[0])
            peak = max(peak, float(rec.temperature_peak[0]))
            steps = max(steps, int(rec.steps[0]))
            if sign > 0:
                lrs = float(dev.read()[0])
            else:
                hrs = float(dev.read()[0])
    return {"hrs_ohm": hrs, "lrs_ohm": lrs, "temperature_peak_k": peak, "flag": flag, "steps_max": steps}


def _init_params(x: np.ndarray, start: Any) -> Any:
    ratio = start.conductivity_vacancy_s_per_m / start.conductivity_base_s_per_m
    base = float(np.exp(x[0]))
    return start.replace(conductivity_base_s_per_m=base, conductivity_vacancy_s_per_m=base * ratio,
                         attempt_frequency_hz=float(np.exp(x[1])))


def _init_residuals(fig: dict[str, Any], targets: FilmTargets) -> np.ndarray:
    scale = math.log1p(targets.resistance_tolerance)
    if fig["flag"] or not (np.isfinite(fig["hrs_ohm"]) and np.isfinite(fig["lrs_ohm"])):
        return np.full(2, 1e3)
    return np.array([math.log(fig["hrs_ohm"] / targets.hrs_ohm),
                     math.log(fig["lrs_ohm"] / targets.lrs_ohm)]) / scale


def stage_init(start: Any, targets: FilmTargets = FilmTargets(), *, max_evaluations: int = 60,
               report: Callable[[str], None] = print) -> tuple[Any, dict[str, Any]]:
    """Least squares of the initialisation's HRS and LRS in the conductivity scale and ν0 (module docstring)."""
    from scipy.optimize import least_squares

    t0 = time.process_time()
    x0 = np.log([start.conductivity_base_s_per_m, start.attempt_frequency_hz])
    lo, hi = x0 - math.log(INIT_SPAN), x0 + math.log(INIT_SPAN)
    hi[1] = min(hi[1], math.log(1e16))
    calls = [0]

    def fun(x: np.ndarray) -> np.ndarray:
        calls[0] += 1
        fig = init_figures(_init_params(x, start), targets)
        res = _init_residuals(fig, targets)
        report(f"init {calls[0]}: sigma_base {math.exp(x[0]):.5g} S/m, nu0 {math.exp(x[1]):.5g} Hz -> HRS "
               f"{fig['hrs_ohm']:.2f}, LRS {fig['lrs_ohm']:.2f} ohm, peak {fig['temperature_peak_k']:.0f} K, "
               f"flag {fig['flag']}")
        return res

    sol = least_squares(fun, np.clip(x0, lo, hi), bounds=(lo, hi), diff_step=1e-3, x_scale=1.0,
                        max_nfev=int(max_evaluations), xtol=1e-6, ftol=1e-8)
    p = _init_params(sol.x, start)
    fig = init_figures(p, targets)
    with np.errstate(all="ignore"):
        try:
            cov = np.linalg.inv(sol.jac.T @ sol.jac)
            errors = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        except np.linalg.LinAlgError:
            errors = np.full(2, math.inf)
    info = {
        "stage": "init",
        "method": "scipy.optimize.least_squares (trf) on the deterministic nominal film, residuals "
                  "ln(R / target) in units of ln(1.02)",
        "free": list(INIT_FREE),
        "tied": "conductivity_vacancy_s_per_m = conductivity_base_s_per_m x its start ratio",
        "evaluations": int(calls[0]),
        "cpu_s": round(time.process_time() - t0, 1),
        "hrs_ohm": fig["hrs_ohm"], "lrs_ohm": fig["lrs_ohm"],
        "residual_relative": [fig["hrs_ohm"] / targets.hrs_ohm - 1.0, fig["lrs_ohm"] / targets.lrs_ohm - 1.0],
        "temperature_peak_k": fig["temperature_peak_k"], "flag": fig["flag"], "steps_max": fig["steps_max"],
        # d ln(parameter) that moves the figures across their 2 % tolerance
        "relative_uncertainty": {n: float(e) for n, e in zip(INIT_FREE, errors)},
        "met": bool(np.all(np.abs(_init_residuals(fig, targets)) <= 1.0)),
    }
    return p, info


# --------------------------------------------------------------------------- FFP figures


def _preset_with(preset: Any, params: Any) -> Any:
    return dataclasses.replace(preset, params=params)


def _skip_halves(ds: Any, n: int) -> list[float]:
    """Share of the skipped levels of each branch in its first half (the end the branch starts from)."""
    out = []
    for c in range(2):
        mask = np.asarray(ds[f"skipped_level_n{n}"].values[c], bool)
        k = int(mask.sum())
        out.append(float(mask[: mask.size // 2].sum() / k) if k else math.nan)
    return out


def ffp_figures(preset: Any, *, seed: int = 0, **options: Any) -> dict[str, Any]:
    """The paper's FFP figures of one film (``ffp-segmentation``, Poisson hops, its own map)."""
    from memdrift.emulator.bulk4t_schemes import simulate_scheme

    t0 = time.process_time()
    ds = simulate_scheme(preset, "ffp-segmentation", seed=seed, **options)
    energy = ds["energy"].values[0]
    width = ds["width"].values
    ran = [np.isfinite(energy[c]).any() for c in range(2)]   # a branch that took no event has no figures
    power = [float(np.nanmean(energy[c] / width)) if ran[c] else math.nan for c in range(2)]
    peak = [float(np.nanmax(ds["temperature_peak"].values[0, c])) if ran[c] else math.nan for c in range(2)]
    flags = np.nan_to_num(ds["pulse_flag"].values[0]).astype(int)
    return {
        "seed": int(seed),
        "events": [int(e) for e in ds["events"].values[0]],
        "power_w": power,
        "temperature_peak_k": peak,
        "flagged_events": int(np.count_nonzero(flags)),
        "skipped_n32": [int(s) for s in ds["skipped_n32"].values],
        "skipped_n128": [int(s) for s in ds["skipped_n128"].values],
        "skipped_n512": [int(s) for s in ds["skipped_n512"].values],
        # potentiation starts at HRS, depression at LRS: the first half is the high-R end of potentiation
        # and the low-R end of depression, where the paper places the skips
        "skipped_n512_share_at_start": _skip_halves(ds, 512),
        # a branch that used every event it was allowed never crossed the window: its skips are not a figure
        "crossed": [bool(e < int(ds.attrs["scheme.max_events"])) for e in ds["events"].values[0]],
        "vw_v": [float(np.nanmin(ds["vw_table"].values)), float(np.nanmax(ds["vw_table"].values))],
        "cpu_s": round(time.process_time() - t0, 1),
    }


def judge_ffp(fig: dict[str, Any], targets: FilmTargets = FilmTargets()) -> dict[str, bool]:
    """Each FFP figure against its band (module docstring)."""
    ev, pw, sk = fig["events"], fig["power_w"], fig["skipped_n512"]
    share = fig["skipped_n512_share_at_start"]
    return {
        "events_potentiation": abs(ev[0] - targets.events_potentiation) <= targets.events_band_potentiation,
        "events_depression": abs(ev[1] - targets.events_depression) <= targets.events_band_depression,
        "power_potentiation": abs(pw[0] / targets.power_potentiation_w - 1.0) <= targets.power_tolerance,
        "power_depression": abs(pw[1] / targets.power_depression_w - 1.0) <= targets.power_tolerance,
        "skipped_n512_potentiation": (targets.skipped_n512_potentiation / targets.skip_factor <= sk[0]
                                      <= targets.skipped_n512_potentiation * targets.skip_factor),
        "skipped_n512_depression": sk[1] <= targets.skipped_n512_depression_max,
        "skipped_n32_none": fig["skipped_n32"] == [0, 0],
        "skips_at_the_paper_ends": bool(sk[0] > 0 and share[0] > 0.5 and (sk[1] == 0 or share[1] > 0.5)),
        "unflagged": fig["flagged_events"] == 0,
    }


def stage_mechanism(preset: Any, heated: dict[str, Any], targets: FilmTargets = FilmTargets()) -> dict[str, Any]:
    """The heated film's map replayed with Joule heating off: the share of potentiation skips that go."""
    cold = ffp_figures(preset, seed=heated["seed"], joule_heating=0.0, map_joule_heating=1.0)
    before = heated["skipped_n512"][0]
    lost = (before - cold["skipped_n512"][0]) / before if before else math.nan
    # a cold film that never crosses the window skips nothing because it hardly moves: that says heating
    # drives the switching, not that it causes the skips, so the comparison needs both films to cross
    compared = bool(heated["crossed"][0] and cold["crossed"][0])
    return {"stage": "mechanism", "heated": heated, "heating_off": cold, "potentiation_skips_lost": lost,
            "compared": compared, "met": bool(compared and before > 0 and lost >= targets.mechanism_share)}


def stage_grid(preset: Any, coarse: dict[str, Any], targets: FilmTargets = FilmTargets()) -> dict[str, Any]:
    """The first check film on a grid twice as fine: events and skips against the convergence criteria."""
    p = preset.params
    fine = ffp_figures(preset, seed=coarse["seed"], grid=(int(2 * p.grid_x), int(2 * p.grid_y)))
    ev = [abs(f / c - 1.0) if c else math.inf for f, c in zip(fine["events"], coarse["events"])]
    sk = [abs(f - c) / max(c, 1) for f, c in zip(fine["skipped_n512"], coarse["skipped_n512"])]
    return {"stage": "grid", "grid": [int(2 * p.grid_x), int(2 * p.grid_y)], "coarse": coarse, "fine": fine,
            "events_change": ev, "skips_change": sk,
            "met": bool(max(ev) < targets.grid_events_tolerance and max(sk) < targets.grid_skips_tolerance)}


# --------------------------------------------------------------------------- entry point


@dataclass
class FilmCalibration:
    """What :func:`calibrate_film` found: the preset and its [calibration] record."""

    preset: Any
    record: dict[str, Any] = field(default_factory=dict)


def calibrate_film(start_preset: str = "tio2x-4t", section: str = SECTION, *,
                   stages: Sequence[str] = ("init", "check"), seeds: Sequence[int] = (0,),
                   init_evaluations: int = 60, ffp_correction_exponent: float | None = None,
                   ffp_correction_base: str | None = None,
                   name: str | None = None, command: str = "",
                   report: Callable[[str], None] = print) -> FilmCalibration:
    """Fit ``start_preset`` to the film figures of ``section`` (module docstring)."""
    from memdrift.emulator.params import Preset, load_preset
    from memdrift.mapping.calibrate import _toml_safe

    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise MemdriftError(f"stages contains {unknown[0]!r}; allowed for the film: {', '.join(STAGES)}")
    targets = FilmTargets.from_reference(section)
    start = load_preset(start_preset)
    if start.model != "bulk4t":
        raise MemdriftError(f"start-preset = {start_preset!r} is a {start.model} preset; allowed: a bulk4t "
                            f"preset for targets {section!r}")
    if not seeds:
        raise MemdriftError("seeds is empty; allowed: one or more film seeds")
    p = start.params
    # the start preset's own stage records stay, unless this run redoes the stage: a check run on an
    # initialised film keeps the record of the init that made it
    log: list[dict[str, Any]] = [dict(r) for r in start.calibration.get("stages", [])
                                 if isinstance(r, dict) and r.get("stage") not in stages]
    if "init" in stages:
        p, info = stage_init(p, targets, max_evaluations=init_evaluations, report=report)
        log.append(info)
        report(f"init: HRS {info['hrs_ohm']:.2f} / LRS {info['lrs_ohm']:.2f} ohm ({info['evaluations']} "
               f"evaluations, {info['cpu_s']} s CPU)")
    # the FFP and its map start from these targets; the initialisation's first pulse is the shortest the
    # sizing allows, so a film fast at 6 V does not overshoot them on its first pulse; the map's bins span
    # the window the FFP works in, which a fast film's strong runs leave within a few pulses
    calibration = {"hrs_ohm": targets.hrs_ohm, "lrs_ohm": targets.lrs_ohm,
                   "init_first_pulse_s": INIT_FIRST_PULSE_S, "init_step_growth": INIT_STEP_GROWTH,
                   "map_range": "window"}
    # the FFP is checked as the preset will replay it: with the table correction it was given or carries
    correction = start.calibration.get("ffp_correction_exponent") if ffp_correction_exponent is None \
        else ffp_correction_exponent
    base = start.calibration.get("ffp_correction_base") if ffp_correction_base is None else ffp_correction_base
    if correction is not None or base is not None:
        from memdrift.emulator.bulk4t_schemes import FFPOptions

        checked = FFPOptions(correction_exponent=0.0 if correction is None else correction,
                             correction_base="table" if base is None else base)
        if correction is not None:
            calibration["ffp_correction_exponent"] = checked.correction_exponent
        if base is not None:
            calibration["ffp_correction_base"] = checked.correction_base
    preset = Preset(name=name or start.name, params=p, description=start.description, scheme=start.scheme,
                    calibration=calibration)
    record: dict[str, Any] = {
        "status": f"calibrated to reference/targets.toml [{section}] on the paper's protocol (one film per seed)",
        "method": "memdrift calibrate to targets (memdrift.mapping.calibrate_film): " + ", ".join(stages),
        "command": command, "started_from": start.name, "stages": log,
        "hrs_ohm": targets.hrs_ohm, "lrs_ohm": targets.lrs_ohm,
    }
    checks: list[dict[str, Any]] = []
    if any(s in stages for s in ("check", "mechanism", "grid")):
        for s in seeds:
            fig = ffp_figures(preset, seed=int(s))
            fig["met"] = judge_ffp(fig, targets)
            checks.append(fig)
            report(f"check seed {s}: events {fig['events']}, power {[round(w * 1e3, 1) for w in fig['power_w']]} "
                   f"mW, skipped n512 {fig['skipped_n512']} n32 {fig['skipped_n32']}, peak "
                   f"{[round(t) for t in fig['temperature_peak_k']]} K ({fig['cpu_s']} s CPU)")
        record["check"] = checks
        met = {k: all(c["met"][k] for c in checks) for k in checks[0]["met"]}
        record["met"] = sorted(k for k, v in met.items() if v)
        record["not_met"] = sorted(k for k, v in met.items() if not v)
    if "mechanism" in stages:
        record["mechanism"] = stage_mechanism(preset, checks[0], targets)
        mech = record["mechanism"]
        if mech["compared"]:
            report(f"mechanism: heating off loses {mech['potentiation_skips_lost']:.2f} of the potentiation skips")
        else:
            report(f"mechanism: not compared: without heating the film does not cross the window "
                   f"({mech['heating_off']['events']} events); heating drives the switching itself")
    if "grid" in stages:
        record["grid"] = stage_grid(preset, checks[0], targets)
        report(f"grid: events change {record['grid']['events_change']}, skips change {record['grid']['skips_change']}")
    preset = dataclasses.replace(preset, calibration={**calibration, **_toml_safe(record)})
    return FilmCalibration(preset=preset, record=record)
