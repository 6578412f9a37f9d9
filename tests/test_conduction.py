"""User conduction laws I(V_cell, g) of the filament cell, compiled with Numba (memdrift.emulator.conduction)."""

from __future__ import annotations

import os
import warnings

import numba
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import memdrift
from memdrift.emulator import filament
from memdrift.emulator.conduction import compile_conduction, sinh_law
from memdrift.emulator.engine import parameter_table, run_pulses
from memdrift.emulator.pulses import from_name
from memdrift.emulator.randomness import device_keys
from memdrift.errors import MemdriftError
from memdrift.experiments import cli

VARIABLES = ("conductance", "energy", "temperature_peak", "gap")


def restated(cell_v, gap_m, i0_a, g0_m, v0_v):
    # what a user writes from docs/policies.md: the built-in law, in their own file
    return i0_a * np.exp(-gap_m / g0_m) * np.sinh(cell_v / v0_v)


def ohmic(cell_v, gap_m, i0_a, g0_m, v0_v):
    # the built-in law's small-signal limit: a resistor R0 exp(g/g0), R0 = V0/I0
    return cell_v * i0_a / v0_v * np.exp(-gap_m / g0_m)


@pytest.fixture(scope="module")
def preset():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped preset's physical-envelope note
        return memdrift.load_preset("hfoxsy-hfs2")


def _run(preset, **kwargs):
    return run_pulses(preset.params, from_name("ramp"), devices=2, cycles=1, backend="reference", **kwargs)


@pytest.mark.parametrize("noise", [False, True])
def test_a_user_law_restating_the_built_in_one_reproduces_the_reference_run(preset, noise):
    builtin = _run(preset, noise=noise, seed=3)
    user = _run(preset, noise=noise, seed=3, conduction=restated)
    # the ramp moves the devices over the whole window, so the comparison is not one of idle devices
    g = builtin["conductance"].values
    assert np.all(g.max(axis=-1) > 2.5 * g.min(axis=-1))
    for name in VARIABLES:
        np.testing.assert_allclose(user[name].values, builtin[name].values, rtol=1e-12, atol=0.0, err_msg=name)
    np.testing.assert_array_equal(user["pulse_flag"].values, builtin["pulse_flag"].values)
    assert user.attrs["scheme.conduction"] == f"{__name__}:restated"
    assert {k: v for k, v in user.attrs.items() if k != "scheme.conduction"} == builtin.attrs


def test_the_cell_solve_of_the_restated_law_matches_the_built_in_solve():
    # over biases where the cell takes the voltage (small |V|) and where the resistor does (large |V|),
    # series resistances from none to 1 kOhm, and cold and warm starts
    rng = np.random.default_rng(1)
    n = 4000
    table = np.zeros((n, len(filament.COLUMNS)))
    table[:, filament.COL["tunnel_current_a"]] = 10.0 ** rng.uniform(-4, -1, n)
    table[:, filament.COL["tunnel_length_m"]] = rng.uniform(0.1e-9, 0.4e-9, n)
    table[:, filament.COL["tunnel_voltage_v"]] = 10.0 ** rng.uniform(np.log10(0.015), 0.0, n)
    table[:, filament.COL["series_resistance_ohm"]] = np.where(rng.random(n) < 0.1, 0.0, 10.0 ** rng.uniform(0, 3, n))
    volts = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-3, 1, n)
    gap = rng.uniform(0.3e-9, 3e-9, n)
    share = np.where(rng.random(n) < 0.5, filament.INITIAL_SHARE, rng.uniform(-30, 0, n))
    law = compile_conduction(restated)
    vc_b, i_b, _, _, bad_b = filament.cell_solve(volts, gap, table, share.copy())
    vc_u, i_u, share_u, _, bad_u = law.cell_solve(volts, gap, table, share.copy())
    assert not bad_b.any() and not bad_u.any()
    np.testing.assert_allclose(i_u, i_b, rtol=1e-13, atol=0.0)
    assert np.all(np.abs(vc_u - vc_b) <= 1e-12 * np.abs(vc_b) + 4e-15 * np.abs(volts))
    # the share it returns warm-starts the next solve at the same point onto the same root
    vc_w, i_w, *_ = law.cell_solve(volts, gap, table, share_u)
    np.testing.assert_allclose(i_w, i_u, rtol=1e-13, atol=0.0)


