"""Design-space sweeps of pulse schemes (DESIGN.md, "Sweeps").

A sweep is a TOML spec: a base pulse scheme and a device preset with fixed
settings, and a grid of axes over scheme options, device parameters and
device-to-device spreads. Each grid point emulates an ensemble, extracts metrics
and keeps energy and programming time per cycle; the result is one
``xarray.Dataset`` with the axes as dimensions.

Reproducibility: every point's seed is derived from the spec seed and the point's
axis values, never from the order in which points are scheduled, so a sweep on
any number of Dask workers gives the same numbers as the serial run.

Resume: every finished point is written at once (atomically) as one small JSON
file in ``OUT.nc.parts/``, named by a hash of everything that determines its
result (resolved parameters, scheme, ensemble, seed, extraction schema). A rerun loads
the parts whose hash matches and computes only the rest; the netCDF is assembled
at the end. ``OUT.nc.parts/computed.log`` gets one line per point computed, so
repeated work is visible.

Metrics come from :func:`memdrift.mapping.extract.extract_record` (a point whose
data admit no extraction, e.g. no linear range, gets NaN and a note in its part
file) plus the costs computed here: energy per cycle and programming time per
cycle (pulse widths + read gaps + reads).

Example spec (shipped ones: ``memdrift/data/sweeps/``)::

    [sweep]
    name = "ramp-amplitude"
    seed = 7
    devices = 4
    cycles = 10

    [scheme]
    base = "ramp"                     # or "identical"; fixed options follow
    pulses_per_branch = 20

    [device]
    preset = "hfoxsy-hfs2"            # shipped name or a preset .toml path
    ambient_temperature_k = 300.0     # fixed FilamentParams overrides
    [device.variation]
    activation_energy_ev = 0.01

    [axes]                            # a list of values, or {start, stop, num[, log]}
    amplitude_end_v = [0.9, 0.995, 1.1]
    width_end_s = { start = 2e-7, stop = 5e-7, num = 4, log = true }
    "variation.activation_energy_ev" = [0.0, 0.02]

    [metrics]
    store = ["differential_bins", "state_sigma", "bin_width"]
    maximise = "differential_bins"    # Pareto: most of this ...
    minimise = ["energy_per_cycle", "programming_time_per_cycle"]   # ... at least of these

Per-level-count metrics of the record (``nu_<n>_p``, ``skipped_levels_<n>_...``)
take the level counts they name.

FFP on the bulk four-terminal film (``base = "ffp"``, a ``bulk4t`` preset such as
``tio2x-4t``): each point calibrates a ΔR map on its devices, runs the closed
loop HRS -> LRS -> HRS aiming at ``window_low_ohm + target_fraction x (window_high_ohm
- window_low_ohm)`` per event, and segments the trace into ``levels`` levels
(:func:`memdrift.emulator.bulk4t_schemes.simulate_scheme`, ``"ffp-segmentation"``).
``[device] grid = 8`` sets the cells per side (a tiny film runs in seconds),
``[scheme] max_events`` caps a branch. There is no ``sweep.cycles``: one cycle per
device. Metrics ``ffp_events_potentiation|depression``, ``skipped_levels_n_...``,
``reachable_levels_n[_...]`` (= n - skipped, CPD 80 % over devices), ``nu_n_p|d``,
where ``_n_`` is the point's own level count; costs are the events of one
HRS -> LRS -> HRS cycle (energy, 0.8 s writes, plus ``read_time_s`` per event). The
level count and read time only post-process a trace, so points differing only in
them share their seed and segment the same trace::

    [sweep]
    name = "ffp-window"
    devices = 1
    [scheme]
    base = "ffp"
    window_low_ohm = 0.1
    [device]
    preset = "tio2x-4t"
    grid = 16
    [axes]
    window_high_ohm = [0.2, 0.3, 0.6]
    levels = [32, 128, 512]

Write-verify on a filament cell (``base = "write-verify"``,
:mod:`memdrift.emulator.write_verify`): ``levels`` targets evenly spaced from
``g_low_s`` to ``g_high_s``, programmed lowest first from reset by read, SET/RESET
with incremental step pulses, until each read lies in ``target · (1 ± tolerance)``;
every other option is the scheme's own (``set_step_v``, ``width_s``, ``max_pulses``,
...). No ``sweep.cycles``: a cycle is every level programmed once. The extraction
record's states are the targets (``differential_bins``, ``state_sigma`` over
devices, ``states``); costs are the pulses, gaps and reads that took
(shipped: ``example-write-verify``)::

    [scheme]
    base = "write-verify"
    [axes]
    levels = [16, 32, 64]
    tolerance = [0.005, 0.01, 0.02, 0.04]

Accuracy (``accuracy``, ``accuracy_no_hwat``, ``accuracy_digital`` in
``metrics.store``; needs torch and aihwkit, imported only then): the point's
extraction record through the aihwkit bridge, as ``evaluate.run_study("accuracy")``
computes it, with settings from ``[metrics.accuracy]`` (network, dataset
``digits``/``mnist-5k``, epochs, hwat_epochs, repeats, train_samples, test_samples,
batch_size, lr, hwat_lr, dtod, seed, levels). The digital network does not depend on
the device: it is trained once per sweep, in the client, and shipped to the points.
Two departures from ``run_study`` keep a point's accuracy a function of the spec
alone: aihwkit's torch tile replaces the C++ tile (which seeds itself from outside
the process), and torch runs on one thread with seeds from the settings (the same
for every point: the noise is common, accuracy differences are the devices').
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import importlib
import inspect
import itertools
import json
import math
import os
import re
import textwrap
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.emulator import pulses
from memdrift.emulator.params import FilamentParams, load_preset
from memdrift.errors import MemdriftError, check_seed
from memdrift.models import MODELS

# ----------------------------------------------------------------------------- spec

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

_TOP_LEVEL = {"sweep", "scheme", "device", "axes", "metrics"}
_SWEEP_KEYS = {"name", "seed", "devices", "cycles", "description"}
_METRIC_KEYS = {"store", "maximise", "minimise", "accuracy"}
_RANGE_KEYS = {"start", "stop", "num", "log"}
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


def _scheme_option_kinds(scheme: str) -> dict[str, tuple[bool, str]]:
    return SWEEP_SCHEMES[scheme].option_kinds()


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


def _axis_values(where: str, raw: Any, integer: bool) -> tuple[float | int, ...]:
    if isinstance(raw, list):
        if len(raw) > MAX_AXIS_VALUES:
            raise MemdriftError(f"{where} has {len(raw)} values; allowed: at most {MAX_AXIS_VALUES}")
        if not raw:
            raise MemdriftError(f"{where} = [] is an empty range; allowed: at least one value")
        values = [_number(f"{where}[{i}]", v, integer) for i, v in enumerate(raw)]
    elif isinstance(raw, dict):
        unknown = sorted(set(raw) - _RANGE_KEYS)
        if unknown:
            raise MemdriftError(f"{where}.{unknown[0]} is unknown; allowed keys: start, stop, num, log")
        for k in ("start", "stop", "num"):
            if k not in raw:
                raise MemdriftError(f"{where}.{k} is missing; a range needs start, stop, num (and optionally log)")
        start = _number(f"{where}.start", raw["start"], False)
        stop = _number(f"{where}.stop", raw["stop"], False)
        num = raw["num"]
        if not (isinstance(num, int) and not isinstance(num, bool)):
            raise MemdriftError(f"{where}.num = {num!r} has the wrong type; allowed: an integer >= 1")
        if num < 1:
            raise MemdriftError(f"{where}.num = {num!r} is an empty range; allowed: >= 1")
        if num > MAX_AXIS_VALUES:
            raise MemdriftError(f"{where}.num = {num!r} is out of range; allowed: [1, {MAX_AXIS_VALUES}]")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise MemdriftError(f"{where}.log = {log!r} has the wrong type; allowed: true or false")
        if log:
            if start <= 0 or stop <= 0:
                raise MemdriftError(f"{where}: start = {start!r}, stop = {stop!r} are out of range for log = true; "
                                    "allowed: both > 0")
            grid = np.geomspace(start, stop, num)
        else:
            grid = np.linspace(start, stop, num)
        if integer:
            values = [int(round(v)) for v in grid]
        else:
            values = [float(v) for v in grid]
    else:
        raise MemdriftError(f"{where} = {raw!r} has the wrong type; allowed: a list of values or "
                            "{start, stop, num[, log]}")
    if len(set(values)) != len(values):
        raise MemdriftError(f"{where} = {values!r} repeats a value; allowed: distinct values (a dimension "
                            "coordinate must be unique)")
    return tuple(values)


def _table(data: Mapping[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    if key not in data:
        if required:
            raise MemdriftError(f"[{key}] is missing; a sweep spec needs [sweep], [scheme], [device], [axes]")
        return {}
    value = data[key]
    if not isinstance(value, dict):
        raise MemdriftError(f"{key} = {value!r} has the wrong type; allowed: a table [{key}]")
    return dict(value)


def _flatten_axes(raw: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Accept both ``"variation.x" = [...]`` and the dotted-key form ``variation.x = [...]``."""
    out = []
    for name, value in raw.items():
        if isinstance(value, dict) and value and not (set(value) & _RANGE_KEYS):
            for sub, subval in value.items():
                out.append((f"{name}.{sub}", subval))
        else:
            out.append((name, value))
    return out


