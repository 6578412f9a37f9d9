"""Network studies on a device record: digital vs analog, drift, DTOD, bits, in-memory training.

Each study returns an ``xarray.Dataset`` with ``accuracy`` over (``mode``,
``repeat``[, sweep dim]) — the contract of ``memdrift evaluate -o OUT.nc`` — plus
the programming cost of the deployed network from the record. The flow follows
the HfOxSy/HfS2 paper: train digitally, hardware-aware train (HWAT) the analog
copy, program it ``repeats`` times (fresh program error each time) and test.

Analog modes:
``analog``          HWAT, global drift compensation (the paper's deployment)
``analog-no-hwat``  the digital weights deployed directly
``analog-no-gdc``, ``analog-baseline`` (drift study): without compensation; baseline = no HWAT, no compensation
``analog-train``    in-memory training with AnalogSGD on the pulsed device
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from memdrift.errors import MemdriftError, check_range
from memdrift.experiments import networks
from memdrift.experiments.datasets import Split
from memdrift.mapping.tiles import resolve_tile

STUDIES = ("accuracy", "drift", "dtod", "bits", "train")
#: drift study times after programming, 1 s … 1 year
DRIFT_TIMES_S = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 3.1536e7)
DTOD_VALUES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
BITS_VALUES = (3, 4, 5, 6, 7, 8, 9)
#: the bits study's default weight range: "tile", the TiO2-x paper's [-4, 4] window read after
#: aihwkit's per-tile weight scaling (each tile's largest |w| at the window's ends); a number R
#: fixes [-R, R] for every tile instead
BITS_WEIGHT_RANGE: float | str = "tile"


@dataclass(frozen=True)
class Settings:
    """Training and evaluation settings (defaults sized for the offline MNIST subset on 2 cores)."""

    epochs: int = 30
    hwat_epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    hwat_lr: float = 0.01
    analog_lr: float = 0.1
    repeats: int = 5
    seed: int = 0
    device: str = "cpu"
    dtod: float = 0.0
    ir_drop: float = 0.0
    #: aihwkit tile (``memdrift.mapping.tiles.TILES``): ``auto`` is the torch tile, reproducible
    #: for ``seed``, unless IR drop is on (the C++ tile, which seeds itself: runs differ)
    tile: str = "auto"
    eval_batch: int = 500
    times_s: tuple[float, ...] = DRIFT_TIMES_S
    dtod_values: tuple[float, ...] = DTOD_VALUES
    bits_values: tuple[int, ...] = BITS_VALUES
    #: the bits study's weight range: "tile" (default) puts each tile's largest |w| at the window's
    #: ends (aihwkit's per-tile weight scaling, restored at the output), the paper's [-4, 4] window
    #: after that scaling; a number r fixes [-r, r] for every tile (r = 4: [-4, 4] read literally)
    bits_weight_range: float | str = BITS_WEIGHT_RANGE
    progress: bool = False
    extra: dict = field(default_factory=dict)

    def checked(self) -> Settings:
        check_range("epochs", self.epochs, 0, 10000)
        check_range("hwat_epochs", self.hwat_epochs, 0, 10000)
        check_range("batch_size", self.batch_size, 1, 1 << 20)
        check_range("repeats", self.repeats, 1, 10000)
        check_range("lr", self.lr, 0.0, 10.0, low_open=True)
        check_range("hwat_lr", self.hwat_lr, 0.0, 10.0, low_open=True)
        check_range("analog_lr", self.analog_lr, 0.0, 10.0, low_open=True)
        check_range("dtod", self.dtod, 0.0, 1.0)
        for t in self.times_s:
            check_range("times_s", t, 0.0, 1e10)
        for d in self.dtod_values:
            check_range("dtod_values", d, 0.0, 1.0)
        for b in self.bits_values:
            check_range("bits_values", b, 1, 16)
        if isinstance(self.bits_weight_range, str):
            if self.bits_weight_range != "tile":
                raise MemdriftError(f"bits_weight_range = {self.bits_weight_range!r} is unknown; allowed: a number "
                                    "> 0 or 'tile'")
        else:
            check_range("bits_weight_range", self.bits_weight_range, 0.0, 1e6, low_open=True)
        resolve_tile(self.tile, self.ir_drop)
        if self.device not in ("cpu", "cuda"):
            raise MemdriftError(f"device = {self.device!r} is unknown; allowed: cpu, cuda")
        return self


def torch_device(name: str) -> torch.device:
    if name == "cuda":
        from aihwkit.simulator.rpu_base import cuda

        if not torch.cuda.is_available():
            raise MemdriftError("device = 'cuda' but torch sees no CUDA device; allowed here: cpu")
        if not cuda.is_compiled():
            raise MemdriftError("device = 'cuda' but aihwkit was built without CUDA; allowed here: cpu")
    return torch.device(name)


# --------------------------------------------------------------------------- training and testing

def _batches(n: int, size: int, gen: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return list(order.split(size))


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int = 500) -> float:
    net.eval()
    dev = next(iter(net.parameters()), torch.zeros(0)).device
    correct = 0
    for idx in _batches(len(x), batch, None):
        correct += int((net(x[idx].to(dev)).argmax(1).cpu() == y[idx]).sum())
    return correct / max(len(x), 1)


def train(net: nn.Module, data: Split, *, epochs: int, optimiser: torch.optim.Optimizer, batch_size: int,
          seed: int, on_epoch: Callable[[int], None] | None = None, progress: bool = False) -> nn.Module:
    """Plain cross-entropy training (digital, HWAT or in-memory, by the optimiser given)."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    dev = next(iter(net.parameters()), torch.zeros(0)).device
    loss_fn = nn.CrossEntropyLoss()
    for epoch in tqdm(range(epochs), disable=not progress, desc="epochs", leave=False):
        net.train()
        for idx in _batches(len(data.x_train), batch_size, gen):
            optimiser.zero_grad()
            loss = loss_fn(net(data.x_train[idx].to(dev)), data.y_train[idx].to(dev))
            loss.backward()
            optimiser.step()
        if on_epoch is not None:
            on_epoch(epoch)
    return net


