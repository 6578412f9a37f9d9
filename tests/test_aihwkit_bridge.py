"""The extraction record → aihwkit bridge, against the real aihwkit (no mocks).

Until ``memdrift.mapping.extract`` produces records, the tests use a hand-built
record of the DESIGN contract's shape with the HfOxSy/HfS2 paper's numbers
(``hfoxsy_record``): 16 states, bin width 81.077 µS, state σ 23.7 µS (Student-t,
df 5, scale chosen so its std is σ), drift < 3 % over 1e4 s, 23.74 nJ per 40-pulse
cycle. The window floor g_min = 50 µS is an assumption (the paper gives bins,
not absolute conductances).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("aihwkit", reason="aihwkit not installed: bash scripts/install-aihwkit.sh")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy import stats  # noqa: E402

from memdrift.errors import MemdriftError  # noqa: E402
from memdrift.mapping import aihwkit_bridge as bridge  # noqa: E402

torch.set_num_threads(1)

BIN_S = 81.077e-6
SIGMA_S = 23.7e-6
G_MIN_S = 50e-6


def hfoxsy_record(df: float = 5.0, states: int = 16) -> dict:
    """A record of the DESIGN contract's shape with the HfOxSy/HfS2 paper's numbers."""
    g_max = G_MIN_S + (states - 1) * BIN_S
    scale = SIGMA_S * math.sqrt((df - 2.0) / df) if df > 2 else SIGMA_S
    levels = np.linspace(G_MIN_S, g_max, states)
    return {
        "states": states, "bin_width": BIN_S, "state_sigma": SIGMA_S, "differential_bins": 2 * states - 1,
        "linear_r2": {"potentiation": 0.99898, "depression": 0.99925},
        "nu": {"p": {"16": 0.01}, "d": {"16": 0.01}}, "pearson": 0.99,
        "program_error_t": [{"conductance": float(g), "loc": 0.0, "scale": scale, "df": df} for g in levels],
        "skipped_levels": {"32": {"potentiation": 0, "depression": 0}},
        "drift": {"nu": 0.0049, "activation_energy_eV": 0.6},
        "energy_per_pulse": 23.74e-9 / 40, "pulse_width": 255e-9, "read_time": 30e-6,
        "g_min": G_MIN_S, "g_max": float(g_max),
        "delta_g": {b: {"conductance": levels.tolist(), "mean": [BIN_S] * states, "std": [0.2 * BIN_S] * states}
                    for b in ("potentiation", "depression")},
    }


# ---------------------------------------------------------------- record validation

@pytest.mark.parametrize("key", ["g_min", "g_max", "states", "program_error_t"])
def test_missing_required_key_is_named(key):
    record = hfoxsy_record()
    del record[key]
    with pytest.raises(MemdriftError, match=key):
        bridge.inference_config(record)


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.update(g_max=r["g_min"] / 2), "g_max"),
    (lambda r: r.update(states=1), "states"),
    (lambda r: r.update(states=7.5), "states"),
    (lambda r: r["program_error_t"][3].update(df=0.0), r"program_error_t\[3\]\.df"),
    (lambda r: r["program_error_t"][2].update(scale=-1e-6), r"program_error_t\[2\]\.scale"),
    (lambda r: r["program_error_t"][0].update(loc=float("nan")), r"program_error_t\[0\]\.loc"),
    (lambda r: r.update(drift={"nu": 5.0}), "drift.nu"),
    (lambda r: r["delta_g"].pop("depression"), "depression"),
])
def test_bad_record_values_name_the_field(mutate, field):
    record = hfoxsy_record()
    mutate(record)
    with pytest.raises(MemdriftError, match=field):
        bridge.describe(record)
        bridge.training_device(record)


def test_optional_keys_may_be_missing():
    record = hfoxsy_record()
    for key in ("drift", "delta_g", "energy_per_pulse", "pulse_width", "bin_width", "state_sigma", "nu"):
        record.pop(key)
    model = bridge.noise_model(record)
    assert model.nu == 0.0
    dev = bridge.training_device(record)
    # linear device from the window: every step the same
    assert dev.piecewise_up == pytest.approx([1.0] * 16)
    with pytest.raises(MemdriftError, match="energy_per_pulse"):
        bridge.programming_cost(record, np.ones((2, 2)))


def test_program_error_layouts_agree():
    record = hfoxsy_record()
    rows = record["program_error_t"]
    as_lists = {k: [r[k] for r in rows] for k in ("loc", "scale", "df")}
    by_count = {"16": rows, "128": [{"loc": 0.0, "scale": 1e-6, "df": 30.0}] * 128}
    ref = bridge.program_error_table(record)
    for layout in (as_lists, by_count):
        other = bridge.program_error_table({**record, "program_error_t": layout})
        np.testing.assert_allclose(other.scale, ref.scale)
        np.testing.assert_allclose(other.df, ref.df)
    # keyed by level count: the nearest count is used
    near = bridge.program_error_table({**record, "program_error_t": by_count}, levels=100)
    assert near.df.size == 128


# ---------------------------------------------------------------- inference noise model

def _programmed(model, g_target_us):
    return model.apply_programming_noise_to_conductance(torch.as_tensor(g_target_us, dtype=torch.float32))


def test_quantises_to_the_devices_levels():
    record = hfoxsy_record()
    model = bridge.noise_model(record, program_error=False)
    g = torch.linspace(model.g_min, model.g_max, 10001)
    out = _programmed(model, g).numpy()
    levels = np.linspace(record["g_min"], record["g_max"], 16) * 1e6
    assert np.unique(np.round(out, 3)).size == 16
    np.testing.assert_allclose(np.unique(np.round(out, 3)), levels, atol=1e-3)
    # nearest level: never more than half a bin away
    assert np.abs(out - g.numpy()).max() <= BIN_S * 1e6 / 2 + 1e-3


def test_student_t_program_error_has_heavier_tails_than_gaussian_of_same_scale():
    """The acceptance check: the Student-t model is what programs the conductances."""
    df = 3.0
    record = hfoxsy_record(df=df)
    scale_us = record["program_error_t"][0]["scale"] * 1e6
    model = bridge.noise_model(record)
    torch.manual_seed(1)
    level_us = (record["g_min"] + 8 * BIN_S) * 1e6  # a mid-window level, far from the clamp at 0
    err = (_programmed(model, torch.full((200_000,), level_us)) - level_us).numpy()
    z = np.abs(err) / scale_us
    beyond = np.mean(z > 5.0)
    gauss_beyond = 2 * stats.norm.sf(5.0)           # 5.7e-7 for a Gaussian of the same scale
    assert beyond == pytest.approx(2 * stats.t.sf(5.0, df), rel=0.15)
    assert beyond > 1000 * gauss_beyond
    assert stats.kurtosis(np.clip(err, -50 * scale_us, 50 * scale_us)) > 3.0
    # and a fit recovers the record's t parameters
    df_fit, loc_fit, scale_fit = stats.t.fit(err[:50_000])
    assert df_fit == pytest.approx(df, rel=0.15)
    assert scale_fit == pytest.approx(scale_us, rel=0.05)
    assert abs(loc_fit) < 0.05 * scale_us


def test_single_device_mapping_keeps_programmed_conductances_inside_the_window():
    """One device per weight (the weight-transfer study): the window's ends are the weight range's, and a
    fitted df < 1 (seen per level on few FFP traces) must not throw a conductance past HRS/LRS; the pair
    mapping keeps the overshoot tails above g_max."""
    record = hfoxsy_record(df=0.3)
    single = bridge.noise_model(record, w_range=4.0, mapping="single")
    pair = bridge.noise_model(record)
    torch.manual_seed(2)
    top_us = record["g_max"] * 1e6
    g = torch.full((100_000,), top_us)
    out_single, out_pair = _programmed(single, g), _programmed(pair, g)
    # float32 tensors: compare with the bounds as the model holds them
    hi, lo = float(torch.tensor(single.g_max)), float(torch.tensor(single.g_min))
    assert float(out_single.max()) <= hi and float(out_single.min()) >= lo
    assert float(out_single.min()) < top_us  # still programmed with error, only bounded
    assert float(out_pair.max()) > 10 * top_us  # df 0.3: the unbounded tail is there without the bound


def test_programmed_weights_of_an_analog_layer_carry_the_t_tails():
    """Through aihwkit's own tile programming, not just the noise model's method."""
    from aihwkit.nn import AnalogLinear

    torch.manual_seed(0)
    cfg = bridge.inference_config(hfoxsy_record(df=2.5), hwat_noise=0.0, drift=False)
    cfg.mapping.weight_scaling_omega = 0.0  # weights as given, so errors compare directly
    layer = AnalogLinear(400, 250, bias=False, rpu_config=cfg)
    # every weight on the mid-window level of the positive device (w = 8/15 of w_max)
    w = torch.full((250, 400), 8.0 / 15.0)
    w[0, 0] = 1.0  # pins the converter's w_max at 1
    layer.set_weights(w)
    layer.eval()
    layer.program_analog_weights()
    tile = next(layer.analog_tiles())
    programmed = tile.get_weights()[0].flatten()[1:].numpy()
    err = programmed - 8.0 / 15.0
    scale_w = record_scale_in_weights = hfoxsy_record(df=2.5)["program_error_t"][0]["scale"] / (15 * BIN_S)
    assert record_scale_in_weights > 0
    beyond = np.mean(np.abs(err) > 5 * scale_w)
    assert beyond > 100 * 2 * stats.norm.sf(5.0)
    assert stats.kurtosis(err) > 3.0


def test_power_law_drift_and_arrhenius_acceleration():
    record = hfoxsy_record()
    record["drift"] = {"nu": 0.1, "activation_energy_eV": 0.6, "reference_temperature_K": 300.0}
    model = bridge.noise_model(record, program_error=False)
    g = torch.tensor([model.g_min, model.g_min + 500.0, model.g_max])
    nu = model.generate_drift_coefficients(g)
    t = bridge.DRIFT_T0_S * 1000.0
    drifted = model.apply_drift_noise_to_conductance(g, nu, t)
    expected = model.g_min + (g - model.g_min) * 1000.0 ** -0.1
    torch.testing.assert_close(drifted, expected)
    # before t0 nothing has drifted
    torch.testing.assert_close(model.apply_drift_noise_to_conductance(g, nu, 1.0), g)
    hot = bridge.noise_model(record, program_error=False, temperature_k=350.0)
    accel = math.exp(0.6 / bridge.BOLTZMANN_EV_PER_K * (1 / 300.0 - 1 / 350.0))
    assert hot.effective_time(10.0) == pytest.approx(10.0 * accel)
    assert float(hot.apply_drift_noise_to_conductance(g, nu, t)[1]) < float(drifted[1])


def test_device_to_device_variation_scales_the_window_per_device():
    record = hfoxsy_record()
    model = bridge.noise_model(record, program_error=False, dtod=0.3)
    torch.manual_seed(3)
    top = torch.full((20_000,), model.g_max)
    rel = ((_programmed(model, top) - model.g_min) / (model.g_max - model.g_min)).numpy()
    assert rel.mean() == pytest.approx(1.0, abs=0.01)
    assert rel.std() == pytest.approx(0.3, rel=0.05)


def test_fixed_range_converter_round_trip_and_clip():
    conv = bridge.FixedRangePairConverter(10.0, 100.0, 4.0)
    w = torch.tensor([[-4.0, -1.0, 0.0, 2.5, 4.0, 9.0]])
    gs, params = conv.convert_to_conductances(w)
    assert float(torch.stack(gs).min()) >= 10.0 and float(torch.stack(gs).max()) <= 100.0
    torch.testing.assert_close(conv.convert_back_to_weights(gs, params), w.clamp(-4, 4))


def test_single_device_converter_spans_the_window_with_zero_in_the_middle():
    conv = bridge.FixedRangeSingleConverter(10.0, 100.0, 4.0)
    w = torch.tensor([[-4.0, -1.0, 0.0, 2.5, 4.0, 9.0]])
    gs, params = conv.convert_to_conductances(w)
    assert len(gs) == 1  # one programmed device per weight; zero is a reference
    torch.testing.assert_close(gs[0][0, [0, 2, 4]], torch.tensor([10.0, 55.0, 100.0]))
    torch.testing.assert_close(conv.convert_back_to_weights(gs, params), w.clamp(-4, 4))
    # 8 levels (3 bits) over [-4, 4]: no zero level, small weights go half a step either side
    record = {"g_min": 10e-6, "g_max": 100e-6, "states": 8, "program_error_t": [{"loc": 0.0, "scale": 0.0, "df": 4.0}]}
    model = bridge.noise_model(record, levels=8, w_range=4.0, mapping="single", program_error=False)
    out, _ = model.apply_programming_noise(torch.tensor([[-0.01, 0.01, 3.9]]))  # (weights, drift params)
    torch.testing.assert_close(out, torch.tensor([[-4 / 7, 4 / 7, 4.0]]), rtol=1e-5, atol=1e-5)
    with pytest.raises(MemdriftError, match="mapping"):
        bridge.noise_model(record, mapping="quad", w_range=4.0)
    with pytest.raises(MemdriftError, match="w_range"):
        bridge.noise_model(record, mapping="single")


def test_inference_config_settings():
    record = hfoxsy_record()
    cfg = bridge.inference_config(record, ir_drop=1.0)
    assert cfg.forward.inp_res == pytest.approx(1 / 254) and cfg.forward.out_res == pytest.approx(1 / 254)
    assert cfg.forward.ir_drop == 1.0
    assert type(cfg.drift_compensation).__name__ == "GlobalDriftCompensation"
    assert isinstance(cfg.noise_model, bridge.StudentTProgramNoise)
    # HWAT noise: a pair's two independent errors (√2), each the Gaussian σ with the Student-t's
    # central 68.3 % interval, over the window of 15 bins
    scale = SIGMA_S * math.sqrt(3 / 5)
    one_device = scale * stats.t.ppf(stats.norm.cdf(1.0), 5) / (15 * BIN_S)
    assert cfg.modifier.std_dev == pytest.approx(math.sqrt(2) * one_device, rel=1e-6)
    assert bridge.inference_config(record, drift_compensation=False).drift_compensation is None
    with pytest.raises(MemdriftError, match="adc_bits"):
        bridge.inference_config(record, adc_bits=0)


def test_hwat_noise_stays_finite_as_df_nears_two():
    """The Student-t variance diverges at df = 2; fitted tail levels land there, and the HWAT noise
    must still be the width of the conductances' spread, not of that variance."""
    record = hfoxsy_record()
    base = bridge.relative_program_noise(record)
    record["program_error_t"][3]["df"] = 2.002  # one level of sixteen, same scale
    near_two = bridge.relative_program_noise(record)
    assert base < near_two < 1.1 * base
    # the pair's √2 and the single device's 2× (whole window for [-w, w])
    assert bridge.inference_config(record).modifier.std_dev == pytest.approx(math.sqrt(2) * near_two, rel=1e-9)
    single = bridge.inference_config(record, w_range=4.0, levels=16, mapping="single")
    assert single.modifier.std_dev == pytest.approx(2 * near_two, rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(g_min=st.floats(0.0, 1e-3), span=st.floats(1e-6, 1e-3), states=st.integers(2, 64),
       frac=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50))
