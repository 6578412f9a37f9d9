"""Filament model: physics behaviour, compiled core vs NumPy twin, determinism, bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from scipy.integrate import solve_ivp

from memdrift.emulator import filament
from memdrift.emulator.engine import run_pulses
from memdrift.emulator.params import BOLTZMANN_EV, FilamentParams, load_preset
from memdrift.emulator.pulses import PulseTrain, identical, ramp


@pytest.fixture(scope="module")
def preset_params() -> FilamentParams:
    return load_preset("hfoxsy-hfs2").params


def single_pulse(amplitude_v: float, width_s: float, read_width_s: float = 1e-9) -> PulseTrain:
    return PulseTrain(np.array([amplitude_v]), np.array([width_s]), read_voltage_v=-0.1,
                      read_width_s=read_width_s, read_gap_s=0.0)


def test_compiled_matches_reference_without_noise(preset_params):
    params = preset_params.replace(variation={"activation_energy_ev": 0.01, "series_resistance_ohm": 0.1,
                                              "gap_initial_m": 0.05})
    kw = dict(devices=16, cycles=2, seed=3, noise=False)
    ref = run_pulses(params, ramp(), backend="reference", **kw)
    fast = run_pulses(params, ramp(), backend="compiled", **kw)
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        np.testing.assert_allclose(fast[name].values, ref[name].values, rtol=1e-6, err_msg=name)
    # the devices really differ, so the comparison covers the variation path
    assert np.ptp(ref["conductance"].values[:, 0, 0]) > 0


def test_noisy_compiled_and_reference_agree_in_distribution(preset_params):
    """Different random streams, same physics: ensemble means agree within their errors."""
    kw = dict(devices=300, cycles=1, seed=5, noise=True)
    train = ramp()
    ref = run_pulses(preset_params, train, backend="reference", **kw)["conductance"].values[:, 0]
    fast = run_pulses(preset_params, train, backend="compiled", **kw)["conductance"].values[:, 0]
    stderr = np.sqrt(ref.var(axis=0) / ref.shape[0] + fast.var(axis=0) / fast.shape[0])
    assert np.all(np.abs(ref.mean(axis=0) - fast.mean(axis=0)) < 5 * stderr + 1e-9)


def test_same_seed_identical_for_one_and_two_threads(preset_params):
    kw = dict(devices=257, cycles=2, seed=11)
    one = run_pulses(preset_params, ramp(), threads=1, **kw)
    two = run_pulses(preset_params, ramp(), threads=2, **kw)
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        assert np.array_equal(one[name].values, two[name].values), name
    other = run_pulses(preset_params, ramp(), threads=2, devices=257, cycles=2, seed=12)
    assert not np.array_equal(one["conductance"].values, other["conductance"].values)


def test_device_streams_do_not_depend_on_chunking(preset_params):
    """Chunks, and the compiled kernel's batches of lanes: devices 7-39 computed alone share no
    batch position with their run inside the whole ensemble (batches of 16 start at 0 there, at 7
    here), and at another width (39 alone here, in a padded batch there)."""
    params = preset_params.replace(variation={"activation_energy_ev": 0.02})
    whole = run_pulses(params, ramp(), devices=40, cycles=1, seed=4)
    tail = run_pulses(params, ramp(), devices=33, cycles=1, seed=4, first_device=7)
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        assert np.array_equal(whole[name].values[7:], tail[name].values), name
    assert list(tail["device"].values) == list(range(7, 40))


def _final_conductance(params: FilamentParams, amplitude_v: float, width_s: float) -> float:
    ds = run_pulses(params, single_pulse(amplitude_v, width_s), devices=1, noise=False)
    return float(ds["conductance"].values[0, 0, 0])


def test_joule_heating_overshoots_the_isothermal_set(preset_params):
    heated = preset_params
    isothermal = preset_params.replace(thermal_resistance_k_per_w=0.0)
    width = 200e-9
    overshoot = []
    for amplitude in (0.8, 0.9, 1.0):
        g_hot = _final_conductance(heated, amplitude, width)
        g_iso = _final_conductance(isothermal, amplitude, width)
        overshoot.append(g_hot - g_iso)
    assert all(o > 0 for o in overshoot)
    assert overshoot[0] < overshoot[1] < overshoot[2]
    # the overshoot shrinks continuously as the thermal resistance goes to zero ...
    weak = preset_params.replace(thermal_resistance_k_per_w=0.5 * preset_params.thermal_resistance_k_per_w)
    g_iso = _final_conductance(isothermal, 1.0, width)
    assert 0 <= _final_conductance(weak, 1.0, width) - g_iso < overshoot[2]
    # ... and without heating the filament stays at ambient temperature
    ds = run_pulses(isothermal, single_pulse(1.0, width), devices=1, noise=False)
    assert float(ds["temperature_peak"].values.max()) == pytest.approx(isothermal.ambient_temperature_k, abs=0)


def test_reduces_to_stanford_pku_model():
    """Noise off, R_s = 0, instantaneous heating: dg/dt = -v0 e^{-Ea/kT} sinh(γ a0 q V/(t_ox kT)),
    v0 = 2 a ν0, a0 = z a / 2 — solved here independently with scipy."""
    p = FilamentParams(attempt_frequency_hz=1e13, activation_energy_ev=0.68, series_resistance_ohm=0.0,
                       thermal_resistance_k_per_w=2e6, thermal_time_constant_s=0.0, field_enhancement=3.0,
                       field_enhancement_slope=0.5, field_enhancement_power=3.0, tunnel_current_a=1e-3,
                       gap_min_m=0.2e-9, gap_max_m=1.7e-9, gap_initial_m=1.5e-9, max_gap_step_m=0.002e-9,
                       site_population=1e4)
    volts, width = 0.9, 2e-6
    a, z = p.hop_distance_m, p.charge_number

    def rhs(_t, y):
        g = y[0]
        gamma = max(p.field_enhancement - p.field_enhancement_slope * (g / 1e-9) ** p.field_enhancement_power, 0)
        current = p.tunnel_current_a * np.exp(-g / p.tunnel_length_m) * np.sinh(volts / p.tunnel_voltage_v)
        kt = BOLTZMANN_EV * (p.ambient_temperature_k + volts * current * p.thermal_resistance_k_per_w)
        v0 = 2 * a * p.attempt_frequency_hz
        return [-v0 * np.exp(-p.activation_energy_ev / kt) * np.sinh(gamma * z * a / 2 * volts / (p.oxide_thickness_m * kt))]

    sol = solve_ivp(rhs, (0, width), [p.gap_initial_m], rtol=1e-10, atol=1e-16, method="LSODA")
    expected_gap = sol.y[0, -1]
    assert p.gap_initial_m - expected_gap > 0.03e-9  # the pulse really moves the gap
    ds = run_pulses(p, single_pulse(volts, width), devices=1, noise=False)
    moved = p.gap_initial_m - float(ds["gap"].values[0, 0, 0])
    # midpoint sub-steps of at most max_gap_step_m: second-order error, well below 1 % here
    assert moved == pytest.approx(p.gap_initial_m - expected_gap, rel=5e-3)
    assert float(ds["temperature_peak"].values.max()) > p.ambient_temperature_k + 50  # heating took part


def test_retention_drift_is_arrhenius(preset_params):
    times = np.logspace(2, 6, 9)
    rates = []
    temps = np.array([298.0, 328.0, 358.0])
    for t_k in temps:
        params = preset_params.replace(ambient_temperature_k=t_k, gap_initial_m=1.0e-9)
        ds = run_pulses(params, retention_train(times), devices=1, noise=False)
        log_g = np.log(ds["conductance"].values[0, 0])
        rates.append(-np.polyfit(times, log_g, 1)[0])
    rates = np.array(rates)
    assert rates[2] > rates[1] > rates[0] > 0
    slope = np.polyfit(1 / (BOLTZMANN_EV * temps), np.log(rates), 1)[0]
    assert -slope == pytest.approx(preset_params.dissolution_energy_ev, rel=0.05)


def test_retention_with_noise_drifts_faster_when_hot(preset_params):
    times = np.logspace(0, 5, 6)
    drift = {}
    for t_k in (298.0, 358.0):
        params = preset_params.replace(ambient_temperature_k=t_k, gap_initial_m=1.0e-9)
        g = run_pulses(params, retention_train(times), devices=400, seed=1)["conductance"].values[:, 0]
        drift[t_k] = float(np.mean(np.log(g[:, 0]) - np.log(g[:, -1])))
    assert drift[358.0] > drift[298.0]


def retention_train(times_s: np.ndarray) -> PulseTrain:
    from memdrift.emulator.pulses import retention

    return retention(times_s)


def test_cycle_noise_falls_as_inverse_sqrt_of_site_population(preset_params):
    train = identical(amplitude_v=0.9, width_s=200e-9, n_pulses=8)
    spreads = []
    for m in (500.0, 2000.0):
        params = preset_params.replace(site_population=m, variation={})
        g = run_pulses(params, train, devices=600, seed=2)["conductance"].values[:, 0, -1]
        spreads.append(g.std())
    assert spreads[0] / spreads[1] == pytest.approx(2.0, rel=0.2)


def test_preset_ramp_is_gradual_and_bounded(preset_params):
    ds = run_pulses(preset_params, ramp(), devices=50, cycles=5, seed=0)
    mean = ds["conductance"].values[:, -1].mean(axis=0)
    pot, dep = mean[:20], mean[20:]
    assert pot[-1] > pot[0] and dep[-1] < dep[0]
    assert np.all(np.diff(pot) > -1e-6 * pot.max()) and np.all(np.diff(dep) < 1e-6 * dep.max())
    assert 0.3e-3 <= mean.min() and mean.max() <= 2.0e-3
    span = mean.max() - mean.min()
    assert span > 0.5e-3
    assert np.abs(np.diff(mean)).max() <= 0.25 * span


bounds_params = FilamentParams(attempt_frequency_hz=1e13, activation_energy_ev=1.2, series_resistance_ohm=300.0,
                               thermal_resistance_k_per_w=1e6, thermal_time_constant_s=5e-9, tunnel_voltage_v=0.1,
                               tunnel_current_a=1e-2, gap_min_m=0.3e-9, gap_max_m=1.6e-9, gap_initial_m=1.0e-9,
                               dissolution_frequency_hz=1e12, dissolution_energy_ev=1.3, max_substeps=500)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amplitudes=st.lists(st.floats(-10, 10), min_size=1, max_size=4),
       log_width=st.floats(np.log10(1e-9), np.log10(10.0)),
       ambient=st.floats(250.0, 600.0), noise=st.booleans())
def test_state_stays_in_bounds_and_finite(amplitudes, log_width, ambient, noise):
    params = bounds_params.replace(ambient_temperature_k=ambient)
    train = PulseTrain(np.array(amplitudes), np.full(len(amplitudes), 10 ** log_width))
    ds = run_pulses(params, train, devices=3, seed=1, noise=noise)
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        assert np.all(np.isfinite(ds[name].values)), name
    gap = ds["gap"].values
    assert np.all(gap >= params.gap_min_m) and np.all(gap <= params.gap_max_m)
    assert np.all(ds["temperature_peak"].values >= ambient - 1e-9)
    assert np.all(ds["energy"].values >= 0)


def test_segment_table_layout():
    train = ramp()
    seg = __import__("memdrift.emulator.engine", fromlist=["segment_table"]).segment_table(train)
    assert seg.shape == (3 * train.n_pulses, 3)
    assert list(seg[:3, 2]) == [filament.PULSE, filament.IDLE, filament.READ]


# --------------------------------------------------------------------------- RESET field enhancement (beta_R, delta_R)

def _gap_after_pulse(params: FilamentParams, amplitude_v: float, gap_m: float, backend: str = "compiled") -> float:
    # read at +0.1 V (SET polarity), so that only the pulse can feel beta_R
    train = PulseTrain(np.array([amplitude_v]), np.array([200e-9]), read_voltage_v=0.1, read_width_s=1e-9,
                       read_gap_s=0.0)
    ds = run_pulses(params.replace(gap_initial_m=gap_m, variation={}), train, devices=1, noise=False,
                    backend=backend)
    return float(ds["gap"].values[0, 0, 0])


def test_reset_slope_slows_reset_more_at_large_gap_and_leaves_set_alone(preset_params):
    """beta_R takes field enhancement from RESET only, and more of it the wider the gap."""
    base = preset_params.replace(reset_field_enhancement_slope=0.0, reset_field_enhancement_offset=0.0)
    reset = base.replace(reset_field_enhancement_slope=0.5)
    small, large = 1.6e-9, 2.3e-9
    for gap in (small, large):  # SET (positive bias): identical
        assert _gap_after_pulse(reset, 0.8, gap) == _gap_after_pulse(base, 0.8, gap)
    opened = {}
    for gap in (small, large):  # RESET (negative bias): the gap opens less, relatively less at the wide gap
        moved_base = _gap_after_pulse(base, -0.8, gap) - gap
        moved_reset = _gap_after_pulse(reset, -0.8, gap) - gap
        assert 0 < moved_reset < moved_base < base.gap_max_m - gap  # not at the clip
        opened[gap] = moved_reset / moved_base
    assert opened[large] < opened[small]


def test_reset_offset_speeds_reset_only(preset_params):
    """delta_R > 0 raises the RESET field enhancement at every gap; SET is untouched."""
    base = preset_params.replace(reset_field_enhancement_slope=0.0, reset_field_enhancement_offset=0.0)
    raised = base.replace(reset_field_enhancement_offset=0.05 * base.field_enhancement)
    gap = 2.0e-9
    assert _gap_after_pulse(raised, 0.8, gap) == _gap_after_pulse(base, 0.8, gap)
    assert base.gap_max_m - gap > _gap_after_pulse(raised, -0.8, gap) - gap > _gap_after_pulse(base, -0.8, gap) - gap > 0


def test_reset_slope_leaves_zero_bias_retention_alone(preset_params):
    times = np.logspace(2, 5, 4)
    kw = dict(devices=1, noise=False)
    params = preset_params.replace(gap_initial_m=1.0e-9)
    off = run_pulses(params, retention_train(times), **kw)["conductance"].values
    on = run_pulses(params.replace(reset_field_enhancement_slope=0.2, reset_field_enhancement_offset=0.3),
                    retention_train(times), **kw)
    # the reads (-0.1 V) are RESET-polarity, so they may feel it, but only faintly
    np.testing.assert_allclose(on["conductance"].values, off, rtol=1e-6)


def test_compiled_matches_reference_with_reset_slope(preset_params):
    params = preset_params.replace(reset_field_enhancement_slope=0.03, reset_field_enhancement_offset=0.2,
                                   variation={"activation_energy_ev": 0.01, "gap_initial_m": 0.05})
    kw = dict(devices=12, cycles=2, seed=3, noise=False)
    ref = run_pulses(params, ramp(), backend="reference", **kw)
    fast = run_pulses(params, ramp(), backend="compiled", **kw)
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        np.testing.assert_allclose(fast[name].values, ref[name].values, rtol=1e-6, err_msg=name)
    # and the slope really acts on this ramp
    plain = run_pulses(params.replace(reset_field_enhancement_slope=0.0, reset_field_enhancement_offset=0.0), ramp(),
                       backend="compiled", **kw)
    assert not np.allclose(plain["conductance"].values[:, :, 20:], fast["conductance"].values[:, :, 20:], rtol=1e-3)


def test_reset_slope_is_thread_count_independent(preset_params):
    params = preset_params.replace(reset_field_enhancement_slope=0.03, reset_field_enhancement_offset=0.2)
    one = run_pulses(params, ramp(), devices=65, cycles=2, seed=8, threads=1)
    two = run_pulses(params, ramp(), devices=65, cycles=2, seed=8, threads=2)
    assert np.array_equal(one["conductance"].values, two["conductance"].values)


@pytest.mark.parametrize("name, value, allowed", [
    ("reset_field_enhancement_slope", -0.1, "[0, 100]"),
    ("reset_field_enhancement_slope", 101.0, "[0, 100]"),
    ("reset_field_enhancement_slope", float("nan"), "finite"),
    ("reset_field_enhancement_slope", float("inf"), "finite"),
    ("reset_field_enhancement_offset", -100.5, "[-100, 100]"),
    ("reset_field_enhancement_offset", 1e3, "[-100, 100]"),
    ("reset_field_enhancement_offset", float("nan"), "finite"),
])
def test_reset_field_enhancement_bad_values_name_the_field(name, value, allowed):
    from memdrift.errors import MemdriftError

    with pytest.raises(MemdriftError, match=name) as info:
        FilamentParams(**{name: value})
    assert "allowed" in str(info.value) and allowed in str(info.value)


def test_lane_exp_and_log_agree_with_libm():
    """The compiled lanes use their own vectorisable exp and log; hold them against libm
    (Python's math module) over the model's range and at the edges: exp within 2 ulp, log within 4."""
    import math

    from memdrift.ext import _filament

    def lanes(x):
        exp_out, log_out = np.empty_like(x), np.empty_like(x)
        _filament.elementary(x, exp_out, log_out)
        return exp_out, log_out

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-708.0, 709.78, 20000), rng.uniform(-1.0, 1.0, 20000),
                        np.array([0.0, -0.0, 1e-300, 0.5, 1.0, 2.0, 709.78, -707.9])])
    exp_out, _ = lanes(x)
    want = np.array([math.exp(v) for v in x])
    assert np.all(np.abs(exp_out - want) <= 2 * np.spacing(want)), "exp off by more than 2 ulp"
    pos = np.concatenate([np.exp(rng.uniform(-700.0, 700.0, 20000)), rng.uniform(0.3, 3.0, 20000),
                          np.array([1.0, 2.0, 0.5, np.sqrt(2.0), 5e-324, 1e-310, 1.7e308])])
    _, log_out = lanes(pos)
    want = np.array([math.log(v) for v in pos])
    assert np.all(np.abs(log_out - want) <= 4 * np.spacing(np.abs(want)) + 1e-300), "log off by more than 4 ulp"
    # edges: overflow to inf, the flush below 2^-1022, NaN through, log of 0, negatives and inf
    edge = np.array([710.0, 1e4, -708.5, -1e4, np.nan, 0.0, -1.0, np.inf])
    exp_out, log_out = lanes(edge)
    assert exp_out[0] == np.inf and exp_out[1] == np.inf and exp_out[2] == 0.0 and exp_out[3] == 0.0
    assert np.isnan(exp_out[4]) and np.isnan(log_out[4])
    assert log_out[5] == -np.inf and np.isnan(log_out[6]) and log_out[7] == np.inf


ISA_HARNESS = r"""
#include <stdio.h>
#include "_filament_lanes.h"
/* a stand-in sampler (the lanes take any): floor(mean + uniform) from the device's counter */
static double hops(double mean, uint64_t key, uint64_t *counter) {
    uint64_t x = key ^ (*counter)++ * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ULL; x ^= x >> 29;
    return floor(mean + (double)(x >> 11) * (1.0 / 9007199254740992.0));
}
int main(int argc, char **argv) {
    int n = atoi(argv[1]), n_seg = atoi(argv[2]), n_pulses = atoi(argv[3]);
    double *table = malloc(sizeof(double) * n * N_COLUMNS), *state = malloc(sizeof(double) * n * N_STATE);
    double *seg = malloc(sizeof(double) * n_seg * 3), *out = malloc(sizeof(double) * 5 * n * n_pulses);
    uint64_t *keys = malloc(8 * n), *counters = calloc(n, 8);
    FILE *f = fopen(argv[4], "rb");
    if (!f || fread(table, 8, n * N_COLUMNS, f) != (size_t)(n * N_COLUMNS) || fread(state, 8, n * N_STATE, f)
        != (size_t)(n * N_STATE) || fread(seg, 8, n_seg * 3, f) != (size_t)(n_seg * 3) || fread(keys, 8, n, f)
        != (size_t)n) return 1;
    double *o[5] = {out, out + n * n_pulses, out + 2 * n * n_pulses, out + 3 * n * n_pulses, out + 4 * n * n_pulses};
    ptrdiff_t rows[5] = {n_pulses, n_pulses, n_pulses, n_pulses, n_pulses}, cols[5] = {1, 1, 1, 1, 1};
    for (int cycle = 0; cycle < 3; ++cycle)
        for (int first = 0; first < n; first += 16)  /* the last batch has 5 devices: padding lanes */
            memdrift_filament_batch_16(first, n - first < 16 ? n - first : 16, seg, n_seg, state, table,
                                       keys, counters, o, rows, cols, 1, hops);
    fwrite(out, 8, 5 * n * n_pulses, stdout);
    fwrite(state, 8, n * N_STATE, stdout);
    return 0;
}
"""


def test_lane_kernel_gives_the_same_bits_on_every_instruction_set(preset_params, tmp_path, isa_builds):
    """The extension carries AVX-512, AVX2 and baseline clones of the lane kernel and picks one at
    load time; built once per instruction set this CPU runs, the same inputs give the same bits
    (no FMA contraction, no reassociation), so a result does not depend on the machine."""
    from memdrift.emulator import engine

    n = 37
    keys = engine.device_keys(5, n)
    table, gap0 = engine.parameter_table(preset_params.replace(variation={"tunnel_current_a": 0.05}), keys)
    # every other device with dispersive dissolution, so its lane code is covered (and batches mix both)
    table[1::2, filament.COL["dissolution_barrier_slope_ev_per_m"]] = 4e9
    table[1::2, filament.COL["dissolution_energy_ev"]] = 0.75
    state = engine.kernel_state(gap0, table[:, filament.COL["ambient_temperature_k"]].copy())
    segments = engine.segment_table(ramp())
    inputs = tmp_path / "inputs.bin"
    inputs.write_bytes(b"".join(np.ascontiguousarray(a).tobytes() for a in (table, state, segments, keys)))
    (_, baseline), *others = isa_builds("#include <stdlib.h>\n" + ISA_HARNESS,
                                        (str(n), str(len(segments)), "40", str(inputs)))
    assert np.all(np.isfinite(baseline)) and baseline.size == 5 * n * 40 + state.shape[1] * n
    for isa, out in others:
        assert np.array_equal(out, baseline), f"{isa} differs from the baseline build"


# --------------------------------------------------------------------------- the cell solve and its flags

def _brentq_current(volts: float, gap_m: float, params: FilamentParams) -> float:
    """|I| from scipy's brentq on V_cell = V0 asinh((|V| - V_cell) / k) (a rearranged form of the same
    equation, finite for every V_cell), independent of the kernel's Newton in ln I."""
    from scipy.optimize import brentq

    target = abs(volts)
    v0, rs = params.tunnel_voltage_v, params.series_resistance_ohm
    ln_pref = np.log(params.tunnel_current_a) - gap_m / params.tunnel_length_m
    if target == 0.0:
        return 0.0
    if rs == 0.0:
        with np.errstate(over="ignore"):
            return float(0.5 * np.exp(ln_pref + target / v0) * -np.expm1(-2.0 * target / v0))
    k = rs * np.exp(ln_pref)
    x = brentq(lambda x: v0 * np.arcsinh((target - x) / k) - x, 0.0, target, xtol=1e-300, rtol=1e-15, maxiter=500)
    if target - x > 0.5 * target:
        return (target - x) / rs
    return float(0.5 * np.exp(ln_pref + x / v0) * -np.expm1(-2.0 * x / v0))


