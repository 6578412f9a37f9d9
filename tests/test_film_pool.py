"""Film levels through a pool (``--scheme ffp-levels``): pool, levels, mapping, accounting, CLI.

Pools run on a coarse grid with a short ΔR map so each test stays well under 30 s; behaviour, not
emulated numbers (the preset's calibration may change).
"""

from __future__ import annotations

import dataclasses
import json

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from memdrift.emulator.params import load_preset
from memdrift.errors import MemdriftError
from memdrift.mapping import film_pool as fp

PRESET = load_preset("tio2x-4t")
COARSE = dict(grid=8, map_pulses=10, calibration=PRESET.calibration)


@pytest.fixture(scope="module")
def pool() -> fp.FilmPool:
    return fp.build_pool(PRESET.params, films=3, realisations=2, seed=4, **COARSE)


@functools.cache
def _ideal_pool() -> fp.FilmPool:
    ideal = dataclasses.replace(PRESET.params, variation={})
    return fp.build_pool(ideal, films=2, realisations=1, seed=0, noise=False, **COARSE)


@pytest.fixture(scope="module")
def ideal_pool() -> fp.FilmPool:
    return _ideal_pool()


def weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(16, 24)), rng.normal(size=(5, 16))]


def test_pool_traces_climb_the_window_and_films_differ(pool):
    assert pool.conductance_s.shape[:2] == (3, 2)
    for f in range(pool.films):
        for c in range(pool.realisations):
            g = pool.conductance_s[f, c, : pool.events[f, c] + 1]
            # from the HRS crossing to the LRS crossing
            assert g[0] <= pool.g_min_s * (1 + 1e-4) and g[-1] >= pool.g_max_s
            assert np.isnan(pool.conductance_s[f, c, pool.events[f, c] + 1:]).all()
    # each film its own variation and hop stream: the traces are not copies of one another
    assert len({int(e) for e in pool.events[:, 0]}) > 1
    assert np.all(pool.energy_j[np.isfinite(pool.conductance_s[:, :, 1:])] > 0)
    assert np.all(pool.overhead["map_pulses"] == 2 * 15 * 10)
    assert np.all(pool.overhead["return_energy_j"] > 0)


def test_noise_and_variation_off_gives_the_ideal_quantised_weights(ideal_pool):
    """Identical noise-free films: every weight holds its level's reading, which lies within half an FFP
    event's step of the ideal quantised weight (far inside a level spacing at 3-6 bits)."""
    step_s = np.nanmax(np.diff(ideal_pool.conductance_s, axis=2))
    # the two films are the same film: the pool does not depend on which one a weight drew
    np.testing.assert_array_equal(ideal_pool.conductance_s[0], ideal_pool.conductance_s[1])
    for bits in (3, 6):
        prog = fp.program_network(ideal_pool, weights(), bits, seed=1)
        n = 1 << bits
        for layer in range(2):
            spacing = 2 * prog.w_max[layer] / (n - 1)
            tol = step_s * 2 * prog.w_max[layer] / (prog.g_max_s - prog.g_min_s)
            err = np.abs(prog.weights(layer) - prog.ideal_weights(layer))
            assert err.max() <= 0.5 * tol + 1e-12 * prog.w_max[layer]
            assert tol < 0.2 * spacing
            # the ideal quantised weights are the uniform levels of the tile's window
            w = weights()[layer]
            q = np.clip(np.rint((w / prog.w_max[layer] + 1) / 2 * (n - 1)), 0, n - 1)
            np.testing.assert_allclose(prog.ideal_weights(layer), -prog.w_max[layer] + q * spacing)
        assert prog.accounting()["out_of_band"].sum() == 0
        # the chosen levels are the segmentation's readings, exactly
        lv = ideal_pool.levels(bits)
        g = prog.conductance_s[0][0]
        np.testing.assert_array_equal(g, lv.conductance_s[prog.film[0][0], prog.realisation[0][0], prog.level[0][0]])


def test_an_unreachable_level_is_counted_not_dropped():
    # a branch cut after 40 events never reaches the upper levels of the window
    short = fp.build_pool(PRESET.params, films=2, realisations=1, seed=0, max_events=40, **COARSE)
    assert np.all(short.events == 40)
    prog = fp.program_network(short, [np.array([[1.0, -1.0, 0.0, 0.9]])], 3, seed=0)
    reached = prog.converged[0].ravel()
    assert list(reached) == [False, True, False, False]
    assert prog.accounting()["out_of_band"].sum() == 3
    # the weight still holds what the film reached (its last reading), counted as out of band
    assert np.all(np.isfinite(prog.conductance_s[0]))
    summary = fp.pool_summary(short, [3, 5])
    assert np.all(summary["reached_min"] < summary["levels"]) and np.all(summary["unreached"] > 0)