def parse_spec(text: str, source: str = "<string>") -> SweepSpec:
    """Parse and validate a sweep spec; every error names the key at fault (``section.key``)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MemdriftError(f"{source}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise MemdriftError(f"{unknown[0]} is unknown; allowed tables: {', '.join(sorted(_TOP_LEVEL))}")

    sweep = _table(data, "sweep")
    unknown = sorted(set(sweep) - _SWEEP_KEYS)
    if unknown:
        raise MemdriftError(f"sweep.{unknown[0]} is unknown; allowed keys: {', '.join(sorted(_SWEEP_KEYS))}")
    name = sweep.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise MemdriftError(f"sweep.name = {name!r} has the wrong type; allowed: a non-empty string")
    description = sweep.get("description", "")
    if not isinstance(description, str):
        raise MemdriftError(f"sweep.description = {description!r} has the wrong type; allowed: a string")
    seed = check_seed("sweep.seed", sweep.get("seed", 0))
    if "devices" not in sweep:
        raise MemdriftError("sweep.devices is missing; allowed: an integer >= 1 (ensemble size)")
    devices = _number("sweep.devices", sweep["devices"], True)
    if not 1 <= devices <= MAX_COUNT_OPTION:
        raise MemdriftError(f"sweep.devices = {devices!r} is out of range; allowed: [1, {MAX_COUNT_OPTION}]")
    scheme_table = _table(data, "scheme")
    base = scheme_table.pop("base", None)
    if base not in SCHEMES:
        raise MemdriftError(f"scheme.base = {base!r} is unknown; allowed: {', '.join(SCHEMES)}")
    recipe = SWEEP_SCHEMES[base]
    if recipe.one_cycle is not None:
        # a cycle count would be a second, silently ignored, ensemble size
        if "cycles" in sweep:
            raise MemdriftError(f"sweep.cycles = {sweep['cycles']!r} is not used by scheme {base!r} "
                                f"({recipe.one_cycle}); allowed: leave it out and size the ensemble with sweep.devices")
        cycles = 1
    else:
        cycles = _number("sweep.cycles", sweep.get("cycles", 10), True)
        if not 2 <= cycles <= MAX_COUNT_OPTION:
            raise MemdriftError(f"sweep.cycles = {cycles!r} is out of range; allowed: [2, {MAX_COUNT_OPTION}] "
                                "(a state's cycle-to-cycle sigma needs two cycles)")

    option_kinds = recipe.option_kinds()
    defaults = recipe.defaults()
    scheme_options: dict[str, Any] = {}
    for key, value in scheme_table.items():
        if key not in option_kinds:
            raise MemdriftError(f"scheme.{key} is unknown for base {base!r}; allowed keys: base, "
                                f"{', '.join(option_kinds)}")
        scheme_options[key] = _scheme_option(f"scheme.{key}", key, value, option_kinds[key][0])
    scheme_options = {**defaults, **scheme_options}

    device = _table(data, "device")
    preset_name = device.pop("preset", None)
    if not isinstance(preset_name, str):
        raise MemdriftError(f"device.preset = {preset_name!r} has the wrong type; allowed: a shipped preset name "
                            "or a preset .toml path")
    if preset_name.endswith(".toml") and not Path(preset_name).is_absolute() and source != "<string>":
        beside = Path(source).parent / preset_name
        if beside.exists():
            preset_name = str(beside)
    preset = load_preset(preset_name)
    model = preset.model
    if base not in MODELS.get(model).sweep_schemes:
        runs_on = " or ".join(repr(m) for m in MODELS.with_scheme(base))
        raise MemdriftError(f"device.preset = {preset_name!r} is a {preset.model!r} device; scheme {base!r} runs on "
                            f"{runs_on} devices; allowed: a {runs_on} preset (schemes by model: "
                            + ", ".join(f"{s} -> {'/'.join(MODELS.with_scheme(s))}" for s in SCHEMES) + ")")
    variable_fields = MODELS.get(model).params_type.variable_fields
    if recipe.prepare is not None:
        recipe.prepare(preset, scheme_options)
    field_units = preset.params.units()
    overrides: dict[str, float] = {}
    variation = dict(preset.params.variation)
    # a square film may be sized by one cell count
    grid_keys = {"grid"} if {"grid_x", "grid_y"} <= set(field_units) else set()
    for key, value in device.items():
        if key == "variation":
            if not isinstance(value, dict):
                raise MemdriftError(f"device.variation = {value!r} has the wrong type; allowed: a table")
            for vkey, vval in value.items():
                if vkey not in variable_fields:
                    raise MemdriftError(f"device.variation.{vkey} is unknown; allowed keys: "
                                        f"{', '.join(sorted(variable_fields))}")
                variation[vkey] = _number(f"device.variation.{vkey}", vval, False)
            continue
        if key in grid_keys:
            if "grid_x" in device or "grid_y" in device:
                raise MemdriftError("device.grid is given with device.grid_x/grid_y; allowed: grid (cells per side) "
                                    "or grid_x and grid_y, not both")
            cells = _number("device.grid", value, True)
            overrides["grid_x"] = overrides["grid_y"] = float(cells)
            continue
        if key not in field_units:
            raise MemdriftError(f"device.{key} is unknown; allowed keys: preset, variation, "
                                f"{', '.join(sorted(field_units | dict.fromkeys(grid_keys, '')))}")
        overrides[key] = _number(f"device.{key}", value, False)
    try:
        base_params = preset.params.replace(**overrides, variation=variation)
    except MemdriftError as exc:
        raise MemdriftError(f"device: {exc}") from None

    axes_table = _table(data, "axes")
    if not axes_table:
        raise MemdriftError("axes is empty; allowed: at least one axis (a scheme option or a device parameter)")
    axes = []
    for axis_name, raw in _flatten_axes(axes_table):
        where = f"axes.{axis_name}"
        if axis_name in option_kinds:
            integer, units = option_kinds[axis_name]
            kind = "scheme"
        elif axis_name in field_units:
            integer, units, kind = False, field_units[axis_name], "device"
        elif axis_name.startswith("variation.") and axis_name.split(".", 1)[1] in variable_fields:
            integer, units, kind = False, "1", "variation"
        else:
            hint = ""
            if base != "ffp" and axis_name in FFP_OPTIONS:
                hint = " for scheme " + repr(base) + " (it is an option of scheme 'ffp', on a bulk4t preset)"
            raise MemdriftError(
                f"{where} is unknown{hint}; allowed: options of scheme {base!r} ({', '.join(option_kinds)}), "
                f"device parameters ({', '.join(sorted(field_units))}), or variation.<field> with field one of "
                f"{', '.join(sorted(variable_fields))}")
        values = _axis_values(where, raw, integer)
        if kind == "scheme":
            values = tuple(_scheme_option(f"{where}[{i}]", axis_name, v, integer) for i, v in enumerate(values))
        axes.append(Axis(axis_name, kind, values, units, integer))
    n_points = math.prod(len(a.values) for a in axes)
    if n_points > MAX_POINTS:
        raise MemdriftError(f"axes span {' x '.join(str(len(a.values)) for a in axes)} = {n_points} points; "
                            f"allowed: at most {MAX_POINTS} points a sweep")

    metrics_table = _table(data, "metrics", required=False)
    unknown = sorted(set(metrics_table) - _METRIC_KEYS)
    if unknown:
        raise MemdriftError(f"metrics.{unknown[0]} is unknown; allowed keys: {', '.join(sorted(_METRIC_KEYS))}")
    allowed_metrics = {**EXTRACTION_METRICS, **COST_METRICS, **ACCURACY_METRICS}
    allowed_metrics.update(recipe.metrics)
    store = metrics_table.get("store", list(MODELS.get(model).sweep_store))
    if not isinstance(store, list) or not all(isinstance(m, str) for m in store):
        raise MemdriftError(f"metrics.store = {store!r} has the wrong type; allowed: a list of metric names")

    allowed_text = f"{', '.join(allowed_metrics)}, nu_<n>_p|d, skipped_levels_<n>_potentiation|depression"

    def check_metric(where: str, m: str) -> str:
        if m in FFP_METRICS and m not in recipe.metrics:
            raise MemdriftError(f"{where} = {m!r} is a metric of scheme 'ffp', not of {base!r}; allowed: "
                                f"{allowed_text}")
        if m not in allowed_metrics:
            n = _level_count(m)
            if n is None:
                raise MemdriftError(f"{where} = {m!r} is unknown; allowed: {allowed_text}")
            if n < 2:
                raise MemdriftError(f"{where} = {m!r} has level count {n}; allowed: >= 2")
        return m

    metrics = [check_metric(f"metrics.store[{i}]", m) for i, m in enumerate(store)]
    maximise = metrics_table.get("maximise", MODELS.get(model).sweep_maximise)
    if not isinstance(maximise, str):
        raise MemdriftError(f"metrics.maximise = {maximise!r} has the wrong type; allowed: one metric name")
    check_metric("metrics.maximise", maximise)
    minimise = metrics_table.get("minimise", list(DEFAULT_MINIMISE))
    if not isinstance(minimise, list) or not all(isinstance(m, str) for m in minimise):
        raise MemdriftError(f"metrics.minimise = {minimise!r} has the wrong type; allowed: a list of metric names")
    minimise = [check_metric(f"metrics.minimise[{i}]", m) for i, m in enumerate(minimise)]
    for m in [maximise, *minimise]:
        if m not in metrics and m not in COST_METRICS:
            metrics.append(m)
    metrics = list(dict.fromkeys(metrics + [m for m in COST_METRICS if m not in metrics]))
    accuracy = _accuracy_settings(metrics_table.get("accuracy"), [m for m in metrics if m in ACCURACY_METRICS])

    spec = SweepSpec(name=name, seed=seed, devices=devices, cycles=cycles, scheme=base,
                     scheme_options=scheme_options, preset=preset.name, base_params=base_params, axes=tuple(axes),
                     metrics=tuple(metrics), maximise=maximise, minimise=tuple(minimise), description=description,
                     source_text=text, accuracy=accuracy)
    # Build every point's parameters and pulse train now, so an axis value out of
    # a physical range (or a point too large to hold) fails before anything is computed or written.
    for point in enumerate_points(spec):
        where = ", ".join(f"{k} = {v!r}" for k, v in point.coords.items())
        try:
            _, scheme_run = build_point(point.task)
        except MemdriftError as exc:
            raise MemdriftError(f"axes ({where}): {exc}") from None
        estimate = point_memory_bytes(spec.devices, spec.cycles, scheme_run)
        if estimate > DEFAULT_POINT_MEMORY_BYTES:
            raise MemdriftError(f"the point ({where}) needs about {estimate / 2**30:.3g} GiB; allowed: at most "
                                f"{DEFAULT_POINT_MEMORY_BYTES / 2**30:.3g} GiB a point (fewer devices, cycles or "
                                "pulses)")
    return spec


def _scheme_option(where: str, key: str, value: Any, integer: bool) -> float | int:
    """A scheme option's value: a number, a count up to MAX_COUNT_OPTION, a width up to MAX_WIDTH_S."""
    number = _number(where, value, integer)
    if integer and not -MAX_COUNT_OPTION <= number <= MAX_COUNT_OPTION:
        raise MemdriftError(f"{where} = {number!r} is out of range; allowed: at most {MAX_COUNT_OPTION}")
    if "width" in key and key.endswith("_s") and not 0 < number <= MAX_WIDTH_S:
        raise MemdriftError(f"{where} = {number!r} is out of range; allowed: (0, {MAX_WIDTH_S:g}] s")
    return number


