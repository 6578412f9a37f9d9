"""Physics in the loop: weights programmed on emulated devices, aged, and held by aihwkit's tiles.

Behaviour, not emulated numbers: the preset's calibration may change.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from memdrift.emulator.params import load_preset
from memdrift.emulator.write_verify import WriteVerify, program_to_targets
from memdrift.mapping import physics_program as pp

PARAMS = load_preset("hfoxsy-hfs2").params


@pytest.fixture(scope="module")
def fit() -> pp.LinearFit:
    return pp.ramp_linear_fit(PARAMS, seed=0)


def weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(12, 20)), rng.normal(size=(5, 12))]


def test_write_verify_targets_land_in_band():
    scheme = WriteVerify()
    targets = np.linspace(0.6e-3, 1.7e-3, 300)
    res = program_to_targets(PARAMS, targets, scheme, seed=3)
    assert res["converged"].all()
    assert np.all(np.abs(res["conductance_s"] - targets) <= scheme.tolerance * targets)
    assert np.all(res["pulses"] >= 1) and np.all(res["energy_j"] > 0)
    round_s = scheme.width_s + scheme.read_gap_s + scheme.read_width_s
    np.testing.assert_allclose(res["time_s"], scheme.read_width_s + res["pulses"] * round_s)


def test_unreachable_target_is_counted_not_dropped(fit):
    # a budget of one pulse cannot reach the top of the window from reset
    prog = pp.program_network(PARAMS, [np.array([[1.0, -1.0, 0.5]])], scheme="write-verify", fit=fit,
                              verify=WriteVerify(max_pulses=1))
    acc = prog.accounting()
    assert acc["out_of_band"].sum() >= 2
    assert acc["devices"].sum() == 6 and prog.conductance_s[0].shape == (2, 1, 3)


def test_pulse_count_is_the_linear_fits_inverse(fit):
    prog = pp.program_network(PARAMS, weights(), scheme="pulse-count", fit=fit)
    for target, pulses in zip(prog.target_s, prog.pulses):
        expected = np.clip(np.rint((target - fit.intercept_s) / fit.slope_s_per_pulse) + 1, 0, fit.amplitude_v.size)
        np.testing.assert_array_equal(pulses, expected)
    # the inverse of the fit reaches back to the target within half a pulse's step
    g_fit = fit.intercept_s + fit.slope_s_per_pulse * (fit.pulses_for(prog.target_s[0]) - 1)
    assert np.all(np.abs(g_fit - prog.target_s[0]) <= 0.5 * fit.slope_s_per_pulse + 1e-12)
    # pulses climb the window: a larger target never takes fewer pulses
    order = np.argsort(prog.target_s[0].ravel())
    assert np.all(np.diff(prog.pulses[0].ravel()[order]) >= 0)


def test_noise_and_variation_off_pulse_count_lands_on_the_ramps_levels(fit):
    """Identical noise-free devices: each weight takes exactly the nominal ramp's conductance after its
    pulse count, so the weights are quantised to the ramp's levels and nothing else."""
    import dataclasses

    from memdrift.emulator import pulses as trains
    from memdrift.emulator.engine import run_pulses

    ideal = dataclasses.replace(PARAMS, variation={})
    prog = pp.program_network(ideal, weights(), scheme="pulse-count", fit=fit, noise=False)
    train = trains.from_name("ramp")
    pot = np.array([b == trains.POTENTIATION for b in train.branch])
    nominal = run_pulses(ideal, train, devices=1, noise=False)["conductance"].values[0, 0, pot]
    levels = np.concatenate([[np.nan], nominal])
    for g, n in zip(prog.conductance_s, prog.pulses):
        # 1e-3: the verify read of the reset state before the first pulse disturbs the gap by ~1e-4 of a
        # level, which the plain ramp does not have; the levels are ~10 % apart
        np.testing.assert_allclose(g[n > 0], levels[n[n > 0]], rtol=1e-3)
        assert np.unique(g[n > 0]).size <= nominal.size
        assert np.all(np.diff(np.unique(g[n > 0])) > 0.5 * fit.slope_s_per_pulse * 0.4)


def test_aging_lowers_the_pair_difference_faster_when_hot(fit):
    times = (1.0, 86400.0, 3.1536e7, 3.1536e8)
    ages = [(t_k, t) for t_k in (300.0, 358.0) for t in times]
    prog = pp.program_network(PARAMS, weights(), scheme="write-verify", fit=fit, ages=ages)
    start = np.abs(prog.conductance_s[0][0] - prog.conductance_s[0][1]).mean()
    for t_k in (300.0, 358.0):
        means = [np.abs(np.subtract(*prog.aged_s[(t_k, t)][0])).mean() for t in times]
        assert means[-1] < start
        # at 300 K the first day moves the mean by a few 1e-5 either way (hops both ways at zero field)
        assert np.all(np.diff(means) <= 1e-4 * start), (t_k, means)
        assert means[-1] < means[1]
    for t in times[1:]:
        hot = np.abs(np.subtract(*prog.aged_s[(358.0, t)][0])).mean()
        cold = np.abs(np.subtract(*prog.aged_s[(300.0, t)][0])).mean()
        assert hot < cold