def test_accounting_charges_each_weight_its_realisations_events(pool):
    prog = fp.program_network(pool, weights(), 5, seed=2)
    cum = np.cumsum(pool.energy_j, axis=2)
    for layer in range(2):
        f, c, m = prog.film[layer][0], prog.realisation[layer][0], prog.pulses[layer][0]
        expected = np.where(m > 0, cum[f, c, np.maximum(m - 1, 0)], 0.0)
        np.testing.assert_allclose(prog.energy_j[layer][0], expected, rtol=1e-12)
        np.testing.assert_allclose(prog.time_s[layer][0], m * pool.ffp_width_s)
    acc = prog.accounting()
    assert acc["devices"].tolist() == [w.size for w in weights()]
    assert acc["pulses"].sum() == sum(p.sum() for p in prog.pulses)
    # higher weights sit higher in the window: they take more events
    order = np.argsort(weights()[0].ravel())
    assert np.mean(prog.pulses[0].ravel()[order[-20:]]) > np.mean(prog.pulses[0].ravel()[order[:20]])


def test_seeded_bit_for_bit_and_independent_of_chunking(pool):
    whole = fp.program_network(pool, weights(), 7, seed=3)
    chunked = fp.program_network(pool, weights(), 7, seed=3, chunk_devices=13)
    other = fp.program_network(pool, weights(), 7, seed=4)
    for layer in range(2):
        for key in ("conductance_s", "pulses", "energy_j", "film", "realisation"):
            np.testing.assert_array_equal(getattr(chunked, key)[layer], getattr(whole, key)[layer])
    assert not np.array_equal(other.film[0], whole.film[0])
    # kernel threads change nothing (two films, one cycle: a small pool keeps the test short)
    one, two = (fp.build_pool(PRESET.params, films=2, realisations=1, seed=4, threads=t, **COARSE) for t in (1, 2))
    np.testing.assert_array_equal(two.conductance_s, one.conductance_s)
    np.testing.assert_array_equal(two.energy_j, one.energy_j)


def test_bad_pool_arguments_name_the_field():
    with pytest.raises(MemdriftError, match="pool"):
        fp.build_pool(PRESET.params, films=0, **COARSE)
    with pytest.raises(MemdriftError, match="bits"):
        fp.FilmPool(np.zeros((1, 1, 2)), np.zeros((1, 1, 1)), np.ones((1, 1), dtype=int), 1.0, 2.0, 0.8, {},
                    (8, 8), 0).levels(0)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)),
              elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)),
       st.integers(3, 9))
def test_every_weight_gets_the_nearest_level_of_its_tile_window(w, bits):
    prog = fp.program_network(_ideal_pool(), [w], bits, seed=0)
    n = 1 << bits
    level = prog.level[0][0]
    assert level.min() >= 0 and level.max() <= n - 1
    spacing = 2 * prog.w_max[0] / (n - 1)
    # the ideal quantised weight is the nearest level of [-w_max, w_max]
    assert np.all(np.abs(prog.ideal_weights(0) - w) <= 0.5 * spacing * (1 + 1e-9) + 1e-12)
    assert prog.pulses[0].min() >= 0 and np.all(prog.energy_j[0] >= 0)
    assert prog.accounting()["devices"][0] == w.size


DAY_S = 86400.0
AGES = ((300.0, 1e-6), (300.0, DAY_S), (358.0, DAY_S))


@functools.cache
def _aged_pool(seed: int = 4, threads: int = 1, age_levels: int = 5, reference: bool = False) -> fp.FilmPool:
    return fp.build_pool(PRESET.params, films=2, realisations=1, seed=seed, threads=threads, ages=AGES,
                         age_levels=age_levels, reference=reference, **COARSE)


def test_aging_leaves_the_pool_as_it_was_and_keeps_each_film_at_its_anchors():
    aged = _aged_pool()
    plain = fp.build_pool(PRESET.params, films=2, realisations=1, seed=4, **COARSE)
    assert plain.aging is None
    # the aging branch runs after the realisations: the pool's traces are those of the unaged pool
    for key in ("conductance_s", "energy_j", "events"):
        np.testing.assert_array_equal(getattr(aged, key), getattr(plain, key))
    a = aged.aging
    np.testing.assert_allclose(a.anchors_s, np.linspace(aged.g_min_s, aged.g_max_s, 5))
    # anchor 0 the reset state; every other the first reading at or past its anchor, within an event of it
    assert np.all(a.events[:, 0] == 0) and np.all(np.diff(a.events, axis=1) > 0)
    step_s = np.nanmax(np.diff(aged.conductance_s, axis=2))
    assert np.all(a.reached_s[:, 1:] >= a.anchors_s[1:] * (1 - 1e-12))
    assert np.all(a.reached_s[:, 1:] - a.anchors_s[1:] <= step_s)


def test_aging_to_a_vanishing_time_gives_the_programmed_conductances_exactly():
    pool = _aged_pool()
    prog = fp.program_network(pool, weights(), 3, seed=1)
    assert set(prog.aged_s) == set(AGES)
    for layer in range(2):
        np.testing.assert_array_equal(prog.aged_s[(300.0, 1e-6)][layer], prog.conductance_s[layer])
        # a day does move them: the comparison above is not between two unmoved states
        assert np.abs(prog.aged_s[(300.0, DAY_S)][layer] - prog.conductance_s[layer]).max() > 1e-7


