"""Extraction record, measured-data input and `memdrift extract` (memdrift.mapping.extract/measured)."""

from __future__ import annotations

import json
import importlib.util

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from memdrift.errors import MemdriftError
from memdrift.mapping import metrics
from memdrift.mapping.extract import REQUIRED_KEYS, extract_record, load_record, save_record
from memdrift.mapping.measured import read_csv, read_measured, write_csv

BW, SIGMA, G0 = 81e-6, 23.7e-6, 1.0e-3
LEVELS = (8, 16)


def staircase(states=16, lead=2, tail=2):
    head = G0 - BW * np.cumsum(0.1 ** np.arange(1, lead + 1))[::-1]
    lin = G0 + BW * np.arange(states)
    sat = lin[-1] + BW * np.cumsum(0.1 ** np.arange(1, tail + 1))
    return np.concatenate([head, lin, sat])


def synthetic_dataset(devices=3, cycles=30, sigma=SIGMA, seed=0, states=16) -> xr.Dataset:
    """Contract layout: 20 potentiation reads climbing the staircase, 20 depression reads descending it."""
    up = staircase(states)
    curve = np.concatenate([up, up[::-1]])
    n = curve.size
    rng = np.random.default_rng(seed)
    g = curve + rng.normal(0.0, sigma, (devices, cycles, n))
    branch = np.array(["potentiation"] * up.size + ["depression"] * up.size)
    amp = np.where(branch == "potentiation", 0.8, -0.8)
    ds = xr.Dataset(
        {"conductance": (("device", "cycle", "pulse"), g),
         "energy": (("device", "cycle", "pulse"), np.full(g.shape, 0.6e-9)),
         "amplitude": (("pulse",), amp), "width": (("pulse",), np.full(n, 200e-9))},
        coords={"device": np.arange(devices), "cycle": np.arange(cycles), "pulse": np.arange(n),
                "branch": (("pulse",), branch)},
        attrs={"model": "synthetic", "seed": seed})
    return ds


@pytest.fixture(scope="module")
def record():
    return extract_record(synthetic_dataset(), levels=LEVELS)


def test_record_from_synthetic_staircase(record):
    for key in REQUIRED_KEYS:
        assert key in record
    assert record["states"] == 16
    assert record["bin_width"] == pytest.approx(BW, rel=0.01)
    assert record["state_sigma"] == pytest.approx(SIGMA, rel=0.1)
    assert record["differential_bins"] == 31
    assert record["linear_r2"]["potentiation"] > 0.999 and record["linear_r2"]["depression"] > 0.999
    assert record["linear_fit"]["potentiation"]["slope"] == pytest.approx(BW, rel=0.01)
    assert record["linear_fit"]["depression"]["slope"] == pytest.approx(-BW, rel=0.01)
    assert record["symmetry"] == pytest.approx(1.0, abs=0.02)
    assert 0.99 < record["pearson"] <= 1.0
    assert record["energy_per_pulse"] == pytest.approx(0.6e-9)
    assert record["energy_per_cycle"]["mean"] == pytest.approx(40 * 0.6e-9)
    assert record["g_min"] < G0 < G0 + 15 * BW < record["g_max"]
    assert record["pulse_width"] == pytest.approx(200e-9)


def test_record_segmentation_fields(record):
    for n in LEVELS:
        key = str(n)
        assert record["nu"][key]["p"] is not None and record["nu"][key]["d"] is not None
        assert record["nu"][key]["p_processes"] == 90
        assert record["skipped_levels"][key]["potentiation"] >= 0
        table = record["program_error_t"][key]
        assert len(table["loc"]) == len(table["scale"]) == len(table["df"]) == len(table["conductance"]) == n
        assert all(s >= 0 for s in table["scale"]) and all(d > 0 for d in table["df"])
        # errors of a level are a fraction of the window, not more
        assert max(abs(v) for v in table["loc"]) < record["g_max"] - record["g_min"]


