"""Filament cell physics: the NumPy reference of the compiled kernel.

The equations (DESIGN.md, "Filament model"), per device and sub-step Δt:

* cell voltage from ``V = V_cell + I R_s`` with ``I = I0 exp(-g/g0) sinh(V_cell/V0)``
  (safeguarded Newton, warm-started from the last sub-step, the midpoint solve from
  the sub-step's first solve moved along ``dV_cell/dg``; it stops when the error
  bound ``step²/(2 V0)`` of the step just taken is below half of ``1e-13 |V|``);
* field ``E = γ(g) V_cell / t_ox``, ``γ(g) = max(γ0 − β (g / 1 nm)^α, 0)``, and no
  drive below ``F_min``; under RESET bias (``V_cell < 0``) the law has its own
  offset and slope, ``γ_R(g) = max(γ0 + δ_R − (β + β_R)(g / 1 nm)^α, 0)``
  (``reset_field_enhancement_offset`` δ_R, ``reset_field_enhancement_slope`` β_R;
  both 0 by default: the same law for both polarities, as in the Stanford–PKU
  model). See "RESET field enhancement" below;
* hopping rates ``r± = ν0 exp(−Ea/kT) exp(±z a E / (2 kT/q))`` and dissolution
  ``r_d = ν_r exp(−Ea_r/kT)``;
* hops Poisson(M r Δt) (or their means with noise off);
  ``Δg = (a/M)(N− + N_d − N+)``, clipped to ``[g_min, g_max]``;
* heating ``τ_th dT/dt = V_cell I R_th − (T − T0)`` integrated exactly for the
  power held over the sub-step; with ``τ_th = 0`` and ``R_s = 0`` the mean
  dynamics are the Stanford–PKU compact model with ``v0 = 2 a ν0``.

Each sub-step is a midpoint tau-leap: the expected drift over half a step gives
a midpoint gap, where the cell voltage, the power, the temperature (relaxed
exactly over half a step) and the rates are evaluated again; the Poisson counts
over the whole step use those midpoint rates. The mean dynamics are then second
order in Δt, which matters because Joule heating makes the SET rate change by
orders of magnitude within one pulse.

Δt is the largest step for which neither the expected gap change nor its
standard deviation exceeds ``max_gap_step_m``, with rates taken at the hotter of
the present and the steady-state temperature, so runaway heating is resolved.
A segment (pulse, idle gap or read) that needs more than ``max_substeps`` ends
with one step over the rest of its time (only reached at pinned extremes).

RESET field enhancement. The field enhancement γ(g) stands for the filament tip
concentrating the cell voltage on the gap; the Stanford–PKU law uses one γ(g)
for both polarities, which makes the pulse-to-pulse step at a given gap the same
function of |V| and width whichever way it moves the gap (dissolution apart).
Under an amplitude/width ramp applied identically to both branches that cannot
give equal steps on both: at the low-conductance end depression arrives with its
strongest pulses and potentiation leaves with its weakest
(``scripts/calibrate_hfoxsy.py`` has the argument). In a cell with an asymmetric
stack (metal / HfOxSy / HfS2) the two polarities move different species: SET
draws vacancies towards the tip, RESET drives oxygen ions from the interface
reservoir across the gap to recombine at the tip, and the field those ions feel
collapses faster as the gap opens — RESET self-limits towards a high-resistance
gap, the usual reason RESET is gradual where SET is abrupt (compact models such
as JART VCM treat SET and RESET with polarity-dependent field/voltage division
for the same reason). The change is the smallest that expresses this: the
Stanford–PKU γ(g) is given its own γ0 and slope under RESET bias (δ_R, β_R), so
that RESET can be stronger than SET at narrow gaps and weaker at wide ones
(β_R alone would only weaken RESET everywhere and the identical ramp could no
longer balance the branches). It stays a field enhancement: bounded (γ_R ≥ 0),
inert at zero bias (retention is untouched) and continuous in V; only the
RESET drive and its dependence on the gap change, never SET.

The compiled kernel (``memdrift.ext._filament``, arithmetic in
``_filament_lanes.h``) runs the same equations per device, batches of devices in
lockstep as SIMD lanes, with its own polynomial exp and log (within 2 and 4 ulp of
libm); with noise off the two agree to ~1e-14 relative (tested at 1e-6). The
functions here are vectorised over devices, as a competent NumPy user would write
them, and serve as the twin in tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from memdrift.emulator.params import BOLTZMANN_EV, FilamentParams

#: Column order of the per-device parameter table shared with the Cython kernel.
COLUMNS = (
    "hop_distance_m", "attempt_frequency_hz", "activation_energy_ev", "charge_number", "oxide_thickness_m",
    "field_enhancement", "field_enhancement_slope", "field_enhancement_power", "min_field_v_per_m",
    "site_population", "tunnel_current_a", "tunnel_length_m", "tunnel_voltage_v", "series_resistance_ohm",
    "thermal_resistance_k_per_w", "thermal_time_constant_s", "ambient_temperature_k", "gap_min_m", "gap_max_m",
    "dissolution_frequency_hz", "dissolution_energy_ev", "max_gap_step_m", "max_substeps",
    "reset_field_enhancement_slope", "reset_field_enhancement_offset",
)
COL = {name: i for i, name in enumerate(COLUMNS)}
assert set(COLUMNS) <= {f.name for f in fields(FilamentParams)}

# Segment kinds in a cycle's segment table.
PULSE, IDLE, READ = 0, 1, 2
NEWTON_MAX_ITER = 60
NEWTON_RTOL = 1e-13
INITIAL_RATIO = 0.5


class DeviceState:
    """Mutable per-device state carried from segment to segment."""

    def __init__(self, gap_m: np.ndarray, temperature_k: np.ndarray):
        self.gap_m = np.array(gap_m, dtype=np.float64)
        self.temperature_k = np.array(temperature_k, dtype=np.float64)
        # V_cell/V of the last write and of the last read: Newton starts from them
        self.write_ratio = np.full_like(self.gap_m, INITIAL_RATIO)
        self.read_ratio = np.full_like(self.gap_m, INITIAL_RATIO)


def cell_voltage(voltage_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray,
                 ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``V = V_cell + I R_s`` per device, Newton from ``ratio``·|V|; returns (V_cell, I)."""
    rs = table[:, COL["series_resistance_ohm"]]
    v0 = table[:, COL["tunnel_voltage_v"]]
    prefactor = table[:, COL["tunnel_current_a"]] * np.exp(-gap_m / table[:, COL["tunnel_length_m"]])
    sign = np.sign(voltage_v)
    target = np.abs(voltage_v)
    x = np.clip(ratio, 0.0, 1.0) * target
    x = np.where(rs == 0.0, target, x)
    lo = np.zeros_like(target)
    hi = target.copy()
    active = (rs > 0.0) & (target > 0.0)
    k = rs * prefactor
    for _ in range(NEWTON_MAX_ITER):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        xa = x[idx]
        u = xa / v0[idx]
        f = xa + k[idx] * np.sinh(u) - target[idx]
        fp = 1.0 + k[idx] * np.cosh(u) / v0[idx]
        step = f / fp
        # error after this step <= step^2 f''/(2 f') < step^2 / (2 V0): stop when below tol/2
        done = step * step <= v0[idx] * NEWTON_RTOL * target[idx]
        lo_a = np.where(f <= 0.0, xa, lo[idx])
        hi_a = np.where(f > 0.0, xa, hi[idx])
        xn = xa - step
        xn = np.where(~done & ((xn <= lo_a) | (xn >= hi_a)), 0.5 * (lo_a + hi_a), xn)
        lo[idx], hi[idx], x[idx] = lo_a, hi_a, xn
        active[idx[done]] = False
    current = prefactor * np.sinh(x / v0)
    return sign * x, sign * current