def point_memory_bytes(devices: int, cycles: int, scheme_run: Any) -> float:
    """The arrays one point's run holds: devices x pulses x the per-pulse outputs."""
    if isinstance(scheme_run, pulses.PulseTrain):
        per_device = cycles * scheme_run.n_pulses
    elif isinstance(scheme_run, dict):  # ffp: events of both branches plus the map pulses
        per_device = 2 * (scheme_run["max_events"] + scheme_run["map_pulses"])
    else:  # write-verify: at most max_pulses a target
        per_device = len(scheme_run.targets_s) * scheme_run.max_pulses
    return float(devices) * per_device * BYTES_PER_PULSE


def _accuracy_settings(table: Any, stored: Sequence[str]) -> dict[str, Any] | None:
    """``[metrics.accuracy]`` checked and completed with the defaults; None when no accuracy is stored."""
    if table is None:
        table = {}
    elif not isinstance(table, dict):
        raise MemdriftError(f"metrics.accuracy = {table!r} has the wrong type; allowed: a table [metrics.accuracy] "
                            f"with keys {', '.join(ACCURACY_SETTINGS)}")
    elif not stored:
        raise MemdriftError("metrics.accuracy is given but no accuracy metric is stored; allowed: add one of "
                            f"{', '.join(ACCURACY_METRICS)} to metrics.store, or leave [metrics.accuracy] out")
    if not stored:
        return None
    out: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in ACCURACY_SETTINGS:
            raise MemdriftError(f"metrics.accuracy.{key} is unknown; allowed keys: {', '.join(ACCURACY_SETTINGS)}")
        kind = ACCURACY_SETTINGS[key][0]
        where = f"metrics.accuracy.{key}"
        if kind is str:
            if not isinstance(raw, str):
                raise MemdriftError(f"{where} = {raw!r} has the wrong type; allowed: a string")
            out[key] = raw
        else:
            out[key] = _number(where, raw, kind is int)
    settings = {k: out.get(k, default) for k, (_, default) in ACCURACY_SETTINGS.items()}
    if settings["dataset"] not in ACCURACY_DATASETS:
        raise MemdriftError(f"metrics.accuracy.dataset = {settings['dataset']!r} is unknown; allowed: "
                            f"{', '.join(ACCURACY_DATASETS)} (offline; every worker loads it)")
    lows = {"epochs": 0, "hwat_epochs": 0, "repeats": 1, "train_samples": 10, "test_samples": 10, "batch_size": 1,
            "seed": 0, "levels": 2}
    for key, low in lows.items():
        if settings[key] < low:
            raise MemdriftError(f"metrics.accuracy.{key} = {settings[key]!r} is out of range; allowed: >= {low}")
    for key in ("lr", "hwat_lr"):
        if not 0 < settings[key] <= 10:
            raise MemdriftError(f"metrics.accuracy.{key} = {settings[key]!r} is out of range; allowed: (0, 10]")
    if not 0 <= settings["dtod"] <= 1:
        raise MemdriftError(f"metrics.accuracy.dtod = {settings['dtod']!r} is out of range; allowed: [0, 1]")
    _need_aihwkit(stored)
    # networks imports torch: only a spec that stores accuracy pays for it here.
    from memdrift.experiments.networks import NAMES as networks

    if settings["network"] not in networks:
        raise MemdriftError(f"metrics.accuracy.network = {settings['network']!r} is unknown; allowed: "
                            f"{', '.join(networks)}")
    return settings


