"""What a sweep needs of each scheme: its options, how a point's options become the engine's scheme,
and how a point runs and is costed."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from memdrift.emulator import pulses
from memdrift.errors import MemdriftError
from memdrift.experiments.sweep.metrics import (cost_metrics, ffp_cost_metrics, ffp_metrics,
                                                write_verify_cost_metrics)
from memdrift.experiments.sweep.spec import (FFP_METRICS, FFP_OPTIONS, FFP_POSTPROCESS, REGISTRY_RUNNER,
                                             WV_OPTIONS, WV_TARGET_OPTIONS, SweepSpec)
from memdrift.models import MODELS


def _table_kinds(table: Mapping[str, tuple[bool, str, Any]]) -> dict[str, tuple[bool, str]]:
    return {k: (integer, units) for k, (integer, units, _) in table.items()}


def _builder_kinds(builder: Callable[..., Any]) -> dict[str, tuple[bool, str]]:
    """option -> (integer?, units) from the builder's signature, so new options need no list here."""
    out = {}
    for name, prm in inspect.signature(builder).parameters.items():
        integer = isinstance(prm.default, int) and not isinstance(prm.default, bool)
        units = "V" if name.endswith("_v") else "s" if name.endswith("_s") else "1"
        out[name] = (integer, units)
    return out


def write_verify_scheme(options: Mapping[str, Any]) -> Any:
    """The checked ``WriteVerify`` of a write-verify point (``levels`` targets from g_low_s to g_high_s)."""
    from memdrift.emulator.write_verify import WriteVerify

    levels, low, high = int(options["levels"]), float(options["g_low_s"]), float(options["g_high_s"])
    if levels < 2:
        raise MemdriftError(f"levels = {levels!r} is out of range; allowed: >= 2")
    if not 0 < low < high:
        raise MemdriftError(f"g_low_s = {low!r}, g_high_s = {high!r} are out of range; allowed: 0 < g_low_s < "
                            "g_high_s (S)")
    fields = {k: options[k] for k in WV_OPTIONS if k not in WV_TARGET_OPTIONS}
    return WriteVerify(targets_s=tuple(np.linspace(low, high, levels)), **fields).checked()


