"""The 2D bulk four-terminal film: solver identities, conservation, switching direction, twins, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memdrift.data import flags
from memdrift.emulator import bulk4t as b
from memdrift.emulator.bulk4t_schemes import Bulk4TDevices, simulate_scheme
from memdrift.emulator.segmentation import segment_levels, skipped_levels
from memdrift.emulator.params import load_preset, preset_from_toml
from memdrift.errors import MemdriftError

SMALL = dict(grid_x=12.0, grid_y=12.0)


def preset_params(**changes) -> b.Bulk4TParams:
    return load_preset("tio2x-4t").params.replace(**changes)


def rough_film(params: b.Bulk4TParams, devices: int, seed: int = 3) -> np.ndarray:
    """A non-uniform vacancy map (integers) so the identities are tested away from symmetry."""
    table = b.device_table(params, devices, 0)
    rng = np.random.default_rng(seed)
    n = b.initial_counts(table, params.shape)
    return np.round(n * rng.uniform(0.3, 2.0, n.shape))


# -- potential solve ---------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(volts=st.lists(st.floats(-7, 7, allow_nan=False), min_size=4, max_size=4),
       seed=st.integers(0, 2**16))
def test_kirchhoff_terminal_currents_sum_to_zero(volts, seed):
    params = preset_params(**SMALL)
    n = rough_film(params, 2, seed)
    v = np.array(volts)
    if np.ptp(v) < 1e-3:
        v = v + np.array([1.0, 0.0, 0.0, 0.0])
    table = b.device_table(params, 2, 0)
    ref = b.ReferenceEngine(params, table, b.device_streams(0, 2)[0])
    comp = b.CompiledEngine(params, table, b.device_streams(0, 2)[1])
    for engine in (ref, comp):
        _, cur = engine.read(n, np.full(n.shape, 300.0), v)
        assert np.all(np.abs(cur.sum(axis=1)) <= 1e-9 * np.abs(cur).max(axis=1))


def test_read_is_reciprocal():
    params = preset_params(**SMALL)
    n = rough_film(params, 2)
    table = b.device_table(params, 2, 0)
    for engine in (b.ReferenceEngine(params, table, b.device_streams(0, 2)[0]),
                   b.CompiledEngine(params, table, b.device_streams(0, 2)[1])):
        t = np.full(n.shape, 300.0)
        _, c13 = engine.read(n, t, np.array([0.1, 0.0, 0.0, 0.0]))
        _, c31 = engine.read(n, t, np.array([0.0, 0.0, 0.1, 0.0]))
        np.testing.assert_allclose(c13[:, 2], c31[:, 0], rtol=1e-9)
        # and the film is not symmetric, so this is not trivially true
        assert np.all(np.abs(c13[:, 0] - c31[:, 2]) > 1e-6 * np.abs(c13[:, 0]))


def _uniform_r(n_cells: int) -> float:
    params = b.Bulk4TParams(grid_x=float(n_cells), grid_y=float(n_cells))
    geom = b.Geometry.from_params(params)
    _, cur = b.solve_potential(np.full(params.shape, 1e4), np.array([0.1, 0.0, 0.0, 0.0]), geom)
    return 0.1 / -cur[2]


def test_uniform_film_read_converges_to_fine_grid():
    fine = _uniform_r(128)
    r32, r64 = _uniform_r(32), _uniform_r(64)
    assert abs(r32 / fine - 1) < 0.01
    assert abs(r32 / r64 - 1) < 0.005
    # sheet resistance 1 / (sigma t) = 2500 ohm; T2 and T4 draw current too, so R13 exceeds it several times
    assert 2500 < fine < 10 * 2500


def test_uniform_film_compiled_read_matches_reference():
    params = preset_params()
    table = b.device_table(params, 1, 0)
    n = b.initial_counts(table, params.shape)
    r_ref, _ = b.ReferenceEngine(params, table, b.device_streams(0, 1)[0]).read(n, np.full(n.shape, 300.0))
    r_c, _ = b.CompiledEngine(params, table, b.device_streams(0, 1)[1]).read(n)
    np.testing.assert_allclose(r_c, r_ref, rtol=1e-10)


# -- vacancy dynamics --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_total_vacancy_count_conserved_exactly(backend):
    params = preset_params(**SMALL)
    dev = Bulk4TDevices(params, 2, seed=5, backend=backend)
    total = dev.n.sum(axis=(1, 2)).copy()
    for amp, width in ((6.0, 20.0), (-7.0, 5.0), (3.0, 2.0), (-0.5, 2.0)):
        dev.write(amp, width)
        assert np.array_equal(dev.n.sum(axis=(1, 2)), total)
        assert np.array_equal(dev.n, np.round(dev.n))
        assert dev.n.min() >= 0


#: a film whose site cap binds: few sites above the mean, fast hops, the largest step the control allows
CROWDED = dict(grid_x=8.0, grid_y=8.0, max_occupancy_ratio=1.2, activation_energy_ev=0.45, vacancy_density_m3=2e23,
               max_outflow_fraction=0.25)


@settings(max_examples=12, deadline=None)
@given(train=st.lists(st.tuples(st.floats(-7.0, 7.0), st.floats(0.1, 50.0)), min_size=2, max_size=4),
       budget=st.sampled_from([3.0, 20000.0]), seed=st.integers(0, 2**16),
       backend=st.sampled_from(["compiled", "reference"]), deterministic=st.booleans())
def test_pulse_trains_conserve_whole_vacancies_under_the_site_cap(train, budget, seed, backend, deterministic):
    params = preset_params(**CROWDED, max_steps_per_pulse=budget)
    dev = Bulk4TDevices(params, 2, seed=seed, backend=backend, deterministic=deterministic)
    total = dev.n.sum(axis=(1, 2)).copy()
    n_max = dev.table[:, b.COL["n_max"], None, None]
    cap = n_max if deterministic else np.floor(n_max)
    for amp, width in train:
        rec = dev.write(amp, width)
        if deterministic:
            np.testing.assert_allclose(dev.n.sum(axis=(1, 2)), total, rtol=1e-12)
        else:
            assert np.array_equal(dev.n.sum(axis=(1, 2)), total)
            assert np.array_equal(dev.n, np.round(dev.n))
        assert dev.n.min() >= 0
        assert np.all(dev.n <= cap * (1 + 1e-12))
        # a pulse either ran its width or says why not
        ran = np.isclose(rec.elapsed_s, width, rtol=1e-9)
        assert np.all(ran | (rec.flag & flags.STEP_BUDGET).astype(bool))


def test_the_cap_binds_in_the_crowded_film():
    # the site-cap test above is only worth something if cells do reach the cap
    params = preset_params(**CROWDED)
    dev = Bulk4TDevices(params, 2, seed=1, backend="reference")
    for amp, width in ((6.0, 20.0), (-6.0, 20.0), (7.0, 5.0), (6.0, 50.0)):
        dev.write(amp, width)
    assert np.all(dev.n.max(axis=(1, 2)) >= 0.995 * np.floor(dev.table[:, b.COL["n_max"]]))


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_step_budget_ends_the_pulse_flagged_not_in_one_leap(backend):
    params = preset_params(**CROWDED, max_steps_per_pulse=4.0)
    dev = Bulk4TDevices(params, 2, seed=0, backend=backend, deterministic=True)
    rec = dev.write(6.0, 50.0)
    assert np.all(rec.steps == 4)
    assert np.all(rec.flag == flags.STEP_BUDGET)
    assert np.all(rec.elapsed_s < 50.0) and np.all(rec.elapsed_s > 0)
    # the same film with room in the budget runs the whole pulse, unflagged, in bounded steps
    free = Bulk4TDevices(params.replace(max_steps_per_pulse=1e5), 2, seed=0, backend=backend, deterministic=True)
    full = free.write(6.0, 50.0)
    assert np.all(full.flag == 0) and np.all(full.steps > 4)
    np.testing.assert_allclose(full.elapsed_s, 50.0, rtol=1e-12)


def test_twins_agree_on_a_pulse_the_step_budget_ends():
    params = preset_params(**CROWDED, max_steps_per_pulse=5.0)
    devs = [Bulk4TDevices(params, 2, seed=4, backend=bk, deterministic=True) for bk in ("compiled", "reference")]
    recs = [d.write(6.5, 40.0) for d in devs]
    np.testing.assert_allclose(devs[0].n, devs[1].n, rtol=1e-8, atol=1e-6)
    np.testing.assert_allclose(recs[0].elapsed_s, recs[1].elapsed_s, rtol=1e-9)
    np.testing.assert_array_equal(recs[0].flag, recs[1].flag)


# -- temperature: self-consistent sigma(n, T), the thermal ceiling ----------------------------------------

#: a weaker heat sink than the preset's, so Joule heating reaches tens of kelvin
WARM = dict(grid_x=12.0, grid_y=12.0, substrate_conductance_w_per_m2k=2.5e8)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_thermal_activation_of_sigma_changes_a_strongly_heated_pulse(backend):
    out = {}
    for ea in (0.0, 0.2):
        dev = Bulk4TDevices(preset_params(**WARM, conductivity_activation_ev=ea), 1, seed=0, backend=backend,
                            deterministic=True)
        rec = dev.write(6.0, 2.0)
        assert rec.flag[0] == 0
        out[ea] = (rec.temperature_peak[0], rec.energy[0], dev.read()[0])
    # a hotter film conducts more, draws more power at the same bias and heats further
    assert out[0.2][0] > out[0.0][0] + 20.0
    assert out[0.2][1] > 1.5 * out[0.0][1]
    assert out[0.2][2] != out[0.0][2]


def test_field_temperature_is_self_consistent_with_sigma_of_t():
    params = preset_params(**WARM, conductivity_activation_ev=0.2)
    table = b.device_table(params, 1, 0)
    eng = b.ReferenceEngine(params, table, b.device_streams(0, 1)[0])
    n = rough_film(params, 1)
    volts = np.array([[0.0, 5.0, 0.0, 5.0]])
    sigma, phi, temp, _, flag = eng._fields(n, np.full(n.shape, 300.0), volts, np.arange(1))
    assert flag[0] == 0 and temp.max() > 340.0
    # one more field solve at the returned temperature gives that temperature back
    s = b.conductivity(n, temp, table)[0]
    ph, _ = b.solve_potential(s, volts[0], eng.geom)
    again = 300.0 + eng._heat[0].solve(b.joule_power(s, ph, volts[0], eng.geom).ravel()).reshape(s.shape)
    assert np.abs(again - temp[0]).max() < 10 * b.THERMAL_TOLERANCE_K
    # the lagged field (sigma at the ambient) is far from it: the iteration is what makes it consistent
    s0 = b.conductivity(n, np.full(n.shape, 300.0), table)[0]
    ph0, _ = b.solve_potential(s0, volts[0], eng.geom)
    lagged = 300.0 + eng._heat[0].solve(b.joule_power(s0, ph0, volts[0], eng.geom).ravel()).reshape(s.shape)
    assert np.abs(lagged - temp[0]).max() > 5.0


def test_thermal_tolerance_is_converged(monkeypatch):
    params = preset_params(**WARM, conductivity_activation_ev=0.2)
    runs = []
    for tol in (b.THERMAL_TOLERANCE_K, b.THERMAL_TOLERANCE_K / 100):
        monkeypatch.setattr(b, "THERMAL_TOLERANCE_K", tol)
        dev = Bulk4TDevices(params, 1, seed=0, backend="reference", deterministic=True)
        rec = dev.write(6.0, 2.0)
        runs.append((rec.temperature_peak[0] - 300.0, rec.energy[0], dev.read()[0]))
    (h1, e1, r1), (h2, e2, r2) = runs
    # heating and energy within 1e-4, R within 1e-6 (under a milliohm against 0.28-ohm events)
    assert abs(h1 / h2 - 1) < 1e-4 and abs(e1 / e2 - 1) < 1e-4 and abs(r1 / r2 - 1) < 1e-6


def test_twins_agree_with_thermally_activated_sigma():
    params = preset_params(**WARM, conductivity_activation_ev=0.2, max_outflow_fraction=2e-3, sigma_tolerance=2e-3)
    devs = [Bulk4TDevices(params, 2, seed=1, backend=bk, deterministic=True) for bk in ("compiled", "reference")]
    for amp, width in ((6.0, 4.0), (-5.0, 3.0)):
        recs = [d.write(amp, width) for d in devs]
        assert np.all(recs[0].steps >= 3)
        np.testing.assert_allclose(devs[0].n, devs[1].n, rtol=1e-8, atol=1e-6)
        np.testing.assert_allclose(recs[0].temperature_peak, recs[1].temperature_peak, rtol=1e-9)
        np.testing.assert_allclose(recs[0].energy, recs[1].energy, rtol=1e-9)
        np.testing.assert_array_equal(recs[0].steps, recs[1].steps)


@settings(max_examples=15, deadline=None)
@given(sink=st.floats(1e6, 1e10), ea=st.sampled_from([0.0, 0.2, 0.5]), amp=st.floats(0.5, 7.0),
       backend=st.sampled_from(["compiled", "reference"]))
def test_no_temperature_above_the_thermal_ceiling_goes_unflagged(sink, ea, amp, backend):
    params = preset_params(grid_x=8.0, grid_y=8.0, substrate_conductance_w_per_m2k=sink,
                           conductivity_activation_ev=ea)
    dev = Bulk4TDevices(params, 1, seed=0, backend=backend, deterministic=True)
    before = dev.n.copy()
    rec = dev.write(amp, 1.0)
    hot = rec.temperature_peak > params.thermal_ceiling_k
    assert np.all(~hot | (rec.flag & flags.THERMAL_CEILING).astype(bool))
    if rec.flag[0] & flags.THERMAL_CEILING and rec.steps[0] == 0:
        # ended at its first field solve: nothing moved, no energy booked
        np.testing.assert_array_equal(dev.n, before)
        assert rec.energy[0] == 0.0 and rec.elapsed_s[0] == 0.0


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_a_runaway_sink_ends_the_pulse_at_the_thermal_ceiling(backend):
    # a local sink of 1e6 W/(m2 K) under the preset's film: the quasi-static field is far past any melting point
    dev = Bulk4TDevices(preset_params(**SMALL, substrate_conductance_w_per_m2k=1e6), 1, seed=0, backend=backend)
    rec = dev.write(4.0, 0.8)
    assert rec.flag[0] & flags.THERMAL_CEILING
    assert rec.temperature_peak[0] > 2041.0 and rec.elapsed_s[0] < 0.8


@settings(max_examples=60, deadline=None)
@given(pe=st.one_of(st.floats(-800.0, 800.0), st.floats(-0.02, 0.02)))
def test_bernoulli_weights_match_expm1_and_carry_the_exact_drift(pe):
    b_minus, b_plus = b.bernoulli_pair(np.array([pe]))
    def exact(t):
        with np.errstate(over="ignore"):
            return 1.0 if t == 0 else t / np.expm1(t)

    assert b_minus[0] == pytest.approx(exact(-pe), rel=1e-12, abs=1e-300)
    assert b_plus[0] == pytest.approx(exact(pe), rel=1e-12, abs=1e-300)
    # the net rate is the drift alone, whatever the Peclet number
    assert b_minus[0] - b_plus[0] == pytest.approx(pe, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("sg", [0.0, 1.0])
def test_face_fluxes_vanish_at_their_equilibrium_ratio(sg):
    # two cells under a constant field: Scharfetter-Gummel's zero-flux ratio n2 / n1 is exp(Pe), the
    # continuum's Boltzmann factor over one cell; upwind's is 1 + Pe, far from it at large cell Peclet numbers
    params = preset_params(grid_x=4.0, grid_y=4.0, scharfetter_gummel=sg, max_occupancy_ratio=1e6, variation={})
    table = b.device_table(params, 1, 0)
    geom = b.Geometry.from_params(params)
    n = np.ones((1, 4, 4))
    temp = np.full((1, 4, 4), 300.0)
    for volts_per_cell in (1e-4, 0.05, 0.3):   # Pe = zqV / kT: 0.008, 3.9, 23
        phi = -volts_per_cell * np.arange(4.0)[None, :, None] * np.ones((1, 4, 4))
        fx, bx, _, _ = b.face_rates(n, phi, temp, table, geom)
        kt = b.BOLTZMANN_EV * 300.0
        x = params.charge_number * params.hop_distance_m * (volts_per_cell / geom.hx) / (2 * kt)
        pe = 2 * (geom.hx / params.hop_distance_m) * np.tanh(x)
        expected = np.exp(pe) if sg else 1.0 + pe
        np.testing.assert_allclose(fx / bx, expected, rtol=1e-9)
        # the same net drift either way: v / h per vacancy
        v = params.hop_distance_m * 2 * np.sinh(x) * params.attempt_frequency_hz * np.exp(
            -params.activation_energy_ev / kt)
        np.testing.assert_allclose(fx - bx, v / geom.hx, rtol=1e-9)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_positive_write_lowers_r13_negative_raises_it(backend):
    dev = Bulk4TDevices(preset_params(**SMALL), 1, seed=2, backend=backend)
    r0 = dev.read()
    dev.write(6.0, 40.0)
    r1 = dev.read()
    dev.write(-6.0, 80.0)
    r2 = dev.read()
    assert r1[0] < r0[0] - 1.0
    assert r2[0] > r1[0] + 1.0


@pytest.mark.parametrize("scharfetter_gummel", [0.0, 1.0])
def test_compiled_matches_reference_in_deterministic_mode(scharfetter_gummel):
    # small step and re-solve tolerances so every pulse takes many steps and several phi/T re-solves
    params = preset_params(**SMALL, max_outflow_fraction=5e-5, sigma_tolerance=2e-5,
                           scharfetter_gummel=scharfetter_gummel)
    devs = [Bulk4TDevices(params, 2, seed=1, backend=bk, deterministic=True) for bk in ("compiled", "reference")]
    steps = 0
    for amp, width in ((6.0, 30.0), (-4.0, 4.0), (7.0, 2.0)):
        recs = [d.write(amp, width) for d in devs]
        steps += recs[0].steps
        np.testing.assert_allclose(devs[0].n, devs[1].n, rtol=1e-8, atol=1e-6)
        np.testing.assert_allclose(devs[0].read(), devs[1].read(), rtol=1e-10)
        np.testing.assert_allclose(recs[0].temperature_peak, recs[1].temperature_peak, rtol=1e-9)
        np.testing.assert_allclose(recs[0].energy, recs[1].energy, rtol=1e-9)
        np.testing.assert_array_equal(recs[0].steps, recs[1].steps)
    assert np.all(steps >= 10)


def test_same_seed_is_bit_identical_for_one_and_two_threads():
    params = preset_params(**SMALL, variation={"activation_energy_ev": 0.01})
    runs = []
    for threads in (1, 2):
        dev = Bulk4TDevices(params, 5, seed=11, threads=threads)
        rs = []
        for amp in (6.0, -6.0, 3.0):
            dev.write(amp, 10.0)
            rs.append(dev.read())
        runs.append((dev.n.copy(), np.array(rs)))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    # the devices differ from each other (own streams and own parameter draws)
    assert np.unique(runs[0][1][-1]).size == 5


@pytest.mark.parametrize("devices, branches", [(1, (+1.0, -1.0)), (3, (+1.0,))])
def test_ffp_loop_in_the_kernel_matches_the_python_loop(devices, branches):
    from memdrift.emulator.bulk4t_schemes import run_ffp

    params = preset_params(grid_x=8.0, grid_y=8.0, variation={"activation_energy_ev": 0.01})
    r0 = Bulk4TDevices(params, 1).read()[0]
    r_grid = np.linspace(r0 - 1.0, r0 + 1.0, 7)
    vw = np.vstack([np.linspace(3.0, 6.0, 7), np.linspace(2.0, 5.0, 7)])
    runs = []
    # a snapshot event past the end keeps run_ffp on its Python loop (the reference's)
    for snapshots in ((), (10**6,)):
        dev = Bulk4TDevices(params, devices, seed=5)
        res = run_ffp(dev, vw, r_grid, max_events=40, hrs_ohm=r0 + 0.05, lrs_ohm=r0 - 0.4, branches=branches,
                      initialise=False, snapshot_events=snapshots)
        runs.append((res, dev.n.copy()))
    (fast, n_fast), (slow, n_slow) = runs
    assert np.all(fast["events"] > 1)
    np.testing.assert_array_equal(fast["events"], slow["events"])
    for key in ("resistance", "amplitude", "temperature_peak", "temperature_mean", "energy", "pulse_flag"):
        np.testing.assert_array_equal(fast[key], slow[key])
    np.testing.assert_array_equal(n_fast, n_slow)


def test_ffp_events_the_thermal_ceiling_ends_are_flagged_in_the_kernel_and_the_python_loop():
    from memdrift.emulator.bulk4t_schemes import run_ffp

    # a ceiling between the heating of the potentiating (4-4.5 V) and depressing (3 V) writes on this film
    params = preset_params(grid_x=8.0, grid_y=8.0, thermal_ceiling_k=301.0)
    r0 = Bulk4TDevices(params, 1).read()[0]
    r_grid = np.linspace(r0 - 1.0, r0 + 1.0, 7)
    vw = np.vstack([np.linspace(3.0, 6.0, 7), np.linspace(2.0, 5.0, 7)])
    runs = []
    for snapshots in ((), (10**6,)):
        dev = Bulk4TDevices(params, 2, seed=5)
        runs.append(run_ffp(dev, vw, r_grid, max_events=30, hrs_ohm=r0 + 0.05, lrs_ohm=r0 - 0.4,
                            initialise=False, snapshot_events=snapshots))
    fast, slow = runs
    np.testing.assert_array_equal(fast["pulse_flag"], slow["pulse_flag"])
    taken = np.isfinite(fast["amplitude"])
    hot = taken & (fast["temperature_peak"] > 301.0)
    assert np.any(hot) and np.any(taken & ~hot)
    np.testing.assert_array_equal(fast["pulse_flag"][hot], flags.THERMAL_CEILING)
    np.testing.assert_array_equal(fast["pulse_flag"][taken & ~hot], 0)
    # a write stopped at its first field solve moved nothing and booked no energy
    np.testing.assert_array_equal(fast["energy"][hot], 0.0)


def _poisson_chi2_pvalue(draws: np.ndarray, lam: float) -> float:
    """Chi-square goodness of fit of integer draws to Poisson(lam), bins with >= 5 expected, tails pooled."""
    from scipy import stats

    lo, hi = int(stats.poisson.ppf(1e-7, lam)), int(stats.poisson.isf(1e-7, lam)) + 1
    ks = np.arange(lo, hi + 1)
    expected = stats.poisson.pmf(ks, lam) * draws.size
    expected[0] += stats.poisson.cdf(lo - 1, lam) * draws.size
    expected[-1] += stats.poisson.sf(hi, lam) * draws.size
    observed = np.bincount(np.clip(draws.astype(np.int64), lo, hi) - lo, minlength=ks.size).astype(float)
    # pool neighbouring bins until each expects >= 5 (the chi-square approximation needs it)
    obs_bins, exp_bins, o_acc, e_acc = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        o_acc, e_acc = o_acc + o, e_acc + e
        if e_acc >= 5.0:
            obs_bins.append(o_acc)
            exp_bins.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0.0:
        obs_bins[-1] += o_acc
        exp_bins[-1] += e_acc
    obs_bins, exp_bins = np.array(obs_bins), np.array(exp_bins)
    if obs_bins.size < 2:
        return 1.0
    return float(stats.chisquare(obs_bins, exp_bins * obs_bins.sum() / exp_bins.sum()).pvalue)


@pytest.mark.parametrize("lam", [1e-3, 0.7, 4.0, 9.999, 10.0, 35.0, 80.0, 3000.0])
def test_film_hop_counts_are_poisson_distributed(lam):
    """The film's lane sampler (_poisson_lanes.h: inversion below a mean of 10, PTRS above, each draw on
    its own block of counters) against the Poisson law: the histogram of 200,000 draws (chi-square) and
    the first two moments. A biased branch (an off-by-one in the inversion, a wrong PTRS constant) fails."""
    from memdrift.ext import _bulk4t

    draws = _bulk4t.poisson_lanes(np.full(200_000, lam), 2024, 0)
    assert np.array_equal(draws, np.round(draws)) and draws.min() >= 0
    assert abs(draws.mean() - lam) < 5 * np.sqrt(lam / draws.size)
    # standard error of var/lam for Poisson draws: sqrt((2 + 1/lam) / N)
    assert abs(draws.var() / lam - 1) < 5 * np.sqrt((2.0 + 1.0 / lam) / draws.size)
    assert _poisson_chi2_pvalue(draws, lam) > 1e-4


def test_film_hop_counts_do_not_depend_on_their_neighbours():
    """A draw depends only on (key, counter block, its mean): not on how many draws share the call, where
    it sits in a SIMD group, or on the other means (the property that lets draws run side by side)."""
    from memdrift.ext import _bulk4t

    rng = np.random.default_rng(11)
    lam = np.where(rng.random(3000) < 0.6, rng.uniform(1.0, 10.0, 3000), rng.uniform(10.0, 80.0, 3000))
    whole = _bulk4t.poisson_lanes(lam, 77, 5 << _bulk4t.draw_bits())
    step = 1 << _bulk4t.draw_bits()
    for start, stop in [(0, 1), (1, 9), (9, 1000), (1000, 3000), (2999, 3000)]:
        part = _bulk4t.poisson_lanes(lam[start:stop].copy(), 77, (5 + start) * step)
        assert np.array_equal(part, whole[start:stop]), (start, stop)
    changed = lam.copy()
    changed[::7] = np.where(changed[::7] < 10.0, 50.0, 3.0)  # every 7th switches method
    other = _bulk4t.poisson_lanes(changed, 77, 5 * step)
    keep = np.ones(lam.size, bool)
    keep[::7] = False
    assert np.array_equal(other[keep], whole[keep])
    special = _bulk4t.poisson_lanes(np.array([0.0, -0.0, -5.0, -np.inf, np.nan, np.inf, 5.0]), 1, 0)
    assert np.array_equal(special[:4], np.zeros(4)) and np.isnan(special[4]) and np.isnan(special[5])
    assert special[6] >= 0


def test_poisson_lane_tables_are_log_factorials():
    """The header's log k! table (k < 256) is ln k! to within 4 ulp of math.lgamma (its generator rounds
    ln k! once from 60-digit arithmetic)."""
    import math
    import re
    from pathlib import Path

    text = (Path(b.__file__).resolve().parents[1] / "ext" / "_poisson_lanes.h").read_text()
    body = re.search(r"md_logfact_table\[256\] = \{(.*?)\};", text, re.S).group(1)
    table = [float.fromhex(v) for v in re.findall(r"-?0x[0-9a-fA-Fp.+-]+", body)]
    assert len(table) == 256
    for k, value in enumerate(table):
        want = math.lgamma(k + 1.0)
        assert abs(value - want) <= 4 * math.ulp(max(want, 1e-300)), k


def test_hops_are_poisson_counted():
    """The shared scalar stream sampler (_streams.pxd), which the filament kernel draws from."""
    from memdrift.ext import _bulk4t

    for lam in (0.7, 4.0, 35.0, 3000.0):
        x = _bulk4t.poisson_sequence(np.full(40000, lam), 12345, 0)
        assert np.array_equal(x, np.round(x))
        assert abs(x.mean() - lam) < 5 * np.sqrt(lam / x.size)
        assert abs(x.var() / lam - 1) < 0.05
    u = _bulk4t.uniforms(7, 0, 1000)
    assert np.array_equal(u[500:], _bulk4t.uniforms(7, 500, 500))
    assert 0 < u.min() and u.max() < 1


def test_joule_heating_raises_temperature_and_can_be_switched_off():
    dev = Bulk4TDevices(preset_params(**SMALL), 1, seed=0)
    hot = dev.write(6.0, 1.0)
    cold = Bulk4TDevices(preset_params(**SMALL, joule_heating=0.0), 1, seed=0).write(6.0, 1.0)
    assert hot.temperature_peak[0] > hot.temperature_mean[0] > 300.5
    assert cold.temperature_peak[0] == pytest.approx(300.0)
    assert hot.energy[0] > 0


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_per_device_read_voltages_give_each_device_its_own_currents(backend):
    # two devices, two different biases: each row of currents must be the single-bias read of that device
    params = preset_params(**SMALL)
    dev = Bulk4TDevices(params, 2, seed=0, backend=backend)
    dev.n = rough_film(params, 2)
    volts = np.array([[0.1, 0.0, 0.0, 0.0], [0.0, 0.3, 0.0, -0.2]])
    both = dev.currents(volts)
    for d in range(2):
        alone = dev.currents(volts[d])[d]
        np.testing.assert_allclose(both[d], alone, rtol=1e-9, atol=1e-15)
    assert not np.allclose(both[0], both[1])
    r, _ = dev.engine.read(dev.n, dev._ambient, volts)
    assert r[0] == pytest.approx(volts[0, 0] / -both[0, 2], rel=1e-12)
    with pytest.raises(MemdriftError, match="volts"):
        dev.currents(np.zeros((3, 4)))


@pytest.mark.parametrize("backend", ["reference", "compiled"])
def test_device_masked_out_reports_ambient_not_the_heated_peak(backend):
    dev = Bulk4TDevices(preset_params(**SMALL), 2, seed=0, backend=backend)
    before = dev.n.copy()
    rec = dev.write(6.0, 1.0, active=np.array([True, False]))
    assert rec.temperature_peak[0] > 300.5
    assert rec.temperature_peak[1] == pytest.approx(300.0)
    assert rec.temperature_mean[1] == pytest.approx(300.0)
    assert rec.energy[1] == 0.0 and rec.steps[1] == 0
    np.testing.assert_array_equal(dev.n[1], before[1])
    assert not np.array_equal(dev.n[0], before[0])


def test_zero_bias_relaxation_is_arrhenius():
    params = preset_params(**SMALL, joule_heating=0.0)
    changes = {}
    for temp in (360.0, 420.0):
        dev = Bulk4TDevices(params, 1, seed=0, deterministic=True)
        dev.write(6.0, 30.0)
        r0 = dev.read()[0]
        dev.apply(np.zeros((1, 4)), 10.0, ambient_k=np.array([temp]))
        changes[temp] = dev.read()[0] - r0
    assert changes[360.0] > 0 and changes[420.0] > changes[360.0]
    ea = params.activation_energy_ev
    expected = np.exp(-ea / b.BOLTZMANN_EV * (1 / 420.0 - 1 / 360.0))
    assert changes[420.0] / changes[360.0] == pytest.approx(expected, rel=0.05)


# -- schemes -----------------------------------------------------------------------------------------------


def test_segmentation_known_answers():
    trace = np.linspace(880.0, 740.0, 561)  # 0.25 ohm per event
    seg = segment_levels(trace, 32)
    assert np.all(np.diff(seg.index) > 0)
    assert skipped_levels(seg.offset) == 0
    # n = 512: spacing 0.274 ohm, just above the event size. Some levels take two events (a step of ~1.8
    # spacings), yet every level has an event within half a spacing of it: nothing is skipped.
    seg512 = segment_levels(trace, 512)
    assert np.sum(seg512.events == 2) > 20
    assert np.all(np.abs(seg512.offset) <= 0.5)
    assert skipped_levels(seg512.offset) == 0
    # events of 0.3 ohm, larger than the spacing: a fraction 1 - 0.274 / 0.3 of the levels get no event
    coarse = segment_levels(np.linspace(880.0, 740.0, 468), 512)
    assert 511 * (1 - 0.274 / 0.3) - 8 < skipped_levels(coarse.offset) < 511 * (1 - 0.274 / 0.3) + 8
    # one 10-ohm jump at n = 32 (spacing 4.5 ohm) skips the two levels it passes, and only those
    jumpy = np.concatenate([np.linspace(880, 860, 200), np.linspace(850, 740, 400)])
    seg = segment_levels(jumpy, 32)
    skipped = np.flatnonzero(seg.unoccupied)
    assert skipped_levels(seg.offset) == 2
    assert np.all((seg.targets[skipped] < 860) & (seg.targets[skipped] > 850))


def test_skipped_levels_reads_the_cpd_over_repeats():
    offsets = np.zeros((5, 6))
    offsets[0, 1] = 0.9          # one repeat in five skipped level 1: not "prone to be skipped"
    offsets[:2, 3] = -0.8        # two in five skipped level 3 (from either side): counted
    offsets[:, 5] = 0.45         # every repeat landed off-centre but inside the window: not skipped
    assert skipped_levels(offsets) == 1
    assert skipped_levels(offsets, cpd=0.95) == 2
    with pytest.raises(MemdriftError, match="cpd"):
        skipped_levels(offsets, cpd=1.0)


def test_ffp_scheme_dataset_contract(tmp_path):
    r0 = Bulk4TDevices(preset_params(grid_x=8.0, grid_y=8.0), 1).read()[0]
    lrs, hrs = r0 - 0.6, r0 + 0.4
    ds = simulate_scheme("tio2x-4t", "ffp-segmentation", devices=2, seed=4, grid=8, conditioning_cycles=0,
                         map_amplitudes_v=(2.0, 5.0, 7.0), map_pulses=10, max_events=60, hrs_ohm=hrs,
                         lrs_ohm=lrs, levels=(4, 8), snapshot_events=(0, 2))
    assert ds.resistance.dims == ("device", "cycle", "pulse")
    assert ds.resistance.attrs["units"] == "ohm"
    assert ds.temperature_peak.attrs["units"] == "K"
    assert ds.energy.attrs["units"] == "J"
    assert list(ds.branch.values) == ["potentiation", "depression"]
    assert ds.attrs["model"] == "bulk4t" and ds.attrs["scheme"] == "ffp-segmentation"
    assert ds.attrs["preset"] == "tio2x-4t" and ds.attrs["seed"] == 4
    assert "parameters.activation_energy_ev" in ds.attrs
    # every event carries its quality bits; the preset's film stays far below its ceiling and budget
    assert ds.pulse_flag.dims == ds.resistance.dims and ds.pulse_flag.dtype == np.uint8
    assert "thermal_ceiling" in ds.pulse_flag.attrs["flag_meanings"]
    assert int(ds.pulse_flag.max()) == 0
    events = ds.events.values
    assert np.all(events >= 1)
    pot = ds.resistance.isel(device=0, cycle=0).values[: events[0, 0]]
    assert np.all(np.isfinite(pot))
    assert pot[-1] <= lrs or events[0, 0] == 60
    assert ds.vacancy_map.dims == ("device", "cycle", "snapshot", "x", "y")
    assert np.all(ds.temperature_map.isel(snapshot=0).values >= 300.0)
    for n in (4, 8):
        assert ds[f"level_offset_n{n}"].dims == ("device", "cycle", f"level_n{n}")
        np.testing.assert_array_equal(ds[f"skipped_n{n}"].values, ds[f"skipped_level_n{n}"].sum(f"level_n{n}").values)
    from memdrift.data.io import open_dataset, write_dataset
    from memdrift.experiments.plots_bulk4t import plot_maps, plot_resistance

    write_dataset(ds, tmp_path / "ffp.nc")
    back = open_dataset(tmp_path / "ffp.nc")
    np.testing.assert_array_equal(back.resistance.values, ds.resistance.values)
    assert plot_resistance(back, tmp_path / "r.png").stat().st_size > 1000
    assert plot_maps(back, tmp_path / "maps.png").stat().st_size > 1000
    assert np.all(ds.amplitude.isel(cycle=0).values[np.isfinite(ds.amplitude.isel(cycle=0).values)] > 0)
    assert np.all(ds.amplitude.isel(cycle=1).values[np.isfinite(ds.amplitude.isel(cycle=1).values)] < 0)


def test_preset_round_trips_and_reaches_paper_states():
    preset = load_preset("tio2x-4t")
    assert isinstance(preset.params, b.Bulk4TParams)
    again = preset_from_toml(preset.to_toml())
    assert again.params == preset.params
    dev = Bulk4TDevices(preset.params, 1, seed=0)
    dev.condition(2)
    # the automatic +-6 V initialisation reaches the paper's read states, LRS 740 ohm and HRS 880 ohm
    lrs = dev.approach(740.0, +1.0)[0]
    hrs = dev.approach(880.0, -1.0)[0]
    assert 739.0 < lrs <= 740.0
    assert 880.0 <= hrs < 881.0
    # and a feedforward-sized pulse (0.8 s, a few volts) moves R by the FFP window's order, 0.1-0.3 ohm
    dev.write(3.0, 0.8)
    assert 0.05 < hrs - dev.read()[0] < 0.6


@pytest.mark.slow
def test_ffp_on_the_preset_skips_n512_levels_at_the_high_resistance_end_of_potentiation():
    """The shipped preset, one 32 x 32 device, the whole scheme (dR map, FFP both ways, n = 512): ~10 s.

    Paper: 494 +- 11 / 579 +- 17 events, 117 / 8 levels skipped, potentiation skips at the high-R end;
    nu_p 4.95e-3 / 3.10e-4 / 1.91e-5 and nu_d 4.91e-3 / 3.10e-4 / 1.93e-5 for n = 32 / 128 / 512.
    """
    ds = simulate_scheme("tio2x-4t", "ffp-segmentation", devices=1, seed=0, levels=(512,))
    events = ds.events.values[0]
    assert abs(events[0] - 494) <= 50 and abs(events[1] - 579) <= 60
    skipped = ds.skipped_n512.values
    where = ds.skipped_level_n512.values  # levels in branch order: potentiation starts at HRS
    assert skipped[0] >= 5 and skipped[1] <= skipped[0] // 2
    assert where[0, :256].sum() >= 0.7 * skipped[0]
    assert ds.temperature_peak.isel(cycle=0).max() > 305.0
    # nothing is skipped where the levels are coarser than an event
    seg32 = [segment_levels(ds.resistance.isel(device=0, cycle=c).values, 32).offset for c in (0, 1)]
    assert [skipped_levels(o) for o in seg32] == [0, 0]
    # the extraction record counts skips with the same segmentation as the scheme
    from memdrift.mapping.extract import extract_record
    record = extract_record(ds, levels=(32, 128, 512))
    assert [record["skipped_levels"]["512"][b] for b in ("potentiation", "depression")] == skipped.tolist()
    # nu (eqns 2-3, the paper's indexing) within a factor 2 of the paper for every level count
    paper = {"p": {32: 4.95e-3, 128: 3.10e-4, 512: 1.91e-5}, "d": {32: 4.91e-3, 128: 3.10e-4, 512: 1.93e-5}}
    for short, values in paper.items():
        for n, value in values.items():
            assert 0.5 < record["nu"][str(n)][short] / value < 2.0, (short, n, record["nu"][str(n)])


@pytest.mark.slow
def test_heating_off_removes_the_n512_skips():
    """The shipped scheme (dR map and Vw table measured on the heated film) replayed with the heating off.

    The Joule heating adds to every write of the table the extra diffusion of a film a few kelvin above
    ambient; without it the same pulses make events below the n = 512 level spacing (0.274 ohm) and
    every level gets one. (Mapping the unheated film anew aims its events at the same 0.28-ohm target,
    just above the spacing, and then levels are lost to event size alone: 503 / 496 events, 14 / 16
    skipped, seed 0.)
    """
    heated = simulate_scheme("tio2x-4t", "ffp-segmentation", devices=1, seed=0, levels=(512,))
    replay = simulate_scheme("tio2x-4t", "ffp-segmentation", devices=1, seed=0, levels=(512,),
                             joule_heating=0.0, map_joule_heating=1.0)
    assert float(heated.temperature_peak.max()) > 305.0
    assert float(replay.temperature_peak.max()) == pytest.approx(300.0)
    assert heated.skipped_n512.values[0] >= 5
    assert replay.skipped_n512.values.sum() == 0
    # the same table, smaller events: more of them, each below the spacing on average
    assert np.all(replay.events.values > heated.events.values)
    trace = replay.resistance.isel(device=0, cycle=0).dropna("pulse").values
    spacing = np.ptp(trace) / 511
    steps = np.abs(np.diff(trace))
    assert steps.mean() < 0.9 * spacing


# -- bad input ---------------------------------------------------------------------------------------------


def test_bad_input_names_the_field():
    params = preset_params(**SMALL)
    dev = Bulk4TDevices(params, 2, seed=0)
    with pytest.raises(MemdriftError, match="volts"):
        dev.apply(np.zeros((2, 3)), 1.0)
    with pytest.raises(MemdriftError, match=r"volts\[1, 2\] \(T3\)"):
        dev.apply(np.array([[0, 1, 0, 1], [0, 1, np.nan, 1.0]]), 1.0)
    with pytest.raises(MemdriftError, match="width_s"):
        dev.write(1.0, -2.0)
    with pytest.raises(MemdriftError, match="grid_x"):
        b.Bulk4TParams(grid_x=3.0)
    with pytest.raises(MemdriftError, match="grid_y"):
        b.Bulk4TParams(grid_y=8.5)
    with pytest.raises(MemdriftError, match="electrode_fraction"):
        b.Bulk4TParams(grid_x=4.0, electrode_fraction=0.95)
    with pytest.raises(MemdriftError, match="film_thickness_m"):
        b.Bulk4TParams(film_thickness_m=-1e-9)
    with pytest.raises(MemdriftError, match="variation.bogus"):
        b.Bulk4TParams(variation={"bogus": 0.1})
    with pytest.raises(MemdriftError, match="scheme"):
        simulate_scheme("tio2x-4t", "nope")
    with pytest.raises(MemdriftError, match="ffp_width_s"):
        simulate_scheme("tio2x-4t", "ffp", grid=8, ffp_width_s=-0.8)
    with pytest.raises(MemdriftError, match="map_joule_heating"):
        simulate_scheme("tio2x-4t", "ffp", grid=8, map_joule_heating=2.0)
    with pytest.raises(MemdriftError, match="backend"):
        Bulk4TDevices(params, 1, backend="gpu")


def test_ffp_options_are_checked_when_made_and_carry_their_units():
    import dataclasses

    from memdrift.emulator.bulk4t_schemes import FFPOptions

    made = FFPOptions(window_ohm=[0.2, 0.4], target_ohm=0.3, levels=16, max_events=10.0)
    assert made.window_ohm == (0.2, 0.4) and made.levels == (16,) and made.max_events == 10
    assert isinstance(made.max_events, int) and made.policy is None
    units = {f.name: f.metadata["unit"] for f in dataclasses.fields(FFPOptions)}
    assert units["ffp_width_s"] == "s" and units["window_ohm"] == "ohm" and units["map_amplitudes_v"] == "V"
    for change, words in ((dict(ffp_width_s=0.0), "ffp_width_s = 0.0 is out of range; allowed: (0, inf] s"),
                          (dict(window_ohm=(0.3,)), "window_ohm = (0.3,) is out of range"),
                          (dict(target_ohm=0.05), "target_ohm = 0.05 is out of range; allowed: [0.1, 0.3] ohm"),
                          (dict(map_joule_heating=-0.5), "map_joule_heating = -0.5 is out of range")):
        with pytest.raises(MemdriftError) as info:
            FFPOptions(**change)
        assert words in str(info.value)
    # the scheme takes exactly these fields by name; the rest of its options are its own
    opts = {"ffp_width_s": 0.5, "grid": 8}
    assert FFPOptions.pop_from(opts).ffp_width_s == 0.5 and opts == {"grid": 8}


# -- command line ------------------------------------------------------------------------------------------


def test_cli_pulse_bulk_writes_dataset_and_plot(tmp_path, capsys):
    """`memdrift pulse --device <bulk preset> --scheme ffp-segmentation ... --plot` runs end to end.

    The command line has no grid option, so the shipped preset is shrunk to 8 x 8 in a preset file of its
    own, with HRS / LRS targets this small film reaches (1 ohm either side of its fresh read).
    """
    import argparse

    from memdrift.data.io import open_dataset
    from memdrift.emulator.params import Preset
    from memdrift.experiments import cmd_pulse

    shipped = load_preset("tio2x-4t")
    params = shipped.params.replace(grid_x=8.0, grid_y=8.0)
    r0 = float(Bulk4TDevices(params, 1).read()[0])
    small = Preset("tio2x-4t-8x8", params, shipped.description, "ffp",
                   {"hrs_ohm": r0 + 1.0, "lrs_ohm": r0 - 1.0})
    preset_path = tmp_path / "small.toml"
    preset_path.write_text(small.to_toml())
    out, png = tmp_path / "ffp.nc", tmp_path / "ffp.png"
    # the subcommand's own parser and entry (the top-level `memdrift` parser only dispatches to it)
    parser = argparse.ArgumentParser(prog="memdrift")
    cmd_pulse.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pulse", "--device", str(preset_path), "--scheme", "ffp-segmentation",
                              "--devices", "1", "--seed", "0", "-o", str(out), "--plot", str(png)])
    assert args.func(args) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    assert png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ds = open_dataset(out)
    events = ds.events.values[0]
    assert np.all(events >= 2)
    # the plot asked for maps, so the run captured the first event of each branch
    assert ds.vacancy_map.dims == ("device", "cycle", "snapshot", "x", "y")
    assert np.all(np.isfinite(ds.vacancy_map.isel(snapshot=0).values))
    assert np.all(ds.temperature_map.isel(snapshot=0).values > 300.0)
    assert ds.vacancy_map.isel(snapshot=0).sum(dim=("x", "y")).values == pytest.approx(
        float(b.device_table(params, 1, 0)[0, b.COL["n_mean"]]) * 64, rel=1e-12)


def test_plot_scheme_rejects_a_dataset_without_resistance(tmp_path):
    import xarray as xr

    from memdrift.experiments.plots_bulk4t import plot_scheme

    with pytest.raises(MemdriftError, match="resistance"):
        plot_scheme(xr.Dataset(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("nx, ny", [(4, 4), (5, 3), (7, 13), (32, 32), (9, 17)])
def test_band_factor_solves_the_five_point_matrix_paired_or_alone(nx, ny):
    """The blocked band solves (_bulk4t_linalg.h) pad the grid to blocks of 8 cells: on grids that are and are
    not multiples of 8 they solve the matrix (against SciPy's sparse LU), and a paired solve gives each
    right-hand side the bits of its single solve."""
    import scipy.sparse.linalg as spla

    from memdrift.emulator.bulk4t import _laplacian
    from memdrift.ext import _bulk4t

    rng = np.random.default_rng(nx * 100 + ny)
    gx = rng.uniform(0.5, 2.0, (nx - 1, ny))
    gy = rng.uniform(0.5, 2.0, (nx, ny - 1))
    extra = np.zeros((nx, ny))
    extra[0, :] = rng.uniform(1.0, 3.0, ny)      # electrode couplings make the matrix definite
    extra[-1, : ny // 2] = 2.0
    b1, b2 = rng.normal(size=nx * ny), rng.normal(size=nx * ny)
    x1, x1_paired, x2_paired = _bulk4t.band_solves(nx, ny, gx, gy, extra, b1, b2)
    a = _laplacian(gx, gy, extra)
    np.testing.assert_allclose(x1, spla.spsolve(a, b1), rtol=1e-10, atol=1e-12 * np.abs(x1).max())
    np.testing.assert_allclose(x2_paired, spla.spsolve(a, b2), rtol=1e-10, atol=1e-12 * np.abs(x2_paired).max())
    assert np.array_equal(x1, x1_paired)
    indefinite = extra.copy()
    indefinite[nx // 2, ny // 2] = -50.0
    with pytest.raises(ArithmeticError, match="not positive definite"):
        _bulk4t.band_solves(nx, ny, gx, gy, indefinite, b1, b2)


BULK_ISA_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "_poisson_lanes.h"
#include "_bulk4t_hops.h"
#include "_bulk4t_linalg.h"
/* every C kernel of the film on one pseudo-random 13 x 11 film: hop counts, rates, faces, product,
 * factor, solves, CG update; all results to stdout */
static double next(uint64_t *s) { *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
                                  return (double)(*s >> 11) / 9007199254740992.0; }
int main(void) {
    enum { NX = 13, NY = 11, N = NX * NY, NF = (NX - 1) * NY + NX * (NY - 1), DRAWS = 5000 };
    uint64_t s = 42;
    static double lam[DRAWS], k[DRAWS], n_cells[N], phi[N], temp[N], fw[NF], bk[NF], fw_sg[NF], bk_sg[NF], sigma[N];
    static double gx[N], gy[N], gb[N], dg[N], y[N], x1[N], x2[N], r[N];
    signed char term[N];
    double bfac[4] = {2.0, 1.5, 2.0, 1.5};
    for (int d = 0; d < DRAWS; d++) lam[d] = next(&s) < 0.6 ? 10.0 * next(&s) : 10.0 + 70.0 * next(&s);
    md_poisson_lanes(lam, k, DRAWS, 99, 1234);
    for (int i = 0; i < N; i++) {
        n_cells[i] = 1000.0 * (0.5 + next(&s)); phi[i] = next(&s) - 0.5; temp[i] = 300.0 + 20.0 * next(&s);
        sigma[i] = 1e4 * (0.5 + next(&s)); term[i] = i < NY ? 0 : (i >= N - NY ? 2 : -1);
    }
    md_bulk_rates(NX, NY, 1e-7, 1e-7, 3e-10, 1e13, 0.6, 2.0, 3000.0, 0, n_cells, phi, temp, fw, bk);
    md_bulk_rates(NX, NY, 1e-7, 1e-7, 3e-10, 1e13, 0.6, 2.0, 3000.0, 1, n_cells, phi, temp, fw_sg, bk_sg);
    md_faces(NX, NY, 1.0, 1.1, sigma, term, bfac, gx, gy, gb);
    for (int i = 0; i < N; i++) dg[i] = gb[i];
    for (int i = 0; i < (NX - 1) * NY; i++) { dg[i] += gx[i]; dg[i + NY] += gx[i]; }
    for (int ix = 0; ix < NX; ix++) for (int iy = 0; iy < NY - 1; iy++) {
        dg[ix * NY + iy] += gy[ix * (NY - 1) + iy]; dg[ix * NY + iy + 1] += gy[ix * (NY - 1) + iy]; }
    md_matvec(NX, NY, gx, gy, dg, phi, y);
    double *rows = calloc((size_t)N * (NY + 1), sizeof(double));
    for (int i = 0; i < N; i++) {
        rows[i * (NY + 1) + NY] = dg[i];
        if (i % NY > 0) rows[i * (NY + 1) + NY - 1] = -gy[(i / NY) * (NY - 1) + i % NY - 1];
        if (i >= NY) rows[i * (NY + 1)] = -gx[i - NY];
    }
    double *packed = malloc(md_band_doubles(N, NY) * sizeof(double));
    double *scratch = malloc(md_band_scratch(N, NY) * sizeof(double));
    if (md_band_factor(N, NY, rows, packed) != 0) return 1;
    md_band_solve2(N, NY, packed, phi, y, x1, x2, scratch);
    for (int i = 0; i < N; i++) r[i] = y[i];
    double rr = md_cg_advance(x1, r, phi, y, 0.37, N), dot = md_dot(x1, x2, N);
    fwrite(k, 8, DRAWS, stdout); fwrite(fw, 8, NF, stdout); fwrite(bk, 8, NF, stdout);
    fwrite(fw_sg, 8, NF, stdout); fwrite(bk_sg, 8, NF, stdout); fwrite(gx, 8, N, stdout);
    fwrite(gy, 8, N, stdout); fwrite(gb, 8, N, stdout); fwrite(y, 8, N, stdout); fwrite(x1, 8, N, stdout);
    fwrite(x2, 8, N, stdout); fwrite(r, 8, N, stdout); fwrite(&rr, 8, 1, stdout); fwrite(&dot, 8, 1, stdout);
    return 0;
}
"""


def test_film_kernels_give_the_same_bits_on_every_instruction_set(isa_builds):
    """The film's C kernels (hop counts, rates, matrix, band factor and solves, CG reductions) are cloned
    for AVX-512 (the sampler's for x86-64-v4), AVX2 and baseline x86-64; built once per instruction set
    this CPU runs, the same inputs give the same bits (no FMA contraction; fixed-order vector reductions)."""
    (_, baseline), *others = isa_builds(BULK_ISA_HARNESS)
    assert np.all(np.isfinite(baseline)) and baseline.size > 5000
    for isa, out in others:
        assert np.array_equal(out, baseline), f"{isa} differs from the baseline build"


# -- zero-bias holds and FFP branches kept at stops (the film route's aging) -------------------------------


def test_a_hold_past_the_step_budget_goes_on_and_lands_where_one_long_hold_does():
    from memdrift.emulator.bulk4t_schemes import hold

    base = preset_params(grid_x=8.0, grid_y=8.0, variation={"activation_energy_ev": 0.01})
    runs = []
    for budget in (20000.0, 37.0):
        dev = Bulk4TDevices(base.replace(max_steps_per_pulse=budget), 2, seed=3)
        dev.write(6.0, 30.0)
        before = dev.n.copy()
        steps = hold(dev, 86400.0, 358.0)
        runs.append((before, dev.n.copy(), steps, dev.read()))
    (before, long_n, long_steps, long_r), (_, chained_n, chained_steps, chained_r) = runs
    # a day at 358 K needs hundreds of steps: the 37-step budget was run through many times
    assert np.all(long_steps > 10 * 37)
    np.testing.assert_array_equal(chained_steps, long_steps)
    np.testing.assert_array_equal(chained_n, long_n)
    np.testing.assert_array_equal(chained_r, long_r)
    assert not np.array_equal(long_n, before)
    np.testing.assert_allclose(long_n.sum(axis=(1, 2)), before.sum(axis=(1, 2)), rtol=1e-12)


def test_ffp_branch_kept_at_stops_is_the_uninterrupted_branch():
    from memdrift.emulator.bulk4t_schemes import ffp_states, run_ffp

    params = preset_params(grid_x=8.0, grid_y=8.0, variation={"activation_energy_ev": 0.01})
    r0 = Bulk4TDevices(params, 1).read()[0]
    r_grid = np.linspace(r0 - 1.0, r0 + 1.0, 7)
    vw = np.vstack([np.linspace(3.0, 6.0, 7), np.linspace(2.0, 5.0, 7)])
    stops = r0 - np.array([0.1, 0.2, 0.2, 0.4])
    whole = Bulk4TDevices(params, 2, seed=5)
    res = run_ffp(whole, vw, r_grid, max_events=60, hrs_ohm=r0 + 0.05, lrs_ohm=stops[-1], branches=(+1.0,),
                  initialise=False)
    kept = []
    for in_kernel in (True, False):
        dev = Bulk4TDevices(params, 2, seed=5)
        kept.append(ffp_states(dev, vw, r_grid, stops, width_s=0.8, max_events=60, in_kernel=in_kernel))
    (states, r_at, events), (slow_states, slow_r, slow_events) = kept
    np.testing.assert_array_equal(states, slow_states)
    np.testing.assert_array_equal(r_at, slow_r)
    np.testing.assert_array_equal(events, slow_events)
    # the last stop is the branch's end; each stop the first reading at or below it
    np.testing.assert_array_equal(events[:, -1], res["events"][:, 0])
    np.testing.assert_array_equal(states[:, -1], whole.n)
    for d in range(2):
        trace = res["resistance"][d, 0]
        for k, stop in enumerate(stops):
            first = int(np.argmax(trace <= stop))
            assert events[d, k] == first + 1 and r_at[d, k] == trace[first]
    # two equal stops: the second keeps the first's state, no event between them
    np.testing.assert_array_equal(states[:, 2], states[:, 1])
    assert np.all(np.diff(events[:, [0, 1, 3]], axis=1) > 0)
    with pytest.raises(MemdriftError, match="stops_ohm"):
        ffp_states(Bulk4TDevices(params, 1), vw, r_grid, stops[::-1])


@pytest.mark.parametrize("snapshots", [(), (10**6,)])
def test_ffp_keeping_every_potentiation_state_runs_the_same_events_and_keeps_what_was_read(snapshots):
    from memdrift.emulator.bulk4t_schemes import run_ffp

    params = preset_params(grid_x=8.0, grid_y=8.0, variation={"activation_energy_ev": 0.01})
    r0 = Bulk4TDevices(params, 1).read()[0]
    r_grid = np.linspace(r0 - 1.0, r0 + 1.0, 7)
    vw = np.vstack([np.linspace(3.0, 6.0, 7), np.linspace(2.0, 5.0, 7)])
    runs = []
    # snapshots past the end: the Python loop (the reference's), else the kernel stopped after every event
    for keep in (False, True):
        dev = Bulk4TDevices(params, 2, seed=5)
        res = run_ffp(dev, vw, r_grid, max_events=40, hrs_ohm=r0 + 0.05, lrs_ohm=r0 - 0.4,
                      branches=(+1.0, -1.0, +1.0), initialise=False, snapshot_events=snapshots, keep_states=keep)
        runs.append((res, dev.n.copy()))
    (plain, n_plain), (kept, n_kept) = runs
    for key in ("resistance", "energy", "events", "resistance_start"):
        np.testing.assert_array_equal(kept[key], plain[key])
    np.testing.assert_array_equal(n_kept, n_plain)
    assert "states" not in plain and len(kept["states"]) == 2
    probe = Bulk4TDevices(params, 2, seed=5)
    for states, c in zip(kept["states"], (0, 2)):
        ev = plain["events"][:, c]
        assert np.all(ev > 1) and states.shape == (2, ev.max() + 1, 8, 8)
        for d in range(2):
            # each kept state reads what the branch read after that event (the re-read to the solver's tolerance)
            for e in range(1, ev[d] + 1):
                probe.n = np.repeat(states[d, e][None], 2, axis=0)
                np.testing.assert_allclose(probe.read()[0], plain["resistance"][d, c, e - 1], rtol=1e-9)
            # past a device's end, its last state
            assert np.all(states[d, ev[d]:] == states[d, ev[d]])
    # the first kept state is where the branch started
    probe.n = kept["states"][0][:, 0].copy()
    np.testing.assert_allclose(probe.read(), plain["resistance_start"][:, 0], rtol=1e-9)


def test_devices_from_a_table_run_as_the_ensemble_they_were_taken_from():
    from memdrift.emulator import bulk4t as b
    from memdrift.emulator.bulk4t_schemes import hold

    params = preset_params(grid_x=8.0, grid_y=8.0)
    source = Bulk4TDevices(params, 3, seed=2)
    _, keys = b.device_streams(2, 3)
    for backend in ("compiled", "reference"):
        src = Bulk4TDevices(params, 3, seed=2, backend=backend)
        src.write(4.0, 20.0)
        state = src.n.copy()
        # films 2 and 0 again, on film 2's and film 0's own streams: the same hold as those films'
        copy_ = Bulk4TDevices.from_table(params, source.table[[2, 0]], keys[[2, 0]], backend=backend)
        copy_.n = state[[2, 0]].copy()
        ref = Bulk4TDevices(params, 3, seed=2, backend=backend)
        ref.n = state.copy()
        if backend == "reference":
            # the twin seeds its stream from each key (not the films' SeedSequence): seeded by the key alone
            again = Bulk4TDevices.from_table(params, source.table[[2, 0]], keys[[2, 0]], backend=backend)
            again.n = state[[2, 0]].copy()
            hold(copy_, 3600.0, 358.0)
            hold(again, 3600.0, 358.0)
            assert np.any(copy_.n != state[[2, 0]])
            np.testing.assert_array_equal(again.n, copy_.n)
            continue
        hold(copy_, 3600.0, 358.0)
        hold(ref, 3600.0, 358.0)
        np.testing.assert_array_equal(copy_.n, ref.n[[2, 0]])
        np.testing.assert_array_equal(copy_.read(), ref.read()[[2, 0]])
    with pytest.raises(MemdriftError, match="one row per key"):
        Bulk4TDevices.from_table(params, source.table, keys[:2])


def test_a_hot_zero_bias_hold_is_the_same_on_the_compiled_kernel_and_its_twin():
    from memdrift.emulator.bulk4t_schemes import hold

    params = preset_params(grid_x=8.0, grid_y=8.0, max_steps_per_pulse=25.0)
    devs = [Bulk4TDevices(params, 2, seed=4, backend=bk, deterministic=True) for bk in ("compiled", "reference")]
    for d in devs:
        d.write(6.0, 30.0)
    np.testing.assert_allclose(devs[0].n, devs[1].n, rtol=1e-8, atol=1e-6)
    before = devs[0].n.copy()
    steps = [hold(d, 3600.0 * 6, 358.0) for d in devs]
    np.testing.assert_array_equal(steps[0], steps[1])
    assert np.all(steps[0] > 25)
    np.testing.assert_allclose(devs[0].n, devs[1].n, rtol=1e-8, atol=1e-6)
    np.testing.assert_allclose(devs[0].read(), devs[1].read(), rtol=1e-10)
    assert np.abs(devs[0].n - before).max() > 1.0