# its first SET is abrupt (the cell takes the whole bias) and spends the sub-step budget: flagged, not a failure
@pytest.mark.filterwarnings("ignore::memdrift.emulator.engine.FlaggedPulseWarning")
def test_an_ohmic_cell_reads_the_series_sum_of_its_resistances(preset):
    builtin = _run(preset, noise=False)
    user = _run(preset, noise=False, conduction=ohmic)
    table, _ = parameter_table(preset.params, device_keys(0, 2, 0))
    i0, g0, v0, rs = (table[:, filament.COL[k]][:, None] for k in
                      ("tunnel_current_a", "tunnel_length_m", "tunnel_voltage_v", "series_resistance_ohm"))
    gap = user["gap"].values[:, 0]
    expected = 1.0 / (v0 * np.exp(gap / g0) / i0 + rs)
    # the recorded gap is the one after the read, which moves it slightly
    np.testing.assert_allclose(user["conductance"].values[:, 0], expected, rtol=1e-5)
    # an ohmic cell conducts less than the sinh law at a write's cell voltage, so it takes more of the
    # bias, is driven harder and SETs to the narrowest gap, where it is a short R0 exp(g_min/g0) + R_s
    np.testing.assert_allclose(user["gap"].values[:, 0, -1], table[:, filament.COL["gap_min_m"]], rtol=1e-6)
    assert not np.allclose(user["conductance"].values, builtin["conductance"].values, rtol=1e-3)
    # and at the read itself (the gap that the read starts from) the agreement is to rounding
    state = filament.DeviceState(np.array([0.5e-9, 1.2e-9, 2.6e-9]), np.full(3, 300.0))
    rows = np.repeat(table[:1], 3, axis=0)
    g_read = filament.read_conductance(-0.1, state, rows, compile_conduction(ohmic))
    r_cell = rows[:, filament.COL["tunnel_voltage_v"]] * np.exp(
        state.gap_m / rows[:, filament.COL["tunnel_length_m"]]) / rows[:, filament.COL["tunnel_current_a"]]
    np.testing.assert_allclose(g_read, 1.0 / (r_cell + rows[:, filament.COL["series_resistance_ohm"]]), rtol=1e-14)


def test_a_law_already_decorated_with_njit_and_the_shipped_restatement_compile():
    for fn in (numba.njit(restated), sinh_law):
        law = compile_conduction(fn)
        assert law.function(0.05, 1e-9, 1e-2, 2.5e-10, 0.02) == pytest.approx(restated(0.05, 1e-9, 1e-2, 2.5e-10, 0.02),
                                                                              rel=1e-15)


def uses_an_object(cell_v, gap_m, i0_a, g0_m, v0_v):
    scale = {"a": object(), "b": 2.0}
    return scale["b"] * cell_v


def python_helper(x):
    return x


def calls_plain_python(cell_v, gap_m, i0_a, g0_m, v0_v):
    return python_helper(cell_v)


@pytest.mark.parametrize("fn", [uses_an_object, calls_plain_python])
def test_a_function_numba_cannot_compile_fails_with_the_reason(preset, fn):
    with pytest.raises(MemdriftError, match=f"conduction law {__name__}:{fn.__name__} could not be compiled by "
                                            "numba.njit: .*nopython") as info:
        _run(preset, conduction=fn)
    assert "\n" not in str(info.value)


def two_arguments(cell_v, gap_m):
    return cell_v


def returns_a_pair(cell_v, gap_m, i0_a, g0_m, v0_v):
    return cell_v, gap_m


@pytest.mark.parametrize("fn, words", [
    (two_arguments, "cannot be called with (cell_v, gap_m, i0_a, g0_m, v0_v)"),
    (returns_a_pair, "returns UniTuple(float64 x 2); allowed: one number, the current current_a (A)"),
    (42, "conduction = 42 is not callable"),
])
def test_a_law_of_the_wrong_shape_is_refused_naming_it(fn, words):
    with pytest.raises(MemdriftError) as info:
        compile_conduction(fn)
    assert words in str(info.value)