def test_aging_hotter_moves_the_levels_more_and_each_weight_gets_its_films_change():
    pool = _aged_pool()
    a = pool.aging
    cold, hot = np.abs(a.delta_s[(300.0, DAY_S)]), np.abs(a.delta_s[(358.0, DAY_S)])
    assert hot.mean() > 2 * cold.mean() > 0
    # relaxing towards the uniform film: the low-conductance end gains, the high end loses
    for d in (a.delta_s[(300.0, DAY_S)], a.delta_s[(358.0, DAY_S)]):
        assert np.all(d[:, 0] > 0) and np.all(d[:, -1] < 0)
    for bits in (2, 5):
        prog = fp.program_network(pool, weights(), bits, seed=1)
        targets = np.linspace(pool.g_min_s, pool.g_max_s, 1 << bits)
        for key in ((300.0, DAY_S), (358.0, DAY_S)):
            for layer in range(2):
                f, j = prog.film[layer][0], prog.level[layer][0]
                expected = np.stack([np.interp(targets, a.anchors_s, d) for d in a.delta_s[key]])[f, j]
                np.testing.assert_allclose(prog.aged_s[key][layer][0] - prog.conductance_s[layer][0], expected,
                                           rtol=1e-9, atol=1e-15)
    # 4 anchors are the levels of 2 bits: each level gets its own anchor's change, nothing interpolated
    four = _aged_pool(age_levels=4)
    prog = fp.program_network(four, weights(), 2, seed=1)
    f, j = prog.film[0][0], prog.level[0][0]
    np.testing.assert_array_equal(prog.aged_s[(358.0, DAY_S)][0][0] - prog.conductance_s[0][0],
                                  four.aging.delta_s[(358.0, DAY_S)][f, j])


def test_aging_is_seeded_bit_for_bit_whatever_the_threads_and_chunks():
    one, two, other = _aged_pool(), _aged_pool(threads=2), _aged_pool(seed=5)
    for key in AGES:
        np.testing.assert_array_equal(two.aging.delta_s[key], one.aging.delta_s[key])
        np.testing.assert_array_equal(two.aging.steps[key], one.aging.steps[key])
    assert not np.array_equal(other.aging.delta_s[(358.0, DAY_S)], one.aging.delta_s[(358.0, DAY_S)])
    whole = fp.program_network(one, weights(), 6, seed=3)
    chunked = fp.program_network(one, weights(), 6, seed=3, chunk_devices=11)
    for key in AGES:
        for layer in range(2):
            np.testing.assert_array_equal(chunked.aged_s[key][layer], whole.aged_s[key][layer])


def test_an_age_beyond_the_films_step_bound_is_refused_before_anything_runs():
    # a year at 358 K on the preset's 32 x 32 film: millions of relaxation steps
    steps = fp.age_steps_bound(PRESET.params, 358.0, 3.1536e7)
    assert steps > fp.MAX_AGE_STEPS
    with pytest.raises(MemdriftError, match=r"age = 3.1536e\+07 s at 358 K is out of range.*allowed: at most"):
        fp.check_ages(PRESET.params, [(300.0, DAY_S), (358.0, 3.1536e7)])
    with pytest.raises(MemdriftError, match="out of range"):
        fp.build_pool(PRESET.params, films=1, ages=[(358.0, 3.1536e7)], calibration=PRESET.calibration)
    # the bound is an upper bound of the steps a hold takes
    hot = _aged_pool().aging.steps[(358.0, DAY_S)]
    coarse = PRESET.params.replace(grid_x=8.0, grid_y=8.0)
    assert hot.max() <= fp.age_steps_bound(coarse, 358.0, DAY_S)
    assert hot.min() > 0.2 * fp.age_steps_bound(coarse, 358.0, DAY_S)
    for bad, words in (({"age_levels": 1}, "age_levels"), ({"ages": [(358.0, -1.0)]}, "age")):
        with pytest.raises(MemdriftError, match=words):
            fp.build_pool(PRESET.params, films=1, **{"ages": [(300.0, 1.0)], **bad}, **COARSE)


@settings(max_examples=60, deadline=None)
@given(st.floats(250.0, 500.0), st.floats(1e-3, 1e10), st.sampled_from([8.0, 32.0]))
def test_an_age_is_refused_exactly_when_its_step_bound_is_above_the_limit(temp_k, t_s, grid):
    params = PRESET.params.replace(grid_x=grid, grid_y=grid)
    steps = fp.age_steps_bound(params, temp_k, t_s)
    # hotter, longer and finer all take more steps
    assert fp.age_steps_bound(params, temp_k + 10.0, t_s) > steps
    assert fp.age_steps_bound(params, temp_k, 2 * t_s) > steps
    if steps <= fp.MAX_AGE_STEPS:
        fp.check_ages(params, [(temp_k, t_s)])
    else:
        with pytest.raises(MemdriftError, match="out of range for this film") as err:
            fp.check_ages(params, [(temp_k, t_s)])
        # the longest age the message allows is itself allowed
        longest = float(str(err.value).split("ages up to ")[1].split(" s at")[0])
        fp.check_ages(params, [(temp_k, longest * (1 - 1e-3))])