def test_record_delta_g_table(record):
    # Read noise would bias ΔG binned by the (noisy) read before it, so the known
    # answer is checked on a nearly noise-free staircase: one pulse = one bin width.
    rec = extract_record(synthetic_dataset(devices=2, cycles=4, sigma=1e-12), levels=(4,))
    up, down = rec["delta_g"]["potentiation"], rec["delta_g"]["depression"]
    inner = [m for g, m in zip(up["conductance"], up["mean"]) if G0 + 2 * BW < g < G0 + 13 * BW]
    assert inner and np.allclose(inner, BW, rtol=1e-6)
    inner = [m for g, m in zip(down["conductance"], down["mean"]) if G0 + 2 * BW < g < G0 + 13 * BW]
    assert inner and np.allclose(inner, -BW, rtol=1e-6)
    assert all(s < 1e-9 for g, s in zip(up["conductance"], up["std"]) if G0 + 2 * BW < g < G0 + 13 * BW)
    assert record["device_to_device"]["devices"] == 3
    assert record["delta_g"]["potentiation"]["count"]


def test_nulls_have_reasons(record):
    assert record["drift"]["nu"] is None and record["drift"]["activation_energy_eV"] is None
    assert any("drift" in n and "retention" in n for n in record["notes"])
    single = extract_record(synthetic_dataset(devices=1, cycles=1, sigma=1e-7), levels=(8,))
    assert single["state_sigma"] is None and single["differential_bins"] is None and single["pearson"] is None
    assert single["states"] == 16
    assert any("2 cycles" in n for n in single["notes"])
    assert single["program_error_t"] is None


def test_dask_backed_and_resistance_input_give_the_same_record(record):
    ds = synthetic_dataset()
    lazy = extract_record(ds.chunk({"device": 1, "cycle": 10}), levels=LEVELS)
    for key in ("states", "bin_width", "state_sigma", "differential_bins", "pearson", "g_min", "g_max",
                "energy_per_pulse"):
        assert lazy[key] == pytest.approx(record[key], rel=1e-12)
    assert lazy["delta_g"]["potentiation"]["mean"] == pytest.approx(record["delta_g"]["potentiation"]["mean"])
    res = ds.assign(resistance=1.0 / ds["conductance"]).drop_vars("conductance")
    from_r = extract_record(res, levels=LEVELS)
    assert from_r["bin_width"] == pytest.approx(record["bin_width"], rel=1e-9)
    assert any("1/resistance" in n for n in from_r["notes"])


def test_drift_and_activation_energy_from_retention_data():
    t = np.logspace(0, 8.5, 30)
    temps = np.array([300.0, 350.0, 400.0])
    ea, nu_true = 0.9, 0.02
    k = 1e3 * np.exp(-ea / (metrics.K_B_EV * temps))   # relative drift rates, 1/s
    g = 1e-4 * np.exp(-k[:, None, None] * t) * np.ones((3, 4, 1))
    ds = xr.Dataset({"conductance": (("temperature", "device", "time"), g)},
                    coords={"temperature": temps, "time": t})
    rec = extract_record(ds, levels=(8,))
    assert rec["drift"]["activation_energy_eV"] == pytest.approx(ea, rel=1e-6)
    assert rec["drift"]["reference_temperature_K"] == 300.0
    assert rec["states"] is None and any("no programming pulses" in n for n in rec["notes"])
    # a single-temperature power-law bake: ν recovered, Ea null with a reason
    one = xr.Dataset({"conductance": (("device", "time"), 2e-4 * (t / t[0]) ** -nu_true * np.ones((2, 1)))},
                     coords={"time": t}, attrs={"temperature_k": 300.0})
    rec1 = extract_record(one, levels=(8,))
    assert rec1["drift"]["nu"] == pytest.approx(nu_true, rel=1e-9)
    assert rec1["drift"]["activation_energy_eV"] is None
    assert any("activation energy" in n for n in rec1["notes"])


def test_save_and_load_round_trip(record, tmp_path):
    path = save_record(record, tmp_path / "dev.json")
    back = load_record(path)
    assert back["states"] == record["states"] and back["bin_width"] == record["bin_width"]
    assert back["program_error_t"]["8"]["loc"] == pytest.approx(record["program_error_t"]["8"]["loc"])
    assert not list(tmp_path.glob(".*part"))