def falls_past_half_a_volt(cell_v, gap_m, i0_a, g0_m, v0_v):
    # a negative differential resistance above 0.5 V: no unique cell voltage
    x = abs(cell_v)
    return np.sign(cell_v) * i0_a * np.exp(-gap_m / g0_m) * (x if x < 0.5 else 1.0 - x)


def even(cell_v, gap_m, i0_a, g0_m, v0_v):
    return i0_a * np.exp(-gap_m / g0_m) * np.cosh(cell_v / v0_v)


def nan_beyond_a_volt(cell_v, gap_m, i0_a, g0_m, v0_v):
    return np.nan if abs(cell_v) > 0.9 else cell_v


@pytest.mark.parametrize("fn, words", [
    (falls_past_half_a_volt, r"is not increasing in cell_v: current_a falls from .* at cell_v = 0\.5\d* V"),
    (even, "is not odd in cell_v"),
    (nan_beyond_a_volt, "is not finite: current_a = nan at cell_v = 0.9"),
])
def test_a_law_that_is_not_odd_and_increasing_is_refused_naming_the_check(preset, fn, words):
    with pytest.raises(MemdriftError, match=words) as info:
        _run(preset, conduction=fn)
    # over the ramp's range: its amplitudes reach 0.995 V, and the gaps the preset allows
    assert "|cell_v| <= 0.995 V, gap_m in [3.878e-10, 2.8e-09] m" in str(info.value)


def test_the_compiled_backend_refuses_a_user_law_naming_the_reference(preset):
    with pytest.raises(MemdriftError, match=r"conduction = 'test_conduction:restated' needs backend = "
                                            r"'reference'.*allowed: backend=\"reference\""):
        run_pulses(preset.params, from_name("ramp"), devices=2, conduction=restated)
    with pytest.raises(MemdriftError, match=r"allowed: backend=\"reference\""):
        memdrift.simulate(preset, "ramp", devices=1, cycles=1, conduction=restated)
    with pytest.raises(MemdriftError, match=r"allowed: backend=\"reference\""):
        memdrift.simulate(preset, "write-verify", devices=1, conduction=restated)


@pytest.mark.parametrize("noise", [False, True])
def test_write_verify_with_the_restated_law_reproduces_the_reference_run(preset, noise):
    kwargs = dict(devices=4, seed=2, backend="reference", noise=noise, targets_s=(0.8e-3, 1.6e-3))
    builtin = memdrift.simulate(preset, "write-verify", **kwargs)
    user = memdrift.simulate(preset, "write-verify", conduction=restated, **kwargs)
    # the devices take several pulses to each target, so the loop is not one of idle devices
    assert builtin["pulses"].values.min() >= 2
    np.testing.assert_array_equal(user["pulses"].values, builtin["pulses"].values)
    for name in ("conductance", "energy", "amplitude", "conductance_final", "program_energy"):
        np.testing.assert_allclose(user[name].values, builtin[name].values, rtol=1e-12, atol=0.0, err_msg=name)
    assert user.attrs["scheme.conduction"] == f"{__name__}:restated"
    assert {k: v for k, v in user.attrs.items() if k != "scheme.conduction"} == builtin.attrs


def test_write_verify_checks_a_user_law_over_its_largest_amplitude(preset):
    # the ISPP RESET ramp reaches -1.4 V, beyond the 0.995 V of the ramp that a law is checked over there
    with pytest.raises(MemdriftError, match=r"\|cell_v\| <= 1.4 V"):
        memdrift.simulate(preset, "write-verify", devices=1, backend="reference", conduction=even)


@pytest.mark.filterwarnings("ignore::memdrift.emulator.engine.FlaggedPulseWarning")
def test_the_facade_runs_a_user_law(preset):
    user = memdrift.simulate(preset, "ramp", devices=2, cycles=1, backend="reference", noise=False, conduction=ohmic)
    builtin = _run(preset, noise=False, conduction=ohmic)
    xr.testing.assert_equal(user[list(VARIABLES)], builtin[list(VARIABLES)])
    assert user.attrs["scheme.conduction"] == f"{__name__}:ohmic"