def _need_aihwkit(stored: Sequence[str]) -> None:
    import importlib.util

    if importlib.util.find_spec("aihwkit") is None or importlib.util.find_spec("torch") is None:
        raise MemdriftError(f"metrics.store has {', '.join(repr(m) for m in stored)}, which needs the Python "
                            "packages 'torch' and 'aihwkit' (not installed; pip install memdrift[ml]); allowed "
                            "without them: the extraction, cost and ffp metrics")


def shipped_specs() -> list[str]:
    from importlib import resources

    folder = resources.files("memdrift.data").joinpath("sweeps")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """A spec file by path, or a shipped example by name (``memdrift/data/sweeps/NAME.toml``)."""
    p = Path(path)
    if p.is_file():
        from memdrift.data.io import read_text_file

        return parse_spec(read_text_file(p, f"sweep spec {str(p)!r}", "a TOML file"), str(p))
    if str(path) in shipped_specs():
        from importlib import resources

        text = resources.files("memdrift.data").joinpath("sweeps", f"{path}.toml").read_text()
        return parse_spec(text, f"{path}.toml")
    raise MemdriftError(f"sweep spec {str(p)!r} does not exist; allowed: a spec .toml path or a shipped example "
                        f"({', '.join(shipped_specs())})")


# ----------------------------------------------------------------------------- points

