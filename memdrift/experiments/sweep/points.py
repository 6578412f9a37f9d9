"""The grid's points: each one's seed (from its axis values), part key and task, and the run of one
point (on a Dask worker or in process)."""

from __future__ import annotations

import hashlib
import importlib
import itertools
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from memdrift import __version__
from memdrift.emulator import pulses
from memdrift.experiments.sweep.metrics import _FFP_DATASET_METRICS, _record, accuracy_metrics, extract_metrics
from memdrift.experiments.sweep.schemes import SWEEP_SCHEMES, PointFailed, default_runner
from memdrift.experiments.sweep.spec import (ACCURACY_METRICS, BYTES_PER_PULSE, COST_METRICS, Point, SweepSpec,
                                             _canonical, _level_count)
from memdrift.models import MODELS


def point_seed(spec_seed: int, coords: Mapping[str, float | int]) -> int:
    """Seed of one point: the spec seed and the point's axis values, hashed (not its position in a queue)."""
    digest = hashlib.sha256(_canonical({k: repr(v) for k, v in coords.items()}).encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    state = np.random.SeedSequence([int(spec_seed), *words]).generate_state(2, np.uint32)
    # run_pulses takes a Python int; 63 bits keep it positive in any signed type too.
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


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


def point_memory_bytes(devices: int, cycles: int, scheme_run: Any) -> float:
    """The arrays one point's run holds: devices x pulses x the per-pulse outputs."""
    if isinstance(scheme_run, pulses.PulseTrain):
        per_device = cycles * scheme_run.n_pulses
    elif isinstance(scheme_run, dict):  # ffp: events of both branches plus the map pulses
        per_device = 2 * (scheme_run["max_events"] + scheme_run["map_pulses"])
    else:  # write-verify: at most max_pulses a target
        per_device = len(scheme_run.targets_s) * scheme_run.max_pulses
    return float(devices) * per_device * BYTES_PER_PULSE


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