def test_the_command_line_takes_a_conduction_file(tmp_path, capsys):
    (tmp_path / "mine.py").write_text("import numpy as np\n\n\ndef ohm(cell_v, gap_m, i0_a, g0_m, v0_v):\n"
                                      "    return cell_v * i0_a / v0_v * np.exp(-gap_m / g0_m)\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        base = ["pulse", "--device", "hfoxsy-hfs2", "--scheme", "identical", "--devices", "1", "--quiet",
                "--threads", "1", "--no-noise"]
        assert cli.main([*base, "--backend", "reference", "--conduction", "mine.py:ohm", "-o", "user.nc"]) == 0
        assert cli.main([*base, "--backend", "reference", "-o", "builtin.nc"]) == 0
        assert cli.main([*base, "--conduction", "mine.py:ohm", "-o", "bad.nc"]) == 2
        assert cli.main([*base, "--backend", "reference", "--conduction", "mine.py:nothing", "-o", "bad.nc"]) == 2
        wv = ["pulse", "--device", "hfoxsy-hfs2", "--scheme", "write-verify", "--devices", "1", "--quiet",
              "--backend", "reference", "--targets", "1e-3"]
        assert cli.main([*wv, "--conduction", "mine.py:ohm", "-o", "wv.nc"]) == 0
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    with xr.open_dataset(tmp_path / "wv.nc") as wv_ds:
        assert wv_ds.attrs["scheme__conduction"] == "mine.py:ohm" and wv_ds.attrs["scheme"] == "write-verify"
    assert "conduction = 'mine.py:ohm' needs backend = 'reference'" in err
    assert "conduction = 'mine.py:nothing': 'mine.py' defines no 'nothing'" in err
    assert not (tmp_path / "bad.nc").exists()
    with xr.open_dataset(tmp_path / "user.nc") as user, xr.open_dataset(tmp_path / "builtin.nc") as builtin:
        assert user.attrs["scheme__conduction"] == "mine.py:ohm"
        assert "scheme__conduction" not in builtin.attrs
        assert not np.allclose(user["conductance"].values, builtin["conductance"].values, rtol=1e-3)


def test_a_module_function_text_names_a_law(preset):
    user = _run(preset, noise=False, conduction="memdrift.emulator.conduction:sinh_law")
    builtin = _run(preset, noise=False)
    np.testing.assert_allclose(user["conductance"].values, builtin["conductance"].values, rtol=1e-12)
    assert user.attrs["scheme.conduction"] == "memdrift.emulator.conduction:sinh_law"
    with pytest.raises(MemdriftError, match="module 'no_such_module' cannot be imported"):
        _run(preset, conduction="no_such_module:law")


def cubic(cell_v, gap_m, i0_a, g0_m, v0_v):
    # a law of another shape: linear at small bias, cubic at large
    u = cell_v / v0_v
    return i0_a * np.exp(-gap_m / g0_m) * (u + u * u * u / 6.0)


@settings(max_examples=60, deadline=None)
@given(volts=st.floats(-10.0, 10.0).filter(lambda v: abs(v) > 1e-6), log_rs=st.floats(-1.0, 3.0),
       log_v0=st.floats(-1.8, 0.0), log_i0=st.floats(-5.0, -1.0), gap_nm=st.floats(0.3, 3.0),
       share=st.floats(-40.0, 0.0))
def test_the_solve_of_any_law_satisfies_the_series_equation(volts, log_rs, log_v0, log_i0, gap_nm, share):
    law = _cubic()
    table = np.zeros((1, len(filament.COLUMNS)))
    rs, v0, i0, g0 = 10.0 ** log_rs, 10.0 ** log_v0, 10.0 ** log_i0, 2.5e-10
    for name, value in (("series_resistance_ohm", rs), ("tunnel_voltage_v", v0), ("tunnel_current_a", i0),
                        ("tunnel_length_m", g0)):
        table[0, filament.COL[name]] = value
    vc, current, _, _, failed = law.cell_solve(np.array([volts]), np.array([gap_nm * 1e-9]), table,
                                               np.array([share]))
    assert not failed[0]
    assert np.sign(vc[0]) == np.sign(volts) and abs(vc[0]) <= abs(volts)
    assert abs(vc[0] + current[0] * rs - volts) <= 4e-15 * abs(volts)
    # the current is the law's at that cell voltage, to within what the cell voltage's rounding allows
    own = cubic(vc[0], gap_nm * 1e-9, i0, g0, v0)
    slope = (cubic(vc[0] * (1 + 1e-7), gap_nm * 1e-9, i0, g0, v0) - own) / (vc[0] * 1e-7)
    assert abs(current[0] - own) <= 1e-13 * abs(own) + 8e-16 * abs(volts) * abs(slope)


