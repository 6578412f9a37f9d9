"""The film's Pt contacts with a specific contact resistivity: geometry, Kirchhoff, read resistance, twins."""

from __future__ import annotations

import numpy as np
import pytest

from memdrift.emulator import bulk4t as b
from memdrift.emulator.bulk4t_schemes import Bulk4TDevices
from memdrift.emulator.params import load_preset
from memdrift.errors import MemdriftError

RHO_C = 1e-9   # ohm m2, the low end of Pt on reduced TiO2-x


def contact_params(**changes) -> b.Bulk4TParams:
    return load_preset("tio2x-4t").params.replace(**{"contact_resistivity_ohm_m2": RHO_C, **changes})


def uniform_read(params: b.Bulk4TParams, volts=None) -> tuple[float, np.ndarray]:
    table = b.device_table(params, 1, 0)
    n = b.initial_counts(table, params.shape)
    r, cur = b.ReferenceEngine(params, table, b.device_streams(0, 1)[0]).read(n, np.full(n.shape, 300.0), volts)
    return float(r[0]), cur[0]


@pytest.mark.parametrize("grid, overlap_m", [(16, 1e-6), (20, 1e-6), (33, 0.3e-6), (64, 2.5e-6)])
def test_each_electrode_covers_its_rectangle_on_any_grid(grid, overlap_m):
    params = contact_params(grid_x=float(grid), grid_y=float(grid + 3), contact_overlap_m=overlap_m)
    g = b.contact_conductance(params)
    width_m = params.electrode_fraction * params.side_length_m
    # the cell areas under each electrode sum to its segment length times the overlap, however the cells fall
    np.testing.assert_allclose(g.sum(axis=(1, 2)) * RHO_C, width_m * overlap_m, rtol=1e-12)
    assert np.all((g > 0).sum(axis=0) <= 1)
    # T1 lies along the left edge, T4 along the bottom
    assert g[0, 0].sum() > 0 and g[0, -1].sum() == 0 and g[3][:, 0].sum() > 0 and g[3][:, -1].sum() == 0


@pytest.mark.parametrize("volts", [(0.1, 0.0, 0.0, 0.0), (0.0, 6.0, 0.0, 6.0), (1.3, -2.0, 0.7, 4.1)])
def test_kirchhoff_with_contact_resistance(volts):
    params = contact_params(grid_x=16.0, grid_y=16.0)
    table = b.device_table(params, 2, 0)
    rng = np.random.default_rng(5)
    n = np.round(b.initial_counts(table, params.shape) * rng.uniform(0.3, 2.0, (2, 16, 16)))
    v = np.array(volts)
    for engine in (b.ReferenceEngine(params, table, b.device_streams(0, 2)[0]),
                   b.CompiledEngine(params, table, b.device_streams(0, 2)[1])):
        _, cur = engine.read(n, np.full(n.shape, 300.0), v)
        assert np.all(np.abs(cur.sum(axis=1)) <= 1e-9 * np.abs(cur).max(axis=1))


def test_contact_dominated_read_is_four_contact_resistances():
    # rho_c at the top of its range: the contacts (533 kohm for R13) dwarf the film (~1 kohm), the film is
    # nearly one potential, V1 / 4 with T2-T4 grounded, and I3 = (V1 / 4) W w / rho_c
    params = contact_params(contact_resistivity_ohm_m2=1e-6)
    r13, _ = uniform_read(params)
    area_m2 = params.electrode_fraction * params.side_length_m * params.contact_overlap_m
    expected = 4.0 * 1e-6 / area_m2
    assert abs(r13 / expected - 1) < 0.01
    assert r13 > expected   # the film's own resistance adds to it


def test_uniform_film_read_with_contacts_converges_to_a_fine_grid():
    fine, _ = uniform_read(contact_params(grid_x=256.0, grid_y=256.0))
    r = {g: uniform_read(contact_params(grid_x=float(g), grid_y=float(g)))[0] for g in (16, 32, 64)}
    assert abs(r[32] / fine - 1) < 2e-3
    assert abs(r[64] / fine - 1) < abs(r[32] / fine - 1) < abs(r[16] / fine - 1)
    # the contacts add resistance: more than the ideal segments' fine-grid value
    ideal, _ = uniform_read(contact_params(grid_x=256.0, grid_y=256.0, contact_resistivity_ohm_m2=0.0))
    assert fine > ideal


def test_uniform_film_compiled_read_with_contacts_matches_reference():
    params = contact_params()
    table = b.device_table(params, 1, 0)
    n = b.initial_counts(table, params.shape)
    r_ref, _ = b.ReferenceEngine(params, table, b.device_streams(0, 1)[0]).read(n, np.full(n.shape, 300.0))
    r_c, _ = b.CompiledEngine(params, table, b.device_streams(0, 1)[1]).read(n)
    np.testing.assert_allclose(r_c, r_ref, rtol=1e-10)