def cell_voltage_slope(cell_v: np.ndarray, current_a: np.ndarray, gap_m: np.ndarray,
                       table: np.ndarray) -> np.ndarray:
    """d|V_cell|/dg at a solution of ``V = V_cell + I R_s`` (fixed V): from
    ``x + k(g) sinh(x/V0) = |V|`` with ``k = R_s I0 exp(-g/g0)``, ``x' = (R_s |I| / g0) / f'(x)``.
    Predicts the midpoint solve's start from the sub-step's first solve."""
    rs = table[:, COL["series_resistance_ohm"]]
    v0 = table[:, COL["tunnel_voltage_v"]]
    g0 = table[:, COL["tunnel_length_m"]]
    k = rs * table[:, COL["tunnel_current_a"]] * np.exp(-gap_m / g0)
    return rs * np.abs(current_a) / (g0 * (1.0 + k * np.cosh(np.abs(cell_v) / v0) / v0))


def hop_rates(cell_v: np.ndarray, gap_m: np.ndarray, temperature_k: np.ndarray,
              table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-site rates (1/s): forward hops (shrink the gap), backward, dissolution."""
    # RESET bias (V_cell < 0) has its own gamma(g): gamma0 + delta_R, slope beta + beta_R
    reset = cell_v < 0.0
    beta = table[:, COL["field_enhancement_slope"]] + np.where(reset, table[:, COL["reset_field_enhancement_slope"]], 0.0)
    gamma0 = table[:, COL["field_enhancement"]] + np.where(reset, table[:, COL["reset_field_enhancement_offset"]], 0.0)
    gamma = np.maximum(gamma0 - beta * (gap_m / 1e-9) ** table[:, COL["field_enhancement_power"]], 0.0)
    field = gamma * cell_v / table[:, COL["oxide_thickness_m"]]
    field = np.where(np.abs(field) < table[:, COL["min_field_v_per_m"]], 0.0, field)
    kt_ev = BOLTZMANN_EV * temperature_k
    base = table[:, COL["attempt_frequency_hz"]] * np.exp(-table[:, COL["activation_energy_ev"]] / kt_ev)
    tilt = np.exp(table[:, COL["charge_number"]] * table[:, COL["hop_distance_m"]] * field / (2.0 * kt_ev))
    dissolution = table[:, COL["dissolution_frequency_hz"]] * np.exp(-table[:, COL["dissolution_energy_ev"]] / kt_ev)
    return base * tilt, base / tilt, dissolution


def read_conductance(voltage_v: float, state: DeviceState, table: np.ndarray) -> np.ndarray:
    """Conductance I/V seen by the instrument at ``voltage_v`` (series resistance included)."""
    v = np.full(state.gap_m.shape, voltage_v)
    _, current = cell_voltage(v, state.gap_m, table, state.read_ratio)
    return current / v


def run_segment(voltage_v: float, duration_s: float, state: DeviceState, table: np.ndarray,
                rng: np.random.Generator | None, *, read: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Advance every device through one constant-voltage segment (``read``: warm-start
    Newton from the last read rather than the last write).

    Returns (peak temperature K, energy J delivered by the source) per device.
    """
    n = state.gap_m.size
    a = table[:, COL["hop_distance_m"]]
    m = table[:, COL["site_population"]]
    cap = table[:, COL["max_gap_step_m"]]
    max_steps = table[:, COL["max_substeps"]]
    r_th = table[:, COL["thermal_resistance_k_per_w"]]
    tau = table[:, COL["thermal_time_constant_s"]]
    t_amb = table[:, COL["ambient_temperature_k"]]
    g_min = table[:, COL["gap_min_m"]]
    g_max = table[:, COL["gap_max_m"]]
    elapsed = np.zeros(n)
    steps = np.zeros(n)
    peak = state.temperature_k.copy()
    energy = np.zeros(n)
    volts = np.full(n, float(voltage_v))
    active = np.ones(n, dtype=bool) if duration_s > 0 else np.zeros(n, dtype=bool)
    ratio = state.read_ratio if read else state.write_ratio
    while active.any():
        idx = np.flatnonzero(active)
        tb = table[idx]
        gap = state.gap_m[idx]
        temp = state.temperature_k[idx]
        vc, current = cell_voltage(volts[idx], gap, tb, ratio[idx])
        if voltage_v != 0.0:
            ratio[idx] = vc / voltage_v
        t_ss = t_amb[idx] + vc * current * r_th[idx]
        r_fwd, r_bwd, r_dis = hop_rates(vc, gap, np.maximum(temp, t_ss), tb)
        ai, mi, ci = a[idx], m[idx], cap[idx]
        drift = ai * np.abs(r_bwd + r_dis - r_fwd)
        spread = ai * ai * (r_fwd + r_bwd + r_dis) / mi
        dt = duration_s - elapsed[idx]
        dt = np.where(drift * dt > ci, ci / np.where(drift > 0, drift, 1.0), dt)
        dt = np.where(spread * dt > ci * ci, ci * ci / np.where(spread > 0, spread, 1.0), dt)
        last = steps[idx] >= max_steps[idx] - 1.0
        dt = np.where(last, duration_s - elapsed[idx], dt)
        ti = tau[idx]
        # midpoint tau-leap (see module docstring)
        decay_half = np.where(ti > 0.0, np.exp(-0.5 * dt / np.where(ti > 0.0, ti, 1.0)), 0.0)
        r_fwd, r_bwd, r_dis = hop_rates(vc, gap, t_ss + (temp - t_ss) * decay_half, tb)
        g_mid = np.clip(gap + 0.5 * dt * ai * (r_bwd + r_dis - r_fwd), g_min[idx], g_max[idx])
        if voltage_v != 0.0:
            # Newton for the midpoint gap starts from the first solve moved along its slope
            ratio_mid = (np.abs(vc) + cell_voltage_slope(vc, current, gap, tb) * (g_mid - gap)) / abs(voltage_v)
        else:
            ratio_mid = ratio[idx]
        vc_mid, current = cell_voltage(volts[idx], g_mid, tb, ratio_mid)
        t_ss = t_amb[idx] + vc_mid * current * r_th[idx]
        r_fwd, r_bwd, r_dis = hop_rates(vc_mid, g_mid, t_ss + (temp - t_ss) * decay_half, tb)
        temp_new = t_ss + (temp - t_ss) * decay_half * decay_half
        if rng is None:
            n_fwd, n_bwd, n_dis = mi * r_fwd * dt, mi * r_bwd * dt, mi * r_dis * dt
        else:
            n_fwd = rng.poisson(mi * r_fwd * dt).astype(np.float64)
            n_bwd = rng.poisson(mi * r_bwd * dt).astype(np.float64)
            n_dis = rng.poisson(mi * r_dis * dt).astype(np.float64)
        gap = gap + (ai / mi) * (n_bwd + n_dis - n_fwd)
        state.gap_m[idx] = np.clip(gap, g_min[idx], g_max[idx])
        state.temperature_k[idx] = temp_new
        peak[idx] = np.maximum(peak[idx], temp_new)
        energy[idx] += np.abs(volts[idx] * current) * dt
        elapsed[idx] += dt
        steps[idx] += 1.0
        finished = last | (elapsed[idx] >= duration_s)
        active[idx[finished]] = False
    return peak, energy


def run_cycle_reference(segments: np.ndarray, state: DeviceState, table: np.ndarray,
                        rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One cycle of (pulse, idle, read) segment triples for all devices.

    ``segments`` has rows (voltage V, duration s, kind). Returns per pulse:
    conductance read (S), peak temperature (K), pulse energy (J), gap after the read (m).
    """
    n_pulses = int(np.sum(segments[:, 2] == PULSE))
    n = state.gap_m.size
    conductance = np.empty((n, n_pulses))
    peak = np.empty((n, n_pulses))
    energy = np.empty((n, n_pulses))
    gap = np.empty((n, n_pulses))
    pulse = -1
    for voltage, duration, kind in segments:
        if kind == PULSE:
            pulse += 1
            peak[:, pulse], energy[:, pulse] = run_segment(voltage, duration, state, table, rng)
        elif kind == READ:
            conductance[:, pulse] = read_conductance(voltage, state, table)
            run_segment(voltage, duration, state, table, rng, read=True)
            gap[:, pulse] = state.gap_m
        else:
            run_segment(0.0, duration, state, table, rng)
    return conductance, peak, energy, gap


def trace_pulse(params: FilamentParams, amplitude_v: float, width_s: float, gap_m: float,
                n_points: int = 200) -> dict[str, np.ndarray]:
    """Time trace of one pulse on one nominal device (noise off), for plots.

    The pulse is run as ``n_points`` consecutive segments of the reference model,
    so the trace is the model's own trajectory sampled on a uniform grid.
    """
    table = np.array([[params.scalars()[name] for name in COLUMNS]])
    state = DeviceState(np.array([gap_m]), np.array([params.ambient_temperature_k]))
    dt = width_s / n_points
    times = np.arange(1, n_points + 1) * dt
    temperature = np.empty(n_points)
    gap = np.empty(n_points)
    current = np.empty(n_points)
    for k in range(n_points):
        run_segment(amplitude_v, dt, state, table, None)
        temperature[k] = state.temperature_k[0]
        gap[k] = state.gap_m[0]
        _, i_now = cell_voltage(np.array([amplitude_v]), state.gap_m, table, state.write_ratio)
        current[k] = i_now[0]
    return {"time_s": times, "temperature_k": temperature, "gap_m": gap, "current_a": current}
