"""Tiny versions of every network path (few samples, 1 epoch), through the real aihwkit.

The record is the hand-built HfOxSy/HfS2-shaped record of test_aihwkit_bridge
(see its docstring), repeated here so the two files stay independent.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("aihwkit", reason="aihwkit not installed: bash scripts/install-aihwkit.sh")

import xarray as xr  # noqa: E402

from memdrift.errors import MemdriftError  # noqa: E402
from memdrift.experiments import datasets, evaluate, networks  # noqa: E402
from memdrift.experiments.cli import main  # noqa: E402
from memdrift.experiments.datasets import Split  # noqa: E402

torch.set_num_threads(1)

BIN_S, SIGMA_S, G_MIN_S = 81.077e-6, 23.7e-6, 50e-6


def record(states: int = 16, df: float = 5.0) -> dict:
    g_max = G_MIN_S + (states - 1) * BIN_S
    levels = np.linspace(G_MIN_S, g_max, states).tolist()
    return {
        "states": states, "bin_width": BIN_S, "state_sigma": SIGMA_S, "g_min": G_MIN_S, "g_max": g_max,
        # keys every extraction record carries (memdrift.mapping.extract.REQUIRED_KEYS); unused by the bridge
        "differential_bins": 2 * states - 1, "linear_r2": {"potentiation": 0.99898, "depression": 0.99925},
        "nu": {}, "pearson": None, "skipped_levels": {}, "notes": [],
        "program_error_t": [{"conductance": g, "loc": 0.0, "scale": SIGMA_S * math.sqrt((df - 2) / df), "df": df}
                            for g in levels],
        "drift": {"nu": 0.0049, "activation_energy_eV": 0.6},
        "energy_per_pulse": 23.74e-9 / 40, "pulse_width": 255e-9, "read_time": 30e-6,
        "delta_g": {b: {"conductance": levels, "mean": [BIN_S] * states, "std": [0.2 * BIN_S] * states}
                    for b in ("potentiation", "depression")},
    }


def film_record(program_error: float = 5e-4) -> dict:
    """record() with the FFP film's program error: ``program_error`` of the window at every level
    (0.05 %; the tio2x-4t preset's extraction gives 0.045 %)."""
    film = record()
    window = film["g_max"] - film["g_min"]
    for row in film["program_error_t"]:
        row["scale"] = program_error * window
    return film


TINY = evaluate.Settings(epochs=1, hwat_epochs=1, repeats=2, batch_size=16, eval_batch=64,
                         times_s=(1.0, 1e6), dtod_values=(0.0, 0.5), bits_values=(3, 6))


def synthetic(shape: tuple[int, ...], n_train: int = 32, n_test: int = 16, classes: int = 10) -> Split:
    gen = torch.Generator().manual_seed(0)
    return Split("synthetic", torch.rand(n_train, *shape, generator=gen),
                 torch.randint(0, classes, (n_train,), generator=gen), torch.rand(n_test, *shape, generator=gen),
                 torch.arange(n_test) % classes)


@pytest.fixture(scope="module")
def digits_small() -> Split:
    return datasets.load("digits").subset(200, 100)


# ---------------------------------------------------------------- networks

@pytest.mark.parametrize("name, shape, out", [
    ("mlp", (1, 28, 28), 10), ("mlp-256-128", (1, 28, 28), 10), ("lenet5", (1, 28, 28), 10),
    ("lenet5", (1, 8, 8), 10), ("cifar-resnet3", (3, 32, 32), 10), ("cifar-resnet3", (1, 28, 28), 10),
])
def test_network_shapes(name, shape, out):
    net = networks.build(name, shape, out)
    assert net(torch.zeros(2, *shape)).shape == (2, out)


def test_weight_counts_match_the_papers():
    assert networks.weight_count(networks.build("mlp", (1, 28, 28), 10)) == 784 * 500 + 500 + 500 * 10 + 10
    n = networks.weight_count(networks.build("cifar-resnet3", (3, 32, 32), 10))
    assert n == pytest.approx(210_000, rel=0.05)


def test_resnet34_needs_torchvision():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(MemdriftError, match="torchvision"):
            networks.build("resnet34", (3, 64, 64), 101)
        pytest.skip("torchvision not installed (optional); checked the clear error instead")
    net = networks.build("resnet34", (3, 64, 64), 101)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 101)


def test_unknown_network_and_dataset_are_named():
    with pytest.raises(MemdriftError, match="network"):
        networks.build("vgg", (1, 28, 28), 10)
    with pytest.raises(MemdriftError, match="dataset"):
        datasets.load("imagenet")


# ---------------------------------------------------------------- datasets