# on the substrate path the film at 1e-9 ohm m2 runs hot enough to spend the step budget: 1e-8 there
@pytest.mark.parametrize("scharfetter_gummel, thermal_model, rho_c", [(0.0, 0.0, RHO_C), (1.0, 0.0, RHO_C),
                                                                      (0.0, 1.0, 1e-8)])
def test_compiled_matches_reference_with_contacts_in_deterministic_mode(scharfetter_gummel, thermal_model, rho_c):
    params = contact_params(grid_x=16.0, grid_y=16.0, max_outflow_fraction=5e-4, sigma_tolerance=2e-4,
                            scharfetter_gummel=scharfetter_gummel, substrate_conductance_w_per_m2k=2.5e8,
                            thermal_model=thermal_model, contact_resistivity_ohm_m2=rho_c)
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
        assert np.all(recs[0].flag == 0)
    assert np.all(steps >= 10)
    # the writes moved vacancies, and the last one heated the film
    assert not np.allclose(devs[0].n, devs[0].n.mean())
    assert np.all(recs[0].temperature_peak > 301.0)


def test_contact_parameters_are_range_checked():
    with pytest.raises(MemdriftError, match="contact_resistivity_ohm_m2"):
        contact_params(contact_resistivity_ohm_m2=1e-11)
    with pytest.raises(MemdriftError, match="contact_resistivity_ohm_m2"):
        contact_params(contact_resistivity_ohm_m2=1e-5)
    with pytest.raises(MemdriftError, match="contact_overlap_m"):
        contact_params(contact_overlap_m=4e-6)   # past the quarter-edge gap between neighbouring electrodes
    with pytest.raises(MemdriftError, match="grid_x = 5"):
        contact_params(grid_x=5.0, grid_y=5.0, contact_overlap_m=3.7e-6)   # a 3 um cell under T1 and T4
    # off (the default), any overlap is accepted and the bits are the ideal segments'
    assert load_preset("tio2x-4t").params.contact_resistivity_ohm_m2 == 0.0


def peak_face_field_v_per_m(grid: int, rho_c: float) -> float:
    """Largest field across an inner face of the uniform film under the write bias, +6 V on T2 and T4."""
    params = contact_params(grid_x=float(grid), grid_y=float(grid), contact_resistivity_ohm_m2=rho_c)
    table = b.device_table(params, 1, 0)
    n = b.initial_counts(table, params.shape)
    geom = b.Geometry.from_params(params)
    sigma = b.conductivity(n, np.full(n.shape, 300.0), table)[0]
    phi, _ = b.solve_potential(sigma, np.array([0.0, 6.0, 0.0, 6.0]), geom)
    return max(np.abs(np.diff(phi, axis=0)).max() / geom.hx, np.abs(np.diff(phi, axis=1)).max() / geom.hy)


def test_contacts_bound_the_field_at_the_segment_ends():
    ideal = {g: peak_face_field_v_per_m(g, 0.0) for g in (32, 64)}
    # the ideal segment end: field ~ r^-1/2, so the peak grows by about sqrt(2) per halving of the cell
    assert ideal[64] / ideal[32] > 1.3
    contact = {g: peak_face_field_v_per_m(g, RHO_C) for g in (32, 64, 256)}
    assert abs(contact[64] / contact[256] - 1) < 0.01
    assert abs(contact[32] / contact[256] - 1) < 0.03
    # the contact's current density is bounded by V / rho_c; the film's field by far less than the ideal's
    assert contact[256] < 0.5 * ideal[32]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_pulse_train_with_contacts_conserves_whole_vacancies_under_the_cap(backend):
    params = contact_params(grid_x=16.0, grid_y=16.0, attempt_frequency_hz=1.25e14)
    dev = Bulk4TDevices(params, 2, seed=4, backend=backend)
    total = dev.n.sum(axis=(1, 2))
    n_max = np.floor(b.device_table(params, 2, 4)[:, b.COL["n_max"]])
    moved = 0.0
    for amp, width in ((6.0, 5.0), (-6.0, 3.0), (4.0, 0.8), (-7.0, 1.0)):
        before = dev.n.copy()
        dev.write(amp, width)
        moved += np.abs(dev.n - before).sum()
        np.testing.assert_array_equal(dev.n.sum(axis=(1, 2)), total)
        assert np.all(dev.n >= 0) and np.all(dev.n == np.round(dev.n))
        assert np.all(dev.n.max(axis=(1, 2)) <= n_max)
    assert moved > 0


def test_contacts_are_bit_identical_for_one_and_two_threads():
    params = contact_params(grid_x=16.0, grid_y=16.0, variation={"activation_energy_ev": 0.01})
    runs = []
    for threads in (1, 2):
        dev = Bulk4TDevices(params, 4, seed=9, threads=threads)
        rs = [(dev.write(amp, 10.0), dev.read())[1] for amp in (6.0, -6.0)]
        runs.append((dev.n.copy(), np.array(rs)))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