def test_load_record_names_the_missing_key(record, tmp_path):
    bad = {k: v for k, v in record.to_dict().items() if k != "bin_width"}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(MemdriftError, match="'bin_width'"):
        load_record(tmp_path / "bad.json")
    nested = dict(bad, bin_width=1e-4, drift={"nu": None})
    (tmp_path / "nested.json").write_text(json.dumps(nested))
    with pytest.raises(MemdriftError, match="drift.activation_energy_eV"):
        load_record(tmp_path / "nested.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(MemdriftError, match="not valid JSON"):
        load_record(tmp_path / "junk.json")


# --------------------------------------------------------------------------- measured CSV


def test_csv_round_trip_and_same_record(tmp_path, record):
    ds = synthetic_dataset()
    path = write_csv(ds, tmp_path / "m.csv")
    back = read_csv(path)
    np.testing.assert_allclose(back["conductance"].values, ds["conductance"].values, rtol=0, atol=0)
    np.testing.assert_array_equal(back["branch"].values, ds["branch"].values)
    np.testing.assert_array_equal(back["amplitude"].values, ds["amplitude"].values)
    rec = extract_record(read_measured(path), levels=LEVELS)
    for key in ("states", "bin_width", "state_sigma", "differential_bins", "pearson"):
        assert rec[key] == pytest.approx(record[key], rel=1e-12)


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_number_on_line_7_is_named(tmp_path):
    lines = ["cycle,pulse,conductance"] + [f"0,{i},{1e-3 + i * 1e-5}" for i in range(10)]
    lines[6] = "0,5,1.0e-3x"                   # file line 7
    with pytest.raises(MemdriftError, match=r"line 7, column 'conductance': '1.0e-3x' is not a number"):
        read_csv(write_lines(tmp_path / "bad.csv", lines))


@pytest.mark.parametrize("lines, message", [
    (["pulse,conductance", "0,1e-3"], "line 1: header has no 'cycle' column"),
    (["cycle,pulse,conductance,colour", "0,0,1e-3,red"], "unknown column 'colour'"),
    (["cycle,pulse,conductance,resistance", "0,0,1e-3,1e3"], "exactly one of"),
    (["cycle,pulse,conductance", "0,0,1e-3", "0,1"], "line 3: 2 fields"),
    (["cycle,pulse,conductance", "0,0,1e-3", "0,0,2e-3"], "line 3: device '0', cycle 0, pulse 0 already given on line 2"),
    (["cycle,pulse,conductance", "0,0,-1e-3"], r"line 2, column 'conductance': -0.001 is out of range"),
    (["cycle,pulse,conductance", "0,0.5,1e-3"], "line 2, column 'pulse': '0.5' is not an integer"),
    (["cycle,pulse,conductance", "0,0,nan"], "line 2, column 'conductance'"),
    (["cycle,pulse,conductance,amplitude", "0,0,1e-3,0.7", "1,0,1e-3,0.8"], "line 3, column 'amplitude'"),
    (["cycle,pulse,conductance,branch", "0,0,1e-3,up"], "line 2, column 'branch': 'up'"),
    (["cycle,pulse,conductance"], "no data rows"),
])
def test_malformed_csv_names_line_and_column(tmp_path, lines, message):
    with pytest.raises(MemdriftError, match=message):
        read_csv(write_lines(tmp_path / "bad.csv", lines))


def test_branch_inferred_from_amplitude_sign_or_halves(tmp_path):
    amp = [0.7, 0.8, -0.7, -0.8, 0.9]
    lines = ["# comment", "cycle,pulse,conductance,amplitude"] + [f"0,{i},1e-3,{a}" for i, a in enumerate(amp)]
    ds = read_csv(write_lines(tmp_path / "a.csv", lines))
    assert list(ds["branch"].values) == ["potentiation", "potentiation", "depression", "depression", "potentiation"]
    lines = ["cycle,pulse,conductance"] + [f"0,{i},1e-3" for i in range(5)]
    ds = read_csv(write_lines(tmp_path / "b.csv", lines))
    assert list(ds["branch"].values) == ["potentiation"] * 3 + ["depression"] * 2
    assert ds["conductance"].dims == ("device", "cycle", "pulse")


def test_netcdf_with_contract_names_is_read(tmp_path, record):
    from memdrift.data.io import write_dataset

    ds = synthetic_dataset().drop_vars("branch")     # branch inferred from the amplitude sign
    write_dataset(ds, tmp_path / "m.nc")
    rec = extract_record(read_measured(tmp_path / "m.nc"), levels=LEVELS)
    assert rec["states"] == record["states"] and rec["bin_width"] == pytest.approx(record["bin_width"])
    with pytest.raises(MemdriftError, match="suffix '.txt'"):
        read_measured(tmp_path / "m.txt")
    bad = xr.Dataset({"current": (("pulse",), np.ones(3))})
    write_dataset(bad, tmp_path / "bad.nc")
    with pytest.raises(MemdriftError, match="no 'conductance'"):
        read_measured(tmp_path / "bad.nc")


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(2, 12), st.booleans(), st.integers(0, 2**16))
def test_csv_round_trip_property(tmp_path_factory, devices, cycles, pulses, with_amp, seed):
    rng = np.random.default_rng(seed)
    g = rng.uniform(1e-5, 1e-3, (devices, cycles, pulses))
    g[rng.random(g.shape) < 0.1] = np.nan          # unmeasured reads stay unmeasured
    g[0, 0, 0] = 1e-4
    ds = xr.Dataset({"conductance": (("device", "cycle", "pulse"), g)},
                    coords={"device": [f"d{i}" for i in range(devices)], "cycle": np.arange(cycles),
                            "pulse": np.arange(pulses)})
    if with_amp:
        ds["amplitude"] = ("pulse", rng.uniform(-1, 1, pulses))
    path = write_csv(ds, tmp_path_factory.mktemp("csv") / "p.csv")
    back = read_csv(path)
    assert back.sizes["pulse"] <= pulses
    sel = ds["conductance"].sel(pulse=back["pulse"], cycle=back["cycle"], device=back["device"])
    np.testing.assert_array_equal(back["conductance"].values, sel.values)


