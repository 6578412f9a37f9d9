"""What a sweep spec is and may name: its types, the scheme options, metrics and limits."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from memdrift.emulator.params import FilamentParams
from memdrift.errors import MemdriftError


#: Options of the ``ffp`` scheme (feedforward programming of the TiO2-x paper on the bulk
#: four-terminal film): option -> (integer?, units, default). None: from the preset's calibration.
def _ffp_default(name: str) -> Any:
    from memdrift.emulator.bulk4t_schemes import FFPOptions

    return next(f.default for f in dataclasses.fields(FFPOptions) if f.name == name)


FFP_OPTIONS: dict[str, tuple[bool, str, Any]] = {
    "window_low_ohm": (False, "ohm", _ffp_default("window_ohm")[0]),
    "window_high_ohm": (False, "ohm", _ffp_default("window_ohm")[1]),
    # The |dR| aimed at sits at this fraction of the window; 0.9 gives the engine's 0.28 ohm
    # for the paper's 0.1-0.3 ohm window, so a window axis moves the target with the window.
    "target_fraction": (False, "1", 0.9),
    "levels": (True, "1", 128),
    "ffp_width_s": (False, "s", _ffp_default("ffp_width_s")),
    "max_events": (True, "1", _ffp_default("max_events")),
    "map_pulses": (True, "1", _ffp_default("map_pulses")),
    "conditioning_cycles": (True, "1", 2),
    # The paper states no read duration; 0 counts the write pulses only.
    "read_time_s": (False, "s", 0.0),
    "hrs_ohm": (False, "ohm", None),
    "lrs_ohm": (False, "ohm", None),
    # The per-device table correction (FFPOptions.correction_exponent): unset, the preset's calibration
    # says (the paper's table alone when it does not).
    "correction_exponent": (False, "1", None),
    "max_amplitude_v": (False, "V", None),
}
#: ffp options that only post-process the trace: points differing only in them share their seed, so
#: they segment the same trace, as the paper segments one FFP trace into 32, 128 and 512 levels.
FFP_POSTPROCESS = frozenset({"levels", "read_time_s"})
#: Options of the ``write-verify`` scheme (``memdrift.emulator.write_verify``): ``levels`` targets evenly
#: spaced from ``g_low_s`` to ``g_high_s``, programmed lowest first from reset (the sweep's own); the rest
#: are the fields of ``WriteVerify``, read from the dataclass. option -> (integer?, units, default).
WV_TARGET_OPTIONS: dict[str, tuple[bool, str, Any]] = {
    "levels": (True, "1", 16),
    "g_low_s": (False, "S", 0.7e-3),
    "g_high_s": (False, "S", 1.8e-3),
}


def _write_verify_options() -> dict[str, tuple[bool, str, Any]]:
    from memdrift.emulator.write_verify import WriteVerify

    return {**WV_TARGET_OPTIONS,
            **{f.name: (f.type in ("int", int), f.metadata["unit"], f.default)
               for f in dataclasses.fields(WriteVerify) if f.name != "targets_s"}}


WV_OPTIONS = _write_verify_options()

#: Metrics every point stores, whatever the spec asks: the Pareto costs.
COST_METRICS = {
    "energy_per_cycle": ("J", "electrical energy of the programming pulses of one cycle (ensemble mean; "
                              "ffp: the events HRS -> LRS -> HRS; write-verify: every level once)"),
    "programming_time_per_cycle": ("s", "pulse widths plus read gaps and reads of one cycle"),
    "write_time_per_cycle": ("s", "sum of the programming pulse widths of one cycle"),
}

#: Scalar metrics of the extraction record (``memdrift.mapping.extract``), nested keys joined by "_".
EXTRACTION_METRICS = {
    "states": ("1", "states in the linear range, fewer of the two branches"),
    "differential_bins": ("1", "reliable G+ - G- bins (bin width > 2 sigma), fewer of the two branches"),
    "bin_width": ("S", "mean conductance step between neighbouring states"),
    "state_sigma": ("S", "mean cycle-to-cycle standard deviation of a state"),
    "linear_r2_potentiation": ("1", "R^2 of the linear-range fit, potentiation"),
    "linear_r2_depression": ("1", "R^2 of the linear-range fit, depression"),
    "symmetry": ("1", "|slope_d| / |slope_p| of the linear-range fits"),
    "pearson": ("1", "mean cycle-to-cycle Pearson correlation"),
    "energy_per_pulse": ("J", "mean electrical energy of one programming pulse"),
    "g_min": ("S", "lowest conductance of the ensemble-mean cycle"),
    "g_max": ("S", "highest conductance of the ensemble-mean cycle"),
}
#: Per-level-count metrics, e.g. ``nu_32_p`` or ``skipped_levels_128_depression``: the
#: record computes them only for the level counts a spec asks for (they cost time).
LEVEL_METRICS = {
    re.compile(r"^nu_(\d+)_(p|d)$"): ("1", "nonlinearity nu of the {0}-level segmentation (eqns 2-3)"),
    re.compile(r"^skipped_levels_(\d+)_(potentiation|depression)$"):
        ("1", "levels skipped at CPD 80 % of the {0}-level segmentation"),
}
#: Metrics of the ``ffp`` scheme; ``_n_`` stands for the point's own level count (scheme option
#: ``levels``, an axis or fixed), where ``nu_<n>_p`` above names a fixed count.
FFP_METRICS = {
    "ffp_events_potentiation": ("1", "FFP events HRS -> LRS (ensemble mean)"),
    "ffp_events_depression": ("1", "FFP events LRS -> HRS (ensemble mean)"),
    "reachable_levels_n": ("1", "levels of the n-level segmentation not prone to be skipped (CPD 80 % over "
                                "devices), fewer of the two branches"),
    "reachable_levels_n_potentiation": ("1", "levels of the n-level segmentation not prone to be skipped, "
                                             "potentiation"),
    "reachable_levels_n_depression": ("1", "levels of the n-level segmentation not prone to be skipped, "
                                           "depression"),
    "skipped_levels_n_potentiation": ("1", "levels prone to be skipped (no event within half a level spacing, "
                                           "CPD 80 % over devices) at n levels, potentiation"),
    "skipped_levels_n_depression": ("1", "levels prone to be skipped (no event within half a level spacing, "
                                         "CPD 80 % over devices) at n levels, depression"),
    "nu_n_p": ("1", "nonlinearity nu of the n-level segmentation (eqn 2), potentiation"),
    "nu_n_d": ("1", "nonlinearity nu of the n-level segmentation (eqn 3), depression"),
}
#: Network accuracy through the aihwkit bridge, settings in ``[metrics.accuracy]``.
ACCURACY_METRICS = {
    "accuracy": ("1", "test accuracy of the analog network (HWAT, programmed once per repeat; mean over repeats)"),
    "accuracy_no_hwat": ("1", "test accuracy of the digital weights programmed directly (mean over repeats)"),
    "accuracy_digital": ("1", "test accuracy of the digital network (the same for every point)"),
}

DEFAULT_MINIMISE = ("energy_per_cycle", "programming_time_per_cycle")

#: ``[metrics.accuracy]``: key -> (type, default). Small by default: a sweep trains per point.
ACCURACY_SETTINGS: dict[str, tuple[type, Any]] = {
    "network": (str, "mlp"),
    "dataset": (str, "digits"),
    "epochs": (int, 5),
    "hwat_epochs": (int, 1),
    "repeats": (int, 3),
    "train_samples": (int, 600),
    "test_samples": (int, 300),
    "batch_size": (int, 64),
    "lr": (float, 1e-3),
    "hwat_lr": (float, 0.01),
    "dtod": (float, 0.0),
    "seed": (int, 0),
    # level count whose program-error table the record gets (the bridge resamples it to the
    # record's states); 32 is the smallest count `memdrift extract` writes
    "levels": (int, 32),
}
ACCURACY_DATASETS = ("digits", "mnist-5k")


#: values one axis may hold (checked before a range is laid out)
MAX_AXIS_VALUES = 10_000
#: grid points one sweep may hold (checked before the grid is enumerated)
MAX_POINTS = 100_000
#: a count option (pulses, levels, events) beyond this is a typo, not a design point
MAX_COUNT_OPTION = 1_000_000
#: a pulse longer than this is a DC stress, outside what the pulse models describe
MAX_WIDTH_S = 1.0
#: memory one point's run may need, unless the user raises it (--max-memory-gb)
DEFAULT_POINT_MEMORY_BYTES = 8 * 2**30
#: float64 outputs per pulse the engines keep (conductance, temperature, energy, gap)
BYTES_PER_PULSE = 4 * 8

DEFAULT_RUNNER = "memdrift.emulator.engine:run_pulses"
#: a model without an engine path of its own runs through its registry entry (in process: a Dask
#: worker knows only the models registered on import)
REGISTRY_RUNNER = "memdrift.models:run_registered"


@dataclass(frozen=True)
class Axis:
    """One swept quantity: where it goes (scheme option, device field, spread) and its values."""

    name: str
    kind: str  # "scheme" | "device" | "variation"
    values: tuple[float | int, ...]
    units: str
    integer: bool = False

    @property
    def target(self) -> str:
        return self.name.split(".", 1)[1] if self.kind == "variation" else self.name


@dataclass(frozen=True)
class SweepSpec:
    name: str
    seed: int
    devices: int
    cycles: int
    scheme: str
    scheme_options: dict[str, Any]
    preset: str
    base_params: FilamentParams | Any  # FilamentParams or Bulk4TParams, by the scheme's model
    axes: tuple[Axis, ...]
    metrics: tuple[str, ...]
    maximise: str
    minimise: tuple[str, ...]
    description: str = ""
    source_text: str = ""
    accuracy: dict[str, Any] | None = None  # [metrics.accuracy] resolved, when an accuracy metric is stored

    @property
    def model(self) -> str:
        return str(self.base_params.model)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    @property
    def n_points(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Point:
    """One grid point: its index in the grid, its axis values and the resolved task."""

    index: tuple[int, ...]
    coords: dict[str, float | int]
    seed: int
    key: str
    task: dict[str, Any] = field(repr=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(where: str, value: Any, integer: bool) -> float | int:
    if not _is_number(value):
        raise MemdriftError(f"{where} = {value!r} has the wrong type; allowed: "
                            f"{'an integer' if integer else 'a number'}")
    if not math.isfinite(value):
        raise MemdriftError(f"{where} = {value!r} is out of range; allowed: a finite number")
    if integer:
        if float(value) != round(value):
            raise MemdriftError(f"{where} = {value!r} has the wrong type; allowed: an integer")
        return int(round(value))
    return float(value)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _level_count(metric: str) -> int | None:
    for pattern in LEVEL_METRICS:
        match = pattern.match(metric)
        if match:
            return int(match.group(1))
    return None


def metric_meta(metric: str) -> tuple[str, str]:
    """(units, long_name) of a metric name."""
    known = {**EXTRACTION_METRICS, **COST_METRICS, **FFP_METRICS, **ACCURACY_METRICS}
    if metric in known:
        return known[metric]
    for pattern, (units, text) in LEVEL_METRICS.items():
        match = pattern.match(metric)
        if match:
            return units, text.format(match.group(1)) + f", {match.group(2)}"
    return "1", metric
