"""Step control of the filament cell: convergence in the integration tolerance, the F_min event.

Reads are compared in bin widths of the paper's 81 µS (Fig. 2d) on the preset's nominal device,
at the class's default stepping, noise off, second cycle of its 20 + 20 ramp (the first starts from the preset's initial gap)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memdrift.emulator.engine import run_pulses
from memdrift.emulator.params import FilamentParams, load_preset
from memdrift.emulator.pulses import PulseTrain, ramp
from memdrift.errors import MemdriftError

BIN_WIDTH_S = 81.077e-6
BACKENDS = ("compiled", "reference")


@pytest.fixture(scope="module")
def nominal() -> FilamentParams:
    # the preset keeps the stepping it was calibrated with; the class defaults are the converged stepping
    defaults = FilamentParams()
    return load_preset("hfoxsy-hfs2").params.replace(
        variation={}, max_temperature_step_k=defaults.max_temperature_step_k,
        integration_tolerance=defaults.integration_tolerance,
        thermal_step_error_fraction=defaults.thermal_step_error_fraction)


_READS: dict[tuple[float, str, float], np.ndarray] = {}


def ramp_reads(params: FilamentParams, tolerance: float, backend: str) -> np.ndarray:
    """The 40 reads of the second ramp cycle (kept per tolerance, backend and thermal error control:
    the runs repeat)."""
    key = (tolerance, backend, params.thermal_step_error_fraction)
    if key not in _READS:
        p = params.replace(integration_tolerance=tolerance)
        ds = run_pulses(p, ramp(), devices=1, cycles=2, seed=0, noise=False, backend=backend, threads=1)
        _READS[key] = ds["conductance"].values[0, 1, :]
    return _READS[key]


def threshold_gap(params: FilamentParams, tolerance: float, backend: str) -> float:
    """Gap after a SET pulse long enough to end at the F_min threshold: with F_min raised into the
    preset's gap range the field at 1.2 V falls to F_min at g* ~ 2.22 nm and the gap holds there."""
    p = params.replace(integration_tolerance=tolerance, min_field_v_per_m=2.3e9)
    train = PulseTrain(np.array([1.2]), np.array([1e-6]), read_voltage_v=-0.1, read_width_s=1e-9,
                       read_gap_s=0.0)
    ds = run_pulses(p, train, devices=1, cycles=1, seed=0, noise=False, backend=backend, threads=1)
    return float(ds["gap"].values.ravel()[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_halving_the_tolerance_moves_every_read_by_under_005_bins(nominal, backend):
    default = nominal.integration_tolerance
    shift = np.abs(ramp_reads(nominal, default, backend) - ramp_reads(nominal, 0.5 * default, backend))
    assert ramp_reads(nominal, default, backend).size == 40
    assert shift.max() / BIN_WIDTH_S < 0.05


def test_default_tolerance_within_01_bins_of_16x_tighter(nominal, backend="compiled"):
    """Compiled only: the reference at 1/16 takes ~40 s, and the twins agree (tests/test_filament.py)."""
    default = nominal.integration_tolerance
    shift = np.abs(ramp_reads(nominal, default, backend) - ramp_reads(nominal, default / 16, backend))
    assert shift.max() / BIN_WIDTH_S < 0.1


def test_tolerance_scales_the_step_bounds(nominal, compiled_substeps):
    """A looser tolerance takes fewer sub-steps and moves the reads: the parameter reaches the kernel."""
    steps = {tol: compiled_substeps(nominal.replace(integration_tolerance=tol), ramp()) for tol in (0.5, 4.0)}
    assert steps[0.5] > 1.5 * steps[4.0]
    moved = np.abs(ramp_reads(nominal, 4.0, "compiled") - ramp_reads(nominal, 0.5, "compiled")).max()
    assert moved > 1e-3 * BIN_WIDTH_S


@pytest.mark.parametrize("backend", BACKENDS)
def test_pulse_ending_at_the_fmin_threshold_gives_one_gap_whatever_the_tolerance(nominal, backend):
    gaps = [threshold_gap(nominal, tol, backend) for tol in (1 / 32, 0.5, 2.0, 16.0)]
    assert 2.0e-9 < gaps[0] < 2.5e-9  # it did switch, and stopped short of g_min
    assert np.ptp(gaps) < 1e-4 * 1e-9


def test_threshold_gap_is_where_the_field_meets_fmin(nominal):
    from memdrift.emulator import engine, filament

    p = nominal.replace(min_field_v_per_m=2.3e9)
    gap = threshold_gap(nominal, 0.5, "compiled")
    table, _ = engine.parameter_table(p, engine.device_keys(0, 1))
    vc, _ = filament.cell_voltage(np.array([1.2]), np.array([gap]), table)
    assert abs(filament.field_excess(vc, np.array([gap]), table)[0]) < 1e-6 * p.min_field_v_per_m


def test_backends_agree_at_the_threshold(nominal):
    assert threshold_gap(nominal, 2.0, "compiled") == pytest.approx(threshold_gap(nominal, 2.0, "reference"),
                                                                    abs=1e-16)


@pytest.mark.parametrize("value", [0.0, -0.5, 16.5, float("nan")])
def test_bad_tolerance_is_refused_naming_the_field(nominal, value):
    with pytest.raises(MemdriftError, match="integration_tolerance"):
        nominal.replace(integration_tolerance=value)


# --------------------------------------------------------------------------- thermal error control


def test_thermal_error_control_within_005_bins_of_the_tight_temperature_bound(nominal):
    """The thermal error estimate at the default tolerance against an independent reference: the
    temperature-step bound alone (thermal_step_error_fraction 0) at a 16-fold tighter tolerance."""
    assert nominal.thermal_step_error_fraction > 0.0
    tight = nominal.replace(thermal_step_error_fraction=0.0)
    shift = np.abs(ramp_reads(nominal, nominal.integration_tolerance, "compiled")
                   - ramp_reads(tight, nominal.integration_tolerance / 16, "compiled"))
    assert shift.max() / BIN_WIDTH_S < 0.05


def test_thermal_error_control_takes_a_third_of_the_substeps(nominal, compiled_substeps):
    """It replaces the temperature-step bound where the rates allow: most of the sub-steps went to
    tracking T while nothing moved."""
    on = compiled_substeps(nominal, ramp())
    off = compiled_substeps(nominal.replace(thermal_step_error_fraction=0.0), ramp())
    assert on < off / 3.0


def _hot_cooling_gap(params: FilamentParams, backend: str) -> float:
    """Gap after 100 ns at zero bias of a device that starts at 1,200 K with fast dissolution: the whole
    change happens while T falls, and it is the part the thermal estimate sizes (nothing else moves)."""
    from memdrift.emulator import engine, filament

    p = params.replace(dissolution_frequency_hz=1e12, dissolution_energy_ev=1.0, thermal_time_constant_s=1e-8,
                       gap_initial_m=1.0e-9)
    train = PulseTrain(np.array([0.0]), np.array([1e-7]), read_voltage_v=-0.1, read_width_s=1e-9, read_gap_s=0.0)
    keys = engine.device_keys(0, 1)
    table, gap0 = engine.parameter_table(p, keys)
    segments = engine.segment_table(train)
    hot = np.array([1200.0])
    if backend == "compiled":
        from memdrift.ext import _filament

        state = engine.kernel_state(gap0, hot)
        outs = [np.empty((1, 1)) for _ in range(4)]
        _filament.run_cycle(segments, state, table, keys, np.zeros(1, np.uint64), *outs, 0, 1)
        return float(state[0, 0])
    ref = filament.DeviceState(gap0, hot)
    filament.run_cycle_reference(segments, ref, table, None)
    return float(ref.gap_m[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_cooling_gap_change_within_03_percent_of_a_tight_run(nominal, backend):
    start = 1.0e-9
    moved = _hot_cooling_gap(nominal, backend) - start
    tight = _hot_cooling_gap(nominal.replace(thermal_step_error_fraction=0.0, integration_tolerance=1 / 32),
                             backend) - start
    assert tight > 0.015e-9  # dissolution opened the gap by most of a bin (~24 pm) while it cooled
    assert abs(moved - tight) < 0.003 * tight


def test_thermal_error_control_twins_agree(nominal):
    assert nominal.thermal_step_error_fraction > 0.0
    assert _hot_cooling_gap(nominal, "compiled") == pytest.approx(_hot_cooling_gap(nominal, "reference"), rel=1e-12)
    a = run_pulses(nominal.replace(variation={"series_resistance_ohm": 0.05}), ramp(), devices=3, cycles=1, seed=2,
                   noise=False, backend="compiled", threads=1)
    b = run_pulses(nominal.replace(variation={"series_resistance_ohm": 0.05}), ramp(), devices=3, cycles=1, seed=2,
                   noise=False, backend="reference", threads=1)
    for name in ("conductance", "energy", "temperature_peak", "gap"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-9)


@pytest.mark.parametrize("value", [-0.01, 1.5, float("nan")])
def test_bad_thermal_error_fraction_is_refused_naming_the_field(nominal, value):
    with pytest.raises(MemdriftError, match="thermal_step_error_fraction"):
        nominal.replace(thermal_step_error_fraction=value)


# --------------------------------------------------------------------------- sliding at the threshold

CANDIDATE = Path(__file__).resolve().parents[1] / "examples" / "presets" / "hfoxsy-physical-candidate.toml"


def _candidate_cycle(tolerance: float, backend: str = "compiled"):
    p = load_preset(CANDIDATE).params.replace(variation={}, integration_tolerance=tolerance)
    ds = run_pulses(p, ramp(), devices=1, cycles=2, seed=0, noise=False, backend=backend, threads=1)
    return ds["conductance"].values[0, 1], float(ds["energy"].values[0, 1].sum())


def test_a_device_held_at_the_threshold_is_not_held_back_by_its_gap(compiled_substeps):
    """The envelope candidate's SET pulses slide at F_min for most of their length (the drive pulls the gap
    in, dissolution pushes it back): held there, its gap bounds nothing and its power is the held gap's.
    Before, each of those sub-steps was gap-bounded (472 a pulse) and its energy taken at a midpoint the
    device never reached (0.23 % from tolerance 0.5 to 0.125)."""
    p = load_preset(CANDIDATE).params.replace(variation={})
    assert compiled_substeps(p, ramp()) / 40 < 60
    reads, energy = _candidate_cycle(p.integration_tolerance)
    tight_reads, tight_energy = _candidate_cycle(p.integration_tolerance / 16)
    assert energy == pytest.approx(tight_energy, rel=1e-3)
    assert np.abs(reads - tight_reads).max() / BIN_WIDTH_S < 0.02
    ref_reads, ref_energy = _candidate_cycle(p.integration_tolerance, "reference")
    np.testing.assert_allclose(ref_reads, reads, rtol=1e-9)
    assert ref_energy == pytest.approx(energy, rel=1e-9)