def _kernel_solves(volts, gaps, params_list, share):
    from memdrift.ext import _filament

    table = np.array([[p.scalars()[name] for name in filament.COLUMNS] for p in params_list])
    n = len(params_list)
    vc, cur, bad = np.empty(n), np.empty(n), np.empty(n, dtype=np.uint8)
    _filament.solve_cells(np.asarray(volts, float), np.asarray(gaps, float), table, np.full(n, share), vc, cur, bad)
    ref_vc, ref_cur, _, _, ref_bad = filament.cell_solve(np.asarray(volts, float), np.asarray(gaps, float), table,
                                                        np.full(n, share))
    return (vc, cur, bad.astype(bool)), (ref_vc, ref_cur, ref_bad)


@settings(max_examples=300, deadline=None)
@given(volts=st.floats(-10.0, 10.0), rs=st.one_of(st.just(0.0), st.floats(1e-3, 1000.0)),
       log_v0=st.floats(np.log10(0.015), 0.0), log_i0=st.floats(-6.0, 0.0), gap_nm=st.floats(0.1, 5.0),
       share=st.floats(-700.0, 0.0))
@example(volts=5e-324, rs=1.0, log_v0=0.0, log_i0=0.0, gap_nm=0.125, share=0.0)  # the current underflows
def test_cell_solve_matches_brentq_on_both_backends(volts, rs, log_v0, log_i0, gap_nm, share):
    """Any bias in [-10, 10] V, R_s in [0, 1] kOhm, V0 from 15 mV (the preset's regime) to 1 V, any warm
    start: the current is within 1e-9 relative of brentq's root, V = V_cell + I R_s holds, and the solve
    is flagged exactly where no finite current exists (R_s = 0 and sinh(|V|/V0) beyond double range)."""
    p = FilamentParams(series_resistance_ohm=rs, tunnel_voltage_v=10 ** log_v0, tunnel_current_a=10 ** log_i0,
                       gap_max_m=5e-9, gap_initial_m=1e-9)
    gap = gap_nm * 1e-9
    want = _brentq_current(volts, gap, p)
    for vc, cur, bad in _kernel_solves([volts], [gap], [p], share):
        if not np.isfinite(want):
            assert bad[0]
            continue
        assert not bad[0]
        assert abs(cur[0]) == pytest.approx(want, rel=1e-9, abs=1e-300)
        assert np.sign(cur[0]) == np.sign(volts) or want < 1e-300  # a denormal bias may underflow to 0 A
        assert vc[0] + cur[0] * rs == pytest.approx(volts, rel=1e-9, abs=1e-12)