def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def point_seed(spec_seed: int, coords: Mapping[str, float | int]) -> int:
    """Seed of one point: the spec seed and the point's axis values, hashed (not its position in a queue)."""
    digest = hashlib.sha256(_canonical({k: repr(v) for k, v in coords.items()}).encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    state = np.random.SeedSequence([int(spec_seed), *words]).generate_state(2, np.uint32)
    # run_pulses takes a Python int; 63 bits keep it positive in any signed type too.
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


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


def _extraction_levels(spec: SweepSpec, options: Mapping[str, Any]) -> list[int]:
    """Level counts the point's extraction record needs: fixed ones named by metrics, the point's own
    n (ffp), and the accuracy's program-error count."""
    levels = {n for m in spec.metrics if (n := _level_count(m)) is not None}
    if any(m in ("nu_n_p", "nu_n_d") for m in spec.metrics):
        levels.add(int(options["levels"]))
    if spec.accuracy is not None:
        levels.add(int(spec.accuracy["levels"]))
    return sorted(levels)


def enumerate_points(spec: SweepSpec, *, runner: str | None = None) -> list[Point]:
    """All grid points in C order of the axes, each with its seed, part key and task.

    ``runner``: ``module:function`` of the engine (default: the scheme's model's engine).
    """
    from memdrift.mapping.extract import SCHEMA

    runner = runner or default_runner(spec)
    base = spec.base_params.to_dict()
    points = []
    for index in itertools.product(*(range(len(a.values)) for a in spec.axes)):
        coords = {a.name: a.values[i] for a, i in zip(spec.axes, index)}
        options = dict(spec.scheme_options)
        params = {k: v for k, v in base["parameters"].items()}
        variation = dict(base["variation"])
        for axis in spec.axes:
            value = coords[axis.name]
            if axis.kind == "scheme":
                options[axis.target] = value
            elif axis.kind == "device":
                params[axis.target] = float(value)
            else:
                variation[axis.target] = float(value)
        seed = point_seed(spec.seed, {k: v for k, v in coords.items()
                                      if k not in SWEEP_SCHEMES[spec.scheme].seed_ignores})
        task = {"model": base["model"], "parameters": params, "variation": variation, "scheme": spec.scheme,
                "scheme_options": options, "devices": spec.devices, "cycles": spec.cycles, "seed": seed,
                "metrics": list(spec.metrics), "levels": _extraction_levels(spec, options),
                "extraction_schema": SCHEMA, "runner": runner, "preset": spec.preset, "memdrift_version": __version__}
        if spec.accuracy is not None:
            # Only present when asked for, so the keys of sweeps without accuracy stay as they were.
            task["accuracy"] = dict(spec.accuracy)
        key = hashlib.sha256(_canonical(task).encode()).hexdigest()[:24]
        points.append(Point(index=index, coords=coords, seed=seed, key=key, task=task))
    return points


def build_point(task: Mapping[str, Any]) -> tuple[Any, Any]:
    """(device parameters, scheme) of a task: a pulse train for the filament schemes, the engine's
    keyword arguments for ``ffp``; raises MemdriftError naming the option at fault."""
    params = MODELS.get(task["model"]).params_type.from_dict(
        {"model": task["model"], "parameters": task["parameters"], "variation": task["variation"]})
    return params, SWEEP_SCHEMES[task["scheme"]].build(task["scheme_options"])


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
    return {"window_ohm": (lo, hi), "target_ohm": lo + fraction * (hi - lo), "levels": (int(options["levels"]),),
            "ffp_width_s": float(options["ffp_width_s"]), "max_events": int(options["max_events"]),
            "map_pulses": int(options["map_pulses"]), "conditioning_cycles": int(options["conditioning_cycles"]),
            "hrs_ohm": hrs, "lrs_ohm": lrs}


# ----------------------------------------------------------------------------- metrics

def _flatten_record(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Scalar numbers of a nested record under ``a_b_c`` names; null (not computable) becomes NaN."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten_record(value, f"{name}_"))
        elif value is None:
            out[name] = float("nan")
        elif _is_number(value) or isinstance(value, (np.integer, np.floating)):
            out[name] = float(value)
    return out


#: ffp metrics read from the engine's dataset itself (no extraction record needed).
_FFP_DATASET_METRICS = frozenset(FFP_METRICS) - {"nu_n_p", "nu_n_d"}


def _record(ds: xr.Dataset, levels: Sequence[int]) -> tuple[Mapping[str, Any] | None, str]:
    from memdrift.mapping.extract import extract_record

    try:
        return extract_record(ds, levels=tuple(levels)), ""
    except MemdriftError as exc:
        return None, f"extraction failed: {exc}"


def extract_metrics(ds: xr.Dataset, metrics: Sequence[str], levels: Sequence[int], *,
                    record: Mapping[str, Any] | None = None, failure: str = "") -> tuple[dict[str, float], str]:
    """The requested extraction metrics of one point, and a note when some could not be computed.

    A point whose data admit no extraction (say, a scheme too weak to switch the
    device: no linear range) is a result of the sweep, not a failure: its
    extraction metrics are NaN and the reason is kept in its part file.
    ``record``/``failure``: the point's record (or why there is none) when already made.
    """
    wanted = [m for m in metrics if m in EXTRACTION_METRICS or _level_count(m) is not None]
    if not wanted:
        return {}, ""
    if record is None and not failure:
        record, failure = _record(ds, levels)
    if record is None:
        return {m: float("nan") for m in wanted}, failure
    flat = _flatten_record(record)
    values = {m: flat.get(m, float("nan")) for m in wanted}
    nulls = [m for m in wanted if not math.isfinite(values[m])]
    notes = "; ".join(str(n) for n in record.get("notes", []))
    return values, (f"not computable: {', '.join(nulls)} ({notes})" if nulls else "")


def cost_metrics(ds: xr.Dataset, train: pulses.PulseTrain) -> dict[str, float]:
    from memdrift.mapping.metrics import energy_per_cycle

    energy, _sd = energy_per_cycle(ds["energy"].transpose(..., "pulse").values)
    write = float(np.sum(train.width_s))
    reads = train.n_pulses * (train.read_gap_s + train.read_width_s)
    return {"energy_per_cycle": float(energy), "write_time_per_cycle": write,
            "programming_time_per_cycle": write + reads}


def write_verify_cost_metrics(ds: xr.Dataset) -> dict[str, float]:
    """Costs of one write-verify cycle: every level programmed once, lowest first (ensemble means)."""
    width = float(ds.attrs["scheme.width_s"])
    return {"energy_per_cycle": float(ds["program_energy"].sum("level").mean()),
            "write_time_per_cycle": float(ds["pulses"].sum("level").mean()) * width,
            "programming_time_per_cycle": float(ds["program_time"].sum("level").mean())}


def _branch_index(ds: xr.Dataset) -> dict[str, int]:
    labels = [str(v) for v in np.asarray(ds["branch"].values)]
    return {b: labels.index(b) for b in (pulses.POTENTIATION, pulses.DEPRESSION)}


def ffp_cost_metrics(ds: xr.Dataset, options: Mapping[str, Any]) -> dict[str, float]:
    """Energy and time of one FFP cycle HRS -> LRS -> HRS (both branches' events), ensemble means.

    The ΔR-map calibration before it is a one-off per device, not part of programming, and is not counted.
    """
    events = np.asarray(ds["events"].values, dtype=np.int64)  # (device, branch)
    widths = np.concatenate([[0.0], np.cumsum(np.asarray(ds["width"].values, dtype=float))])
    write = widths[events].sum(axis=1)
    energy = np.nansum(np.asarray(ds["energy"].values, dtype=float), axis=(1, 2))
    reads = events.sum(axis=1) * float(options["read_time_s"])
    return {"energy_per_cycle": float(energy.mean()), "write_time_per_cycle": float(write.mean()),
            "programming_time_per_cycle": float((write + reads).mean())}


def ffp_metrics(ds: xr.Dataset, levels: int, record: Mapping[str, Any] | None) -> dict[str, float]:
    """Events per branch, levels skipped / reachable at the point's n (the engine's occupancy count,
    CPD 80 % over devices) and nu at n (the extraction record's fit)."""
    idx = _branch_index(ds)
    events = np.asarray(ds["events"].values, dtype=float).mean(axis=0)
    skipped = np.asarray(ds[f"skipped_n{levels}"].values, dtype=float)
    out = {"ffp_events_potentiation": float(events[idx[pulses.POTENTIATION]]),
           "ffp_events_depression": float(events[idx[pulses.DEPRESSION]])}
    for branch in (pulses.POTENTIATION, pulses.DEPRESSION):
        out[f"skipped_levels_n_{branch}"] = float(skipped[idx[branch]])
        out[f"reachable_levels_n_{branch}"] = float(levels - skipped[idx[branch]])
    out["reachable_levels_n"] = min(out["reachable_levels_n_potentiation"], out["reachable_levels_n_depression"])
    nu = ((record or {}).get("nu") or {}).get(str(levels)) or {}
    for short in ("p", "d"):
        value = nu.get(short)
        out[f"nu_n_{short}"] = float(value) if value is not None else float("nan")
    return out


# ----------------------------------------------------------------------------- accuracy

_DATA_CACHE: dict[tuple[str, int, int], Any] = {}
_DIGITAL_CACHE: dict[str, bytes] = {}


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[Any]:
    """torch on one thread while inside: a worker and the client (serial run, digital training) then
    sum in the same order, which keeps serial and Dask sweeps bit-identical."""
    try:
        import torch
    except ImportError as exc:
        raise MemdriftError(f"metrics.store has an accuracy metric, which needs the Python packages 'torch' and "
                            f"'aihwkit' ({exc}); allowed without them: the extraction, cost and ffp metrics") from None
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield torch
    finally:
        torch.set_num_threads(old)


def _accuracy_data(settings: Mapping[str, Any]) -> Any:
    from memdrift.experiments.datasets import load

    key = (settings["dataset"], int(settings["train_samples"]), int(settings["test_samples"]))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load(key[0]).subset(key[1], key[2])
    return _DATA_CACHE[key]


def _evaluate_settings(settings: Mapping[str, Any]) -> Any:
    from memdrift.experiments.evaluate import Settings

    return Settings(epochs=int(settings["epochs"]), hwat_epochs=int(settings["hwat_epochs"]),
                    batch_size=int(settings["batch_size"]), lr=float(settings["lr"]),
                    hwat_lr=float(settings["hwat_lr"]), repeats=int(settings["repeats"]), seed=int(settings["seed"]),
                    dtod=float(settings["dtod"])).checked()


def digital_network(settings: Mapping[str, Any]) -> bytes:
    """The digitally trained network of a sweep's accuracy settings (its ``state_dict``, serialised).

    Digital training does not depend on the device, so a sweep trains once (deterministic seed) and
    ships the weights to every point; cached per process under the settings.
    """
    key = _canonical({k: settings[k] for k in ("network", "dataset", "epochs", "train_samples", "test_samples",
                                                "batch_size", "lr", "seed")})
    if key not in _DIGITAL_CACHE:
        with _one_torch_thread() as torch:
            from memdrift.experiments.evaluate import train_digital

            net = train_digital(settings["network"], _accuracy_data(settings), _evaluate_settings(settings))
            buffer = io.BytesIO()
            torch.save(net.state_dict(), buffer)
            _DIGITAL_CACHE[key] = buffer.getvalue()
    return _DIGITAL_CACHE[key]


def accuracy_metrics(record: Mapping[str, Any] | None, settings: Mapping[str, Any],
                     digital: bytes | None = None) -> tuple[dict[str, float], str]:
    """Accuracy of a record's device through the aihwkit bridge, as ``run_study("accuracy", ...)`` computes it
    (digital, HWAT analog, analog without HWAT; ``repeats`` programmings each), from the sweep's digital
    network ``digital`` (trained here when None)."""
    nan = {m: float("nan") for m in ACCURACY_METRICS}
    if record is None:
        return nan, "accuracy: no extraction record"
    digital = digital if digital is not None else digital_network(settings)
    with _one_torch_thread() as torch:
        try:
            from memdrift.experiments import evaluate, networks
            from memdrift.mapping.aihwkit_bridge import inference_config
        except ImportError as exc:
            raise MemdriftError(f"metrics.store has an accuracy metric, which needs the Python packages 'torch' "
                                f"and 'aihwkit' ({exc}); allowed without them: the extraction, cost and ffp "
                                "metrics") from None
        s = _evaluate_settings(settings)
        data = _accuracy_data(settings)
        try:
            # the torch tile: the C++ tile seeds its own generator from outside the process (the same point
            # would give a different accuracy on every run)
            config = inference_config(record, dtod=s.dtod, ir_drop=s.ir_drop, tile="torch")
        except MemdriftError as exc:
            return nan, f"accuracy: the record does not map to aihwkit ({exc})"
        torch.manual_seed(s.seed)
        net = networks.build(settings["network"], data.input_shape, data.classes)
        net.load_state_dict(torch.load(io.BytesIO(digital), weights_only=True))
        digital_acc = evaluate.accuracy(net, data.x_test, data.y_test, batch=s.eval_batch)

        def programmed(analog: Any) -> list[float]:
            return [evaluate.program_and_test(analog, data, t_inference_s=0.0, seed=s.seed + 1000 + r,
                                              eval_batch=s.eval_batch) for r in range(s.repeats)]

        no_hwat = programmed(evaluate.to_analog(net, config))
        # Seeded per point, and the same seed for every point: the HWAT noise and the batch order
        # are common to all points, so accuracy differences are the devices'.
        torch.manual_seed(s.seed + 1)
        hwat = programmed(evaluate.hardware_aware_train(evaluate.to_analog(net, config), data, s))
    return {"accuracy": float(np.mean(hwat)), "accuracy_no_hwat": float(np.mean(no_hwat)),
            "accuracy_digital": float(digital_acc)}, ""


# ----------------------------------------------------------------------------- one point

def _resolve_runner(path: str) -> Callable[..., xr.Dataset]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def compute_point(task: Mapping[str, Any], digital: bytes | None = None) -> dict[str, Any]:
    """Run one point (on a worker or in process): emulate the ensemble, extract, cost it (and evaluate).

    Module-level and driven by a plain dict, so Dask can ship it to spawned workers. ``digital``: the
    sweep's digitally trained network for the accuracy metrics (trained here when None).
    """
    start = time.perf_counter()
    params, scheme = build_point(task)
    run = _resolve_runner(task["runner"])
    wanted = task["metrics"]
    notes: list[str] = []
    kind = SWEEP_SCHEMES[task["scheme"]]
    try:
        ds, costs = kind.run(run, params, scheme, task, notes)
    except PointFailed as exc:
        return {"metrics": {m: float("nan") for m in wanted}, "note": str(exc),
                "seconds": time.perf_counter() - start}
    needs_record = any(m not in COST_METRICS and m not in _FFP_DATASET_METRICS for m in wanted)
    record, failure = _record(ds, task["levels"]) if needs_record else (None, "")
    extracted, note = extract_metrics(ds, wanted, task["levels"], record=record, failure=failure)
    notes.append(note)
    values = {**extracted, **costs}
    if kind.finish is not None:
        values.update(kind.finish(ds, task, record))
    if any(m in ACCURACY_METRICS for m in wanted):
        acc, note = accuracy_metrics(record, task["accuracy"], digital)
        values.update(acc)
        notes.append(note)
    metrics = {m: values[m] for m in wanted}
    return {"metrics": metrics, "note": "; ".join(n for n in notes if n), "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- schemes

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


# ----------------------------------------------------------------------------- resume store

def parts_dir(out_path: str | os.PathLike[str]) -> Path:
    out = Path(out_path)
    return out.with_name(out.name + ".parts")


def _part_path(parts: Path, key: str) -> Path:
    return parts / f"{key}.json"


def load_part(parts: Path, point: Point) -> dict[str, float] | None:
    """A finished point's metrics, or None if absent, unreadable or from a different point."""
    path = _part_path(parts, point.key)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # a part edited by hand (or cut short) is recomputed, never trusted or a crash
    if not isinstance(record, dict) or record.get("key") != point.key:
        return None
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not set(point.task["metrics"]) <= set(metrics):
        return None
    if not all(_is_number(metrics[m]) for m in point.task["metrics"]):
        return None
    return {m: float(metrics[m]) for m in point.task["metrics"]}


@contextlib.contextmanager
def claim_parts(parts: Path) -> Iterator[None]:
    """Hold ``parts/.lock`` while this run computes, so a second run on the same output waits for the
    first and then reuses its parts rather than computing every point again. The lock is the kernel's
    (``flock``): it dies with its process, so a killed run never leaves a stale one. A run that stored
    nothing leaves no ``.parts`` folder behind."""
    import fcntl
    import sys

    created = not parts.exists()
    parts.mkdir(parents=True, exist_ok=True)
    fd = os.open(parts / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another run computing into {str(parts)!r}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
        if created and not any(parts.glob("*.json")):
            for leftover in (parts / ".lock", parts / "computed.log"):
                leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                parts.rmdir()


def store_part(parts: Path, point: Point, result: Mapping[str, Any]) -> None:
    from memdrift.data.io import atomic_write_text

    record = {"key": point.key, "coords": point.coords, "seed": point.seed, "metrics": result["metrics"],
              "note": result.get("note", ""), "seconds": result["seconds"], "task": point.task}
    atomic_write_text(_part_path(parts, point.key), json.dumps(record, indent=1, allow_nan=True))
    # One line per computed point, appended by the single client process, so a
    # rerun that recomputed a finished point would show it twice.
    with open(parts / "computed.log", "a") as log:
        log.write(f"{point.key} {os.getpid()} {time.time():.6f}\n")


# ----------------------------------------------------------------------------- execution

def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class SweepRun:
    """What a sweep did: the dataset, and how the points went (for the CLI and the bench)."""

    dataset: xr.Dataset
    computed: int
    reused: int
    point_seconds: list[float]
    wall_seconds: float  # from the first submission to the last result (cluster start-up excluded)
    startup_seconds: float = 0.0  # starting or reaching the cluster and importing the engine on it


def _warm_worker(runner: str, accuracy: bool = False) -> None:
    _resolve_runner(runner)
    if accuracy:
        importlib.import_module("memdrift.mapping.aihwkit_bridge")
        importlib.import_module("memdrift.experiments.evaluate")


def _iter_serial(todo: list[Point], digital: bytes | None) -> Iterable[tuple[Point, dict[str, Any]]]:
    for point in todo:
        yield point, compute_point(point.task, digital)


def _iter_dask(todo: list[Point], client: Any, digital: bytes | None) -> Iterable[tuple[Point, dict[str, Any]]]:
    from distributed import as_completed

    # One copy of the digital weights per worker, not one per task.
    shared = client.scatter(digital, broadcast=True) if digital is not None else None
    by_key = {}
    futures = []
    for point in todo:
        fut = client.submit(compute_point, point.task, shared, key=f"memdrift-sweep-{point.key}", pure=False)
        by_key[fut.key] = point
        futures.append(fut)
    try:
        for fut, result in as_completed(futures, with_results=True):
            yield by_key[fut.key], result
    finally:
        client.cancel(futures)


def run_sweep(spec: SweepSpec, out_path: str | os.PathLike[str] | None, *, mode: str = "local",
              workers: int | None = None, scheduler: str | None = None, client: Any = None,
              progress: bool = False, runner: str | None = None) -> SweepRun:
    """Compute the points not yet stored under ``OUT.parts/``, then assemble (and write) the dataset.

    ``mode``: ``"local"`` starts a LocalCluster of ``workers`` single-threaded
    processes (default: one a core); ``"scheduler"`` connects to ``scheduler``
    and leaves that cluster as it is; ``"client"`` uses the given ``client``;
    ``"serial"`` computes in this process without Dask. With ``out_path`` None
    nothing is stored (and nothing is resumed). ``runner``: the engine as ``module:function`` (default:
    the scheme's). With an accuracy metric, the digital network is trained once, here, before any point.
    """
    options = dict(mode=mode, workers=workers, scheduler=scheduler, client=client, progress=progress,
                   runner=runner)
    if out_path is None:
        return _run_sweep(spec, None, **options)
    with claim_parts(parts_dir(out_path)):
        return _run_sweep(spec, out_path, **options)


def _run_sweep(spec: SweepSpec, out_path: str | os.PathLike[str] | None, *, mode: str, workers: int | None,
               scheduler: str | None, client: Any, progress: bool, runner: str | None) -> SweepRun:
    if mode not in ("local", "scheduler", "client", "serial"):
        raise MemdriftError(f"mode = {mode!r} is unknown; allowed: local, scheduler, client, serial")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise MemdriftError(f"workers = {workers!r} is out of range; allowed: an integer >= 1")
    runner = runner or default_runner(spec)
    points = enumerate_points(spec, runner=runner)
    parts = parts_dir(out_path) if out_path is not None else None
    results: dict[tuple[int, ...], dict[str, float]] = {}
    todo = []
    for point in points:
        stored = load_part(parts, point) if parts is not None else None
        if stored is None:
            todo.append(point)
        else:
            results[point.index] = stored
    reused = len(results)
    seconds: list[float] = []
    wall = startup = 0.0
    if todo:
        if parts is not None:
            parts.mkdir(parents=True, exist_ok=True)
            # A kill during a part write leaves its temporary file (never a part
            # under its final name); those are the only files safe to sweep away.
            for stale in parts.glob(".*.json.*.part"):
                stale.unlink(missing_ok=True)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), initial=reused, unit="point", desc=f"sweep {spec.name}",
                   disable=not progress, dynamic_ncols=True, leave=False)
        cluster = own_client = None
        begin = time.perf_counter()
        try:
            digital = digital_network(spec.accuracy) if spec.accuracy is not None else None
            if mode == "serial":
                _warm_worker(runner, spec.accuracy is not None)
                stream = _iter_serial(todo, digital)
            else:
                if mode == "client":
                    if client is None:
                        raise MemdriftError("client is None; allowed: a distributed.Client with mode = 'client'")
                    use = client
                elif mode == "scheduler":
                    from distributed import Client

                    try:
                        use = own_client = Client(scheduler, timeout="20s")
                    except (OSError, TimeoutError, ValueError) as exc:
                        raise MemdriftError(f"--scheduler = {scheduler!r} could not be reached ({exc}); allowed: "
                                            "the address of a running dask.distributed scheduler, "
                                            "e.g. tcp://host:8786") from None
                else:
                    from distributed import Client, LocalCluster

                    n = workers or default_workers()
                    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
                    use = own_client = Client(cluster)
                # Import the engine on every worker before timing points, so the
                # per-point seconds measure physics, not a worker's first import.
                use.run(_warm_worker, runner, spec.accuracy is not None)
                stream = _iter_dask(todo, use, digital)
            startup = time.perf_counter() - begin
            start = time.perf_counter()
            for point, result in stream:
                if parts is not None:
                    store_part(parts, point, result)
                results[point.index] = {m: float(result["metrics"][m]) for m in spec.metrics}
                seconds.append(float(result["seconds"]))
                bar.update(1)
            wall = time.perf_counter() - start
        finally:
            bar.close()
            if own_client is not None:
                own_client.close()
            if cluster is not None:
                cluster.close()
    ds = assemble(spec, points, results)
    if out_path is not None:
        from memdrift.data.io import write_dataset

        write_dataset(ds, out_path)
    return SweepRun(dataset=ds, computed=len(todo), reused=reused, point_seconds=seconds, wall_seconds=wall,
                    startup_seconds=startup)


# ----------------------------------------------------------------------------- results

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


# ----------------------------------------------------------------------------- analysis

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