@settings(max_examples=10, deadline=None)
@given(st.integers(3, 20), st.floats(1e-7, 5e-5), st.integers(0, 1000))
def test_extract_bins_bounded_by_states(states, sigma, seed):
    rec = extract_record(synthetic_dataset(devices=1, cycles=6, sigma=sigma, seed=seed, states=states), levels=(4,))
    if rec["states"] is not None and rec["differential_bins"] is not None:
        assert 1 <= rec["differential_bins"] <= 2 * rec["states"] - 1
    for r2 in rec["linear_r2"].values():
        assert r2 is None or 0.0 <= r2 <= 1.0


# --------------------------------------------------------------------------- command line


def test_cli_extract_writes_record_and_prints_summary(tmp_path, capsys):
    from memdrift.experiments.cli import main

    csv_path = write_csv(synthetic_dataset(), tmp_path / "m.csv")
    out = tmp_path / "dev.json"
    assert main(["extract", str(csv_path), "-o", str(out), "--levels", "8,16"]) == 0
    text = capsys.readouterr().out
    assert "differential bins" in text and "31" in text
    assert load_record(out)["states"] == 16


@pytest.mark.parametrize("args, message", [
    (["missing.csv"], "does not exist"),
    (["bad.csv"], "line 2"),
    (["good.csv", "--levels", "8,x"], "levels"),
])
def test_cli_extract_bad_input_one_line_no_file(tmp_path, capsys, args, message):
    from memdrift.experiments.cli import main

    write_lines(tmp_path / "bad.csv", ["cycle,pulse,conductance", "0,0,zero"])
    write_csv(synthetic_dataset(devices=1, cycles=3), tmp_path / "good.csv")
    out = tmp_path / "dev.json"
    args = [str(tmp_path / args[0])] + args[1:]
    assert main(["extract", *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


# --------------------------------------------------------------------------- emulated ensemble

HAS_ENGINE = importlib.util.find_spec("memdrift.emulator.engine") is not None


@pytest.mark.skipif(not HAS_ENGINE, reason="memdrift.emulator.engine not built yet")
def test_record_from_small_emulated_ensemble():
    from memdrift.emulator.engine import run_pulses
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.pulses import ramp

    preset = load_preset("hfoxsy-hfs2")
    ds = run_pulses(preset.params, ramp(), devices=3, cycles=6, seed=5, preset=preset.name)
    rec = extract_record(ds, levels=(8,))
    assert rec["source"]["preset"] == "hfoxsy-hfs2"
    assert 0 < rec["g_min"] < rec["g_max"]
    assert rec["energy_per_pulse"] == pytest.approx(float(ds["energy"].mean()), rel=1e-12)
    assert -1.0 <= rec["pearson"] <= 1.0
    # potentiation raises the conductance and depression lowers it, in every populated bin on average
    assert np.mean(rec["delta_g"]["potentiation"]["mean"]) > 0 > np.mean(rec["delta_g"]["depression"]["mean"])
    for r2 in rec["linear_r2"].values():
        assert r2 is None or 0.0 <= r2 <= 1.0
    if rec["states"] is not None and rec["differential_bins"] is not None:
        assert rec["differential_bins"] <= 2 * rec["states"] - 1
    assert rec["drift"]["nu"] is None   # a ramp run carries no retention data


@pytest.mark.skipif(not HAS_ENGINE, reason="memdrift.emulator.engine not built yet")
def test_drift_from_emulated_retention_bake():
    from memdrift.emulator.engine import run_pulses
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.pulses import retention

    preset = load_preset("hfoxsy-hfs2")
    # a programmed gap inside the range: at the preset's initial g_max the reads pin the gap and nothing drifts
    params = preset.params.replace(gap_initial_m=1.0e-9)
    ds = run_pulses(params, retention(np.logspace(0, 6, 12)), devices=3, cycles=1, seed=2)
    rec = extract_record(ds, levels=(8,))
    drift = rec["drift"]
    assert drift["reference_temperature_K"] == pytest.approx(float(ds.attrs["param.ambient_temperature_k"]))
    # the filament's retention is a constant-velocity gap growth, exponential in time: the extractor keeps
    # the power-law fit aside and refuses nu rather than report an exponent that does not describe it
    from memdrift.mapping.extract import DRIFT_NU_MIN_R2

    assert drift["nu"] is None and np.isfinite(drift["nu_fit"]["nu"]) and drift["nu_fit"]["r2"] < DRIFT_NU_MIN_R2
    assert ds["conductance"].values[:, 0, -1].mean() < ds["conductance"].values[:, 0, 0].mean()  # it does drift
    # read times: cumulative (wait + read), so the fit sees the programmed schedule
    assert drift["per_temperature"][0]["t0"] == pytest.approx(1.0, rel=1e-9)
    assert drift["activation_energy_eV"] is None          # one temperature only
    assert rec["states"] is None


# ---------------------------------------------------------------- per-run (FFP) layout

def _ffp_like(devices: int = 3, runs: int = 2, events: int = 40, seed: int = 0) -> xr.Dataset:
    """Per-run layout as the bulk FFP scheme writes it: branch over cycle, NaN-padded runs."""
    rng = np.random.default_rng(seed)
    r = np.full((devices, runs, events), np.nan)
    for d in range(devices):
        for c in range(runs):
            n = events - rng.integers(0, 5)
            ramp = np.linspace(880.0, 740.0, n) if c % 2 == 0 else np.linspace(740.0, 880.0, n)
            r[d, c, :n] = ramp + rng.normal(0.0, 0.05, n)
    branch = np.array(["potentiation", "depression"] * (runs // 2))
    return xr.Dataset({"resistance": (("device", "cycle", "pulse"), r, {"units": "ohm"}),
                       "energy": (("device", "cycle", "pulse"), np.ones_like(r), {"units": "J"}),
                       "events": (("device", "cycle"), np.isfinite(r).sum(axis=2))},
                      coords={"device": np.arange(devices), "cycle": np.arange(runs), "pulse": np.arange(1, events + 1),
                              "branch": ("cycle", branch)})


def test_per_run_layout_is_regrouped_into_cycles():
    from memdrift.mapping.measured import normalise_dataset

    ds = _ffp_like(runs=4)
    out = normalise_dataset(ds)
    assert out.sizes == {"device": 3, "cycle": 2, "pulse": 80}
    assert list(out["branch"].values[:40]) == ["potentiation"] * 40
    assert list(out["branch"].values[40:]) == ["depression"] * 40
    # run 3 (the second depression) is cycle 1's second half, reads unchanged
    np.testing.assert_array_equal(out["resistance"].values[:, 1, 40:], ds["resistance"].values[:, 3])
    assert "events" not in out  # per-run summaries stay behind


def test_per_run_layout_gives_a_record_with_the_window():
    record = extract_record(_ffp_like())
    g = 1.0 / np.array([880.0, 740.0])
    assert record["g_min"] == pytest.approx(g[0], rel=1e-3)
    assert record["g_max"] == pytest.approx(g[1], rel=1e-3)
    assert record["states"] is not None and record["states"] >= 3


def test_per_run_layout_out_of_order_is_named():
    from memdrift.mapping.measured import normalise_dataset

    ds = _ffp_like().assign_coords(branch=("cycle", np.array(["depression", "potentiation"])))
    with pytest.raises(MemdriftError, match="branch over cycle"):
        normalise_dataset(ds)


def test_drift_nu_is_null_when_the_decay_is_not_a_power_law_and_errors_are_reported():
    t = np.logspace(0, 8.5, 30)
    temps = np.array([300.0, 350.0, 400.0])
    # power law plus measurement scatter: ν and its standard error, which covers the truth
    rng = np.random.default_rng(0)
    g = 2e-4 * (t / t[0]) ** -0.02 * np.exp(1e-3 * rng.standard_normal((3, 30)))
    ds = xr.Dataset({"conductance": (("temperature", "time"), g)}, coords={"temperature": temps, "time": t})
    drift = extract_record(ds, levels=(8,))["drift"]
    assert drift["nu_r2"] > 0.99 and drift["nu"] == pytest.approx(0.02, abs=4 * drift["nu_stderr"])
    assert 0 < drift["nu_stderr"] < 1e-3
    # ln G linear in t (the dissolution decay of the filament): no power law; ν null with the reason
    k = 1e-9 * np.exp(-0.5 / (metrics.K_B_EV * temps) + 0.5 / (metrics.K_B_EV * 300.0))
    g = 2e-4 * np.exp(-k[:, None] * t)
    rec = extract_record(xr.Dataset({"conductance": (("temperature", "time"), g)},
                                    coords={"temperature": temps, "time": t}), levels=(8,))
    assert rec["drift"]["nu"] is None and rec["drift"]["nu_fit"]["r2"] < 0.9
    assert any("drift: nu is null" in n and "R^2" in n for n in rec["notes"])
    # the activation energy is still there, with its standard error (3 temperatures)
    assert rec["drift"]["activation_energy_eV"] == pytest.approx(0.5, rel=1e-3)
    assert rec["drift"]["activation_energy_eV_stderr"] is not None


def test_student_t_table_says_which_df_were_not_estimated():
    from memdrift.mapping.extract import DF_BOUNDS, _program_error_table

    rng = np.random.default_rng(1)
    # many heavy-tailed samples: df is estimated, inside the bounds
    heavy = _program_error_table(np.array([1e-4, 2e-4]), 1e-6 * rng.standard_t(3.0, size=(2, 4000)))
    assert heavy["df_at_bound"] == 0 and all(2.0 < d < 5.0 for d in heavy["df"]) and heavy["samples"] == 4000
    # six Gaussian samples a level: the likelihood often rises all the way to a Gaussian (df at its bound)
    few = _program_error_table(np.linspace(1e-4, 2e-4, 40), 1e-6 * rng.standard_normal((40, 6)))
    at_bound = sum(d >= 0.99 * DF_BOUNDS[1] or d <= 1.01 * DF_BOUNDS[0] for d in few["df"])
    assert few["df_at_bound"] == at_bound > 0