def test_the_reference_state_leaves_the_anchors_as_they_were_and_ages_as_the_middle_does():
    plain, ref = _aged_pool(), _aged_pool(reference=True)
    assert plain.aging.reference_reached_s is None and not plain.aging.reference_delta_s
    # one more stop on the aging branch and one more hold after the anchors' change none of theirs
    for key in AGES:
        np.testing.assert_array_equal(ref.aging.delta_s[key], plain.aging.delta_s[key])
        np.testing.assert_array_equal(ref.aging.steps[key], plain.aging.steps[key])
    np.testing.assert_array_equal(ref.aging.reached_s, plain.aging.reached_s)
    a = ref.aging
    middle = 0.5 * (ref.g_min_s + ref.g_max_s)
    step_s = np.nanmax(np.diff(ref.conductance_s, axis=2))
    assert np.all(a.reference_reached_s >= middle * (1 - 1e-12)) and np.all(a.reference_reached_s - middle <= step_s)
    np.testing.assert_array_equal(a.reference_delta_s[(300.0, 1e-6)], 0.0)
    day, hot = a.reference_delta_s[(300.0, DAY_S)], a.reference_delta_s[(358.0, DAY_S)]
    # the middle lies above the uniform film: it loses conductance, faster when hotter
    assert np.all(day < 0) and np.all(hot < 2 * day)
    # 5 anchors put one at the middle: without hop noise the reference is that anchor's state, aged alike
    quiet = fp.build_pool(PRESET.params, films=2, realisations=1, seed=4, noise=False, ages=AGES, age_levels=5,
                          reference=True, **COARSE).aging
    np.testing.assert_array_equal(quiet.reference_reached_s, quiet.reached_s[:, 2])
    for key in AGES:
        np.testing.assert_array_equal(quiet.reference_delta_s[key], quiet.delta_s[key][:, 2])
    # with noise, its own hop stream: close to the middle anchor's change, not a copy of it
    assert not np.array_equal(hot, a.delta_s[(358.0, DAY_S)][:, 2])
    np.testing.assert_allclose(hot, a.delta_s[(358.0, DAY_S)][:, 2], rtol=0.1)


def test_an_aged_film_reference_is_the_fixed_one_until_it_ages_then_takes_the_tiles_common_offset_out():
    pool = _aged_pool(reference=True)
    fixed = fp.program_network(pool, weights(), 4, seed=1)
    ref = fp.program_network(pool, weights(), 4, seed=1, reference="aged-film")
    assert fixed.reference == "fixed" and ref.reference == "aged-film"
    window = pool.g_max_s - pool.g_min_s
    for layer in range(2):
        np.testing.assert_array_equal(ref.weights(layer), fixed.weights(layer))
        np.testing.assert_array_equal(ref.aged_s[(358.0, DAY_S)][layer], fixed.aged_s[(358.0, DAY_S)][layer])
        assert ref.reference_film[layer].shape == (weights()[layer].shape[1],)
        # nothing moved in a microsecond: the aged reference is the fixed one, exactly
        np.testing.assert_array_equal(ref.aged_weights(layer, (300.0, 1e-6)), fixed.aged_weights(layer, (300.0, 1e-6)))
        for key in ((300.0, DAY_S), (358.0, DAY_S)):
            shift = ref.aged_weights(layer, key) - fixed.aged_weights(layer, key)
            # each input line's reference moved by its own film's change from the middle
            expected = -pool.aging.reference_delta_s[key][ref.reference_film[layer]] * 2 * ref.w_max[layer] / window
            np.testing.assert_allclose(shift, np.broadcast_to(expected, shift.shape), rtol=1e-9,
                                       atol=1e-12 * ref.w_max[layer])
            assert np.abs(shift).min() > 0.01 * ref.w_max[layer]
            w0 = fixed.weights(layer)
            offset_fixed = np.mean(fixed.aged_weights(layer, key) - w0) / fixed.w_max[layer]
            offset_ref = np.mean(ref.aged_weights(layer, key) - w0) / ref.w_max[layer]
            # the films relax towards the uniform film, below the middle: a common offset a fixed reference keeps
            assert offset_fixed < -0.02 and abs(offset_ref) < 0.3 * abs(offset_fixed)


def test_the_aged_film_reference_is_seeded_and_independent_of_threads_and_chunks():
    one, two = _aged_pool(reference=True), _aged_pool(threads=2, reference=True)
    for key in AGES:
        np.testing.assert_array_equal(two.aging.reference_delta_s[key], one.aging.reference_delta_s[key])
    np.testing.assert_array_equal(two.aging.reference_events, one.aging.reference_events)
    whole = fp.program_network(one, weights(), 6, seed=3, reference="aged-film")
    chunked = fp.program_network(one, weights(), 6, seed=3, chunk_devices=11, reference="aged-film")
    other = fp.program_network(one, weights(), 6, seed=5, reference="aged-film")
    for layer in range(2):
        np.testing.assert_array_equal(chunked.reference_film[layer], whole.reference_film[layer])
        for key in AGES:
            np.testing.assert_array_equal(chunked.aged_weights(layer, key), whole.aged_weights(layer, key))
    assert not np.array_equal(np.concatenate(other.reference_film), np.concatenate(whole.reference_film))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 300), st.integers(0, 300), st.integers(1, 9))
