"""User write policies Vw(r) for the film's FFP schemes, compiled with Numba (memdrift.emulator.policies)."""

from __future__ import annotations

import dataclasses
import os

import numba
import numpy as np
import pytest
import xarray as xr

import memdrift
from memdrift.emulator.bulk4t_schemes import Bulk4TDevices
from memdrift.emulator.params import load_preset
from memdrift.emulator.policies import compile_policy, table_policy
from memdrift.errors import MemdriftError
from memdrift.experiments import cli


def restated(r_ohm, sign, r_grid_ohm, vw_table_v):
    # what a user writes from docs/policies.md: the built-in look-up, in their own file
    return np.interp(r_ohm, r_grid_ohm, vw_table_v)


def gentler(r_ohm, sign, r_grid_ohm, vw_table_v):
    return 0.8 * np.interp(r_ohm, r_grid_ohm, vw_table_v)


@pytest.fixture(scope="module")
def small_run():
    """Options of a film FFP run that takes a fraction of a second: an 8 x 8 grid, a 3-amplitude map."""
    params = load_preset("tio2x-4t").params.replace(grid_x=8.0, grid_y=8.0)
    r0 = Bulk4TDevices(params, 1).read()[0]
    return dict(devices=2, seed=4, grid=8, conditioning_cycles=0, map_amplitudes_v=(2.0, 5.0, 7.0),
                map_pulses=10, max_events=60, hrs_ohm=r0 + 0.4, lrs_ohm=r0 - 0.6, levels=(4, 8))


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_a_user_policy_restating_the_table_reproduces_the_built_in_run_bit_for_bit(small_run, backend):
    builtin = memdrift.simulate("tio2x-4t", "ffp-segmentation", backend=backend, **small_run)
    user = memdrift.simulate("tio2x-4t", "ffp-segmentation", backend=backend, policy=restated, **small_run)
    assert np.all(builtin["events"].values > 2)
    # the compiled backend's built-in run takes its in-kernel loop; the user policy the Python loop
    xr.testing.assert_equal(builtin, user)
    assert {k: v for k, v in user.attrs.items() if k != "scheme.policy"} == builtin.attrs
    assert user.attrs["scheme.policy"] == f"{__name__}:restated"
    # and the policy is what chooses the writes: a gentler one takes other (smaller) amplitudes
    other = memdrift.simulate("tio2x-4t", "ffp-segmentation", backend=backend, policy=gentler, **small_run)
    # (the first write of the first branch: the devices start it from the same read)
    first = other["amplitude"].isel(cycle=0, pulse=0).values
    np.testing.assert_array_equal(first, 0.8 * builtin["amplitude"].isel(cycle=0, pulse=0).values)
    assert not np.array_equal(other["resistance"].values, builtin["resistance"].values, equal_nan=True)


def test_a_policy_already_decorated_with_njit_and_the_built_in_function_compile():
    grid = np.linspace(700.0, 900.0, 5)
    table = np.linspace(2.0, 6.0, 5)
    r = np.array([650.0, 760.0, 880.0])
    expected = np.interp(r, grid, table)
    for fn in (numba.njit(restated), table_policy):
        policy = compile_policy(fn)
        np.testing.assert_array_equal(policy.amplitudes(r, -1.0, grid, table, np.ones(3, bool)), -expected)


def uses_an_object(r_ohm, sign, r_grid_ohm, vw_table_v):
    steps = {"potentiation": object(), "depression": 2.0}
    return steps["depression"]


def python_helper(r_ohm):
    return 3.0


def calls_plain_python(r_ohm, sign, r_grid_ohm, vw_table_v):
    return python_helper(r_ohm)


@pytest.mark.parametrize("fn", [uses_an_object, calls_plain_python])
def test_a_function_numba_cannot_compile_fails_with_the_reason(small_run, fn):
    with pytest.raises(MemdriftError, match=f"policy {__name__}:{fn.__name__} could not be compiled by "
                                            "numba.njit: .*nopython") as info:
        memdrift.simulate("tio2x-4t", "ffp", policy=fn, **{k: v for k, v in small_run.items() if k != "levels"})
    # one readable sentence, not Numba's whole report
    assert "\n" not in str(info.value)