def train_digital(name: str, data: Split, s: Settings) -> nn.Module:
    torch.manual_seed(s.seed)
    net = networks.build(name, data.input_shape, data.classes).to(torch_device(s.device))
    train(net, data, epochs=s.epochs, optimiser=torch.optim.Adam(net.parameters(), lr=s.lr),
          batch_size=s.batch_size, seed=s.seed, progress=s.progress)
    return net


def to_analog(net: nn.Module, rpu_config: Any, device: str = "cpu") -> nn.Module:
    from aihwkit.nn.conversion import convert_to_analog

    analog = convert_to_analog(copy.deepcopy(net).cpu(), rpu_config)
    return analog.to(torch_device(device)) if device != "cpu" else analog


def hardware_aware_train(analog: nn.Module, data: Split, s: Settings) -> nn.Module:
    """HWAT: fine-tune the analog copy with the weight-noise modifier on (AnalogSGD)."""
    from aihwkit.optim import AnalogSGD

    if s.hwat_epochs == 0:
        return analog
    opt = AnalogSGD(analog.parameters(), lr=s.hwat_lr, momentum=0.9)
    opt.regroup_param_groups(analog)
    return train(analog, data, epochs=s.hwat_epochs, optimiser=opt, batch_size=s.batch_size,
                 seed=s.seed + 1, progress=s.progress)


def program_and_test(analog: nn.Module, data: Split, *, t_inference_s: float, seed: int,
                     eval_batch: int = 500) -> float:
    """Program the analog network (a fresh draw of program error), let it drift, test."""
    torch.manual_seed(seed)
    analog.eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(float(t_inference_s))
    return accuracy(analog, data.x_test, data.y_test, batch=eval_batch)


def _programmed_repeats(analog: nn.Module, data: Split, s: Settings, t: float = 0.0) -> list[float]:
    return [program_and_test(analog, data, t_inference_s=t, seed=s.seed + 1000 + r, eval_batch=s.eval_batch)
            for r in range(s.repeats)]


def set_noise(analog: nn.Module, **changes: Any) -> None:
    """Change noise-model settings of every tile in place (e.g. dtod) without retraining.

    A tile keeps its own copy of the noise model beside its rpu_config's; both change.
    """
    for tile in analog.analog_tiles():
        for model in {id(m): m for m in (getattr(tile, "noise_model", None), tile.rpu_config.noise_model)
                      if m is not None}.values():
            for key, value in changes.items():
                setattr(model, key, value)


