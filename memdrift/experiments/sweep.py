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

Not yet: the ``ffp`` scheme and its window/level-count axes (the bulk
four-terminal device is not wired into sweeps) and the ``accuracy`` metric (the
aihwkit bridge is not wired in); both are refused with a message that says so.
Per-level-count metrics of the record (``nu_<n>_p``, ``skipped_levels_<n>_...``)
can be stored already.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import itertools
import json
import math
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.emulator import pulses
from memdrift.emulator.params import FilamentParams, VARIABLE_FIELDS, load_preset
from memdrift.errors import MemdriftError

# ----------------------------------------------------------------------------- spec

#: Pulse-scheme builders a sweep may start from. Options are their keyword arguments.
SCHEME_BUILDERS: dict[str, Callable[..., pulses.PulseTrain]] = {"ramp": pulses.ramp, "identical": pulses.identical}
NOT_YET_SCHEMES = {"ffp": "needs the bulk four-terminal engine (issue 3)"}

#: Metrics every point stores, whatever the spec asks: the Pareto costs.
COST_METRICS = {
    "energy_per_cycle": ("J", "electrical energy of the programming pulses of one cycle (ensemble mean)"),
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
NOT_YET_METRICS = {"accuracy": "network accuracy needs the aihwkit bridge (issue 5)"}

DEFAULT_MAXIMISE = "differential_bins"
DEFAULT_MINIMISE = ("energy_per_cycle", "programming_time_per_cycle")

_TOP_LEVEL = {"sweep", "scheme", "device", "axes", "metrics"}
_SWEEP_KEYS = {"name", "seed", "devices", "cycles", "description"}
_METRIC_KEYS = {"store", "maximise", "minimise"}
_RANGE_KEYS = {"start", "stop", "num", "log"}

DEFAULT_RUNNER = "memdrift.emulator.engine:run_pulses"


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
    base_params: FilamentParams
    axes: tuple[Axis, ...]
    metrics: tuple[str, ...]
    maximise: str
    minimise: tuple[str, ...]
    description: str = ""
    source_text: str = ""

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
    """option -> (integer?, units) from the builder's signature, so new options need no list here."""
    out = {}
    for name, prm in inspect.signature(SCHEME_BUILDERS[scheme]).parameters.items():
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
    seed = _number("sweep.seed", sweep.get("seed", 0), True)
    if seed < 0:
        raise MemdriftError(f"sweep.seed = {seed!r} is out of range; allowed: >= 0")
    if "devices" not in sweep:
        raise MemdriftError("sweep.devices is missing; allowed: an integer >= 1 (ensemble size)")
    devices = _number("sweep.devices", sweep["devices"], True)
    if devices < 1:
        raise MemdriftError(f"sweep.devices = {devices!r} is out of range; allowed: >= 1")
    cycles = _number("sweep.cycles", sweep.get("cycles", 10), True)
    if cycles < 2:
        raise MemdriftError(f"sweep.cycles = {cycles!r} is out of range; allowed: >= 2 "
                            "(a state's cycle-to-cycle sigma needs two cycles)")

    scheme_table = _table(data, "scheme")
    base = scheme_table.pop("base", None)
    if base in NOT_YET_SCHEMES:
        raise MemdriftError(f"scheme.base = {base!r} is not yet available for sweeps ({NOT_YET_SCHEMES[base]}); "
                            f"allowed: {', '.join(SCHEME_BUILDERS)}")
    if base not in SCHEME_BUILDERS:
        raise MemdriftError(f"scheme.base = {base!r} is unknown; allowed: {', '.join(SCHEME_BUILDERS)}")
    option_kinds = _scheme_option_kinds(base)
    defaults = dict(pulses.PAPER_RAMP) if base == "ramp" else {}
    scheme_options: dict[str, Any] = {}
    for key, value in scheme_table.items():
        if key not in option_kinds:
            raise MemdriftError(f"scheme.{key} is unknown for base {base!r}; allowed keys: base, "
                                f"{', '.join(option_kinds)}")
        scheme_options[key] = _number(f"scheme.{key}", value, option_kinds[key][0])
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
    if not isinstance(preset.params, FilamentParams):
        raise MemdriftError(f"device.preset = {preset_name!r} is a {preset.model!r} device; sweeps over it are "
                            "not yet available; allowed: a filament preset")
    field_units = preset.params.units()
    overrides: dict[str, float] = {}
    variation = dict(preset.params.variation)
    for key, value in device.items():
        if key == "variation":
            if not isinstance(value, dict):
                raise MemdriftError(f"device.variation = {value!r} has the wrong type; allowed: a table")
            for vkey, vval in value.items():
                if vkey not in VARIABLE_FIELDS:
                    raise MemdriftError(f"device.variation.{vkey} is unknown; allowed keys: "
                                        f"{', '.join(sorted(VARIABLE_FIELDS))}")
                variation[vkey] = _number(f"device.variation.{vkey}", vval, False)
            continue
        if key not in field_units:
            raise MemdriftError(f"device.{key} is unknown; allowed keys: preset, variation, "
                                f"{', '.join(sorted(field_units))}")
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
        elif axis_name.startswith("variation.") and axis_name.split(".", 1)[1] in VARIABLE_FIELDS:
            integer, units, kind = False, "1", "variation"
        else:
            hint = ""
            if axis_name in ("window_ohm", "levels", "n", "delta_r_window_ohm"):
                hint = " (FFP window and level count axes need the ffp scheme, not yet available)"
            raise MemdriftError(
                f"{where} is unknown{hint}; allowed: options of scheme {base!r} ({', '.join(option_kinds)}), "
                f"device parameters ({', '.join(sorted(field_units))}), or variation.<field> with field one of "
                f"{', '.join(sorted(VARIABLE_FIELDS))}")
        axes.append(Axis(axis_name, kind, _axis_values(where, raw, integer), units, integer))

    metrics_table = _table(data, "metrics", required=False)
    unknown = sorted(set(metrics_table) - _METRIC_KEYS)
    if unknown:
        raise MemdriftError(f"metrics.{unknown[0]} is unknown; allowed keys: {', '.join(sorted(_METRIC_KEYS))}")
    allowed_metrics = {**EXTRACTION_METRICS, **COST_METRICS}
    store = metrics_table.get("store", ["differential_bins", "states", "state_sigma", "bin_width"])
    if not isinstance(store, list) or not all(isinstance(m, str) for m in store):
        raise MemdriftError(f"metrics.store = {store!r} has the wrong type; allowed: a list of metric names")

    allowed_text = f"{', '.join(allowed_metrics)}, nu_<n>_p|d, skipped_levels_<n>_potentiation|depression"

    def check_metric(where: str, m: str) -> str:
        if m in NOT_YET_METRICS:
            raise MemdriftError(f"{where} = {m!r} is not yet available ({NOT_YET_METRICS[m]}); allowed: "
                                f"{allowed_text}")
        if m not in allowed_metrics:
            n = _level_count(m)
            if n is None:
                raise MemdriftError(f"{where} = {m!r} is unknown; allowed: {allowed_text}")
            if n < 2:
                raise MemdriftError(f"{where} = {m!r} has level count {n}; allowed: >= 2")
        return m

    metrics = [check_metric(f"metrics.store[{i}]", m) for i, m in enumerate(store)]
    maximise = metrics_table.get("maximise", DEFAULT_MAXIMISE)
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

    spec = SweepSpec(name=name, seed=seed, devices=devices, cycles=cycles, scheme=base,
                     scheme_options=scheme_options, preset=preset.name, base_params=base_params, axes=tuple(axes),
                     metrics=tuple(metrics), maximise=maximise, minimise=tuple(minimise), description=description,
                     source_text=text)
    # Build every point's parameters and pulse train now, so an axis value out of
    # a physical range fails before anything is computed or written.
    for point in enumerate_points(spec):
        try:
            build_point(point.task)
        except MemdriftError as exc:
            where = ", ".join(f"{k} = {v!r}" for k, v in point.coords.items())
            raise MemdriftError(f"axes ({where}): {exc}") from None
    return spec


def shipped_specs() -> list[str]:
    from importlib import resources

    folder = resources.files("memdrift.data").joinpath("sweeps")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """A spec file by path, or a shipped example by name (``memdrift/data/sweeps/NAME.toml``)."""
    p = Path(path)
    if p.is_file():
        return parse_spec(p.read_text(), str(p))
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
    known = {**EXTRACTION_METRICS, **COST_METRICS}
    if metric in known:
        return known[metric]
    for pattern, (units, text) in LEVEL_METRICS.items():
        match = pattern.match(metric)
        if match:
            return units, text.format(match.group(1)) + f", {match.group(2)}"
    return "1", metric


def enumerate_points(spec: SweepSpec, *, runner: str = DEFAULT_RUNNER) -> list[Point]:
    """All grid points in C order of the axes, each with its seed, part key and task."""
    from memdrift.mapping.extract import SCHEMA

    levels = sorted({n for m in spec.metrics if (n := _level_count(m)) is not None})
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
        seed = point_seed(spec.seed, coords)
        task = {"model": base["model"], "parameters": params, "variation": variation, "scheme": spec.scheme,
                "scheme_options": options, "devices": spec.devices, "cycles": spec.cycles, "seed": seed,
                "metrics": list(spec.metrics), "levels": levels, "extraction_schema": SCHEMA, "runner": runner,
                "preset": spec.preset, "memdrift_version": __version__}
        key = hashlib.sha256(_canonical(task).encode()).hexdigest()[:24]
        points.append(Point(index=index, coords=coords, seed=seed, key=key, task=task))
    return points


def build_point(task: Mapping[str, Any]) -> tuple[FilamentParams, pulses.PulseTrain]:
    params = FilamentParams.from_dict({"model": task["model"], "parameters": task["parameters"],
                                       "variation": task["variation"]})
    train = SCHEME_BUILDERS[task["scheme"]](**task["scheme_options"])
    return params, train


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


def extract_metrics(ds: xr.Dataset, metrics: Sequence[str], levels: Sequence[int]) -> tuple[dict[str, float], str]:
    """The requested extraction metrics of one point, and a note when some could not be computed.

    A point whose data admit no extraction (say, a scheme too weak to switch the
    device: no linear range) is a result of the sweep, not a failure: its
    extraction metrics are NaN and the reason is kept in its part file.
    """
    from memdrift.mapping.extract import extract_record

    wanted = [m for m in metrics if m not in COST_METRICS]
    if not wanted:
        return {}, ""
    try:
        record = extract_record(ds, levels=tuple(levels))
    except MemdriftError as exc:
        return {m: float("nan") for m in wanted}, f"extraction failed: {exc}"
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


def _resolve_runner(path: str) -> Callable[..., xr.Dataset]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def compute_point(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one point (on a worker or in process): emulate the ensemble, extract, cost it.

    Module-level and driven by a plain dict, so Dask can ship it to spawned workers.
    """
    start = time.perf_counter()
    params, train = build_point(task)
    run_pulses = _resolve_runner(task["runner"])
    ds = run_pulses(params, train, devices=task["devices"], cycles=task["cycles"], seed=task["seed"], threads=1)
    extracted, note = extract_metrics(ds, task["metrics"], task["levels"])
    values = {**extracted, **cost_metrics(ds, train)}
    metrics = {m: values[m] for m in task["metrics"]}
    return {"metrics": metrics, "note": note, "seconds": time.perf_counter() - start}


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
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != point.key or set(record.get("metrics", {})) < set(point.task["metrics"]):
        return None
    return {m: float(record["metrics"][m]) for m in point.task["metrics"]}


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


def _warm_worker(runner: str) -> None:
    _resolve_runner(runner)


def _iter_serial(todo: list[Point]) -> Iterable[tuple[Point, dict[str, Any]]]:
    for point in todo:
        yield point, compute_point(point.task)


def _iter_dask(todo: list[Point], client: Any) -> Iterable[tuple[Point, dict[str, Any]]]:
    from distributed import as_completed

    by_key = {}
    futures = []
    for point in todo:
        fut = client.submit(compute_point, point.task, key=f"memdrift-sweep-{point.key}", pure=False)
        by_key[fut.key] = point
        futures.append(fut)
    try:
        for fut, result in as_completed(futures, with_results=True):
            yield by_key[fut.key], result
    finally:
        client.cancel(futures)


def run_sweep(spec: SweepSpec, out_path: str | os.PathLike[str] | None, *, mode: str = "local",
              workers: int | None = None, scheduler: str | None = None, client: Any = None,
              progress: bool = False, runner: str = DEFAULT_RUNNER) -> SweepRun:
    """Compute the points not yet stored under ``OUT.parts/``, then assemble (and write) the dataset.

    ``mode``: ``"local"`` starts a LocalCluster of ``workers`` single-threaded
    processes (default: one a core); ``"scheduler"`` connects to ``scheduler``
    and leaves that cluster as it is; ``"client"`` uses the given ``client``;
    ``"serial"`` computes in this process without Dask. With ``out_path`` None
    nothing is stored (and nothing is resumed).
    """
    if mode not in ("local", "scheduler", "client", "serial"):
        raise MemdriftError(f"mode = {mode!r} is unknown; allowed: local, scheduler, client, serial")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise MemdriftError(f"workers = {workers!r} is out of range; allowed: an integer >= 1")
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
                   disable=not progress, dynamic_ncols=True)
        cluster = own_client = None
        begin = time.perf_counter()
        try:
            if mode == "serial":
                _warm_worker(runner)
                stream = _iter_serial(todo)
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
                use.run(_warm_worker, runner)
                stream = _iter_dask(todo, use)
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
                                        attrs={"units": axis.units, "long_name": _axis_long_name(axis)})
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
    return ds


def _axis_long_name(axis: Axis) -> str:
    if axis.kind == "variation":
        return f"relative lognormal device-to-device spread of {axis.target}"
    if axis.kind == "device":
        meta = {f.name: f.metadata for f in dataclasses.fields(FilamentParams)}
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
    """Maximised metric vs energy per cycle, coloured by programming time; the front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memdrift.data.io import atomic_path

    maximise = str(ds.attrs["pareto_maximise"])
    minimise = [m for m in str(ds.attrs["pareto_minimise"]).split(",") if m]
    x_name = minimise[0] if minimise else "energy_per_cycle"
    c_name = minimise[1] if len(minimise) > 1 else None
    x = ds[x_name].values.reshape(-1)
    y = ds[maximise].values.reshape(-1)
    on = ds["pareto"].values.reshape(-1).astype(bool)
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    colour = ds[c_name].values.reshape(-1) if c_name else None
    sc = ax.scatter(x, y, c=colour, cmap="viridis", s=28, alpha=0.8, label="sweep points")
    if c_name:
        fig.colorbar(sc, ax=ax, label=f"{c_name} [{ds[c_name].attrs.get('units', '')}]")
    order = np.argsort(x[on])
    ax.plot(x[on][order], y[on][order], "o-", color="crimson", mfc="none", ms=10, lw=1.2, label="Pareto front")
    if np.all(x[np.isfinite(x)] > 0) and np.nanmax(x) / max(np.nanmin(x), 1e-300) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"{x_name} [{ds[x_name].attrs.get('units', '')}]")
    ax.set_ylabel(f"{maximise} [{ds[maximise].attrs.get('units', '')}]")
    ax.set_title(str(ds.attrs.get("title", "memdrift sweep")))
    ax.legend(loc="best", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)
