"""The shipped hfoxsy-hfs2 preset against the paper's Fig. 2d-f (shared/reference/targets.toml).

Emulates the preset under the 20+20 ramp and extracts with ``extract_record``,
as ``memdrift pulse … && memdrift extract …`` does. The preset's [calibration]
table records every target with its residual (all met on the 200-device
check ensembles, seeds 0-2). The differential bins (31 needed) are not asserted
here: on this 60-device ensemble the depression range (16 states) has R² 0.9950,
at the extraction's limit (31 bins, measured).
"""

from __future__ import annotations

import pytest

from memdrift.emulator.engine import run_pulses
from memdrift.emulator.params import load_preset
from memdrift.emulator.pulses import ramp
from memdrift.mapping.extract import extract_record

BW_POTENTIATION_S = 81.077e-6
BW_DEPRESSION_S = 80.520e-6
SIGMA_S = 23.7e-6


@pytest.fixture(scope="module")
def record():
    """60 devices x 100 cycles (the paper's cycle count), seed 0, one thread: a few seconds."""
    preset = load_preset("hfoxsy-hfs2")
    ds = run_pulses(preset.params, ramp(), devices=60, cycles=100, seed=0, threads=1, preset=preset.name)
    return extract_record(ds, levels=())


@pytest.mark.slow
def test_both_branches_have_a_linear_range_with_r2_above_0995(record):
    assert record["linear_r2"]["potentiation"] >= 0.995
    assert record["linear_r2"]["depression"] >= 0.995


@pytest.mark.slow
def test_mean_state_sigma_within_25_percent(record):
    assert record["state_sigma"] == pytest.approx(SIGMA_S, rel=0.25)


@pytest.mark.slow
def test_sixteen_states_on_each_branch(record):
    assert record["states"] >= 16
    assert record["branches"]["potentiation"]["states"] >= 16
    assert record["branches"]["depression"]["states"] >= 16


@pytest.mark.slow
def test_depression_bin_width_within_10_percent(record):
    assert record["branches"]["depression"]["bin_width"] == pytest.approx(BW_DEPRESSION_S, rel=0.10)


@pytest.mark.slow
def test_potentiation_bin_width_within_10_percent(record):
    assert record["branches"]["potentiation"]["bin_width"] == pytest.approx(BW_POTENTIATION_S, rel=0.10)


# --------------------------------------------------------------------------- the paper's protocol

from memdrift.mapping.calibrate_targets import RampTargets, check_protocol  # noqa: E402

TARGETS = RampTargets.from_reference("filament_hfoxsy_hfs2")


@pytest.fixture(scope="module")
def single_devices():
    """The paper measured ONE device over 100 cycles: five devices drawn from the preset's variation
    (seeds 21-25, not the calibration's), each cycled 100 times and extracted on its own."""
    return check_protocol(load_preset("hfoxsy-hfs2").params, TARGETS, seed=20)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the shipped preset meets the figures as an ensemble mean, not one "
                                       "device at a time, and not the energy (its [calibration] says so)")
def test_four_of_five_single_devices_meet_every_figure_and_the_energy(single_devices):
    assert single_devices["devices_meeting_every_target"] >= 4, [r["met"] for r in single_devices["per_device"]]


@pytest.mark.slow
def test_single_device_energy_is_what_the_preset_records(single_devices):
    """The energy per 40-pulse cycle of each single device against the 51-52 nJ the preset's
    [calibration] records at converged stepping and the ~51 nJ at its own (paper: 23.74 nJ)."""
    for row in single_devices["per_device"]:
        assert 45e-9 < row["figures"]["energy_per_cycle"] < 56e-9
        assert not row["met"]["energy_per_cycle"]