_CUBIC = []


def _cubic():
    if not _CUBIC:
        _CUBIC.append(compile_conduction(cubic))
    return _CUBIC[0]


def nan_above_half_a_volt(cell_v, gap_m, i0_a, g0_m, v0_v):
    return np.nan if abs(cell_v) > 0.5 else cell_v * 1e-3


def test_a_solve_that_meets_no_finite_current_is_flagged_and_reads_nan():
    law = compile_conduction(nan_above_half_a_volt)
    table = np.zeros((2, len(filament.COLUMNS)))
    table[:, filament.COL["series_resistance_ohm"]] = 100.0
    table[:, filament.COL["tunnel_voltage_v"]] = 0.1
    table[:, filament.COL["tunnel_length_m"]] = 2.5e-10
    # at 0.2 V the root is at 0.18 V; at 5 V it lies where the law gives NaN
    _, current, _, _, failed = law.cell_solve(np.array([0.2, 5.0]), np.full(2, 1e-9), table, np.zeros(2) - 1.0)
    assert current[0] == pytest.approx(0.2 / 1100.0, rel=1e-14)
    assert failed.tolist() == [False, True]
    state = filament.DeviceState(np.full(2, 1e-9), np.full(2, 300.0))
    g = filament.read_conductance(5.0, state, table, law)
    assert np.isnan(g).all()


PROTOCOLS = [("pd-cycling", dict(cycles=2)), ("dr-map", dict(pulses=4, amplitudes_v=(0.9, -1.0))),
             ("iv", dict(steps=6, dwell_s=1e-4))]


@pytest.mark.parametrize("protocol, settings_", PROTOCOLS, ids=[p for p, _ in PROTOCOLS])
def test_a_protocol_with_the_restated_law_reproduces_its_reference_run(preset, protocol, settings_):
    kwargs = dict(devices=3, seed=4, noise=False, backend="reference", **settings_)
    builtin = memdrift.characterise(preset, protocol, **kwargs).compute()
    user = memdrift.characterise(preset, protocol, conduction=restated, **kwargs).compute()
    compiled = memdrift.characterise(preset, protocol, **dict(kwargs, backend="compiled")).compute()
    # the protocol moves the devices (each one's reads span more than a factor of 1.5)
    moving = builtin["current" if protocol == "iv" else "conductance"].values.reshape(3, -1)
    assert np.all(np.abs(moving).max(axis=1) > 1.5 * np.abs(moving).min(axis=1))
    for name, var in builtin.data_vars.items():
        if name in ("amplitude", "width"):
            continue
        # a difference (delta_conductance) is good to rounding of the conductances it is taken from
        scale = np.abs(builtin["conductance"]).max().item() if "delta" in name else 0.0
        np.testing.assert_allclose(user[name].values, var.values, rtol=1e-12, atol=1e-12 * scale, err_msg=name)
        # and the reference is the compiled kernel's twin
        np.testing.assert_allclose(compiled[name].values, var.values, rtol=1e-6, atol=1e-6 * scale, err_msg=name)
    assert user.attrs["scheme.conduction"] == f"{__name__}:restated" and user.attrs["backend"] == "reference"
    assert {k: v for k, v in user.attrs.items() if k != "scheme.conduction"} == builtin.attrs
    assert compiled.attrs["backend"] == "compiled" and "scheme.conduction" not in compiled.attrs


