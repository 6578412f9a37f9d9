"""Write-verify with incremental step pulses (memdrift.emulator.write_verify) and its CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from memdrift.data.io import write_dataset
from memdrift.emulator.params import load_preset
from memdrift.emulator.write_verify import WriteVerify, run_write_verify
from memdrift.errors import MemdriftError


@pytest.fixture(scope="module")
def params():
    return load_preset("hfoxsy-hfs2").params


def test_compiled_and_reference_agree_without_noise(params):
    """The policy is shared; the physics of each round is the kernel's or its twin's."""
    scheme = WriteVerify(targets_s=(0.9e-3, 1.5e-3, 0.7e-3))  # up, up, then down: both polarities
    kw = {"devices": 12, "seed": 4, "noise": False}
    fast = run_write_verify(params, scheme, backend="compiled", **kw)
    ref = run_write_verify(params, scheme, backend="reference", **kw)
    np.testing.assert_array_equal(fast["pulses"].values, ref["pulses"].values)
    np.testing.assert_allclose(fast["conductance_final"].values, ref["conductance_final"].values, rtol=1e-6)
    np.testing.assert_allclose(fast["program_energy"].values, ref["program_energy"].values, rtol=1e-6)
    assert (fast["amplitude"].sel(level=2) < 0).any()  # the 0.7 mS target after 1.5 mS needs RESET pulses


def test_reads_land_in_the_band_and_a_tighter_band_costs_pulses(params):
    loose = run_write_verify(params, WriteVerify(tolerance=0.05), devices=300, seed=0)
    tight = run_write_verify(params, WriteVerify(tolerance=0.01), devices=300, seed=0)
    for ds, tol in ((loose, 0.05), (tight, 0.01)):
        conv = ds["converged"].values.astype(bool)
        assert conv.mean() > 0.95
        err = np.abs(ds["conductance_final"] - ds["target"]) / ds["target"]
        assert float(err.values[conv].max()) <= tol
        # a device stops at its first read in the band: no pulse after it
        used = np.isfinite(ds["amplitude"].values).sum(axis=2)
        np.testing.assert_array_equal(used, ds["pulses"].values)
    assert float(tight["pulses"].mean()) > float(loose["pulses"].mean())
    spread = lambda ds: float(((ds["conductance_final"] - ds["target"]) / ds["target"]).std())  # noqa: E731
    assert spread(tight) < spread(loose)
    # every write costs energy; none is spent once in band
    assert (tight["program_energy"].values[tight["pulses"].values > 0] > 0).all()


def test_ispp_amplitude_climbs_while_the_polarity_repeats(params):
    scheme = WriteVerify(targets_s=(1.8e-3,), tolerance=0.01, set_step_v=0.03)
    ds = run_write_verify(params, scheme, devices=20, seed=2)
    amp = ds["amplitude"].isel(level=0).values
    for row in amp:
        row = row[np.isfinite(row)]
        assert ((row >= scheme.reset_max_v) & (row <= scheme.set_max_v)).all()
        same = np.sign(row[1:]) == np.sign(row[:-1])
        steps = np.diff(row)[same & (row[1:] > 0)]
        # repeated SET pulses climb by one step until the cap
        assert np.all((np.abs(steps - scheme.set_step_v) < 1e-9) | (row[1:][same & (row[1:] > 0)] == scheme.set_max_v))
        # a flip of polarity starts that polarity's ramp again
        flips = np.flatnonzero(~same) + 1
        assert np.all(np.isin(row[flips], (scheme.set_start_v, scheme.reset_start_v)))


def test_same_seed_same_result_for_one_and_two_threads(params):
    one = run_write_verify(params, WriteVerify(), devices=150, seed=7, threads=1)
    two = run_write_verify(params, WriteVerify(), devices=150, seed=7, threads=2)
    xr.testing.assert_identical(one, two)
    other = run_write_verify(params, WriteVerify(), devices=150, seed=8, threads=2)
    assert not np.array_equal(one["conductance_final"].values, other["conductance_final"].values)


@pytest.mark.parametrize("changes, field", [
    ({"tolerance": 0.0}, "tolerance"), ({"targets_s": ()}, "targets_s"), ({"targets_s": (-1e-3,)}, "targets_s"),
    ({"set_max_v": 0.5}, "set_max_v"), ({"reset_max_v": -0.5}, "reset_max_v"), ({"width_s": -1e-9}, "width_s"),
    ({"max_pulses": 0}, "max_pulses"), ({"read_voltage_v": 0.0}, "read_voltage_v"),
    ({"set_step_v": float("nan")}, "set_step_v"),
])
def test_bad_scheme_names_the_field(params, changes, field):
    with pytest.raises(MemdriftError, match=field):
        run_write_verify(params, WriteVerify(**changes), devices=2)


@settings(max_examples=15, deadline=None)
@given(target=st.floats(0.75e-3, 1.75e-3), tolerance=st.floats(0.01, 0.2), seed=st.integers(0, 2**16))
def test_converged_reads_are_in_band_for_any_target(params, target, tolerance, seed):
    ds = run_write_verify(params, WriteVerify(targets_s=(target,), tolerance=tolerance, max_pulses=60), devices=8,
                          seed=seed)
    conv = ds["converged"].values[:, 0].astype(bool)
    final = ds["conductance_final"].values[:, 0]
    assert np.all(np.abs(final[conv] - target) <= tolerance * target)
    assert np.all(np.isfinite(final)) and np.all(final > 0)
    assert ((ds["pulses"].values >= 0) & (ds["pulses"].values <= 60)).all()


def test_netcdf_round_trip_and_cli(tmp_path, params):
    ds = run_write_verify(params, WriteVerify(targets_s=(1.0e-3,)), devices=4, seed=1)
    write_dataset(ds, tmp_path / "wv.nc")
    back = xr.load_dataset(tmp_path / "wv.nc")
    np.testing.assert_array_equal(back["pulses"].values, ds["pulses"].values)
    assert back["conductance_final"].attrs["units"] == "S" and back.attrs["scheme"] == "write-verify"
    out = tmp_path / "cli.nc"
    done = subprocess.run([sys.executable, "-m", "memdrift", "pulse", "--device", "hfoxsy-hfs2", "--scheme",
                           "write-verify", "--devices", "6", "--targets", "0.9e-3,1.4e-3", "--tolerance", "0.02",
                           "-o", str(out), "--plot", str(tmp_path / "cli.png")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert xr.load_dataset(out)["target"].values.tolist() == [0.9e-3, 1.4e-3]
    assert (tmp_path / "cli.png").stat().st_size > 10_000
    rec = subprocess.run([sys.executable, "-m", "memdrift", "extract", str(out), "-o", str(tmp_path / "rec.json")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert rec.returncode == 0, rec.stderr
    assert '"states": 2' in (tmp_path / "rec.json").read_text()
    bad = subprocess.run([sys.executable, "-m", "memdrift", "pulse", "--device", "hfoxsy-hfs2", "--scheme",
                          "write-verify", "--targets", "1e-3,abc", "-o", str(tmp_path / "bad.nc")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0 and "targets" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.nc").exists()


def test_extraction_record_of_a_write_verify_dataset(tmp_path, params):
    """The targets are the states; each level's program error is the Student-t of (final read − target)."""
    from memdrift.mapping.extract import extract_record, load_record, save_record

    targets = (1.4e-3, 0.8e-3, 1.1e-3)  # not ascending: no measured from-reset cost
    ds = run_write_verify(params, WriteVerify(targets_s=targets, tolerance=0.02), devices=60, seed=3)
    rec = extract_record(ds)
    assert rec["states"] == 3 and rec["g_min"] == 0.8e-3 and rec["g_max"] == 1.4e-3
    table = rec["program_error_t"]["3"]
    assert table["conductance"] == sorted(targets)
    final = ds["conductance_final"].values[:, np.argsort(targets)]
    for k in range(3):
        err = final[:, k] - sorted(targets)[k]
        assert abs(table["loc"][k] - np.median(err)) < 0.5 * err.std()
        assert 0 < table["scale"][k] <= 1.01 * err.std(ddof=1)
    assert rec["state_sigma"] < 0.02 * 1.4e-3
    assert rec["differential_bins"] == 5  # three bands 0.3 mS apart, sigma ~ 10 uS
    assert rec["linear_r2"] == {"potentiation": None, "depression": None}
    assert rec["write_verify"]["ascending_from_reset"] is False
    assert any("write-verify" in n for n in rec["notes"])
    save_record(rec, tmp_path / "wv.json")
    assert load_record(tmp_path / "wv.json")["states"] == 3


def test_write_verify_record_programs_through_the_bridge(params):
    pytest.importorskip("torch")
    pytest.importorskip("aihwkit", reason="aihwkit not installed: bash scripts/install-aihwkit.sh")
    from memdrift.mapping import aihwkit_bridge as bridge
    from memdrift.mapping.extract import extract_record

    targets = tuple(np.linspace(0.8e-3, 1.6e-3, 5))
    rec = extract_record(run_write_verify(params, WriteVerify(targets_s=targets), devices=40, seed=5))
    model = bridge.noise_model(rec)
    assert model.levels == 5 and model.g_min == pytest.approx(0.8e3) and model.g_max == pytest.approx(1.6e3)
    # the cost model uses the measured pulses: a weight at the top level costs every level's pulses
    cumulative = np.cumsum(rec["write_verify"]["pulses"])
    one_top = bridge.programming_cost(rec, np.array([[1.0]]))
    assert one_top["pulses"] == pytest.approx(np.ceil(cumulative[-1]))
    zero = bridge.programming_cost(rec, np.array([[1.0, 0.0]]))
    assert zero["pulses"] == pytest.approx(np.ceil(cumulative[-1]) + np.ceil(cumulative[0]))
