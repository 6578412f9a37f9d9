"""Step control of the filament cell: convergence in the integration tolerance, the F_min event.

Reads are compared in bin widths of the paper's 81 µS (Fig. 2d) on the preset's nominal device,
at the class's default stepping, noise off, second cycle of its 20 + 20 ramp (the first starts from the preset's initial gap)."""

from __future__ import annotations

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
        integration_tolerance=defaults.integration_tolerance)


_READS: dict[tuple[float, str], np.ndarray] = {}


def ramp_reads(params: FilamentParams, tolerance: float, backend: str) -> np.ndarray:
    """The 40 reads of the second ramp cycle (kept per tolerance and backend: the runs repeat)."""
    key = (tolerance, backend)
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
    assert steps[0.5] > 2.0 * steps[4.0]
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