def test_accounting_sums_the_devices(fit):
    prog = pp.program_network(PARAMS, weights(), scheme="write-verify", fit=fit)
    acc = prog.accounting()
    for layer in range(2):
        assert acc["pulses"][layer] == prog.pulses[layer].sum()
        assert acc["energy_j"][layer] == pytest.approx(prog.energy_j[layer].sum(), rel=1e-12)
        assert acc["time_serial_s"][layer] == pytest.approx(prog.time_s[layer].sum(), rel=1e-12)
        assert acc["time_row_parallel_s"][layer] <= acc["time_serial_s"][layer]
        assert acc["devices"][layer] == 2 * weights()[layer].size
    n_pulses, devices = prog.pulse_histogram()
    assert devices.sum() == acc["devices"].sum()
    assert (n_pulses * devices).sum() == acc["pulses"].sum()


@pytest.mark.parametrize("scheme", pp.SCHEMES)
def test_deterministic_for_a_seed_and_across_chunks_and_threads(fit, scheme):
    ages = [(358.0, 86400.0)]
    whole = pp.program_network(PARAMS, weights(), scheme=scheme, fit=fit, ages=ages, seed=5)
    again = pp.program_network(PARAMS, weights(), scheme=scheme, fit=fit, ages=ages, seed=5)
    chunked = pp.program_network(PARAMS, weights(), scheme=scheme, fit=fit, ages=ages, seed=5, chunk_devices=37,
                                 threads=2)
    other = pp.program_network(PARAMS, weights(), scheme=scheme, fit=fit, ages=ages, seed=6)
    for layer in range(2):
        for run in (again, chunked):
            np.testing.assert_array_equal(run.conductance_s[layer], whole.conductance_s[layer])
            np.testing.assert_array_equal(run.pulses[layer], whole.pulses[layer])
            np.testing.assert_array_equal(run.energy_j[layer], whole.energy_j[layer])
            np.testing.assert_array_equal(run.aged_s[ages[0]][layer], whole.aged_s[ages[0]][layer])
    assert not np.array_equal(other.conductance_s[0], whole.conductance_s[0])


def test_programming_on_dask_workers_is_the_serial_run_bit_for_bit(fit):
    """Chunks programmed and aged by a real LocalCluster (two worker processes) give the serial bits,
    for both schemes; a different seed on the cluster does not."""
    distributed = pytest.importorskip("distributed")
    ages = [(358.0, 86400.0), (358.0, 3.1536e7)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for scheme in pp.SCHEMES:
            serial = pp.program_network(PARAMS, weights(), scheme=scheme, fit=fit, ages=ages, seed=5)
            spread = pp.program_network(PARAMS, weights(), scheme=scheme, fit=fit, ages=ages, seed=5,
                                        chunk_devices=50, client=client)
            for layer in range(2):
                np.testing.assert_array_equal(spread.conductance_s[layer], serial.conductance_s[layer])
                np.testing.assert_array_equal(spread.pulses[layer], serial.pulses[layer])
                np.testing.assert_array_equal(spread.energy_j[layer], serial.energy_j[layer])
                for key in ages:
                    np.testing.assert_array_equal(spread.aged_s[key][layer], serial.aged_s[key][layer])
        other = pp.program_network(PARAMS, weights(), scheme=pp.SCHEMES[-1], fit=fit, ages=ages, seed=6,
                                   chunk_devices=50, client=client)
        assert not np.array_equal(other.conductance_s[0], serial.conductance_s[0])


torch = pytest.importorskip("torch")
pytest.importorskip("aihwkit", reason="aihwkit not installed: bash scripts/install-aihwkit.sh")


@pytest.mark.parametrize("tile", ["torch", "cpp"])
def test_tiles_hold_exactly_the_emulated_weights(fit, tile):
    from torch import nn

    from memdrift.experiments import evaluate
    from memdrift.mapping import physics_tiles
    from memdrift.mapping.aihwkit_bridge import inference_config
    from test_networks import record

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 5))
    analog = evaluate.to_analog(net, inference_config(record(), tile=tile))
    targets = physics_tiles.tile_weights(analog)
    prog = pp.program_network(PARAMS, targets, scheme="write-verify", fit=fit, ages=[(358.0, 3.1536e7)])
    physics_tiles.install(analog, prog)
    analog.eval()
    analog.program_analog_weights()
    scale = [m / (prog.g_max_s - prog.g_min_s) for m in prog.w_max]  # weight per siemens of a layer
    for i, t in enumerate(analog.analog_tiles()):
        held = t.tile.get_weights().numpy()
        g = prog.conductance_s[i]
        np.testing.assert_allclose(held, (g[0] - g[1]) * scale[i], rtol=1e-6, atol=1e-6 * prog.w_max[i])
        # the programmed weights differ from the targets by the emulated error, not by nothing
        assert not np.allclose(held, targets[i], rtol=0, atol=1e-6)
    physics_tiles.select_age(analog, 358.0)
    analog.drift_analog_weights(3.1536e7)
    for i, t in enumerate(analog.analog_tiles()):
        g = prog.aged_s[(358.0, 3.1536e7)][i]
        np.testing.assert_allclose(t.tile.get_weights().numpy(), (g[0] - g[1]) * scale[i], rtol=1e-6,
                                   atol=1e-6 * prog.w_max[i])


