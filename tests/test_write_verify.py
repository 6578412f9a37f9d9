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
    bad = subprocess.run([sys.executable, "-m", "memdrift", "pulse", "--device", "hfoxsy-hfs2", "--scheme",
                          "write-verify", "--targets", "1e-3,abc", "-o", str(tmp_path / "bad.nc")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0 and "targets" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.nc").exists()