def set_drift_compensation(analog: nn.Module, enabled: bool) -> None:
    from aihwkit.inference.compensation.drift import GlobalDriftCompensation

    for tile in analog.analog_tiles():
        tile.rpu_config.drift_compensation = GlobalDriftCompensation() if enabled else None
        tile.drift_compensation = tile.rpu_config.drift_compensation


# --------------------------------------------------------------------------- studies

def _result(acc: np.ndarray, modes: Sequence[str], s: Settings, record: Mapping[str, Any], network: str,
            data: Split, study: str, extra_coords: dict[str, Any] | None = None,
            extra_dims: tuple[str, ...] = ()) -> xr.Dataset:
    from memdrift.data.schema import netcdf_attrs
    from memdrift.mapping.aihwkit_bridge import describe

    coords = {"mode": list(modes), "repeat": np.arange(s.repeats)}
    coords.update(extra_coords or {})
    ds = xr.Dataset({"accuracy": (("mode", "repeat") + extra_dims, acc)}, coords=coords)
    ds["accuracy"].attrs.update(units="1", long_name="test-set classification accuracy")
    ds.attrs.update(study=study, network=network, dataset=data.name, train_samples=len(data.x_train),
                    test_samples=len(data.x_test), weights=networks.weight_count(
                        networks.build(network, data.input_shape, data.classes)) if network != "resnet34" else -1)
    ds.attrs.update(netcdf_attrs({k: v for k, v in vars(s).items() if k not in ("extra", "progress")}, "settings."))
    ds.attrs.update(netcdf_attrs(describe(record), "device."))
    ds.attrs["title"] = f"memdrift evaluate: {study} study, {network} on {data.name}"
    # The record itself, not only its path: the file says which device it evaluated.
    ds.attrs["record_json"] = json.dumps(dict(record), sort_keys=True, default=str)
    return ds