def test_cell_solve_grid_where_the_old_newton_failed(preset_params):
    """The preset's V0 = 19 mV on a grid of 0 to +-10 V and R_s 0 to 1 kOhm, gap from g_min to g_max:
    both backends give brentq's current to 1e-9 (the Newton on V_cell stopped ~60 V0 short above ~3 V)."""
    volts = np.concatenate([-np.logspace(-3, 1, 9), [0.0], np.logspace(-3, 1, 9)])
    cases = [(v, g, preset_params.replace(series_resistance_ohm=rs, variation={}))
             for v in volts for rs in (1.0, 10.0, 123.6, 1000.0)
             for g in (preset_params.gap_min_m, 1.5e-9, preset_params.gap_max_m)]
    want = np.array([_brentq_current(v, g, p) for v, g, p in cases])
    for vc, cur, bad in _kernel_solves([c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases],
                                       filament.INITIAL_SHARE):
        assert not bad.any()
        np.testing.assert_allclose(np.abs(cur), want, rtol=1e-9, atol=0)
    # 5 V on the preset at g_max: the cell takes ~0.2 V, the resistor the rest, the current is ~40 mA
    i5 = _brentq_current(5.0, preset_params.gap_max_m, preset_params)
    assert 0.9 * 4.8 / 123.6 < i5 < 5.0 / 123.6


