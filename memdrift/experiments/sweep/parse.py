"""Reading a sweep spec: TOML text or a file (or a shipped example) into a checked :class:`SweepSpec`;
every error names the key at fault."""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memdrift.emulator.params import load_preset
from memdrift.errors import MemdriftError, check_seed
from memdrift.experiments.sweep.points import build_point, enumerate_points, point_memory_bytes
from memdrift.experiments.sweep.schemes import SCHEMES, SWEEP_SCHEMES
from memdrift.experiments.sweep.spec import (ACCURACY_DATASETS, ACCURACY_METRICS, ACCURACY_SETTINGS, COST_METRICS,
                                             DEFAULT_MINIMISE, DEFAULT_POINT_MEMORY_BYTES, EXTRACTION_METRICS,
                                             FFP_METRICS, FFP_OPTIONS, MAX_AXIS_VALUES, MAX_COUNT_OPTION,
                                             MAX_POINTS, MAX_WIDTH_S, Axis, SweepSpec, _level_count, _number)
from memdrift.models import MODELS


_TOP_LEVEL = {"sweep", "scheme", "device", "axes", "metrics"}
_SWEEP_KEYS = {"name", "seed", "devices", "cycles", "description"}
_METRIC_KEYS = {"store", "maximise", "minimise", "accuracy"}
_RANGE_KEYS = {"start", "stop", "num", "log"}


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