def test_quantisation_property(g_min, span, states, frac):
    """Without program error: programmed values are levels inside the window, and re-programming is a no-op."""
    record = {"g_min": g_min, "g_max": g_min + span, "states": states,
              "program_error_t": [{"loc": 0.0, "scale": 0.0, "df": 4.0}]}
    model = bridge.noise_model(record, program_error=False)
    # float64 throughout: a 1 µS window at 1 mS is below float32's resolution of the tolerances here
    g = torch.tensor([model.g_min + f * (model.g_max - model.g_min) for f in frac], dtype=torch.float64)
    q = model.apply_programming_noise_to_conductance(g)
    assert q.dtype == torch.float64
    assert torch.all(q >= model.g_min - 1e-6 * span * 1e6) and torch.all(q <= model.g_max + 1e-6 * span * 1e6)
    torch.testing.assert_close(model.apply_programming_noise_to_conductance(q), q, rtol=1e-5, atol=1e-6 * span * 1e6)
    idx = (q - model.g_min) / ((model.g_max - model.g_min) / (states - 1))
    torch.testing.assert_close(idx, idx.round(), rtol=0, atol=1e-3)


# ---------------------------------------------------------------- training device and cost

def test_training_device_follows_the_step_nodes():
    record = hfoxsy_record()
    g = np.linspace(record["g_min"], record["g_max"], 16)
    # potentiation steps shrink linearly toward g_max (a saturating device), depression constant
    record["delta_g"]["potentiation"]["mean"] = list(BIN_S * (1.5 - (g - g[0]) / (g[-1] - g[0])))
    dev = bridge.training_device(record, nodes=16, dtod=0.3)
    up, down = np.array(dev.piecewise_up), np.array(dev.piecewise_down)
    assert up[0] / up[-1] == pytest.approx(3.0, rel=1e-6)
    assert np.ptp(down) == pytest.approx(0.0, abs=1e-12)
    mean_step = 0.5 * (BIN_S * 1.0 + BIN_S)
    assert dev.dw_min == pytest.approx(2 * mean_step / (15 * BIN_S))
    assert dev.dw_min_std == pytest.approx(0.2 * 0.5 * (np.mean(1 / (1.5 - np.linspace(0, 1, 16))) + 1), rel=1e-6)
    assert dev.dw_min_dtod == 0.3
    assert dev.up_down == pytest.approx(0.0, abs=1e-9)