def test_pulse_with_no_finite_solution_is_flagged_not_reported(preset_params):
    """R_s = 0 and 10 V across V0 = 10 mV: I0 e^(-g/g0) sinh(1000) A has no double; the pulse ends there,
    flagged, a warning names it, and nothing infinite reaches the dataset (both backends)."""
    from memdrift.data import flags
    from memdrift.emulator.engine import FlaggedPulseWarning

    params = preset_params.replace(series_resistance_ohm=0.0, tunnel_voltage_v=0.01, variation={})
    train = PulseTrain(np.array([10.0, 0.5]), np.array([1e-9, 1e-9]), read_voltage_v=-0.1, read_width_s=1e-9,
                       read_gap_s=0.0)
    for backend in ("compiled", "reference"):
        with pytest.warns(FlaggedPulseWarning, match="solve_not_converged"):
            ds = run_pulses(params, train, devices=2, noise=False, backend=backend)
        bits = ds[flags.VARIABLE].values[:, 0]
        assert np.all(bits[:, 0] & flags.SOLVE_NOT_CONVERGED) and not np.any(bits[:, 1] & flags.SOLVE_NOT_CONVERGED)
        for name in ("conductance", "temperature_peak", "energy", "gap"):
            assert np.all(np.isfinite(ds[name].values)), name
        assert np.all(ds["gap"].values[:, 0, 0] == params.gap_initial_m)  # the failed sub-step moved nothing
        assert ds[flags.VARIABLE].attrs["flag_meanings"].split()[0] == "solve_not_converged"