def test_a_reference_films_draw_is_a_function_of_the_seed_and_its_index(seed, count, first, films):
    part = fp.reference_draws(seed, count, films, first)
    whole = fp.reference_draws(seed, first + count, films)
    np.testing.assert_array_equal(part, whole[first:])
    assert part.min() >= 0 and part.max() <= films - 1


def test_an_aged_film_reference_is_refused_without_the_pools_reference_state(pool):
    with pytest.raises(MemdriftError, match="needs a pool whose films aged a reference state"):
        fp.program_network(pool, weights(), 3, reference="aged-film")
    with pytest.raises(MemdriftError, match="needs a pool whose films aged a reference state"):
        fp.program_network(_aged_pool(), weights(), 3, reference="aged-film")
    with pytest.raises(MemdriftError, match="reference = 'aged' is unknown; allowed: fixed, aged-film"):
        fp.program_network(pool, weights(), 3, reference="aged")
    with pytest.raises(MemdriftError, match="reference is only for aging"):
        fp.build_pool(PRESET.params, films=1, reference=True, **COARSE)


torch = pytest.importorskip("torch")
pytest.importorskip("aihwkit", reason="aihwkit not installed: bash scripts/install-aihwkit.sh")


def test_tiles_hold_exactly_the_film_weights(pool):
    from torch import nn

    from memdrift.experiments import evaluate
    from memdrift.mapping import physics_tiles
    from memdrift.mapping.aihwkit_bridge import inference_config
    from test_networks import film_record

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 5))
    cfg = inference_config(film_record(), levels=8, w_range="tile", hwat_noise=0.0, drift=False, mapping="single",
                           tile="torch")
    analog = evaluate.to_analog(net, cfg)
    targets = physics_tiles.tile_weights(analog)
    prog = fp.program_network(pool, targets, 3, seed=0)
    physics_tiles.install(analog, prog)
    analog.eval()
    analog.program_analog_weights()
    for i, t in enumerate(analog.analog_tiles()):
        held = t.tile.get_weights().numpy()
        np.testing.assert_allclose(held, prog.weights(i), rtol=1e-6, atol=1e-6 * prog.w_max[i])
        # 8 levels: the held weights are the film's readings near them, not the targets
        assert not np.allclose(held, targets[i], rtol=0, atol=1e-3 * prog.w_max[i])


def test_tiles_drift_to_the_weights_against_the_aged_reference_film():
    from torch import nn

    from memdrift.experiments import evaluate
    from memdrift.mapping import physics_tiles
    from memdrift.mapping.aihwkit_bridge import inference_config
    from test_networks import film_record

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 5))
    cfg = inference_config(film_record(), levels=8, w_range="tile", hwat_noise=0.0, drift=False, mapping="single",
                           tile="torch")
    analog = evaluate.to_analog(net, cfg)
    pool = _aged_pool(reference=True)
    prog = fp.program_network(pool, physics_tiles.tile_weights(analog), 3, seed=0, reference="aged-film")
    physics_tiles.install(analog, prog)
    for i, t in enumerate(analog.analog_tiles()):
        model = t.rpu_config.noise_model
        for key in AGES:
            np.testing.assert_allclose(model.aged[key].numpy(), prog.aged_weights(i, key), rtol=1e-6,
                                       atol=1e-6 * prog.w_max[i])
        day = model.aged[(358.0, DAY_S)].numpy()
        # against the fixed reference the tile would hold other weights
        assert not np.allclose(day, prog.weights(i, prog.aged_s[(358.0, DAY_S)][i]), atol=1e-3 * prog.w_max[i])


def test_cli_writes_netcdf_and_png_with_an_accuracy_per_bit_depth(tmp_path):
    from memdrift.data.io import open_dataset
    from memdrift.experiments.cli import main
    from test_networks import film_record

    rec = tmp_path / "r.json"
    rec.write_text(json.dumps(film_record()))
    out = tmp_path / "film.nc"
    argv = [str(rec), "--network", "mlp-256-128", "--dataset", "digits", "--program", "physics", "--scheme",
            "ffp-levels", "--pool", "2", "--pool-realisations", "1", "--grid", "8", "--map-pulses", "10",
            "--bits", "3,9", "--epochs", "1", "--repeats", "1", "--train-samples", "200", "--test-samples", "100",
            "--quiet", "-o", str(out)]
    assert main(["evaluate", *argv]) == 0
    ds = open_dataset(out)
    assert ds.accuracy.dims == ("mode", "repeat", "bits")
    assert [str(m) for m in ds["mode"].values] == ["digital", "statistical", "physics"]
    assert list(ds["bits"].values) == [3, 9]
    assert ds.attrs["preset"] == "tio2x-4t" and ds.attrs["pool_films"] == 2
    assert int(ds["physics_devices"].sel(bits=3)) == 64 * 256 + 256 * 128 + 128 * 10
    assert ds["physics_energy"].attrs["units"] == "J" and np.all(ds["physics_energy"].values > 0)
    # 512 levels ask for more than a coarse film's trace resolves: counted per bit depth
    assert int(ds["pool_unreached"].sel(bits=9)) >= int(ds["pool_unreached"].sel(bits=3))
    assert (tmp_path / "film.png").exists()
    ds.close()