def test_mnist_5k_split_is_fixed_and_stratified():
    a, b = datasets.load("mnist-5k"), datasets.load("mnist-5k")
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert torch.equal(a.y_test, b.y_test) and torch.equal(a.x_train[:5], b.x_train[:5])
    assert np.bincount(a.y_test.numpy()).tolist() == [100] * 10
    assert 0.0 <= float(a.x_train.min()) and float(a.x_train.max()) <= 1.0


def test_torchvision_datasets_need_a_directory(tmp_path):
    with pytest.raises(MemdriftError, match="--data-dir"):
        datasets.load("cifar10")
    with pytest.raises(MemdriftError, match="not a directory"):
        datasets.load("mnist", tmp_path / "missing")


# ---------------------------------------------------------------- every study, tiny

@pytest.mark.parametrize("tile", ["cpp", "torch"])
@pytest.mark.parametrize("name, shape", [("lenet5", (1, 28, 28)), ("cifar-resnet3", (3, 32, 32))])
def test_conv_networks_train_hwat_and_program_on_synthetic_tensors(name, shape, tile):
    from memdrift.mapping.aihwkit_bridge import inference_config

    data = synthetic(shape)
    net = evaluate.train_digital(name, data, TINY)
    analog = evaluate.hardware_aware_train(evaluate.to_analog(net, inference_config(record(), tile=tile)), data,
                                           TINY)
    # every Linear/Conv2d became an analog layer (a wide layer is split over several tiles)
    assert len(list(analog.analog_layers())) == sum(
        1 for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    acc = evaluate.program_and_test(analog, data, t_inference_s=3600.0, seed=0)
    assert 0.0 <= acc <= 1.0


def test_accuracy_study_contract(digits_small):
    ds = evaluate.run_study("accuracy", record(), "mlp", digits_small, TINY)
    assert ds.accuracy.dims == ("mode", "repeat")
    assert {"digital", "analog"} <= set(ds["mode"].values.tolist())
    assert ds.sizes["repeat"] == 2
    assert ((ds.accuracy >= 0) & (ds.accuracy <= 1)).all()
    # digital accuracy is one number repeated; analog repeats draw fresh program error
    assert float(ds.accuracy.sel(mode="digital").std()) == 0.0
    assert ds["programming_energy"].attrs["units"] == "J" and float(ds["programming_energy"]) > 0
    assert "analog" in evaluate.table(ds)


def test_same_seed_same_accuracies_on_the_default_tile(digits_small):
    """The default tile (torch) draws HWAT noise, program error and periphery noise from torch's
    seeded generator: a study run twice with one seed gives the same numbers. (The C++ tile seeds
    itself from outside the process, so its runs differ.)"""
    first = evaluate.run_study("accuracy", record(), "mlp", digits_small, TINY)
    second = evaluate.run_study("accuracy", record(), "mlp", digits_small, TINY)
    np.testing.assert_array_equal(first.accuracy.values, second.accuracy.values)
    assert first.attrs["settings.tile"] == "auto"


def test_tile_choice_and_ir_drop():
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    from memdrift.mapping.aihwkit_bridge import inference_config

    assert isinstance(inference_config(record(), tile="auto"), TorchInferenceRPUConfig)
    # IR drop exists only on the C++ tile: auto falls back to it, an explicit torch tile is refused
    with_ir = inference_config(record(), tile="auto", ir_drop=1.0)
    assert not isinstance(with_ir, TorchInferenceRPUConfig) and with_ir.forward.ir_drop == 1.0
    with pytest.raises(MemdriftError, match="tile = 'torch' with ir_drop"):
        inference_config(record(), tile="torch", ir_drop=1.0)
    with pytest.raises(MemdriftError, match="tile = 'torch' with ir_drop"):
        evaluate.Settings(tile="torch", ir_drop=0.5).checked()
    with pytest.raises(MemdriftError, match="tile = 'gpu' is unknown; allowed: auto, torch, cpp"):
        evaluate.Settings(tile="gpu").checked()


def test_drift_study_has_time_and_compensation_modes(digits_small):
    ds = evaluate.run_study("drift", record(), "mlp-256-128", digits_small, TINY)
    assert ds.accuracy.dims == ("mode", "repeat", "time")
    assert ds["time"].attrs["units"] == "s"
    assert {"digital", "analog", "analog-no-gdc", "analog-baseline"} <= set(ds["mode"].values.tolist())


def test_dtod_bits_and_train_studies_run(digits_small):
    dt = evaluate.run_study("dtod", record(), "mlp-256-128", digits_small, TINY)
    assert dt.accuracy.dims == ("mode", "repeat", "dtod")
    bits = evaluate.run_study("bits", record(), "mlp-256-128", digits_small, TINY)
    assert bits["bits"].values.tolist() == [3, 6] and bits.attrs["weight_range"] == "tile"
    tr = evaluate.run_study("train", record(), "mlp-256-128", digits_small, TINY)
    assert set(tr["mode"].values.tolist()) == {"digital", "analog-train"}
    assert tr["training_accuracy"].sizes["epoch"] == 1


def test_analog_tracks_digital_and_drift_compensation_helps():
    """Behaviour, not only shapes: on digits the analog MLP is close to digital, and with
    strong drift global drift compensation recovers accuracy a year later.

    With one ν for every device, drift of a differential pair is a global scale of
    the weights; it hurts only through what does not scale with them (digital biases,
    output noise, ADC range). At ν = 0.1 a year shrinks the weights 5.6-fold and costs
    < 1 %; at ν = 0.2 it is 32-fold and the uncompensated network fails (measured:
    0.96 with compensation, 0.44 without)."""
    data = datasets.load("digits")
    s = evaluate.Settings(epochs=15, hwat_epochs=2, repeats=3, batch_size=32, times_s=(3.15e7,))
    strong = record()
    strong["drift"] = {"nu": 0.2, "activation_energy_eV": 0.6}
    ds = evaluate.run_study("drift", strong, "mlp", data, s)
    acc = ds.accuracy.mean("repeat").isel(time=0)
    assert float(acc.sel(mode="digital")) > 0.9
    assert float(acc.sel(mode="analog")) > float(acc.sel(mode="digital")) - 0.03
    assert float(acc.sel(mode="analog")) > float(acc.sel(mode="analog-no-gdc")) + 0.05


@pytest.mark.slow
def test_hwat_acceptance_on_the_shipped_hfoxsy_record():
    """Issue 5's acceptance: on the offline MNIST subset, with the record extracted from the shipped
    hfoxsy-hfs2 preset (200 devices x 100 cycles, seed 0), the HWAT analog MLP (mean of 5 programmings)
    is within 0.5 % of digital, as a mean over training seeds 0-9. One seed's gap moves by tenths of a
    percent (the 1,000-digit test set, the digital network of that seed), so one seed cannot decide it;
    the torch tile makes every seed's number reproducible."""
    from memdrift.emulator.engine import run_pulses
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.pulses import ramp
    from memdrift.mapping.extract import extract_record

    record = extract_record(run_pulses(load_preset("hfoxsy-hfs2").params, ramp(), devices=200, cycles=100, seed=0,
                                       threads=2), levels=(32,))
    data = datasets.load("mnist-5k")
    gaps = []
    for seed in range(10):
        acc = evaluate.run_study("accuracy", record, "mlp", data, evaluate.Settings(seed=seed)).accuracy
        gaps.append(float(acc.sel(mode="digital").mean() - acc.sel(mode="analog").mean()))
    print("gaps to digital, seeds 0-9 (%):", np.round(100 * np.array(gaps), 2).tolist())
    assert np.mean(gaps) <= 0.005, gaps


# ---------------------------------------------------------------- command line

def test_cli_writes_netcdf_and_png(tmp_path, capsys):
    rec = tmp_path / "device.json"
    rec.write_text(json.dumps(record()))
    out = tmp_path / "res.nc"
    code = main(["evaluate", str(rec), "--network", "mlp", "--dataset", "digits", "-o", str(out),
                 "--epochs", "1", "--hwat-epochs", "1", "--repeats", "2", "--train-samples", "100",
                 "--test-samples", "50", "--threads", "1"])
    assert code == 0
    ds = xr.open_dataset(out)
    assert ds.accuracy.dims == ("mode", "repeat") and ds.attrs["dataset"] == "digits"
    ds.close()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "digital" in capsys.readouterr().out


@pytest.mark.parametrize("content, words", [
    ("not json", "not valid JSON"),
    (json.dumps({"g_min": 1e-5, "g_max": 1e-3, "states": 16}), "program_error_t"),
    (json.dumps({**record(), "g_max": -1.0}), "g_max"),
])
def test_cli_bad_record_is_one_line_and_no_file(tmp_path, capsys, content, words):
    rec = tmp_path / "device.json"
    rec.write_text(content)
    out = tmp_path / "res.nc"
    code = main(["evaluate", str(rec), "--network", "mlp", "--dataset", "digits", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_missing_data_dir_is_one_line(tmp_path, capsys):
    rec = tmp_path / "device.json"
    rec.write_text(json.dumps(record()))
    code = main(["evaluate", str(rec), "--network", "lenet5", "--dataset", "fashion-mnist", "--data-dir",
                 str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "not a directory" in err


@pytest.mark.parametrize("flag, value, words", [("--weight-range", "wide", "weight_range = 'wide'"),
                                                 ("--weight-range", "-1", "bits_weight_range"),
                                                 ("--tile", "torch", "tile = 'torch' with ir_drop")])
def test_cli_bad_weight_range_or_tile_is_one_line_and_no_file(tmp_path, capsys, flag, value, words):
    rec = tmp_path / "device.json"
    rec.write_text(json.dumps(record()))
    out = tmp_path / "out.nc"
    extra = ["--ir-drop", "1.0"] if flag == "--tile" else []
    code = main(["evaluate", str(rec), "--network", "mlp", "--dataset", "digits", "--study", "bits", flag, value,
                 *extra, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bits_study_default_per_tile_range_meets_issue_5_acceptance():
    """Issue 5's acceptance for the bits study's default range ("tile": the TiO2-x paper's [-4, 4]
    window after aihwkit's per-tile weight scaling, each tile's largest |w| at the window's ends): on
    digits (MLP 256-128, the film record) the analog mean is within 1 % of digital at 5 and 6 bits
    and within 3 % at 3 bits, and the fixed [-4, 4] (``bits_weight_range=4.0``), which leaves a
    trained MLP's small weights on a few levels around zero, is strictly worse at 3 bits. Measured
    (seed 0): digital 0.972; default 0.967, 0.976, 0.975 at 3, 5, 6 bits; fixed [-4, 4] 0.925 at
    3 bits (and 0.936 at 5: the fixed range misses the 5-bit bound)."""
    data = datasets.load("digits")
    s = evaluate.Settings(epochs=15, repeats=2, batch_size=32, bits_values=(3, 5, 6))
    assert s.bits_weight_range == "tile"
    default = evaluate.run_study("bits", film_record(), "mlp-256-128", data, s)
    fixed = evaluate.run_study("bits", film_record(), "mlp-256-128", data,
                               evaluate.with_settings(s, bits_weight_range=4.0, bits_values=(3,)))
    assert default.attrs["weight_range"] == "tile" and fixed.attrs["weight_range"] == 4.0
    digital = float(default.accuracy.sel(mode="digital").mean())
    acc = default.accuracy.sel(mode="analog").mean("repeat")
    acc_fixed = float(fixed.accuracy.sel(mode="analog", bits=3).mean())
    print(f"digits: digital {digital:.3f}, default (per tile) at 3/5/6 bits {acc.values.round(3).tolist()}, "
          f"[-4, 4] at 3 bits {acc_fixed:.3f}")
    assert float(acc.sel(bits=3)) >= digital - 0.03
    assert float(acc.sel(bits=5)) >= digital - 0.01 and float(acc.sel(bits=6)) >= digital - 0.01
    assert acc_fixed < float(acc.sel(bits=3))
    with pytest.raises(MemdriftError, match="bits_weight_range"):
        evaluate.Settings(bits_weight_range="column").checked()


def test_bits_study_improves_with_bits_and_reaches_digital():
    """Weight transfer (TiO2-x paper's mapping, one device per weight, the default range: the paper's
    [-4, 4] window after per-tile weight scaling) on digits: accuracy does not fall with more bits
    beyond noise, and 9 bits is within 1 % of digital.

    The program error is the FFP film's: 0.05 % of the window (the tio2x-4t preset's
    extraction gives 0.045 %). With the filament's 1.5 % (σ 23.7 µS of a 1.2 mS
    window) on the fixed [-4, 4] range (0.12 in weight units) small weights drown and
    accuracy *falls* with bits (measured 0.90 at 3 bits, 0.45-0.50 at 6 and 9; per tile
    it stays at 0.96-0.97): the study answers which device suits weight transfer, so
    this test pins the low-error case."""
    data = datasets.load("digits")
    s = evaluate.Settings(epochs=15, repeats=3, batch_size=32, bits_values=(3, 6, 9))
    ds = evaluate.run_study("bits", film_record(), "mlp-256-128", data, s)
    acc = ds.accuracy.sel(mode="analog").mean("repeat").values
    noise = 3 * float(ds.accuracy.sel(mode="analog").std("repeat").max()) + 0.005
    digital = float(ds.accuracy.sel(mode="digital").mean())
    assert acc[1] >= acc[0] - noise and acc[2] >= acc[1] - noise
    assert acc[2] >= digital - 0.01
    assert acc[0] > 0.3  # 3 bits without a zero level still classifies (half-step weights)
