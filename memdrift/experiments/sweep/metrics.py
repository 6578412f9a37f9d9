"""A point's metrics: the extraction record's, the costs of a cycle, the ffp scheme's and the
network accuracy through the aihwkit bridge."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from memdrift.emulator import pulses
from memdrift.errors import MemdriftError
from memdrift.experiments.sweep.spec import (ACCURACY_METRICS, EXTRACTION_METRICS, FFP_METRICS, _canonical,
                                             _is_number, _level_count)


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