def two_arguments(r_ohm, sign):
    return 3.0


def returns_a_pair(r_ohm, sign, r_grid_ohm, vw_table_v):
    return r_ohm, 3.0


@pytest.mark.parametrize("fn, words", [
    (two_arguments, "cannot be called with (r_ohm, sign, r_grid_ohm, vw_table_v)"),
    (returns_a_pair, "returns UniTuple(float64 x 2); allowed: one number, the write amplitude amplitude_v"),
    (42, "policy = 42 is not callable"),
])
def test_a_policy_of_the_wrong_shape_is_refused_naming_it(fn, words):
    with pytest.raises(MemdriftError) as info:
        compile_policy(fn)
    assert words in str(info.value)


def nan_above_800(r_ohm, sign, r_grid_ohm, vw_table_v):
    return np.nan if r_ohm > 800.0 else 3.0


def eighty_volts(r_ohm, sign, r_grid_ohm, vw_table_v):
    return 80.0


def negative(r_ohm, sign, r_grid_ohm, vw_table_v):
    return sign * 3.0


@pytest.mark.parametrize("fn, value", [(nan_above_800, "nan"), (eighty_volts, "80.0"), (negative, "-3.0")])
def test_a_voltage_outside_the_range_is_refused_naming_the_field_and_device(fn, value):
    grid = np.linspace(700.0, 900.0, 5)
    policy = compile_policy(fn)
    r = np.array([750.0, 850.0])
    with pytest.raises(MemdriftError, match=rf"amplitude_v = {value} for device \d at r_ohm = .*allowed: \(0, 50\] V"):
        policy.amplitudes(r, -1.0, grid, grid, np.ones(2, bool))


def test_a_device_that_has_stopped_may_get_an_unusable_value():
    grid = np.linspace(700.0, 900.0, 5)
    policy = compile_policy(nan_above_800)
    v = policy.amplitudes(np.array([750.0, 850.0]), 1.0, grid, grid, np.array([True, False]))
    np.testing.assert_array_equal(v, [3.0, 0.0])


def test_the_table_is_read_only_to_the_policy():
    def writes(r_ohm, sign, r_grid_ohm, vw_table_v):
        vw_table_v[0] = 0.0
        return 1.0

    with pytest.raises(MemdriftError, match="could not be compiled"):
        compile_policy(writes)


def test_the_command_line_takes_a_policy_file(tmp_path, small_run, capsys):
    preset = load_preset("tio2x-4t")
    small = dataclasses.replace(preset, name="tio2x-small", params=preset.params.replace(grid_x=8.0, grid_y=8.0),
                                calibration={"hrs_ohm": small_run["hrs_ohm"], "lrs_ohm": small_run["lrs_ohm"]})
    (tmp_path / "small.toml").write_text(small.to_toml())
    (tmp_path / "mine.py").write_text("import numpy as np\n\n\ndef vw(r_ohm, sign, r_grid_ohm, vw_table_v):\n"
                                      "    return 0.9 * np.interp(r_ohm, r_grid_ohm, vw_table_v)\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        base = ["pulse", "--device", "small.toml", "--scheme", "ffp", "--devices", "1", "--quiet", "--threads", "1"]
        assert cli.main([*base, "--policy", "mine.py:vw", "-o", "user.nc"]) == 0
        assert cli.main([*base, "-o", "builtin.nc"]) == 0
        assert cli.main([*base, "--policy", "mine.py:nothing", "-o", "bad.nc"]) == 2
        assert cli.main([*base, "--policy", "missing.py:vw", "-o", "bad.nc"]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert "policy = 'mine.py:nothing': 'mine.py' defines no 'nothing'" in err
    assert "policy = 'missing.py:vw': 'missing.py' is not a Python file" in err
    assert not (tmp_path / "bad.nc").exists()
    with xr.open_dataset(tmp_path / "user.nc") as user, xr.open_dataset(tmp_path / "builtin.nc") as builtin:
        assert user.attrs["scheme__policy"] == "mine.py:vw"
        np.testing.assert_allclose(user["amplitude"].isel(cycle=0, pulse=0).values,
                                   0.9 * builtin["amplitude"].isel(cycle=0, pulse=0).values, rtol=1e-15)