def test_in_memory_training_config_builds_a_working_tile():
    from aihwkit.nn import AnalogLinear
    from aihwkit.optim import AnalogSGD

    torch.manual_seed(0)
    layer = AnalogLinear(4, 2, rpu_config=bridge.training_config(hfoxsy_record(), dtod=0.0))
    opt = AnalogSGD(layer.parameters(), lr=0.5)
    opt.regroup_param_groups(layer)
    x, target = torch.randn(64, 4), torch.zeros(64, 2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((layer(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # The C++ tile draws its pulse noise from a seed outside the process, so one step's loss is a
    # random variable: the mean of the last 20 of 60 steps sat at 0.16-0.25 of the first loss over
    # ten processes, where single steps at step 30 ranged 0.12-0.53.
    assert np.mean(losses[-20:]) < 0.5 * losses[0]  # pulsed updates on the record's device do learn


def test_programming_cost_known_answer():
    record = hfoxsy_record()
    # one weight at the largest magnitude: g_min -> g_max takes 15 pulses of one bin each
    cost = bridge.programming_cost(record, [np.array([[1.0, 0.0], [-0.5, 0.0]])])
    assert cost["weights"] == 4 and cost["devices"] == 8
    assert cost["pulses"] == 15 + 0 + 8 + 0  # ceil(7.5) = 8
    assert cost["energy_J"] == pytest.approx(23 * record["energy_per_pulse"])
    t_op = record["pulse_width"] + record["read_time"]
    assert cost["time_serial_s"] == pytest.approx(23 * t_op)
    assert cost["time_row_parallel_s"] == pytest.approx((15 + 8) * t_op)
    record_no_width = copy.deepcopy(record)
    del record_no_width["pulse_width"]
    assert "time_serial_s" not in bridge.programming_cost(record_no_width, np.ones((2, 2)))