def test_without_aging_the_programmed_accuracy_is_unchanged():
    """Aging runs on a copy of the programmed devices: asking for it changes nothing at t = 0."""
    from memdrift.experiments import datasets, evaluate, evaluate_physics
    from test_networks import record

    data = datasets.load("digits").subset(200, 100)
    s = evaluate.Settings(epochs=1, hwat_epochs=1, repeats=1, batch_size=16, eval_batch=64)
    kw = dict(params=PARAMS, preset="hfoxsy-hfs2", scheme="write-verify")
    plain = evaluate_physics.study_physics(record(), "mlp", data, s, **kw)
    aged = evaluate_physics.study_physics(record(), "mlp", data, s, ages_s=[3.1536e7], temperatures_k=[358.0], **kw)
    assert plain.accuracy.sizes["time"] == 1
    assert float(aged.accuracy.sel(mode="physics", time=0.0).item()) == float(
        plain.accuracy.sel(mode="physics", time=0.0).item())
    np.testing.assert_array_equal(aged["physics_energy_per_layer"].values, plain["physics_energy_per_layer"].values)


def test_cli_end_to_end_on_digits(tmp_path):
    from memdrift.data.io import open_dataset
    from memdrift.experiments.cli import main
    from test_networks import record

    rec = tmp_path / "r.json"
    rec.write_text(json.dumps(record()))
    out = tmp_path / "phys.nc"
    argv = [str(rec), "--network", "mlp", "--dataset", "digits", "--program", "physics", "--scheme",
            "pulse-count", "--age", "1d", "--age-temperature", "300", "--age-temperature", "358", "--epochs", "1",
            "--hwat-epochs", "1", "--repeats", "1", "--train-samples", "200", "--test-samples", "100", "--quiet",
            "-o", str(out)]
    assert main(["evaluate", *argv]) == 0
    ds = open_dataset(out)
    assert ds.accuracy.dims == ("mode", "repeat", "temperature", "time")
    assert [str(m) for m in ds["mode"].values] == ["digital", "statistical", "physics"]
    assert list(ds["time"].values) == [0.0, 86400.0]
    assert ds["time"].attrs["units"] == "s" and ds["physics_energy"].attrs["units"] == "J"
    assert int(ds["physics_devices"]) == 2 * (64 * 500 + 500 * 10)
    assert math.isfinite(float(ds["physics_energy"])) and float(ds["physics_energy"]) > 0
    assert (tmp_path / "phys.png").exists()
    # unaged, the two temperatures see the same conductances: the same accuracy exactly
    phys = ds.accuracy.sel(mode="physics").isel(repeat=0)
    assert float(phys.isel(temperature=0, time=0)) == float(phys.isel(temperature=1, time=0))
    # the same study with the devices programmed on two Dask worker processes: the same numbers
    spread = tmp_path / "spread.nc"
    assert main(["evaluate", *argv[:-1], str(spread), "--dask-workers", "2"]) == 0
    other = open_dataset(spread)
    for name in ("accuracy", "physics_energy", "physics_pulses"):
        if name in ds:
            np.testing.assert_array_equal(other[name].values, ds[name].values)
    other.close()
    ds.close()


@pytest.mark.parametrize("extra, words", [
    (["--age", "1x"], "not a duration"),
    (["--study", "drift"], "runs its own study"),
    (["--preset", "tio2x-4t"], "a film is programmed with --scheme ffp-levels"),
    (["--age-temperature", "-5"], "age-temperature"),
    (["--bits", "3,4"], "only for --scheme ffp-levels"),
])
def test_cli_refuses_bad_physics_arguments_before_training(tmp_path, capsys, extra, words):
    from memdrift.experiments.cli import main
    from test_networks import record

    rec = tmp_path / "r.json"
    rec.write_text(json.dumps(record()))
    rc = main(["evaluate", str(rec), "--network", "mlp", "--dataset", "digits", "--program", "physics", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and words in err, err
    assert "Traceback" not in err
