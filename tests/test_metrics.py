"""Metric functions on data with a known answer (memdrift.mapping.metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from memdrift.errors import MemdriftError
from memdrift.mapping import metrics as m

BW = 81e-6      # bin width of the HfOxSy paper, S
G0 = 1.0e-3     # first state of the linear range, S


def staircase_branch(states: int = 16, lead: int = 2, tail: int = 2, bw: float = BW) -> np.ndarray:
    """One branch: slow start, ``states`` equally spaced states, then saturation (steps shrinking 10x a pulse)."""
    head = G0 - bw * np.cumsum(0.1 ** np.arange(1, lead + 1))[::-1]
    lin = G0 + bw * np.arange(states)
    sat = lin[-1] + bw * np.cumsum(0.1 ** np.arange(1, tail + 1))
    return np.concatenate([head, lin, sat])


def exact_noise(cycles: int, sigma: float, states: int, seed: int = 0) -> np.ndarray:
    """(cycle, state) offsets with mean exactly 0 and sample σ (ddof=1) exactly ``sigma`` per state."""
    z = np.random.default_rng(seed).normal(size=(cycles, states))
    z -= z.mean(axis=0)
    z /= z.std(axis=0, ddof=1)
    return sigma * z


# --------------------------------------------------------------------------- linear range, states, bins


def test_staircase_gives_exact_range_states_bin_width_and_r2():
    curve = staircase_branch()
    start, stop = m.linear_range(curve)
    assert (start, stop) == (2, 18)          # exactly the 16 equally spaced states
    fit = m.linear_fit(curve[start:stop])
    assert fit.slope == pytest.approx(BW, rel=1e-12)
    assert fit.intercept == pytest.approx(G0, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert m.bin_width(curve[start:stop]) == pytest.approx(BW, rel=1e-12)


def test_state_statistics_recover_exact_mean_and_sigma():
    sigma = 23.7e-6
    curve = staircase_branch()[2:18]
    traces = curve + exact_noise(100, sigma, curve.size)
    mean, sig = m.state_statistics(traces)
    np.testing.assert_allclose(mean, curve, rtol=1e-12)
    np.testing.assert_allclose(sig, sigma, rtol=1e-10)
    # several devices: σ is per device, then averaged (device offsets do not inflate it)
    ens = np.stack([traces + 5e-6 * d for d in range(3)])
    _, sig3 = m.state_statistics(ens)
    np.testing.assert_allclose(sig3, sigma, rtol=1e-10)


def test_paper_numbers_sixteen_states_give_thirty_one_bins():
    states = G0 + BW * np.arange(16)
    assert m.differential_bins(states, np.full(16, 23.7e-6)) == 31


def test_bins_drop_states_closer_than_two_sigma():
    states = G0 + BW * np.arange(16)
    # σ = 0.6 BW: neighbours (1 BW) are not > 2σ apart, every second state is (2 BW > 1.2 BW)
    assert m.differential_bins(states, np.full(16, 0.6 * BW)) == 2 * 8 - 1
    # σ ≥ BW * 15 / 2: no second state is reliable; only the zero bin remains
    assert m.differential_bins(states, np.full(16, 8 * BW)) == 1


def test_symmetry_is_slope_magnitude_ratio():
    assert m.symmetry(80e-6, -81e-6) == pytest.approx(81 / 80)
    with pytest.raises(MemdriftError, match="slope_potentiation"):
        m.symmetry(0.0, 1.0)


def test_linear_range_rejects_a_curve_without_one():
    with pytest.raises(MemdriftError, match="mean_curve has no linear range"):
        m.linear_range(np.array([0.0, 1.0, 0.0, 1.0, 0.0]))
    with pytest.raises(MemdriftError, match=r"mean_curve\[2\]"):
        m.linear_range(np.array([0.0, 1.0, np.nan, 3.0]))


# --------------------------------------------------------------------------- nonlinearity ν


@pytest.mark.parametrize("n", [32, 128, 512])
@pytest.mark.parametrize("nu_n", [-2.0, 0.0, 0.16, 3.0])
def test_nu_recovered_from_exact_curves(n, nu_n):
    # end-matched indexing (n_j = 0 … N-1, n = N-1) meets the end points, so ν itself comes back
    nu = nu_n / (n - 1)
    n_j = np.arange(n)
    r_p = 740.0 + 140.0 * m.eqn2_potentiation(n_j, nu, n - 1)
    r_d = 740.0 + 140.0 * m.eqn3_depression(n_j, nu, n - 1)
    assert m.fit_nonlinearity(r_p, "potentiation", indexing="end-matched") == pytest.approx(nu, rel=1e-6, abs=1e-9 / n)
    assert m.fit_nonlinearity(r_d, "depression", indexing="end-matched") == pytest.approx(nu, rel=1e-6, abs=1e-9 / n)
    # the paper's indexing reads a curve bending the same way with the same sign
    if nu_n:
        assert np.sign(m.fit_nonlinearity(r_p, "potentiation")) == np.sign(nu)


@pytest.mark.parametrize(("n", "paper_p", "paper_d"), [(32, 4.95e-3, 4.91e-3), (128, 3.10e-4, 3.10e-4),
                                                       (512, 1.91e-5, 1.93e-5)])
def test_nu_of_a_straight_staircase_is_the_papers_floor(n, paper_p, paper_d):
    """A perfectly linear staircase of n levels, fitted with the paper's indexing, gives the paper's ν."""
    staircase = np.linspace(880.0, 740.0, n)
    assert m.fit_nonlinearity(staircase, "potentiation") == pytest.approx(paper_p, rel=0.02)
    assert m.fit_nonlinearity(staircase[::-1], "depression") == pytest.approx(paper_d, rel=0.02)
    # the curvature alone is zero
    assert abs(m.fit_nonlinearity(staircase, "potentiation", indexing="end-matched")) < 1e-9
    with pytest.raises(MemdriftError, match="indexing"):
        m.fit_nonlinearity(staircase, "potentiation", indexing="zero-based")


def test_nu_recovered_from_noisy_curve_within_five_percent():
    # ν·n = 2 with read noise 0.5 % of the range: the least-squares ν is within 5 %.
    n = 128
    nu = 2.0 / (n - 1)
    rng = np.random.default_rng(3)
    y = m.eqn2_potentiation(np.arange(n), nu, n - 1) + rng.normal(0, 0.005, n)
    assert m.fit_nonlinearity(740 + 140 * y, "potentiation", indexing="end-matched") == pytest.approx(nu, rel=0.05)


def test_nu_equations_end_points():
    for nu in (-0.1, 1e-14, 0.05):
        assert m.eqn2_potentiation(0, nu, 10) == pytest.approx(1.0)
        assert m.eqn2_potentiation(10, nu, 10) == pytest.approx(0.0, abs=1e-12)
        assert m.eqn3_depression(0, nu, 10) == pytest.approx(0.0, abs=1e-12)
        assert m.eqn3_depression(10, nu, 10) == pytest.approx(1.0)


# --------------------------------------------------------------------------- segmentation, skipped levels


def jump_trace() -> np.ndarray:
    """Integer resistances 0 … 25 then 30 … 50: one write jumps over 26 … 29."""
    return np.concatenate([np.arange(26.0), np.arange(30.0, 51.0)])


def test_segmentation_of_a_trace_with_a_known_jump():
    trace = jump_trace()
    seg = m.segment_levels(trace, 51)          # levels 0, 1, …, 50
    np.testing.assert_array_equal(seg.targets, np.arange(51.0))
    assert seg.actual[25] == 25 and seg.actual[27] == 25 and seg.actual[28] == 30
    np.testing.assert_array_equal(seg.offset[25:31], [0.0, -1.0, -2.0, 2.0, 1.0, 0.0])
    # the jump from 25 to 30 leaves 26 … 29 with no reading within half a spacing: four levels lost
    np.testing.assert_array_equal(np.flatnonzero(seg.unoccupied), [26, 27, 28, 29])
    assert m.skipped_levels(seg.offset) == 4
    # events: all pulses are accounted for, unoccupied levels get none
    assert seg.events.sum() == trace.size - 1
    assert seg.occupied == trace.size
    # coarse levels (every 5) are all reachable: no skips
    coarse = m.segment_levels(trace, 11)
    assert m.skipped_levels(coarse.offset) == 0


def test_segmentation_follows_a_falling_trace():
    trace = jump_trace()[::-1] + 740.0        # potentiation: resistance falls
    seg = m.segment_levels(trace, 51)
    assert seg.targets[0] == 790.0 and seg.targets[-1] == 740.0
    assert m.skipped_levels(seg.offset) == 4
    # offsets are signed along the direction of travel: short of the target (769, nearest reading 770)
    # is negative, beyond it (766, nearest 765) positive, as on the rising trace
    assert seg.targets[21] == 769.0 and seg.offset[21] == -1.0
    assert seg.targets[24] == 766.0 and seg.offset[24] == 1.0


def test_common_targets_across_processes():
    rising = jump_trace()
    segs = m.segment_processes([rising, rising + 0.2, np.full(5, 3.0), rising[:30]], 51)
    assert segs[2] is None                       # a process that does not move
    np.testing.assert_array_equal(segs[0].targets, segs[1].targets)
    np.testing.assert_array_equal(segs[0].targets, segs[3].targets)   # the median range, not its own
    assert m.skipped_levels(np.array([s.offset for s in segs if s is not None])) >= 4


def test_skipped_levels_reads_the_cpd_at_80_percent():
    u = np.zeros((10, 3))
    u[:3, 0] = 2.0      # 30 % of processes skip level 0: its 80 % quantile is 2 -> skipped
    u[:1, 1] = 2.0      # 10 % skip level 1: its 80 % quantile is 0 -> kept
    assert m.skipped_levels(u) == 1
    assert m.skipped_levels(u, cpd=0.95) == 2


# --------------------------------------------------------------------------- Pearson, Student t


def test_pearson_matches_scipy_and_eqn1():
    rng = np.random.default_rng(1)
    base = np.linspace(0, 1, 40)
    traces = base + rng.normal(0, 0.05, (6, 40))
    want = np.mean([stats.pearsonr(traces[-1], traces[i]).statistic for i in range(5)])
    assert m.pearson_cycle_to_cycle(traces) == pytest.approx(want, rel=1e-12)
    assert m.pearson_cycle_to_cycle(np.tile(base, (3, 1))) == pytest.approx(1.0)


def test_student_t_recovered_from_samples():
    rng = np.random.default_rng(7)
    x = 0.1 + 0.02 * rng.standard_t(4.0, size=20000)
    fit = m.fit_student_t(x)
    assert fit.loc == pytest.approx(0.1, abs=0.002)
    assert fit.scale == pytest.approx(0.02, rel=0.05)
    assert fit.df == pytest.approx(4.0, rel=0.15)


def test_student_t_levels_reaches_scipy_likelihood():
    rng = np.random.default_rng(11)
    df = np.array([2.5, 4.0, 8.0, 30.0, 1e6])
    scale = np.array([1e-5, 3e-5, 1e-4, 2e-6, 5e-5])
    loc = np.array([-2e-5, 0.0, 1e-4, 3e-6, -1e-5])
    x = loc[:, None] + scale[:, None] * rng.standard_t(df[:, None], size=(5, 400))
    x[2, 300:] = np.nan                        # a level with fewer samples
    got_loc, got_scale, got_df = m.fit_student_t_levels(x)
    for i in range(5):
        xi = x[i][np.isfinite(x[i])]
        ref = m.fit_student_t(xi)
        nll_ref = -stats.t.logpdf(xi, ref.df, ref.loc, ref.scale).sum()
        nll_got = -stats.t.logpdf(xi, got_df[i], got_loc[i], got_scale[i]).sum()
        assert nll_got <= nll_ref + 1e-6 * abs(nll_ref)
        assert got_scale[i] == pytest.approx(scale[i], rel=0.15)
    # a level without spread: scale 0, df undefined
    flat_loc, flat_scale, flat_df = m.fit_student_t_levels(np.full((1, 5), 3.0))
    assert flat_loc[0] == 3.0 and flat_scale[0] == 0.0 and np.isnan(flat_df[0])


# --------------------------------------------------------------------------- retention, energy


def test_power_law_drift_recovered():
    t = np.logspace(0, np.log10(3.15e8), 40)           # 1 s … 10 years
    g = 2e-4 * (t / 1.0) ** -0.031
    fit = m.drift_exponent(t, g)
    assert fit.nu == pytest.approx(0.031, rel=1e-9)
    assert fit.g0 == pytest.approx(2e-4, rel=1e-9)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(MemdriftError, match="time_s"):
        m.drift_exponent(np.r_[0.0, t], np.r_[g[0], g])


def test_arrhenius_activation_energy_recovered():
    temps = np.array([300.0, 325.0, 350.0, 375.0, 400.0])
    ea = 1.3
    rate = 1e12 * np.exp(-ea / (m.K_B_EV * temps))
    fit = m.arrhenius_activation_energy(temps, rate)
    assert fit.activation_energy_eV == pytest.approx(ea, rel=1e-9)
    assert fit.prefactor == pytest.approx(1e12, rel=1e-6)
    # the same through the relative drift rate of exponentially decaying curves
    t = np.linspace(0, 1e5, 50)
    rates = [m.relative_drift_rate(t, 1e-4 * np.exp(-k * t)) for k in rate]
    assert m.arrhenius_activation_energy(temps, rates).activation_energy_eV == pytest.approx(ea, rel=1e-6)
    with pytest.raises(MemdriftError, match="rate"):
        m.arrhenius_activation_energy(temps, -rate)


def test_energy_per_pulse_and_cycle():
    e = np.full((2, 3, 40), 0.6e-9)
    assert m.energy_per_pulse(e) == pytest.approx(0.6e-9)
    mean, sd = m.energy_per_cycle(e)
    assert mean == pytest.approx(24e-9) and sd == pytest.approx(0.0, abs=1e-20)


# --------------------------------------------------------------------------- properties

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-6, 1e-2), min_size=1, max_size=40),
       st.lists(st.floats(0.0, 1e-3), min_size=1, max_size=40))
def test_bin_count_never_exceeds_two_states_minus_one(means, sigmas):
    n = min(len(means), len(sigmas))
    s = np.sort(np.array(means[:n]))
    bins = m.differential_bins(s, np.array(sigmas[:n]))
    assert 1 <= bins <= 2 * n - 1 and bins % 2 == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=50))
def test_r2_in_unit_interval(values):
    y = np.array(values)
    assert 0.0 <= m.linear_fit(y).r2 <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(700.0, 900.0), min_size=2, max_size=80), st.integers(2, 600))
def test_segmentation_indices_within_trace(values, n_levels):
    trace = np.array(values)
    if trace[0] == trace[-1] and np.ptp(trace) == 0:
        return
    seg = m.segment_levels(trace, n_levels)
    assert seg.index.shape == (n_levels,)
    assert np.all((seg.index >= 0) & (seg.index < trace.size))
    assert np.all(seg.events >= 0)
    np.testing.assert_array_equal(seg.actual, trace[seg.index])


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 30), st.floats(1e-6, 1e-4), st.integers(0, 4), st.integers(0, 4))
def test_linear_range_finds_the_equal_steps(states, step, lead, tail):
    curve = staircase_branch(states, lead, tail, step)
    start, stop = m.linear_range(curve)
    assert (start, stop) == (lead, lead + states)
