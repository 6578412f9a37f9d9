"""`memdrift calibrate --targets bulk_tio2x_four_terminal`: the film's init stage recovers the
initialisation it is given, charges a flagged film, judges the FFP figures by their bands, and the CLI
writes a preset that loads and records what it did."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from memdrift.emulator.params import Preset, load_preset, preset_from_toml, save_preset
from memdrift.errors import MemdriftError
from memdrift.experiments.cli import main
from memdrift.mapping import calibrate_film as cf


def _small(**changes):
    """tio2x-4t on 16 x 16 with its local sink: the init costs milliseconds."""
    return load_preset("tio2x-4t").params.replace(grid_x=16.0, grid_y=16.0, **changes)


def test_targets_are_the_papers():
    t = cf.FilmTargets.from_reference()
    assert (t.hrs_ohm, t.lrs_ohm, t.init_amplitude_v) == (880.0, 740.0, 6.0)
    assert (t.events_potentiation, t.events_depression) == (494.0, 579.0)
    assert (t.power_potentiation_w, t.power_depression_w) == (0.2407, 0.1146)
    assert (t.skipped_n512_potentiation, t.skipped_n512_depression) == (117, 8)
    with pytest.raises(MemdriftError, match="allowed: bulk_tio2x_four_terminal"):
        cf.FilmTargets.from_reference("filament_hfoxsy_hfs2")


def test_init_stage_recovers_the_initialisation_it_is_given():
    """Targets from a known film; the start 1.6x off in sigma and 4x in nu0; back within the 2 % band."""
    truth = _small()
    fig = cf.init_figures(truth)
    assert fig["flag"] == 0 and fig["hrs_ohm"] > fig["lrs_ohm"]
    targets = dataclasses.replace(cf.FilmTargets(), hrs_ohm=fig["hrs_ohm"], lrs_ohm=fig["lrs_ohm"])
    start = truth.replace(conductivity_base_s_per_m=truth.conductivity_base_s_per_m * 1.6,
                          conductivity_vacancy_s_per_m=truth.conductivity_vacancy_s_per_m * 1.6,
                          attempt_frequency_hz=truth.attempt_frequency_hz / 4.0)
    off = cf.init_figures(start)
    assert abs(off["hrs_ohm"] / fig["hrs_ohm"] - 1) > 0.1  # the start misses by far more than the band
    p, info = cf.stage_init(start, targets, report=lambda s: None)
    assert info["met"], info
    assert max(abs(r) for r in info["residual_relative"]) < 0.02
    # the two parameters are identifiable here: each lands within 3 of its standard errors of the truth
    for name in cf.INIT_FREE:
        rel = info["relative_uncertainty"][name]
        assert 0 < rel < 1, name
        assert abs(math.log(getattr(p, name) / getattr(truth, name))) < 3 * rel + 0.02, name
    # the vacancy conductivity keeps its ratio to the base
    assert p.conductivity_vacancy_s_per_m / p.conductivity_base_s_per_m == pytest.approx(
        truth.conductivity_vacancy_s_per_m / truth.conductivity_base_s_per_m)


def test_a_flagged_initialisation_is_charged_not_accepted():
    """A film whose +-6 V initialisation passes its thermal ceiling scores the penalty, whatever it reads."""
    hot = _small(substrate_conductance_w_per_m2k=1e6, thermal_ceiling_k=400.0)
    fig = cf.init_figures(hot)
    assert fig["flag"] != 0
    assert np.all(cf._init_residuals(fig, cf.FilmTargets()) == 1e3)
    cool = cf.init_figures(_small())
    assert np.all(np.abs(cf._init_residuals(cool, cf.FilmTargets())) < 1e3)


def _fig(**changes):
    fig = {"seed": 0, "events": [494, 579], "power_w": [0.2407, 0.1146], "temperature_peak_k": [900.0, 700.0],
           "flagged_events": 0, "skipped_n32": [0, 0], "skipped_n128": [0, 0], "skipped_n512": [117, 8],
           "skipped_n512_share_at_start": [0.9, 0.75]}
    fig.update(changes)
    return fig


def test_the_ffp_judgement_holds_each_band():
    assert all(cf.judge_ffp(_fig()).values())
    cases = {
        "events_potentiation": {"events": [545, 579]},
        "events_depression": {"events": [494, 518]},
        "power_potentiation": {"power_w": [0.2407 * 1.36, 0.1146]},
        "power_depression": {"power_w": [0.2407, 0.1146 * 0.64]},
        "skipped_n512_potentiation": {"skipped_n512": [58, 8]},
        "skipped_n512_depression": {"skipped_n512": [117, 17]},
        "skipped_n32_none": {"skipped_n32": [1, 0]},
        "skips_at_the_paper_ends": {"skipped_n512_share_at_start": [0.4, 0.75]},
        "unflagged": {"flagged_events": 1},
    }
    for key, change in cases.items():
        met = cf.judge_ffp(_fig(**change))
        assert not met[key], key
        assert all(v for k, v in met.items() if k != key), key
    # the edges of the bands are inside
    assert cf.judge_ffp(_fig(events=[544, 639], skipped_n512=[59, 16]))["events_depression"]
    assert cf.judge_ffp(_fig(skipped_n512=[234, 0], skipped_n512_share_at_start=[0.6, math.nan]))[
        "skips_at_the_paper_ends"]


def test_cli_init_stage_writes_a_preset_that_loads(tmp_path, capsys):
    start = tmp_path / "start.toml"
    base = load_preset("tio2x-4t")
    save_preset(Preset(name="film-start", params=_small(), description="small film", scheme=base.scheme), start)
    out = tmp_path / "film.toml"
    rc = main(["calibrate", "--targets", "bulk_tio2x_four_terminal", "--stages", "init", "--start-preset",
               str(start), "--init-evaluations", "4", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    fitted = load_preset(out)
    cal = fitted.calibration
    assert cal["stages"][0]["stage"] == "init" and cal["stages"][0]["evaluations"] >= 4
    assert cal["hrs_ohm"] == 880.0 and cal["lrs_ohm"] == 740.0
    assert cal["command"].startswith("memdrift ") and cal["started_from"] == "film-start"
    assert preset_from_toml(out.read_text(), str(out)) == fitted


def test_cli_refuses_filament_stages_and_a_filament_start(tmp_path, capsys):
    out = str(tmp_path / "x.toml")
    assert main(["calibrate", "--targets", "bulk_tio2x_four_terminal", "--stages", "global", "-o", out]) == 2
    assert "allowed for the film: init, check, mechanism, grid" in capsys.readouterr().err
    assert main(["calibrate", "--targets", "bulk_tio2x_four_terminal", "--stages", "init", "--start-preset",
                 "hfoxsy-hfs2", "-o", out]) == 2
    assert "allowed: a bulk4t preset" in capsys.readouterr().err


def test_a_short_first_pulse_keeps_a_fast_film_at_its_initialisation_target():
    """A film 1000x faster at 6 V than the preset passes 880 ohm far on a 1 s first pulse, not on 0.05 s."""
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices

    fast = _small(attempt_frequency_hz=load_preset("tio2x-4t").params.attempt_frequency_hz * 1000,
                  max_steps_per_pulse=1e6)
    ends = {}
    for first in (1.0, cf.INIT_FIRST_PULSE_S):
        dev = Bulk4TDevices(fast, 1, seed=0, deterministic=True)
        dev.init_first_pulse_s = first
        dev.condition(1)
        r0 = dev.approach(740.0, +1.0)[0]
        ends[first] = dev.approach(880.0, -1.0, reset_ohm=740.0)[0]
        assert r0 <= 740.0
    assert ends[1.0] - 880.0 > 50.0         # the long first pulse carries it far past the target
    assert 0.0 <= ends[cf.INIT_FIRST_PULSE_S] - 880.0 < 0.05 * (ends[1.0] - 880.0)


def test_the_window_map_counts_only_pulses_that_start_in_the_window():
    """Runs that leave the window: the window map's bins lie in it and ignore what happens outside."""
    from memdrift.emulator.bulk4t_schemes import FFPOptions, build_dr_map

    # potentiation runs from 880 ohm: 1 V takes 0.1 ohm per pulse, 2 V 10.5 ohm (it leaves 740-880 in 14
    # pulses and then, outside, would be counted at 50 ohm per pulse)
    steps = {1.0: np.full(40, 0.1), 2.0: np.r_[np.full(14, 10.5), np.full(26, 50.0)]}
    res = {"resistance_initial": np.full((1, 4), np.nan), "resistance": np.full((1, 4, 40), np.nan),
           "run_amplitude": np.array([1.0, 2.0, 1.0, 2.0]),
           "run_branch": np.array(["potentiation", "potentiation", "depression", "depression"])}
    for c, a in enumerate([1.0, 2.0, 1.0, 2.0]):
        sign = -1.0 if c < 2 else 1.0
        start = 880.0 if c < 2 else 740.0
        res["resistance_initial"][0, c] = start
        res["resistance"][0, c] = start + sign * np.cumsum(steps[a])
    whole = build_dr_map(res, ffp_width_s=2.0, target_ohm=1.0)
    window = build_dr_map(res, ffp_width_s=2.0, target_ohm=1.0, window_ohm=(740.0, 880.0))
    assert whole["dr_map_resistance"].min() < 0 and whole["dr_map_resistance"].max() > 1500
    r = window["dr_map_resistance"]
    assert 740.0 < r.min() and r.max() < 880.0
    pot = window["dr_map"][0]
    assert np.nanmax(pot[:, 1]) == pytest.approx(10.5) and np.nanmin(pot[:, 0]) == pytest.approx(0.1)
    with pytest.raises(MemdriftError, match="map_range = 'all' is unknown; allowed: runs, window"):
        FFPOptions(map_range="all")