def ffp_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``simulate_scheme(..., "ffp-segmentation", ...)`` keywords of an ffp point, checked."""
    lo, hi = float(options["window_low_ohm"]), float(options["window_high_ohm"])
    if not 0 < lo < hi:
        raise MemdriftError(f"window_low_ohm = {lo!r}, window_high_ohm = {hi!r} are out of range; allowed: "
                            "0 < window_low_ohm < window_high_ohm (ohm)")
    fraction = float(options["target_fraction"])
    if not 0 <= fraction <= 1:
        raise MemdriftError(f"target_fraction = {fraction!r} is out of range; allowed: [0, 1] (of the window)")
    lowest = {"levels": 2, "max_events": 1, "map_pulses": 1, "conditioning_cycles": 0}
    for key, low in lowest.items():
        if int(options[key]) < low:
            raise MemdriftError(f"{key} = {options[key]!r} is out of range; allowed: >= {low}")
    if not float(options["ffp_width_s"]) > 0:
        raise MemdriftError(f"ffp_width_s = {options['ffp_width_s']!r} is out of range; allowed: > 0 s")
    if not float(options["read_time_s"]) >= 0:
        raise MemdriftError(f"read_time_s = {options['read_time_s']!r} is out of range; allowed: >= 0 s")
    hrs, lrs = float(options["hrs_ohm"]), float(options["lrs_ohm"])
    if not 0 < lrs < hrs:
        raise MemdriftError(f"lrs_ohm = {lrs!r}, hrs_ohm = {hrs!r} are out of range; allowed: 0 < lrs_ohm < hrs_ohm")
    out = {"window_ohm": (lo, hi), "target_ohm": lo + fraction * (hi - lo), "levels": (int(options["levels"]),),
           "ffp_width_s": float(options["ffp_width_s"]), "max_events": int(options["max_events"]),
           "map_pulses": int(options["map_pulses"]), "conditioning_cycles": int(options["conditioning_cycles"]),
           "hrs_ohm": hrs, "lrs_ohm": lrs}
    for key in ("correction_exponent", "max_amplitude_v"):
        if options.get(key) is not None:
            out[key] = float(options[key])
    from memdrift.emulator.bulk4t_schemes import FFPOptions

    # the scheme's own ranges, checked when the spec is read rather than when a point runs
    FFPOptions(**{k: out[k] for k in ("correction_exponent", "max_amplitude_v") if k in out})
    return out


class PointFailed(Exception):
    """A point whose run cannot give metrics: a result of the sweep (NaN metrics and this note), not a crash."""


def _run_train(run: Callable[..., xr.Dataset], params: Any, train: Any, task: Mapping[str, Any],
               notes: list[str]) -> tuple[xr.Dataset, dict[str, float]]:
    ds = run(params, train, devices=task["devices"], cycles=task["cycles"], seed=task["seed"], threads=1)
    return ds, cost_metrics(ds, train)


def _run_ffp(run: Callable[..., xr.Dataset], params: Any, options: Mapping[str, Any], task: Mapping[str, Any],
             notes: list[str]) -> tuple[xr.Dataset, dict[str, float]]:
    try:
        ds = run(params, "ffp-segmentation", devices=task["devices"], seed=task["seed"], threads=1, **options)
    except MemdriftError as exc:
        # A parameter set whose FFP run cannot be segmented (too few events) is a result, not a crash.
        raise PointFailed(f"ffp run failed: {exc}") from None
    costs = ffp_cost_metrics(ds, task["scheme_options"])
    capped = int(np.sum(np.asarray(ds["events"].values) >= int(task["scheme_options"]["max_events"])))
    if capped:
        # The branch was cut, not finished: its events and costs are lower bounds.
        notes.append(f"{capped} (device, branch) FFP runs stopped at max_events = "
                     f"{task['scheme_options']['max_events']} before reaching LRS/HRS")
    return ds, costs


def _run_write_verify(run: Callable[..., xr.Dataset], params: Any, wv: Any, task: Mapping[str, Any],
                      notes: list[str]) -> tuple[xr.Dataset, dict[str, float]]:
    ds = run(params, wv, devices=task["devices"], seed=task["seed"], threads=1)
    unreached = float((ds["converged"].mean("device") < 0.8).sum())
    if unreached:
        notes.append(f"{unreached:.0f} of {ds.sizes['level']} levels reached by fewer than 80 % of devices "
                     f"within max_pulses = {task['scheme_options']['max_pulses']}")
    return ds, write_verify_cost_metrics(ds)


def _ffp_initial_targets(preset: Any, options: dict[str, Any]) -> None:
    # The initialisation targets come from the preset's calibration; they go into every
    # point's task (and so its part key), so editing the preset's calibration invalidates parts.
    for key in ("hrs_ohm", "lrs_ohm"):
        if key not in options:
            options[key] = float(preset.calibration.get(key, 880.0 if key == "hrs_ohm" else 740.0))
    if "correction_exponent" not in options and "ffp_correction_exponent" in preset.calibration:
        options["correction_exponent"] = float(preset.calibration["ffp_correction_exponent"])


@dataclass(frozen=True)
class SweepScheme:
    """What a sweep needs of one scheme: its options (integer?, units), their defaults, how a point's
    options become the engine's scheme, and how a point runs and is costed."""

    option_kinds: Callable[[], dict[str, tuple[bool, str]]]
    defaults: Callable[[], dict[str, Any]]
    #: point options -> the scheme object the engine takes (checked; MemdriftError names the option)
    build: Callable[[Mapping[str, Any]], Any]
    #: (engine, params, scheme object, task, notes) -> (dataset, cost metrics); PointFailed for a result
    #: without metrics
    run: Callable[..., tuple[xr.Dataset, dict[str, float]]]
    #: ``module:function`` of an engine of its own (a closed loop rather than a pulse train)
    runner: str | None = None
    #: why a point is one cycle per device (sweep.cycles refused); None: sweep.cycles counts
    one_cycle: str | None = None
    #: metrics only this scheme has
    metrics: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: options that only post-process a run: points differing only in them share their seed
    seed_ignores: frozenset[str] = frozenset()
    #: completes the options from the preset (preset, options) before the points are laid out
    prepare: Callable[[Any, dict[str, Any]], None] | None = None
    #: (dataset, task, record) -> metrics read from the scheme's own dataset
    finish: Callable[[xr.Dataset, Mapping[str, Any], Mapping[str, Any] | None], dict[str, float]] | None = None


SWEEP_SCHEMES: dict[str, SweepScheme] = {
    "ramp": SweepScheme(lambda: _builder_kinds(pulses.ramp), lambda: dict(pulses.PAPER_RAMP),
                        lambda options: pulses.ramp(**options), _run_train),
    "identical": SweepScheme(lambda: _builder_kinds(pulses.identical), dict,
                             lambda options: pulses.identical(**options), _run_train),
    "ffp": SweepScheme(lambda: _table_kinds(FFP_OPTIONS),
                       lambda: {k: d for k, (_, _, d) in FFP_OPTIONS.items() if d is not None},
                       lambda options: ffp_options(options), _run_ffp,
                       one_cycle="one HRS -> LRS -> HRS cycle per device, events until the branch ends",
                       metrics=FFP_METRICS, seed_ignores=FFP_POSTPROCESS, prepare=_ffp_initial_targets,
                       finish=lambda ds, task, record: ffp_metrics(ds, int(task["scheme_options"]["levels"]),
                                                                   record)),
    "write-verify": SweepScheme(lambda: _table_kinds(WV_OPTIONS), lambda: {k: d for k, (_, _, d) in WV_OPTIONS.items()},
                                lambda options: write_verify_scheme(options), _run_write_verify,
                                runner="memdrift.emulator.write_verify:run_write_verify",
                                one_cycle="each device is programmed to every level once"),
}
SCHEMES = tuple(SWEEP_SCHEMES)


def default_runner(spec: SweepSpec) -> str:
    """The engine of a spec's points: the scheme's own, else the model's, else its registry entry."""
    return SWEEP_SCHEMES[spec.scheme].runner or MODELS.get(spec.model).sweep_runner or REGISTRY_RUNNER