def test_reference_reports_a_solve_that_runs_out_of_iterations(preset_params, monkeypatch):
    """The iteration cap is a flag, not a number: with one iteration allowed the twin's cold solve cannot
    converge; the read is NaN and the pulse's bit is set."""
    from memdrift.data import flags

    monkeypatch.setattr(filament, "NEWTON_MAX_ITER", 1)
    with pytest.warns(UserWarning, match="solve_not_converged"):
        ds = run_pulses(preset_params, single_pulse(0.8, 100e-9), devices=2, noise=False, backend="reference")
    assert np.all(ds[flags.VARIABLE].values & flags.SOLVE_NOT_CONVERGED)
    assert np.all(np.isnan(ds["conductance"].values))


# --------------------------------------------------------------------------- the thermal ceiling

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amplitudes=st.lists(st.floats(-10, 10), min_size=1, max_size=3),
       log_width=st.floats(np.log10(1e-9), np.log10(10.0)), ambient=st.floats(250.0, 600.0),
       backend=st.sampled_from(["compiled", "reference"]), converged=st.booleans())
def test_preset_stays_finite_and_below_its_thermal_ceiling(preset_params, amplitudes, log_width, ambient, backend,
                                                           converged):
    """The shipped preset with its variation, 0 to +-10 V, 1 ns to 10 s, 250 to 600 K: every output finite,
    no temperature above ``thermal_ceiling_k``; a pulse that would heat past it carries THERMAL_CEILING.
    Also at the class's stepping (the thermal error control and its rate-shape factors on)."""
    import warnings

    from memdrift.data import flags

    params = preset_params.replace(ambient_temperature_k=ambient)
    if converged:
        d = FilamentParams()
        params = params.replace(integration_tolerance=d.integration_tolerance,
                                max_temperature_step_k=d.max_temperature_step_k,
                                thermal_step_error_fraction=d.thermal_step_error_fraction)
    train = PulseTrain(np.array(amplitudes), np.full(len(amplitudes), 10 ** log_width), read_voltage_v=-0.1,
                       read_width_s=1e-6, read_gap_s=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = run_pulses(params, train, devices=3, seed=2, noise=True, backend=backend)
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        assert np.all(np.isfinite(ds[name].values)), name
    assert np.all(ds["temperature_peak"].values <= params.thermal_ceiling_k)
    bits = ds[flags.VARIABLE].values
    assert not np.any(bits & (flags.SOLVE_NOT_CONVERGED | flags.RATE_OVERFLOW))


def test_runaway_pulse_ends_at_the_ceiling_flagged(preset_params):
    """-10 V on the preset's open cell (pinned at g_max, RESET pushing outward) puts ~0.019 W into the cell,
    a steady state of ~4,700 K: the pulse ends at the 3,031 K ceiling, flagged, on both backends alike;
    -2 V does not reach it. A lower ceiling ends the same pulse sooner, with less energy delivered."""
    from memdrift.data import flags

    params = preset_params.replace(variation={}, gap_initial_m=preset_params.gap_max_m)
    train = PulseTrain(np.array([-10.0, -2.0]), np.array([1e-6, 1e-6]), read_voltage_v=-0.1, read_width_s=1e-9,
                       read_gap_s=1e-6)
    out = {}
    for backend in ("compiled", "reference"):
        with pytest.warns(UserWarning, match="thermal_ceiling"):
            ds = run_pulses(params, train, devices=1, noise=False, backend=backend)
        bits = ds[flags.VARIABLE].values[0, 0]
        assert bits[0] == flags.THERMAL_CEILING and bits[1] == 0
        peak = ds["temperature_peak"].values[0, 0]
        assert params.thermal_ceiling_k - 5.0 < peak[0] <= params.thermal_ceiling_k
        assert peak[1] < params.thermal_ceiling_k - 500
        out[backend] = ds
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        np.testing.assert_allclose(out["compiled"][name].values, out["reference"][name].values, rtol=1e-6)
    with pytest.warns(UserWarning, match="thermal_ceiling"):
        low = run_pulses(params.replace(thermal_ceiling_k=1500.0), train, devices=1, noise=False)
    assert 1495.0 < low["temperature_peak"].values[0, 0, 0] <= 1500.0
    assert low["energy"].values[0, 0, 0] < 0.5 * out["compiled"]["energy"].values[0, 0, 0]


def test_temperature_step_bound_is_honoured(preset_params, compiled_substeps):
    """max_temperature_step_k caps the heating per sub-step: a tighter cap takes more sub-steps, and the
    trajectory converges to the capped one (the midpoint already integrates the relaxation exactly for
    the power held over a step, so the change is small)."""
    params = preset_params.replace(variation={})
    train = single_pulse(0.9, 200e-9)
    subs = {cap_k: compiled_substeps(params.replace(max_temperature_step_k=cap_k), train) for cap_k in (1e4, 5.0)}
    heating = params.thermal_resistance_k_per_w * 0.9 * 0.9 / 1e3  # order of the rise, K
    assert subs[5.0] > subs[1e4] + 0.5 * min(heating, 200.0) / 5.0


# --------------------------------------------------------------------------- Joule heating in a switching pulse

def _coupled_gap_ode(p: FilamentParams, volts: float, width_s: float, heating: bool) -> float:
    """The gap after a pulse from scipy's LSODA on the mean dynamics with T as a state:
    dg/dt = a (r- + r_d - r+), tau dT/dt = V_cell I R_th - (T - T0), V_cell from brentq each call."""
    from scipy.optimize import brentq

    a, z, v0, rs = p.hop_distance_m, p.charge_number, p.tunnel_voltage_v, p.series_resistance_ohm

    def rhs(_t, y):
        g, temp = y
        k = rs * p.tunnel_current_a * np.exp(-g / p.tunnel_length_m)
        vc = brentq(lambda x: v0 * np.arcsinh((volts - x) / k) - x, 0.0, volts, xtol=1e-15, rtol=1e-14)
        current = (volts - vc) / rs
        gamma = max(p.field_enhancement - p.field_enhancement_slope * (g / 1e-9) ** p.field_enhancement_power, 0.0)
        field = gamma * vc / p.oxide_thickness_m
        field = 0.0 if abs(field) < p.min_field_v_per_m else field
        kt = BOLTZMANN_EV * temp
        base = p.attempt_frequency_hz * np.exp(-p.activation_energy_ev / kt)
        tilt = np.exp(z * a * field / (2.0 * kt))
        dis = p.dissolution_frequency_hz * np.exp(-p.dissolution_energy_ev / kt)
        power = vc * current * p.thermal_resistance_k_per_w if heating else 0.0
        return [a * (base / tilt + dis - base * tilt),
                (p.ambient_temperature_k + power - temp) / p.thermal_time_constant_s]

    sol = solve_ivp(rhs, (0.0, width_s), [p.gap_initial_m, p.ambient_temperature_k], method="LSODA",
                    rtol=1e-9, atol=[1e-16, 1e-6])
    return float(sol.y[0, -1])


def test_joule_heating_drives_a_set_pulse_beyond_the_isothermal_switch(preset_params):
    """At 600 K ambient, 0.6 V for 200 ns from a 2.6 nm gap: without heating the device does switch
    (0.17 nm), with it the filament heats by ~120 K and the gap closes three times as far. The kernels
    follow an independent integration of the coupled (g, T) equations to 2 % of the move, which they
    could not if the heating term were missing (they would give the isothermal move)."""
    p = preset_params.replace(variation={}, ambient_temperature_k=600.0, gap_initial_m=2.6e-9,
                              max_gap_step_m=5e-12, max_temperature_step_k=5.0)
    volts, width = 0.6, 200e-9
    train = PulseTrain(np.array([volts]), np.array([width]), read_voltage_v=0.1, read_width_s=1e-9, read_gap_s=0.0)
    moved_hot = p.gap_initial_m - _coupled_gap_ode(p, volts, width, heating=True)
    moved_iso = p.gap_initial_m - _coupled_gap_ode(p, volts, width, heating=False)
    assert moved_iso > 0.1e-9 and moved_hot > 2.5 * moved_iso  # both switch; heating makes the difference
    for backend in ("compiled", "reference"):
        ds = run_pulses(p, train, devices=1, noise=False, backend=backend)
        moved = p.gap_initial_m - float(ds["gap"].values[0, 0, 0])
        assert moved == pytest.approx(moved_hot, rel=0.02), backend
        assert float(ds["temperature_peak"].values.max()) > p.ambient_temperature_k + 80.0
    # the same pulse with the heating removed from the parameters: the kernel gives the isothermal move
    cold = run_pulses(p.replace(thermal_resistance_k_per_w=0.0), train, devices=1, noise=False)
    assert p.gap_initial_m - float(cold["gap"].values[0, 0, 0]) == pytest.approx(moved_iso, rel=0.02)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_series_heat_share_heats_with_its_share_of_i2rs(share, backend):
    """A cell that cannot switch (F_min above any field) and heats at once (tau 0): its pulse
    temperature is T0 + (V_cell I + share I^2 R_s) R_th with the cell solved independently by brentq,
    and the source still delivers V I (the heat share moves no charge)."""
    from scipy.optimize import brentq

    volts, width, rs, rth, gap = 0.8, 1e-7, 200.0, 2e5, 1.0e-9
    p = FilamentParams(min_field_v_per_m=1e11, series_resistance_ohm=rs, thermal_resistance_k_per_w=rth,
                       thermal_time_constant_s=0.0, series_heat_share=share, gap_initial_m=gap,
                       ambient_temperature_k=300.0)
    train = PulseTrain(np.array([volts]), np.array([width]), read_voltage_v=-0.1, read_width_s=1e-9, read_gap_s=0.0)
    ds = run_pulses(p, train, devices=1, cycles=1, seed=0, noise=False, backend=backend, threads=1)

    def current(vc: float) -> float:
        return p.tunnel_current_a * np.exp(-gap / p.tunnel_length_m) * np.sinh(vc / p.tunnel_voltage_v)

    vc = brentq(lambda v: v + current(v) * rs - volts, 0.0, volts, xtol=1e-15, rtol=1e-15)
    i = current(vc)
    heat = vc * i + share * i * i * rs
    assert heat <= volts * i * (1 + 1e-12)
    assert float(ds["temperature_peak"].values.ravel()[0]) == pytest.approx(300.0 + heat * rth, rel=1e-9)
    assert float(ds["energy"].values.ravel()[0]) == pytest.approx(volts * i * width, rel=1e-9)
    assert float(ds["gap"].values.ravel()[0]) == gap  # nothing moved


def test_series_heat_share_makes_the_set_pulse_hotter_on_both_backends(preset_params):
    base = preset_params.replace(variation={})
    runs = {}
    for share in (0.0, 0.2):
        for backend in ("compiled", "reference"):
            ds = run_pulses(base.replace(series_heat_share=share), ramp(), devices=1, cycles=1, seed=0, noise=False,
                            backend=backend, threads=1)
            runs[share, backend] = ds["temperature_peak"].values.ravel()
    np.testing.assert_allclose(runs[0.2, "compiled"], runs[0.2, "reference"], rtol=1e-9)
    assert runs[0.2, "compiled"].max() > runs[0.0, "compiled"].max() + 50.0


# --------------------------------------------------------------------------- the RESET threshold


def _threshold_cell(preset_params, ratio: float, volts: float, backend: str = "compiled"):
    """Gap after one pulse of a cell whose F_min (4e9 V/m) is above the field of -0.8 V at its gap
    (2.8e9 V/m); read at +0.1 V, so that a RESET threshold of its own cannot act in the read."""
    p = preset_params.replace(variation={}, min_field_v_per_m=4.0e9, reset_min_field_ratio=ratio,
                              gap_initial_m=2.0e-9)
    train = PulseTrain(np.array([volts]), np.array([2e-7]), read_voltage_v=0.1, read_width_s=1e-9,
                       read_gap_s=0.0)
    ds = run_pulses(p, train, devices=1, cycles=1, seed=0, noise=False, backend=backend, threads=1)
    return float(ds["gap"].values.ravel()[0]), ds


def test_reset_threshold_ratio_turns_on_the_reset_drive_only(preset_params):
    """With F_min above the RESET field, a RESET pulse only diffuses; a RESET threshold of its own below
    that field (ratio < 1) drives the gap open; a SET pulse gives the same bits for any ratio."""
    g_off, _ = _threshold_cell(preset_params, 1.0, -0.8)
    g_on, _ = _threshold_cell(preset_params, 0.2, -0.8)
    assert g_on > g_off + 0.02e-9
    set_a = _threshold_cell(preset_params, 1.0, 1.5)[1]
    set_b = _threshold_cell(preset_params, 0.2, 1.5)[1]
    for name in ("conductance", "energy", "temperature_peak", "gap"):
        assert np.array_equal(set_a[name].values, set_b[name].values)


def test_reset_threshold_ratio_twins_agree(preset_params):
    p = preset_params.replace(reset_min_field_ratio=0.3, min_field_v_per_m=1.0e9)
    a = run_pulses(p, ramp(), devices=3, cycles=1, seed=1, noise=False, backend="compiled", threads=1)
    b = run_pulses(p, ramp(), devices=3, cycles=1, seed=1, noise=False, backend="reference", threads=1)
    for name in ("conductance", "energy", "temperature_peak", "gap"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-9)


# --------------------------------------------------------------------------- overshoot in the envelope candidate

CANDIDATE = Path(__file__).resolve().parents[1] / "examples" / "presets" / "hfoxsy-physical-candidate.toml"


def _set_trace(params, backend: str = "compiled"):
    """G (S) and peak T (K) after each ns of a 1.0 V, 150 ns SET from the reset state (reads at +0.1 V for
    1 ps between the 1 ns pieces, so the temperature carries over)."""
    n = 150
    train = PulseTrain(np.full(n, 1.0), np.full(n, 1e-9), read_voltage_v=0.1, read_width_s=1e-12, read_gap_s=0.0)
    ds = run_pulses(params, train, devices=1, noise=False, backend=backend)
    return ds["conductance"].values[0, 0], ds["temperature_peak"].values[0, 0], float(ds["gap"].values[0, 0, -1])


def test_envelope_candidate_set_runs_away_with_its_heating_and_r_s_limits_it():
    """The physical candidate at 600 K ambient: the SET runs away (G and T rise together, each ns moves G
    more than the one before) until the field falls to F_min at a gap that R_s sets; the same pulse
    without heating also switches, but moves the gap less than a third as far."""
    p = load_preset(CANDIDATE).params.replace(variation={}, ambient_temperature_k=600.0)
    g_hot, t_hot, gap_hot = _set_trace(p)
    g_iso, t_iso, gap_iso = _set_trace(p.replace(thermal_resistance_k_per_w=0.0))
    start = p.gap_initial_m
    assert start - gap_iso > 0.05e-9                       # the isothermal device switches too
    assert start - gap_hot > 3.0 * (start - gap_iso)      # heating makes the difference
    assert np.all(t_iso == p.ambient_temperature_k)
    steps = np.diff(np.concatenate([[g_hot[0]], g_hot]))[1:]
    peak = int(np.argmax(steps))
    assert peak >= 5                                       # a runaway, not a jump in the first ns
    assert np.all(np.diff(steps[:peak + 1]) > 0)           # dG/dt accelerating ...
    assert np.all(np.diff(t_hot[:peak + 2]) > 0)           # ... while the filament heats
    assert np.ptp(g_hot[-20:]) < 1e-3 * g_hot[-1]          # then it stops
    g_low_rs, _, _ = _set_trace(p.replace(series_resistance_ohm=0.8 * p.series_resistance_ohm))
    assert g_low_rs[-1] > 1.2 * g_hot[-1]                  # where it stops is set by R_s
    g_ref, t_ref, _ = _set_trace(p, backend="reference")
    np.testing.assert_allclose(g_ref, g_hot, rtol=1e-6)