def test_cli_ages_the_film_levels_on_a_time_axis_and_time_zero_is_the_unaged_run(tmp_path):
    from memdrift.data.io import open_dataset
    from memdrift.experiments.cli import main
    from test_networks import film_record

    rec = tmp_path / "r.json"
    rec.write_text(json.dumps(film_record()))
    common = [str(rec), "--network", "mlp-256-128", "--dataset", "digits", "--program", "physics", "--scheme",
              "ffp-levels", "--pool", "2", "--pool-realisations", "1", "--grid", "8", "--map-pulses", "10",
              "--bits", "3,5", "--epochs", "1", "--repeats", "1", "--train-samples", "200", "--test-samples", "100",
              "--quiet"]
    aged_nc, plain_nc = tmp_path / "aged.nc", tmp_path / "plain.nc"
    assert main(["evaluate", *common, "--age", "1h", "--age", "1d", "--age-temperature", "300",
                 "--age-temperature", "358", "--age-levels", "4", "-o", str(aged_nc)]) == 0
    assert main(["evaluate", *common, "-o", str(plain_nc)]) == 0
    aged, plain = open_dataset(aged_nc), open_dataset(plain_nc)
    assert aged.accuracy.dims == ("mode", "repeat", "bits", "temperature", "time")
    assert list(aged["time"].values) == [0.0, 3600.0, 86400.0]
    assert list(aged["temperature"].values) == [300.0, 358.0] and aged["time"].attrs["units"] == "s"
    assert plain.accuracy.dims == ("mode", "repeat", "bits")
    # time 0 is the programmed state: the physics accuracy is the unaged run's, exactly, at both temperatures
    for temp in (300.0, 358.0):
        np.testing.assert_array_equal(aged.accuracy.sel(mode="physics", temperature=temp, time=0.0).values,
                                      plain.accuracy.sel(mode="physics").values)
    change = aged["aging_conductance_change"]
    assert change.dims == ("pool_film", "aging_anchor", "temperature", "time") and change.attrs["units"] == "S"
    assert np.all(change.sel(time=0.0).values == 0)
    day = np.abs(change.sel(time=86400.0))
    assert float(day.sel(temperature=358.0).mean()) > float(day.sel(temperature=300.0).mean()) > 0
    assert aged.attrs["aging_levels"] == 4 and aged.attrs["cpu_aging_s"] > 0
    assert (tmp_path / "aged.png").exists()
    assert "aging_reference_conductance_change" not in aged and aged.attrs["physics_reference"].startswith("G_ref")
    # the same study against an aged reference film: its time 0 is the fixed reference's, its day is not
    ref_nc = tmp_path / "ref.nc"
    assert main(["evaluate", *common, "--age", "1h", "--age", "1d", "--age-temperature", "300",
                 "--age-temperature", "358", "--age-levels", "4", "--reference", "aged-film", "-o", str(ref_nc)]) == 0
    ref = open_dataset(ref_nc)
    assert ref.attrs["physics_reference"].startswith("aged-film")
    np.testing.assert_array_equal(ref.accuracy.sel(time=0.0).values, aged.accuracy.sel(time=0.0).values)
    np.testing.assert_array_equal(ref["aging_conductance_change"].values, aged["aging_conductance_change"].values)
    moved = ref["aging_reference_conductance_change"]
    assert moved.dims == ("pool_film", "temperature", "time") and np.all(moved.sel(time=0.0).values == 0)
    assert np.all(moved.sel(time=86400.0).values < 0)
    ref.close()
    aged.close()
    plain.close()


