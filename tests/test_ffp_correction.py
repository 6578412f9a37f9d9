"""The film FFP's per-device table correction: it drives each event's |dR| to the target from a table that
is too strong or too weak, stays inside its limits, agrees between the backends, and travels through the
preset's calibration, the sweeps and the command line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memdrift
from memdrift.emulator.bulk4t_schemes import Bulk4TDevices, FFPOptions, run_ffp
from memdrift.emulator.params import load_preset
from memdrift.errors import MemdriftError

TARGET_OHM = 0.1


@pytest.fixture(scope="module")
def film():
    params = load_preset("tio2x-4t").params.replace(grid_x=8.0, grid_y=8.0)
    r0 = float(Bulk4TDevices(params, 1).read()[0])
    return params, r0


def _run(film, scale, exponent, backend="compiled", max_amplitude_v=7.0):
    params, r0 = film
    # a constant table: 5 V up, 5.5 V down, scaled; on this 8 x 8 film they move R by 0.13 and 0.14 ohm an event
    vw = scale * np.vstack([np.full(7, 5.0), np.full(7, 5.5)])
    dev = Bulk4TDevices(params, 2, seed=5, backend=backend, deterministic=True)
    res = run_ffp(dev, vw, np.linspace(r0 - 3.0, r0 + 3.0, 7), max_events=80, hrs_ohm=r0 + 0.05,
                  lrs_ohm=r0 - 3.0, initialise=False, correction_exponent=exponent, target_ohm=TARGET_OHM,
                  max_amplitude_v=max_amplitude_v)
    steps = np.abs(np.diff(np.concatenate([res["resistance_start"][..., None], res["resistance"]], axis=-1),
                           axis=-1))
    return res, steps


def _last(res, steps, k=5):
    """|dR| of the last k events of each (device, branch)."""
    return np.array([steps[d, c, res["events"][d, c] - k:res["events"][d, c]]
                     for d in range(steps.shape[0]) for c in range(steps.shape[1])])


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_the_correction_drives_each_event_to_the_target_from_a_strong_or_a_weak_table(film, scale):
    plain, plain_steps = _run(film, scale, 0.0)
    corrected, corr_steps = _run(film, scale, 0.3)
    # the table alone misses the target by its own error on every event (+30 % or -30 %)
    assert np.all(np.abs(_last(plain, plain_steps) / TARGET_OHM - 1.0) > 0.25)
    # the corrected films reach it within 2 % on their last events, both branches
    np.testing.assert_allclose(_last(corrected, corr_steps), TARGET_OHM, rtol=0.02)
    # by changing their amplitudes, in the direction the table erred
    first, last = np.abs(corrected["amplitude"][:, 0, 0]), np.abs(corrected["amplitude"][:, 0, 10])
    assert np.all(last < first) if scale == 1.0 else np.all(last > first)


def test_the_correction_stays_within_its_step_and_the_source_limit(film):
    res, _ = _run(film, 0.5, 1.0, max_amplitude_v=3.0)
    amp = np.abs(res["amplitude"])
    assert np.nanmax(amp) <= 3.0
    assert np.nanmax(amp) == 3.0            # the weak table pushed it to the limit
    ratio = amp[..., 1:] / amp[..., :-1]
    ok = np.isfinite(ratio)
    # one event changes the factor by at most 2x (the clip), whatever |dR| it saw
    assert np.all((ratio[ok] >= 0.5 - 1e-12) & (ratio[ok] <= 2.0 + 1e-12))


def test_a_correction_of_the_last_write_moves_in_bounded_steps_where_the_table_jumps(film):
    params, r0 = film
    # a table that jumps between 2 and 6 V from one R bin to the next
    r_grid = np.linspace(r0 - 3.0, r0 + 3.0, 31)
    vw = np.vstack([np.where(np.arange(31) % 2, 6.0, 2.0)] * 2)
    runs = {}
    for base in ("table", "last"):
        dev = Bulk4TDevices(params, 1, seed=5, deterministic=True)
        res = run_ffp(dev, vw, r_grid, max_events=60, hrs_ohm=r0 + 0.05, lrs_ohm=r0 - 3.0, initialise=False,
                      correction_exponent=0.3, target_ohm=TARGET_OHM, correction_base=base, branches=(1.0,))
        amp = np.abs(res["amplitude"][0, 0, :res["events"][0, 0]])
        runs[base] = amp[1:] / amp[:-1]
    # the last write's amplitude, corrected, is the next one: at most 2^0.3 apart
    assert np.all((runs["last"] >= 0.5 ** 0.3 - 1e-12) & (runs["last"] <= 2.0 ** 0.3 + 1e-12))
    # the table's own jumps pass through a correction of the table
    assert np.min(runs["table"]) < 0.5 and np.max(runs["table"]) > 1.5


def test_the_backends_agree_on_a_corrected_run(film):
    fast, _ = _run(film, 0.5, 0.3, "compiled")
    slow, _ = _run(film, 0.5, 0.3, "reference")
    np.testing.assert_array_equal(fast["events"], slow["events"])
    np.testing.assert_allclose(fast["resistance"], slow["resistance"], rtol=1e-9, equal_nan=True)
    # the correction divides by |dR|, a difference of two reads of ~850 ohm: the backends' rounding of R
    # (1e-13 of it) is ~1e-9 of dR, and the amplitudes carry that
    np.testing.assert_allclose(fast["amplitude"], slow["amplitude"], rtol=1e-7, equal_nan=True)


@settings(max_examples=25, deadline=None)
@given(st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.floats(min_value=1.0 + 1e-9,
                                                                       allow_nan=False)))
def test_an_exponent_outside_zero_to_one_is_refused_naming_it(bad):
    with pytest.raises(MemdriftError, match="correction_exponent"):
        FFPOptions(correction_exponent=bad)


def test_an_unknown_correction_base_is_refused_naming_the_allowed():
    with pytest.raises(MemdriftError, match="correction_base.*table, last"):
        FFPOptions(correction_base="median")


def test_a_preset_calibrated_with_a_correction_replays_it_and_says_so(tmp_path):
    import dataclasses

    from memdrift.emulator.params import save_preset

    preset = load_preset("tio2x-4t")
    corrected = dataclasses.replace(preset, calibration={**preset.calibration, "ffp_correction_exponent": 0.3})
    path = tmp_path / "corrected.toml"
    save_preset(corrected, path)
    r0 = float(Bulk4TDevices(preset.params.replace(grid_x=8.0, grid_y=8.0), 1).read()[0])
    # a window an 8 x 8 film reaches below the source limit
    small = dict(devices=1, seed=4, grid=8, conditioning_cycles=0, map_amplitudes_v=(2.0, 5.0, 7.0),
                 map_pulses=10, max_events=40, levels=(4,), hrs_ohm=r0 + 0.4, lrs_ohm=r0 - 0.6,
                 window_ohm=(0.05, 0.3), target_ohm=TARGET_OHM)
    replayed = memdrift.simulate(str(path), "ffp-segmentation", **small)
    given_ = memdrift.simulate("tio2x-4t", "ffp-segmentation", correction_exponent=0.3, **small)
    plain = memdrift.simulate("tio2x-4t", "ffp-segmentation", **small)
    np.testing.assert_array_equal(replayed["resistance"].values, given_["resistance"].values)
    assert given_.attrs["scheme.correction_exponent"] == 0.3
    assert "scheme.correction_exponent" not in plain.attrs
    assert not np.array_equal(plain["amplitude"].values, given_["amplitude"].values, equal_nan=True)


def test_a_sweep_spec_carries_the_correction_and_checks_it():
    from memdrift.experiments.sweep.schemes import ffp_options

    base = {"window_low_ohm": 0.1, "window_high_ohm": 0.3, "target_fraction": 0.9, "levels": 32,
            "ffp_width_s": 0.8, "max_events": 10, "map_pulses": 5, "conditioning_cycles": 0, "read_time_s": 0.0,
            "hrs_ohm": 880.0, "lrs_ohm": 740.0}
    assert "correction_exponent" not in ffp_options(base)
    assert ffp_options({**base, "correction_exponent": 0.2})["correction_exponent"] == 0.2
    with pytest.raises(MemdriftError, match="correction_exponent"):
        ffp_options({**base, "correction_exponent": 2.0})


def test_the_command_lines_take_the_correction(tmp_path, film, capsys):
    import dataclasses

    import xarray as xr

    from memdrift.experiments.cli import main

    params, r0 = film
    preset = load_preset("tio2x-4t")
    small = dataclasses.replace(preset, name="tio2x-small", params=params,
                                calibration={"hrs_ohm": r0 + 0.4, "lrs_ohm": r0 - 0.6})
    (tmp_path / "small.toml").write_text(small.to_toml())
    out = tmp_path / "ffp.nc"
    base = ["pulse", "--device", str(tmp_path / "small.toml"), "--scheme", "ffp", "--devices", "1", "--quiet",
            "--threads", "1", "-o", str(out)]
    assert main([*base, "--ffp-correction", "1.5"]) == 2
    assert "correction" in capsys.readouterr().err and not out.exists()
    assert main(["calibrate", "--targets", "filament_hfoxsy_hfs2", "--ffp-correction", "0.1",
                 "-o", str(tmp_path / "x.toml")]) == 2
    assert "ffp-correction" in capsys.readouterr().err
    assert main([*base, "--ffp-correction", "0.2"]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.attrs["scheme__correction_exponent"] == 0.2   # the file spells the dotted name CF-clean


def test_an_initialisation_pulse_grows_at_most_by_the_preset_s_step_growth(film):
    params, r0 = film
    widths = {}
    for growth in (math.inf, 2.0):
        dev = Bulk4TDevices(params, 1, seed=3)
        dev.init_first_pulse_s = 0.05
        dev.init_step_growth = growth
        taken: list[float] = []
        write = dev.write

        def recording(amplitude_v, width_s, active=None, write=write, taken=taken):
            taken.append(float(np.max(width_s)))
            return write(amplitude_v, width_s, active)

        dev.write = recording
        r = dev.initialise(r0 - 8.0, +1.0)
        assert r[0] <= r0 - 8.0
        widths[growth] = np.array(taken)
    # the rate-sized pulses leap from the 50 ms first one; bounded, they double at most
    assert np.max(widths[math.inf][1:] / widths[math.inf][:-1]) > 2.0
    assert np.max(widths[2.0][1:] / widths[2.0][:-1]) <= 2.0 + 1e-12


def test_the_step_growth_travels_from_the_preset_s_calibration_and_is_checked(tmp_path, film):
    import dataclasses

    from memdrift.emulator.params import save_preset

    params, r0 = film
    preset = load_preset("tio2x-4t")
    small = dict(grid=8, conditioning_cycles=0, amplitudes_v=(5.0,), pulses=2, hrs_ohm=r0 + 0.2, lrs_ohm=r0 - 0.2)
    with pytest.raises(MemdriftError, match="init_step_growth"):
        memdrift.simulate("tio2x-4t", "identical", init_step_growth=1.0, **small)
    path = tmp_path / "bounded.toml"
    save_preset(dataclasses.replace(preset, calibration={**preset.calibration, "init_step_growth": 2.0}), path)
    assert memdrift.simulate(str(path), "identical", **small).attrs["scheme.init_step_growth"] == 2.0
    assert "scheme.init_step_growth" not in memdrift.simulate("tio2x-4t", "identical", **small).attrs