def test_the_stack_candidate_reproduces_its_recorded_initialisation():
    """examples/presets/tio2x-4t-stack-candidate.toml: its init figures are what its record says (32 x 32)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "presets" / "tio2x-4t-stack-candidate.toml"
    cand = load_preset(path)
    p = cand.params
    assert (p.thermal_model, p.scharfetter_gummel, p.contact_resistivity_ohm_m2) == (1.0, 1.0, 1e-9)
    stage = cand.calibration["stages"][0]
    fig = cf.init_figures(p)
    assert fig["flag"] == 0 and fig["temperature_peak_k"] < p.thermal_ceiling_k
    assert fig["hrs_ohm"] == pytest.approx(stage["hrs_ohm"], rel=1e-6)
    assert fig["lrs_ohm"] == pytest.approx(stage["lrs_ohm"], rel=1e-6)
    assert abs(fig["hrs_ohm"] / 880.0 - 1) < 0.02 and abs(fig["lrs_ohm"] / 740.0 - 1) < 0.02
    # it says what it does not meet
    assert "events_potentiation" in cand.calibration["not_met"]


def test_a_later_stage_keeps_the_start_preset_s_init_record_and_its_ffp_correction(tmp_path):
    base = load_preset("tio2x-4t")
    record = {"stage": "init", "evaluations": 7, "hrs_ohm": 880.0, "lrs_ohm": 740.0}
    start = tmp_path / "initialised.toml"
    save_preset(dataclasses.replace(base, name="initialised", params=_small(),
                                    calibration={"stages": [record], "ffp_correction_exponent": 0.1}), start)
    result = cf.calibrate_film(str(start), stages=(), report=lambda _: None)
    assert result.preset.calibration["stages"] == [record]
    assert result.preset.calibration["ffp_correction_exponent"] == 0.1
    assert result.preset.calibration["init_step_growth"] == cf.INIT_STEP_GROWTH
    given = cf.calibrate_film(str(start), stages=(), ffp_correction_exponent=0.3, ffp_correction_base="last",
                              report=lambda _: None)
    assert given.preset.calibration["ffp_correction_exponent"] == 0.3
    assert given.preset.calibration["ffp_correction_base"] == "last"
    with pytest.raises(MemdriftError, match="correction_base"):
        cf.calibrate_film(str(start), stages=(), ffp_correction_base="median", report=lambda _: None)


def test_the_mechanism_is_met_only_when_the_cold_film_crosses_the_window(monkeypatch):
    heated = {"seed": 0, "skipped_n512": [120, 5], "crossed": [True, True]}
    cold = {"skipped_n512": [0, 0], "crossed": [False, False], "events": [2000, 2000]}
    monkeypatch.setattr(cf, "ffp_figures", lambda preset, **kw: dict(cold))
    stuck = cf.stage_mechanism(None, heated)
    # every skip "went", because the cold film hardly moved: no verdict
    assert stuck["potentiation_skips_lost"] == 1.0 and not stuck["compared"] and not stuck["met"]
    cold["crossed"] = [True, True]
    crossed = cf.stage_mechanism(None, heated)
    assert crossed["compared"] and crossed["met"]
    cold["skipped_n512"] = [60, 0]
    assert not cf.stage_mechanism(None, heated)["met"]