@pytest.mark.parametrize("extra, words", [
    (["--age", "1y", "--age-temperature", "358"], "is out of range for this film"),
    (["--age-levels", "4"], "--age-levels is only for aging"),
    (["--age", "1d", "--age-levels", "1"], "age-levels"),
    (["--preset", "hfoxsy-hfs2"], "needs a film (bulk4t) preset"),
    (["--bits", "3,x"], "not a list of integers"),
    (["--pool", "0"], "pool"),
    (["--reference", "aged-film"], "--reference aged-film is only for aging"),
    (["--scheme", "pulse-count", "--reference", "fixed"], "--reference is only for --scheme ffp-levels"),
    (["--age-mode", "realisations"], "--age-mode realisations is only for aging"),
    (["--scheme", "pulse-count", "--age-mode", "anchors"], "--age-mode is only for --scheme ffp-levels"),
    (["--age", "1d", "--age-temperature", "358", "--bits", "9", "--age-mode", "realisations"],
     "age_mode = 'realisations' is out of range for this pool"),
])
def test_cli_refuses_bad_film_arguments_before_training(tmp_path, capsys, extra, words):
    from memdrift.experiments.cli import main
    from test_networks import record

    rec = tmp_path / "r.json"
    rec.write_text(json.dumps(record()))
    rc = main(["evaluate", str(rec), "--network", "mlp", "--dataset", "digits", "--program", "physics",
               "--scheme", "ffp-levels", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and words in err, err
    assert "Traceback" not in err


# ---------------------------------------------------------------- aging every realisation's own states

@functools.cache
def _per_state_pool(seed: int = 4, threads: int = 1, chunk_states: int = fp.CHUNK_STATES,
                    reference: bool = False) -> fp.FilmPool:
    return fp.build_pool(PRESET.params, films=2, realisations=3, seed=seed, threads=threads, ages=AGES,
                         age_levels=5, reference=reference, age_mode="realisations", age_bits=(2, 4),
                         chunk_states=chunk_states, **COARSE)


def test_realisation_aging_leaves_the_pool_and_its_anchors_as_the_anchors_mode():
    per = _per_state_pool(reference=True)
    anchored = fp.build_pool(PRESET.params, films=2, realisations=3, seed=4, ages=AGES, age_levels=5,
                             reference=True, **COARSE)
    assert anchored.aging.realisation_states == 0 and not anchored.aging.realisation_delta_s
    for key in ("conductance_s", "energy_j", "events"):
        np.testing.assert_array_equal(getattr(per, key), getattr(anchored, key))
    for key in AGES:
        np.testing.assert_array_equal(per.aging.delta_s[key], anchored.aging.delta_s[key])
        np.testing.assert_array_equal(per.aging.reference_delta_s[key], anchored.aging.reference_delta_s[key])
    a = per.aging
    assert a.realisation_bits == (2, 4)
    # exactly the levels of 2 and 4 bits of every trace and each trace's middle state are held, nothing else
    held = np.isfinite(a.realisation_delta_s[(358.0, DAY_S)])
    expected = np.zeros_like(held)
    for bits in (2, 4):
        index = per.levels(bits).index
        for f in range(2):
            for c in range(3):
                expected[f, c, index[f, c]] = True
    middle = 0.5 * (per.g_min_s + per.g_max_s)
    for f in range(2):
        for c in range(3):
            m = a.realisation_reference_index[f, c]
            assert per.conductance_s[f, c, m] >= middle > per.conductance_s[f, c, m - 1]
            expected[f, c, m] = True
    np.testing.assert_array_equal(held, expected)
    assert a.realisation_states == int(expected.sum())
    assert np.all((a.realisation_steps[(358.0, DAY_S)] >= 0) == expected)


def test_realisation_aging_to_a_vanishing_time_is_the_programmed_state_and_a_day_is_each_weights_own():
    pool = _per_state_pool()
    for bits in (2, 4):
        prog = fp.program_network(pool, weights(), bits, seed=1, age_mode="realisations")
        anchored = fp.program_network(pool, weights(), bits, seed=1)
        day = pool.aging.realisation_delta_s[(358.0, DAY_S)]
        for layer in range(2):
            np.testing.assert_array_equal(prog.conductance_s[layer], anchored.conductance_s[layer])
            np.testing.assert_array_equal(prog.aged_s[(300.0, 1e-6)][layer], prog.conductance_s[layer])
            f, c, m = prog.film[layer][0], prog.realisation[layer][0], prog.pulses[layer][0]
            np.testing.assert_array_equal(prog.aged_s[(358.0, DAY_S)][layer][0],
                                          prog.conductance_s[layer][0] + day[f, c, m])
            # each realisation's own state ages otherwise than the anchors' line at its level
            moved = prog.aged_s[(358.0, DAY_S)][layer] - anchored.aged_s[(358.0, DAY_S)][layer]
            assert np.abs(moved).max() > 1e-8
    # the same (film, level) on two realisations: two changes
    lv = pool.levels(4)
    own = day[np.arange(2)[:, None, None], np.arange(3)[None, :, None], lv.index]
    assert np.all(np.ptp(own, axis=1)[:, 1:] > 0)


def test_realisation_aging_is_seeded_bit_for_bit_whatever_the_threads_and_the_chunks_of_states():
    one, two, chunked, other = (_per_state_pool(), _per_state_pool(threads=2), _per_state_pool(chunk_states=3),
                                _per_state_pool(seed=5))
    for key in AGES:
        for p in (two, chunked):
            np.testing.assert_array_equal(p.aging.realisation_delta_s[key], one.aging.realisation_delta_s[key])
            np.testing.assert_array_equal(p.aging.realisation_steps[key], one.aging.realisation_steps[key])
    assert not np.array_equal(other.aging.realisation_delta_s[(358.0, DAY_S)],
                              one.aging.realisation_delta_s[(358.0, DAY_S)], equal_nan=True)
    whole = fp.program_network(one, weights(), 4, seed=3, age_mode="realisations")
    cut = fp.program_network(one, weights(), 4, seed=3, age_mode="realisations", chunk_devices=11)
    for key in AGES:
        for layer in range(2):
            np.testing.assert_array_equal(cut.aged_s[key][layer], whole.aged_s[key][layer])


def test_realisation_aging_is_refused_beyond_its_budget_and_without_its_pool():
    # a day at 358 K on the preset's 32 x 32 film, 9 bits of 8 films x 2 realisations: ~10^8 steps
    states, steps = fp.realisation_steps_bound(PRESET.params, 8, 2, (9,), fp.MAX_EVENTS, [(358.0, DAY_S)])
    assert states == 8 * 2 * 512 and steps > fp.MAX_REALISATION_STEPS
    with pytest.raises(MemdriftError, match=r"age_mode = 'realisations' is out of range.*allowed: at most 2e\+07"):
        fp.build_pool(PRESET.params, films=8, realisations=2, ages=[(358.0, DAY_S)], age_mode="realisations",
                      age_bits=(9,), calibration=PRESET.calibration)
    # within the budget at 3 bits
    fp.check_realisation_budget(PRESET.params, 8, 2, (3,), fp.MAX_EVENTS, [(358.0, DAY_S)])
    # levels of several depths are at most a trace's readings
    assert fp.realisation_steps_bound(PRESET.params, 1, 1, (11, 12), 100, [(300.0, 1.0)])[0] == 101
    with pytest.raises(MemdriftError, match="age_mode = 'sometimes' is unknown; allowed: anchors, realisations"):
        fp.build_pool(PRESET.params, films=1, ages=AGES, age_mode="sometimes", **COARSE)
    with pytest.raises(MemdriftError, match="age_mode = 'realisations' is only for aging"):
        fp.build_pool(PRESET.params, films=1, age_mode="realisations", age_bits=(3,), **COARSE)
    with pytest.raises(MemdriftError, match="age_bits is empty"):
        fp.build_pool(PRESET.params, films=1, ages=AGES, age_mode="realisations", **COARSE)
    with pytest.raises(MemdriftError, match="bits = 3 was not aged per realisation.*allowed with age_mode = "
                                            "'realisations': 2, 4"):
        fp.program_network(_per_state_pool(), weights(), 3, age_mode="realisations")
    with pytest.raises(MemdriftError, match="allowed with age_mode = 'realisations': none"):
        fp.program_network(_aged_pool(), weights(), 3, age_mode="realisations")


def test_cli_ages_every_realisations_own_states_and_time_zero_is_the_anchors_run(tmp_path):
    from memdrift.data.io import open_dataset
    from memdrift.experiments.cli import main
    from test_networks import film_record

    rec = tmp_path / "r.json"
    rec.write_text(json.dumps(film_record()))
    common = [str(rec), "--network", "mlp-256-128", "--dataset", "digits", "--program", "physics", "--scheme",
              "ffp-levels", "--pool", "2", "--pool-realisations", "2", "--grid", "8", "--map-pulses", "10",
              "--bits", "3,5", "--epochs", "1", "--repeats", "1", "--train-samples", "200", "--test-samples", "100",
              "--age", "1d", "--age-temperature", "358", "--quiet"]
    anchors_nc, per_nc = tmp_path / "anchors.nc", tmp_path / "per.nc"
    assert main(["evaluate", *common, "-o", str(anchors_nc)]) == 0
    assert main(["evaluate", *common, "--age-mode", "realisations", "-o", str(per_nc)]) == 0
    anchors, per = open_dataset(anchors_nc), open_dataset(per_nc)
    assert "aging_mode" not in anchors.attrs and per.attrs["aging_mode"] == "realisations"
    # every (film, realisation) holds at most its levels of 3 and 5 bits
    assert 0 < per.attrs["aging_realisation_states"] <= 2 * 2 * (8 + 32)
    assert per.attrs["aging"].startswith("each (film, realisation, level) state")
    np.testing.assert_array_equal(per.accuracy.sel(time=0.0).values, anchors.accuracy.sel(time=0.0).values)
    np.testing.assert_array_equal(per["aging_conductance_change"].values, anchors["aging_conductance_change"].values)
    anchors.close()
    per.close()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16), st.integers(1, 4), st.lists(st.integers(1, 12), min_size=1, max_size=4),
       st.floats(1.0, 1e6), st.sampled_from([300.0, 358.0]), st.booleans())
def test_realisation_aging_is_refused_exactly_when_its_bound_is_above_the_budget(films, reals, bits, t_s, temp_k,
                                                                                reference):
    ages = [(temp_k, t_s), (temp_k, t_s / 2)]
    states, steps = fp.realisation_steps_bound(PRESET.params, films, reals, bits, fp.MAX_EVENTS, ages, reference)
    # the longest time at a temperature bounds its hold (times accumulate from the state)
    per_state = fp.age_steps_bound(PRESET.params, temp_k, t_s)
    levels = min(sum(1 << b for b in set(bits)) + reference, fp.MAX_EVENTS + 1)
    assert states == films * reals * levels and steps == pytest.approx(states * per_state, rel=1e-12)
    if steps > fp.MAX_REALISATION_STEPS:
        with pytest.raises(MemdriftError, match="age_mode = 'realisations' is out of range"):
            fp.check_realisation_budget(PRESET.params, films, reals, bits, fp.MAX_EVENTS, ages, reference=reference)
    else:
        fp.check_realisation_budget(PRESET.params, films, reals, bits, fp.MAX_EVENTS, ages, reference=reference)