def test_pd_cycling_with_noise_and_the_restated_law_reproduces_its_reference_run(preset):
    kwargs = dict(devices=3, seed=4, cycles=2, backend="reference")
    builtin = memdrift.characterise(preset, "pd-cycling", **kwargs).compute()
    user = memdrift.characterise(preset, "pd-cycling", conduction=restated, **kwargs).compute()
    for name in VARIABLES:
        np.testing.assert_allclose(user[name].values, builtin[name].values, rtol=1e-12, atol=0.0, err_msg=name)


def test_a_protocol_refuses_a_law_where_it_cannot_run_one(preset):
    from memdrift.emulator.protocols import UnusedOption
    from memdrift.errors import NamedError

    with pytest.raises(MemdriftError, match=r"conduction = 'test_conduction:restated' needs backend = "
                                            r"'reference'.*allowed: backend=\"reference\""):
        memdrift.characterise(preset, "dr-map", devices=1, conduction=restated)
    # retention and endurance keep the kernel's state between trains: compiled only
    for protocol in ("retention", "endurance"):
        with pytest.raises(UnusedOption, match=f"conduction is not used by protocol '{protocol}'"):
            memdrift.characterise(preset, protocol, devices=1, conduction=restated)
        with pytest.raises(UnusedOption, match=f"backend is not used by protocol '{protocol}'"):
            memdrift.characterise(preset, protocol, devices=1, backend="reference")
    # the reference draws every device from one stream: its ensemble is one chunk
    with pytest.raises(NamedError, match=r"chunk_devices = 1 is smaller than devices = 2 on backend 'reference'"):
        memdrift.characterise(preset, "pd-cycling", devices=2, chunk_devices=1, backend="reference")
    with pytest.raises(MemdriftError, match=r"backend = 'numpy' is out of range; allowed: 'compiled', 'reference'"):
        memdrift.characterise(preset, "iv", backend="numpy")
    with pytest.raises(MemdriftError, match=r"conduction = 3 has the wrong type; allowed: None \(the built-in"):
        memdrift.characterise(preset, "iv", backend="reference", conduction=3)
    with pytest.raises(MemdriftError, match=r"is not odd in cell_v"):
        memdrift.characterise(preset, "pd-cycling", devices=1, cycles=1, backend="reference", conduction=even)


def test_memdrift_characterise_takes_a_conduction_file(tmp_path, capsys):
    (tmp_path / "mine.py").write_text("import numpy as np\n\n\ndef sinh(cell_v, gap_m, i0_a, g0_m, v0_v):\n"
                                      "    return i0_a * np.exp(-gap_m / g0_m) * np.sinh(cell_v / v0_v)\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        base = ["characterise", "--device", "hfoxsy-hfs2", "--protocol", "dr-map", "--pulses", "3", "--amplitudes",
                "0.9,-0.9", "--devices", "2", "--quiet", "--threads", "1", "--no-noise"]
        assert cli.main([*base, "--backend", "reference", "--conduction", "mine.py:sinh", "-o", "user.nc"]) == 0
        assert cli.main([*base, "--backend", "reference", "-o", "builtin.nc"]) == 0
        assert cli.main([*base, "--conduction", "mine.py:sinh", "-o", "bad.nc"]) == 2
        assert cli.main([*base, "--backend", "reference", "--chunk-devices", "1", "-o", "bad.nc"]) == 2
        assert cli.main([*base[:4], "retention", "--conduction", "mine.py:sinh", "-o", "bad.nc"]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert "conduction = 'mine.py:sinh' needs backend = 'reference'" in err and "(--backend reference)" in err
    assert "--chunk-devices = 1 is smaller than devices = 2 on --backend 'reference'" in err
    assert "conduction (--conduction) is not used by protocol 'retention'" in err
    assert not (tmp_path / "bad.nc").exists()
    with xr.open_dataset(tmp_path / "user.nc") as user, xr.open_dataset(tmp_path / "builtin.nc") as builtin:
        assert user.attrs["scheme__conduction"] == "mine.py:sinh" and user.attrs["backend"] == "reference"
        assert "scheme__conduction" not in builtin.attrs
        np.testing.assert_allclose(user["conductance"].values, builtin["conductance"].values, rtol=1e-12, atol=0.0)