def _cost(ds: xr.Dataset, record: Mapping[str, Any], net: nn.Module) -> xr.Dataset:
    from memdrift.mapping.aihwkit_bridge import programming_cost

    if record.get("energy_per_pulse") is None:
        ds.attrs["programming_cost"] = "not computed: the record has no energy_per_pulse"
        return ds
    weights = [m.weight.detach().cpu().numpy() for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    cost = programming_cost(record, weights)
    units = {"pulses": "1", "energy_J": "J", "time_serial_s": "s", "time_row_parallel_s": "s",
             "pulses_per_weight": "1", "weights": "1", "devices": "1"}
    for key, value in cost.items():
        name = "programming_" + key.removesuffix("_J").removesuffix("_s")
        ds[name] = xr.DataArray(value, attrs={"units": units[key],
                                              "long_name": f"programming the network from reset: {key}"})
    return ds


def _deployed(record: Mapping[str, Any], network: str, data: Split, s: Settings
              ) -> tuple[nn.Module, float, Any, nn.Module]:
    """The digital network, its test accuracy, the record's inference config and the analog copy as trained.

    HWAT is left to the caller: it draws from the global torch stream, so where it runs
    relative to programming is part of a study's reproducibility.
    """
    from memdrift.mapping.aihwkit_bridge import inference_config

    net = train_digital(network, data, s)
    digital = accuracy(net, data.x_test, data.y_test, batch=s.eval_batch)
    cfg = inference_config(record, dtod=s.dtod, ir_drop=s.ir_drop, tile=s.tile)
    return net, digital, cfg, to_analog(net, cfg, s.device)


def study_accuracy(record: Mapping[str, Any], network: str, data: Split, s: Settings) -> xr.Dataset:
    s = s.checked()
    net, digital, cfg, direct = _deployed(record, network, data, s)
    acc_direct = _programmed_repeats(direct, data, s)
    hw = hardware_aware_train(to_analog(net, cfg, s.device), data, s)
    acc_hw = _programmed_repeats(hw, data, s)
    acc = np.array([[digital] * s.repeats, acc_hw, acc_direct])
    return _cost(_result(acc, ["digital", "analog", "analog-no-hwat"], s, record, network, data, "accuracy"),
                 record, net)


def study_drift(record: Mapping[str, Any], network: str, data: Split, s: Settings) -> xr.Dataset:
    """Accuracy vs time after programming, with/without global drift compensation and HWAT."""
    s = s.checked()
    net, digital, cfg, direct = _deployed(record, network, data, s)
    hw = hardware_aware_train(to_analog(net, cfg, s.device), data, s)
    variants = [("analog", hw, True), ("analog-no-gdc", hw, False), ("analog-no-hwat", direct, True),
                ("analog-baseline", direct, False)]
    times = np.asarray(s.times_s, dtype=float)
    acc = np.empty((len(variants) + 1, s.repeats, len(times)))
    acc[0] = digital
    for i, (_, model, gdc) in enumerate(variants, start=1):
        set_drift_compensation(model, gdc)
        for j, t in enumerate(times):
            acc[i, :, j] = _programmed_repeats(model, data, s, t)
    ds = _result(acc, ["digital"] + [v[0] for v in variants], s, record, network, data, "drift",
                 {"time": ("time", times, {"units": "s", "long_name": "time after programming"})}, ("time",))
    return _cost(ds, record, net)


def study_dtod(record: Mapping[str, Any], network: str, data: Split, s: Settings) -> xr.Dataset:
    """Accuracy vs device-to-device variation of the conductance window (HWAT network)."""
    from memdrift.mapping.aihwkit_bridge import inference_config

    s = s.checked()
    net = train_digital(network, data, s)
    digital = accuracy(net, data.x_test, data.y_test, batch=s.eval_batch)
    hw = hardware_aware_train(to_analog(net, inference_config(record, ir_drop=s.ir_drop, tile=s.tile), s.device),
                              data, s)
    values = np.asarray(s.dtod_values, dtype=float)
    acc = np.empty((2, s.repeats, len(values)))
    acc[0] = digital
    for j, d in enumerate(values):
        set_noise(hw, dtod=float(d))
        acc[1, :, j] = _programmed_repeats(hw, data, s)
    ds = _result(acc, ["digital", "analog"], s, record, network, data, "dtod",
                 {"dtod": ("dtod", values, {"units": "1", "long_name": "relative device-to-device variation"})},
                 ("dtod",))
    return _cost(ds, record, net)


def study_bits(record: Mapping[str, Any], network: str, data: Split, s: Settings) -> xr.Dataset:
    """Weight-transfer accuracy vs bits, as in the TiO2-x paper: 2^bits levels of one device spread
    uniformly over the weight window (HRS…LRS ↔ −4…4, zero weight a reference), no HWAT.

    ``s.bits_weight_range`` "tile" (the default) reads the paper's [-4, 4] after aihwkit's per-tile
    weight scaling: each tile's largest |w| maps to the window's ends and the scale is restored at
    the tile's output. A number r fixes [-r, r] for every tile; read literally, the paper's [-4, 4]
    leaves a trained MLP's weights (|w| < 0.5) on a few levels near zero. Measured on MNIST-5k (MLP
    256-128, tio2x-4t record, seeds 0-4), mean gap to digital at 3…9 bits: per tile 0.66, 0.04,
    0.04, 0.03, 0.08, 0.04, 0.08 %; fixed [-4, 4] 12.8, 12.5, 11.3, 1.7, 0.34, 0.27, 0.32 %. The
    paper reports 95.2 % at 3 bits for its MLP, which only the per-tile reading reproduces.

    The record's program error is resampled to 2^bits levels. (A differential pair
    with a zero level instead sends every small weight of a trained MLP to zero
    below ~6 bits: measured 10 % at 3–4 bits on MNIST-5k.)
    """
    from memdrift.mapping.aihwkit_bridge import inference_config

    s = s.checked()
    net = train_digital(network, data, s)
    digital = accuracy(net, data.x_test, data.y_test, batch=s.eval_batch)
    bits = np.asarray(s.bits_values, dtype=int)
    acc = np.empty((2, s.repeats, len(bits)))
    acc[0] = digital
    for j, b in enumerate(bits):
        cfg = inference_config(record, levels=2 ** int(b), w_range=s.bits_weight_range, dtod=s.dtod,
                               ir_drop=s.ir_drop, hwat_noise=0.0, drift=False, mapping="single", tile=s.tile)
        acc[1, :, j] = _programmed_repeats(to_analog(net, cfg, s.device), data, s)
    ds = _result(acc, ["digital", "analog"], s, record, network, data, "bits",
                 {"bits": ("bits", bits, {"units": "1", "long_name": "weight resolution (2^bits levels of one device)"})},
                 ("bits",))
    ds.attrs["weight_range"] = s.bits_weight_range
    return _cost(ds, record, net)


def study_train(record: Mapping[str, Any], network: str, data: Split, s: Settings) -> xr.Dataset:
    """In-memory training with AnalogSGD on the record's pulsed device vs digital training."""
    from aihwkit.optim import AnalogSGD

    from memdrift.mapping.aihwkit_bridge import training_config

    s = s.checked()
    net = train_digital(network, data, s)
    digital = accuracy(net, data.x_test, data.y_test, batch=s.eval_batch)
    torch.manual_seed(s.seed)
    fresh = networks.build(network, data.input_shape, data.classes)
    analog = to_analog(fresh, training_config(record, dtod=s.dtod), s.device)
    opt = AnalogSGD(analog.parameters(), lr=s.analog_lr)
    opt.regroup_param_groups(analog)
    curve: list[float] = []
    train(analog, data, epochs=s.epochs, optimiser=opt, batch_size=s.batch_size, seed=s.seed + 2,
          on_epoch=lambda e: curve.append(accuracy(analog, data.x_test, data.y_test, batch=s.eval_batch)),
          progress=s.progress)
    # repeats of the test: the forward pass of a pulsed tile has read noise
    final = []
    for r in range(s.repeats):
        torch.manual_seed(s.seed + 1000 + r)
        final.append(accuracy(analog, data.x_test, data.y_test, batch=s.eval_batch))
    ds = _result(np.array([[digital] * s.repeats, final]), ["digital", "analog-train"], s, record, network, data,
                 "train")
    ds["training_accuracy"] = xr.DataArray(np.array(curve), dims=("epoch",),
                                           coords={"epoch": np.arange(1, len(curve) + 1)},
                                           attrs={"units": "1", "long_name": "test accuracy after each epoch "
                                                  "of in-memory training"})
    return _cost(ds, record, net)


RUNNERS: dict[str, Callable[..., xr.Dataset]] = {
    "accuracy": study_accuracy, "drift": study_drift, "dtod": study_dtod, "bits": study_bits, "train": study_train,
}


def check_study_inputs(study: str, record: Mapping[str, Any]) -> None:
    """Raise, before any training, when ``record`` lacks a quantity ``study`` is about.

    The drift study on a record without drift would print an accuracy flat in time, which reads
    as a device that does not drift; it ends here instead, naming the key and where it comes from.
    """
    if study not in RUNNERS:
        raise MemdriftError(f"study = {study!r} is unknown; allowed: {', '.join(STUDIES)}")
    if study == "drift":
        drift = record.get("drift")
        if not isinstance(drift, Mapping) or drift.get("nu") is None:
            why = next((n for n in record.get("notes") or [] if "drift: nu is null" in n), None)
            if why is not None:
                raise MemdriftError(f"the drift study needs the record's 'drift.nu', which is null: {why}")
            raise MemdriftError("the drift study needs the record's 'drift.nu', which is null or missing: drift "
                                "comes from retention data (memdrift characterise --protocol retention -o "
                                "retention.nc; then memdrift extract CYCLING.nc retention.nc -o DEVICE.json)")


def run_study(study: str, record: Mapping[str, Any], network: str, data: Split, s: Settings) -> xr.Dataset:
    check_study_inputs(study, record)
    t0 = time.perf_counter()
    ds = RUNNERS[study](record, network, data, s)
    ds.attrs["wall_time_s"] = time.perf_counter() - t0
    return ds


# --------------------------------------------------------------------------- reporting

def table(ds: xr.Dataset) -> str:
    """Mean ± std over repeats, one row per mode (and per sweep value)."""
    mean, std = ds.accuracy.mean("repeat"), ds.accuracy.std("repeat")
    sweep = [d for d in ds.accuracy.dims if d not in ("mode", "repeat")]
    lines = []
    if not sweep:
        lines.append(f"{'mode':<18} accuracy (mean ± std over {ds.sizes['repeat']})")
        for m in ds["mode"].values:
            lines.append(f"{m:<18} {100 * float(mean.sel(mode=m)):6.2f} % ± {100 * float(std.sel(mode=m)):.2f}")
    else:
        dim = sweep[0]
        lines.append(f"{dim:>12} " + " ".join(f"{m:>22}" for m in ds["mode"].values))
        for v in ds[dim].values:
            cells = [f"{100 * float(mean.sel(mode=m, **{dim: v})):6.2f} ± {100 * float(std.sel(mode=m, **{dim: v})):4.2f} %"
                     for m in ds["mode"].values]
            lines.append(f"{v:>12g} " + " ".join(f"{c:>22}" for c in cells))
    for name in ("programming_energy", "programming_pulses", "programming_time_serial",
                 "programming_time_row_parallel"):
        if name in ds:
            lines.append(f"{name}: {float(ds[name]):.4g} {ds[name].attrs['units']}")
    return "\n".join(lines)


def plot(ds: xr.Dataset, path: Any) -> None:
    """Accuracy per mode (or against the swept quantity): mean ± 1 standard deviation over the repeats,
    each repeat as a dot. The y axis is zoomed onto the data; where it does not start at 0 % it carries
    a break mark and says so in its label."""
    from memdrift.experiments import figstyle

    plt = figstyle.pyplot()
    acc = ds.accuracy
    mean, std = acc.mean("repeat") * 100, acc.std("repeat") * 100
    n_rep = ds.sizes["repeat"]
    bars = f"mean ± 1 s.d. over {n_rep} repeat{'s' if n_rep != 1 else ''}"
    sweep = [d for d in acc.dims if d not in ("mode", "repeat")]
    fig, ax = plt.subplots(figsize=(6.0, 4.2), layout="constrained")
    if not sweep:
        modes = list(ds["mode"].values)
        x = np.arange(len(modes))
        ax.errorbar(x, mean.values, yerr=std.values, fmt="o", color="k", ms=6, capsize=5, label=bars)
        for i in x:
            ax.plot(np.full(n_rep, i) + 0.12, acc.values[i] * 100, ".", color="0.5", ms=4,
                    label="each repeat" if i == 0 else None)
        ax.set_xticks(x, modes)
        ax.set_xlim(-0.5, len(modes) - 0.5)
        ax.set_xlabel(figstyle.label(ds["mode"]))
    else:
        dim = sweep[0]
        x = ds[dim].values
        for m in ds["mode"].values:
            ax.errorbar(x, mean.sel(mode=m), yerr=std.sel(mode=m), marker="o", ms=3, capsize=3, label=str(m))
        if dim == "time":
            ax.set_xscale("log")
        ax.set_xlabel(figstyle.label(ds[dim]))
    low = float(np.nanmin((mean - std).values)) if np.isfinite(mean.values).any() else 0.0
    high = float(np.nanmax((mean + std).values)) if np.isfinite(mean.values).any() else 100.0
    bottom = max(0.0, low - max(0.5, 0.15 * (high - low)))
    # a span of a few per cent at the top of a 0-100 % axis would be flat: zoom, and mark the break
    bottom = 0.0 if bottom < 20.0 else bottom
    ax.set_ylim(bottom, min(100.0, high + max(0.3, 0.1 * (high - low))))
    long_name, _ = figstyle.attributes(acc)
    if bottom > 0:
        figstyle.mark_axis_break(ax, "y")
        ax.set_ylabel(figstyle.compose(f"{long_name}, axis from {bottom:.3g} %", "%"))
    else:
        ax.set_ylabel(figstyle.compose(long_name, "%"))
    figstyle.plain_ticks(ax, axis="y")
    ax.legend(fontsize=8, title=None if not sweep else bars, title_fontsize=8)
    ax.set_title(f"{ds.attrs.get('network')} on {ds.attrs.get('dataset')}: {ds.attrs.get('study')}", fontsize=10)
    figstyle.save(fig, path)


def with_settings(s: Settings, **changes: Any) -> Settings:
    return replace(s, **changes)
