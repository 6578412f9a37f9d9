"""Filament cell physics: the NumPy reference of the compiled kernel.

The equations (DESIGN.md, "Filament model"), per device and sub-step Δt:

* cell voltage from ``V = V_cell + I R_s`` with ``I = I0 exp(-g/g0) sinh(V_cell/V0)``
  (V in V, I in A, R_s in Ω, g and g0 in m); see "The cell solve" below;
* field ``E = γ(g) V_cell / t_ox``, ``γ(g) = max(γ0 − β (g / 1 nm)^α, 0)``, and no
  drive below ``F_min``; under RESET bias (``V_cell < 0``) the law has its own
  offset and slope, ``γ_R(g) = max(γ0 + δ_R − (β + β_R)(g / 1 nm)^α, 0)``
  (``reset_field_enhancement_offset`` δ_R, ``reset_field_enhancement_slope`` β_R;
  both 0 by default: the same law for both polarities, as in the Stanford–PKU
  model), and its own threshold, ``F_min`` times ``reset_min_field_ratio`` (1 by
  default). See "RESET field enhancement" below;
* hopping rates ``r± = ν0 exp(−Ea/kT) exp(±z a E / (2 kT/q))`` and dissolution
  ``r_d = ν_r exp(−(Ea_r + b δ)/kT)``, δ the device's relaxation (see "Retention" below);
* hops Poisson(M r Δt) (or their means with noise off);
  ``Δg = (a/M)(N− + N_d − N+)``, clipped to ``[g_min, g_max]``;
* heating ``τ_th dT/dt = (V_cell I + s I² R_s) R_th − (T − T0)`` (T in K, R_th in K/W,
  τ_th in s) integrated exactly for the power held over the sub-step; with ``τ_th = 0``
  and ``R_s = 0`` the mean dynamics are the Stanford–PKU compact model with ``v0 = 2 a ν0``.
  The share s (``series_heat_share``, default 0) says where R_s is. At 0 it is the
  access path (electrode lines, the HfS2 layer, contacts), which dissipates over a
  volume and an area far larger than the filament's and is sunk by the electrodes,
  not through the filament's thermal resistance R_th. The shipped preset was fitted
  with that convention. A filament whose series resistance is partly its own body,
  or the constriction of the electrode at its ends, heats with that part of
  I² R_s through the same R_th: s is that part. The source delivers V I either
  way (s moves no charge), so the heat never exceeds the delivered power;
* a pulse ends, flagged ``THERMAL_CEILING`` in ``pulse_flag``, when T reaches
  ``thermal_ceiling_k`` (default 3,031 K, the melting point of HfO2: above it the
  oxide is liquid and vacancy hopping describes nothing). The sub-step heading past
  it is cut at the instant the relaxation meets it (taken again at half length if
  the midpoint power carried it past) and the pulse ends within 1 K below it; the
  rest of the pulse is not simulated (the device is destroyed), its energy not
  counted.

The cell solve. Newton on V_cell moves by ~V0 per step wherever sinh dominates
(at V0 = 19 mV, 60 steps reached no root above ~3 V). The unknown is instead
``w = ln y``, ``y = I R_s = |V| − |V_cell|``: with ``k = R_s I0 exp(−g/g0)``,
``h(w) = e^w + V0 asinh(e^w/k) − |V|`` is increasing and convex in w, its Newton
step is that of Newton on ln y where the resistor takes the bias and exact where
the cell does (the logarithmic term), and the root is bracketed by
``k|V|/(2 max(V0, k)) <= y <= |V|`` (from ``sinh u >= u``). A safeguarded Newton
(bisection where a step leaves the bracket or fails to halve, as in rtsafe) stops
once the last step d has ``d² <= 1e-13``; since ``h''/h' <= 1`` the error left in
ln I is below ``d²/2``, i.e. I to 5e-14 relative (tested against scipy's brentq to
1e-9 over 0 to ±10 V, R_s 0 to 1 kΩ, V0 15 mV to 1 V). asinh(z) is formed from
``ln z = w − ln k`` above z = 1 and as a log1p below, so no z overflows. R_s = 0
has no unknown: ``I = I0 exp(−g/g0) sinh(|V|/V0)``, evaluated with the prefactor
inside the exponentials. A solve that does not converge, or whose current has no
double (R_s = 0 and ``|V|/V0`` beyond ~700), ends its segment flagged
``SOLVE_NOT_CONVERGED`` and commits nothing from it; a read that fails is NaN.
Below ``|V| = 1e-100`` V the cell is solved as the linear resistor it is there.

Each sub-step is a midpoint tau-leap: the expected drift over half a step gives
a midpoint gap, where the cell voltage, the power, the temperature (relaxed
exactly over half a step) and the rates are evaluated again; the Poisson counts
over the whole step use those midpoint rates. The mean dynamics are then second
order in Δt, which matters because Joule heating makes the SET rate change by
orders of magnitude within one pulse.

Δt is the largest step for which neither the expected gap change nor its
standard deviation exceeds ``max_gap_step_m`` and the temperature changes by at
most ``max_temperature_step_k`` (``|T_ss − T| (1 − e^(−Δt/τ_th))``); the rates
that size it are taken at the hottest the step can reach (the steady-state
temperature, but no more than ``max_temperature_step_k`` above T nor above the
ceiling), so a bound on ΔT is also a bound on the change of the Arrhenius factor
over a sub-step (``Δ ln r ≈ Ea ΔT / (k T²)``). A device at a gap bound whose hops
are biased outward (net rate at least half the total) stays within about one hop
quantum ``a/M`` of it whatever the step, so its gap does not limit the step (a
pinned device takes one step, or as many as its heating needs). A segment that
needs more than ``max_substeps`` ends with one step over the rest of its time,
flagged ``STEP_BUDGET``. A rate beyond double range ends the segment flagged
``RATE_OVERFLOW``.

The temperature bound is a blunt one: it makes a device take ~40 sub-steps to warm
up and ~40 to cool down in every pulse whether or not anything moves. With
``thermal_step_error_fraction`` ε > 0 (default 0.01) the temperature's effect on
a sub-step is estimated instead. Each rate r_i = ν exp(−E_i/kT) (E_i the
field-lowered barrier) changes as ``d ln r_i/dt = κ_i = E_i (T_ss − T)/(k T² τ_th)``;
the midpoint rule then errs on the gap change by about
``a Δt³ Σ r_i κ_i (κ_i + 1/τ_th)/24``, and the step keeps that below ε times the
gap bound. A cooling device's rates at its start are the largest of its step,
so its step comes from them and the temperature bound is dropped. A warming
device may take, instead of the temperature bound's step, the one that bounds on
its rates over the whole step allow (each rate is monotonic in T, so the larger
of its values at T and at T_ss bounds it): the gap bounds with the total rate as
drift, and the error estimate. It takes the larger of the two steps, each safe
on its own. The midpoint rule alone underestimates a convex rate by
``(κ Δt)²/24`` on every step, heating and cooling alike, a bias that adds up, so in
this mode each midpoint rate is multiplied by the mean of its local exponential,
``sinh(κ_i Δt/2)/(κ_i Δt/2)``. On the preset's nominal ramp at the class defaults
this takes 15 sub-steps per pulse instead of 88, and the reads stay within 0.032
bin widths of the temperature bound alone at a 16-fold tighter tolerance. The gap
a device at 1,200 K opens by dissolution while it cools is within 0.1 % of a tight
run (1.6 % without the rate-shape factor); see tests/test_filament_convergence.py.

The step bounds in use are ``integration_tolerance`` times ``max_gap_step_m`` and
``max_temperature_step_k`` (default 0.5; (0, 16]). It is a step-bound tolerance,
not an embedded error estimate: the midpoint's local error scales with the bound,
so halving it halves the steps' size and about quarters what they leave, and
convergence is shown by the runs below, not estimated per step.

The F_min event. Below ``F_min`` the drive is off, so the rates jump where
``|E(g)| = F_min`` and a step across that gap integrates the wrong law over part
of its length (the midpoint either stalls or overshoots, a first-order error).
Each sub-step takes the secant of ``φ = |E| − F_min`` through its start and its
midpoint (in units of the half-step's mean gap change); where it meets zero
within the step, the crossing is located by secant iterations on ``φ(g)`` alone
(``EVENT_SECANT_ITER``, the cell solved at each estimate), and the step is taken
again, ending there: its mean gap change is set to the crossing, its duration
the time the mean drift takes to reach it, its hops' deviation from their means
kept. A device that starts at a crossing (within ``EVENT_GAP_TOL_M``) with the
drift pointing at it from both sides (the drive pulls it in on one side and
dissolution pushes it back on the other, a sliding mode) holds there for the
step, refined to the secant's estimate of it: the threshold gap g* is then the
same whatever the tolerance (1e-13 m measured from 1/32 to 16). A crossing with
the drift on through it (RESET running into F_min) is only cut to, not held.
A held device sits at g* for the whole step, so its power is the held gap's: its
temperature and delivered energy use the start of the step, not the midpoint the
drift would have reached. Its next step is not bounded by its gap, as for a
device pinned at g_min or g_max. If that step finds it no longer held, the step
is taken again at the gap bound. The envelope candidate's SET pulses slide at
F_min for most of their length. This takes them from 472 sub-steps a pulse to
38, and its energy per cycle from a first-order error (0.23 % from tolerance 0.5
to 0.125) to 0.007 % (0.5 against 1/32).

Convergence, measured on the preset's nominal device (noise off, second cycle of
the 40-pulse ramp, largest change of any read, in 81 µS bin widths) at 0.02 nm
and 10 K: tolerance 0.5 (the default) vs 0.25: 0.019, vs 1/32: 0.026; tolerance 1:
0.040 / 0.063; 2: 0.090 / 0.151; 4: 0.113 / 0.260. With the temperature step
unbounded the default is off by 0.15 from its 16-fold tighter run, and 0.56 at
tolerance 1, which is why the preset bounds it at 10 K.

RESET field enhancement. The field enhancement γ(g) stands for the filament tip
concentrating the cell voltage on the gap; the Stanford–PKU law uses one γ(g)
for both polarities, which makes the pulse-to-pulse step at a given gap the same
function of |V| and width whichever way it moves the gap (dissolution apart).
Under an amplitude/width ramp applied identically to both branches that cannot
give equal steps on both: at the low-conductance end depression arrives with its
strongest pulses and potentiation leaves with its weakest
(``memdrift/mapping/calibrate_targets.py`` has the argument). In a cell with an asymmetric
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

Retention. The tip's vacancies sit in a spread of binding energies and the shallow
ones dissolve first, so the dissolution barrier rises with the gap already relaxed:
``Ea_r + b δ`` (b = ``dissolution_barrier_slope_ev_per_m``, eV/m; 0 by default, which
is constant-rate dissolution bit for bit). δ (m, ``DeviceState.relaxation_m``, column
``S_RELAX`` of the kernel state) grows by ``(a/M) N_d`` per sub-step and, under bias,
shrinks by ``exp(−N+/M)``: the forward hops of a write bring vacancies to the tip, and a
site hopped into (probability ``1 − exp(−N+/M)``) is repopulated. Zero-bias symmetric
hops do not rebuild it. With b = 0 δ stays where it is and nothing reads it. Within a
sub-step the dissolution rate falls as it relaxes the tip, ``dδ/dt = a r0 exp(−b δ/kT)``;
the step's hop count uses the exact mean rate ``r0 ln(1 + x)/x``, ``x = a b r0 Δt/kT``
(:func:`dissolution_step_rate`), so the zero-bias gap follows
``g − g_p = (kT/b) ln(1 + t/τ)``, ``τ = kT/(a b r0)``, whatever the step, and
``G/G_p ≈ (1 + t/τ)^(−ν)`` with ``ν = kT/(b g0)`` reduced by R_s's share of the read
(docs/retention.md has the measurements).

The compiled kernel (``memdrift.ext._filament``, arithmetic in
``_filament_lanes.h``) runs the same equations per device, batches of devices in
lockstep as SIMD lanes, with its own polynomial exp and log (within 2 and 4 ulp of
libm); with noise off the two agree to ~1e-14 relative (tested at 1e-6). The
functions here are vectorised over devices, as a competent NumPy user would write
them, and serve as the twin in tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from memdrift.data.flags import RATE_OVERFLOW, SOLVE_NOT_CONVERGED, STEP_BUDGET, THERMAL_CEILING
from memdrift.emulator.params import BOLTZMANN_EV, FilamentParams

#: Column order of the per-device parameter table shared with the Cython kernel (which exports its own
#: names, from the enum in ``_filament_lanes.h``; loading it compares the two name by name).
COLUMNS = (
    "hop_distance_m", "attempt_frequency_hz", "activation_energy_ev", "charge_number", "oxide_thickness_m",
    "field_enhancement", "field_enhancement_slope", "field_enhancement_power", "min_field_v_per_m",
    "site_population", "tunnel_current_a", "tunnel_length_m", "tunnel_voltage_v", "series_resistance_ohm",
    "thermal_resistance_k_per_w", "thermal_time_constant_s", "ambient_temperature_k", "gap_min_m", "gap_max_m",
    "dissolution_frequency_hz", "dissolution_energy_ev", "max_gap_step_m", "max_substeps",
    "reset_field_enhancement_slope", "reset_field_enhancement_offset", "thermal_ceiling_k", "max_temperature_step_k",
    "integration_tolerance", "dissolution_barrier_slope_ev_per_m", "thermal_step_error_fraction",
    "reset_min_field_ratio", "series_heat_share",
)
COL = {name: i for i, name in enumerate(COLUMNS)}
assert set(COLUMNS) <= {f.name for f in fields(FilamentParams)}

# Segment kinds in a cycle's segment table.
PULSE, IDLE, READ = 0, 1, 2
NEWTON_MAX_ITER = 60
#: squared last Newton step in ln I below which the cell solve stops (the error left is below half of it)
SOLVE_TOL = 1e-13
#: a pulse ends once its temperature is this close (K) below the thermal ceiling
CEILING_BAND_K = 1.0
#: a sub-step that lands past the ceiling is taken again at half length while longer than this fraction of tau_th
CEILING_MIN_STEP = 1e-9
#: |V| below which the cell is solved as linear: sinh(V_cell/V0) = V_cell/V0 to 1e-200 relative
LINEAR_V = 1e-100
#: the warm start ln(I R_s / |V|) of a device that has not been solved yet: half the bias on R_s
INITIAL_SHARE = float(np.log(0.5))
#: a located F_min crossing closer than this (m) to a sub-step's start is where the device is
EVENT_GAP_TOL_M = 1e-15
#: secant iterations on |E(g)| - F_min (a cell solve each) that refine a crossing before a step is cut to it
EVENT_SECANT_ITER = 4


class DeviceState:
    """Mutable per-device state carried from segment to segment."""

    def __init__(self, gap_m: np.ndarray, temperature_k: np.ndarray, relaxation_m: np.ndarray | None = None):
        self.gap_m = np.array(gap_m, dtype=np.float64)
        self.temperature_k = np.array(temperature_k, dtype=np.float64)
        # gap relaxed by dissolution since the tip was last rebuilt by field-driven hops (m): it raises the
        # dissolution barrier by b·δ (see "Retention" in the module docstring)
        self.relaxation_m = (np.zeros_like(self.gap_m) if relaxation_m is None
                             else np.array(relaxation_m, dtype=np.float64))
        # ln(I R_s / |V|) of the last write and of the last read: the cell solve starts from them
        self.write_share = np.full_like(self.gap_m, INITIAL_SHARE)
        self.read_share = np.full_like(self.gap_m, INITIAL_SHARE)


def _asinh_exp(w: np.ndarray, ln_k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """asinh(z) and z/sqrt(1 + z²) for z = exp(w − ln k), without overflow for any z."""
    zl = w - ln_k
    e = np.exp(-np.abs(zl))
    small = zl < 0.0
    zs = np.where(small, e, 1.0)
    root_s = np.sqrt(1.0 + zs * zs)
    t = zs + zs * zs / (1.0 + root_s)
    root_l = np.sqrt(1.0 + np.where(small, 1.0, e * e))
    return np.where(small, np.log1p(t), zl + np.log(1.0 + root_l)), np.where(small, zs / root_s, 1.0 / root_l)


def cell_solve(voltage_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray, share: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Solve ``V = V_cell + I R_s``, ``I = I0 exp(-g/g0) sinh(V_cell/V0)`` per device.

    The unknown is ``w = ln(I R_s)``: ``h(w) = e^w + V0 asinh(e^w/k) − |V| = 0`` with
    ``k = R_s I0 exp(−g/g0)`` is increasing and convex in w, so Newton clamped to
    ``w <= ln|V|`` converges from any start (see the module docstring); ``share`` is the
    warm start ``ln(I R_s/|V|)``. Returns (V_cell, I, the solution's share, dw/dg, failed)
    where ``failed`` marks devices with no converged finite solution.
    """
    voltage_v = np.asarray(voltage_v, dtype=np.float64)
    rs = table[:, COL["series_resistance_ohm"]]
    v0 = table[:, COL["tunnel_voltage_v"]]
    g0 = table[:, COL["tunnel_length_m"]]
    i0 = table[:, COL["tunnel_current_a"]]
    n = gap_m.size
    target = np.abs(voltage_v) * np.ones(n)
    sign = np.sign(voltage_v) * np.ones(n)
    zero = target == 0.0
    direct = rs == 0.0
    if np.all(target < LINEAR_V):
        with np.errstate(over="ignore"):
            current = target / (rs + v0 * np.exp(gap_m / g0 - np.log(i0)))
        return sign * (target - current * rs), sign * current, share, np.zeros(n), np.zeros(n, dtype=bool)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ln_target = np.log(np.where(zero, 1.0, target))
        ln_k = np.log(np.where(direct, 1.0, rs * i0)) - gap_m / g0
        # bracket: y <= |V| and y >= k|V|/(V0 + k) >= k|V|/(2 max(V0, k))
        lo = ln_k + ln_target - np.maximum(np.log(v0), ln_k) - np.log(2.0)
        hi = ln_target.copy()
        w = np.maximum(np.minimum(share + ln_target, hi), lo)
        d_old = np.full(n, np.inf)
        a_f, r_f, hp_f, d_f = np.zeros(n), np.zeros(n), np.ones(n), np.zeros(n)
        y_f = np.zeros(n)
        conv = direct | zero
        active = ~conv
        for _ in range(NEWTON_MAX_ITER):
            if not active.any():
                break
            idx = np.flatnonzero(active)
            wa = w[idx]
            y = np.exp(wa)
            asinh, r = _asinh_exp(wa, ln_k[idx])
            hp = y + v0[idx] * r
            h = y + v0[idx] * asinh - target[idx]
            d = h / hp
            fin = d * d <= SOLVE_TOL
            h_neg = h <= 0.0
            lo_n = np.where(h_neg, wa, lo[idx])
            hi_n = np.where(h_neg, hi[idx], wa)
            wn = wa - d
            # bisect where Newton leaves the bracket or does not halve its step (rtsafe)
            bisect = (~(np.abs(d) <= 0.5 * np.abs(d_old[idx])) | ~((wn > lo_n) & (wn < hi_n))) & ~fin
            w[idx] = np.where(bisect, 0.5 * (lo_n + hi_n), wn)
            lo[idx], hi[idx] = lo_n, hi_n
            d_old[idx] = np.where(bisect, 0.5 * (hi_n - lo_n), d)
            y_f[idx], a_f[idx], r_f[idx], hp_f[idx], d_f[idx] = y, asinh, r, hp, d
            conv[idx[fin]] = True
            active[idx[fin]] = False
        # the values at the last step's end from those at its start (|d| <= 3.2e-7: y e^-d to d², asinh − r d)
        y_end = y_f * (1.0 - d_f + 0.5 * d_f * d_f)
        x = np.where(direct, target, v0 * (a_f - r_f * d_f))
        u = target / v0
        ln_pref = np.log(i0) - gap_m / g0
        free = np.where(u < 0.5, np.exp(ln_pref) * np.sinh(u),
                        0.5 * (np.exp(ln_pref + u) - np.exp(ln_pref - u)))
        current = np.where(direct, free, y_end / np.where(direct, 1.0, rs))
        x = np.where(zero, 0.0, x)
        current = np.where(zero, 0.0, current)
        failed = ~zero & (~conv | ~np.isfinite(current) | ~np.isfinite(x))
        new_share = np.where(direct | zero, share, w - ln_target)
        slope = np.where(direct | zero, 0.0, -v0 * r_f / (g0 * hp_f))
    return sign * x, sign * current, new_share, slope, failed


def cell_voltage(voltage_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray,
                 share: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(V_cell, I) of :func:`cell_solve`, from the cold start when ``share`` is None."""
    if share is None:
        share = np.full(gap_m.shape, INITIAL_SHARE)
    vc, current, *_ = cell_solve(voltage_v, gap_m, table, share)
    return vc, current


def min_field(cell_v: np.ndarray, table: np.ndarray) -> np.ndarray:
    """F_min (V/m) for a cell voltage: RESET bias (V_cell < 0) has its own, F_min times
    ``reset_min_field_ratio``."""
    return table[:, COL["min_field_v_per_m"]] * np.where(cell_v < 0.0, table[:, COL["reset_min_field_ratio"]], 1.0)


def enhancement(cell_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Field enhancement γ(g); RESET bias (V_cell < 0) has its own: γ0 + δ_R, slope β + β_R."""
    reset = cell_v < 0.0
    reset_slope = np.where(reset, table[:, COL["reset_field_enhancement_slope"]], 0.0)
    beta = table[:, COL["field_enhancement_slope"]] + reset_slope
    gamma0 = table[:, COL["field_enhancement"]] + np.where(reset, table[:, COL["reset_field_enhancement_offset"]], 0.0)
    return np.maximum(gamma0 - beta * (gap_m / 1e-9) ** table[:, COL["field_enhancement_power"]], 0.0)


def drive_field(cell_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The field that drives the hops (V/m), ``E = γ(g) V_cell / t_ox``, and 0 below its F_min."""
    field = enhancement(cell_v, gap_m, table) * cell_v / table[:, COL["oxide_thickness_m"]]
    return np.where(np.abs(field) < min_field(cell_v, table), 0.0, field)


def gap_bounded(h: np.ndarray, drift: np.ndarray, spread: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """``h`` cut so that neither the expected gap change (``drift h``) nor its standard deviation
    (``√(spread h)``) exceeds the gap bound ``cap``."""
    h = np.where(drift * h > cap, cap / np.where(drift > 0, drift, 1.0), h)
    return np.where(spread * h > cap * cap, cap * cap / np.where(spread > 0, spread, 1.0), h)


def hop_rates(cell_v: np.ndarray, gap_m: np.ndarray, temperature_k: np.ndarray,
              table: np.ndarray, relaxation_m: np.ndarray | float = 0.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-site rates (1/s): forward hops (shrink the gap), backward, dissolution (its barrier
    raised by ``b·δ``, δ = ``relaxation_m``)."""
    field = drive_field(cell_v, gap_m, table)
    kt_ev = BOLTZMANN_EV * temperature_k
    base = table[:, COL["attempt_frequency_hz"]] * np.exp(-table[:, COL["activation_energy_ev"]] / kt_ev)
    tilt = np.exp(table[:, COL["charge_number"]] * table[:, COL["hop_distance_m"]] * field / (2.0 * kt_ev))
    slope = table[:, COL["dissolution_barrier_slope_ev_per_m"]]
    barrier = table[:, COL["dissolution_energy_ev"]] + slope * relaxation_m
    dissolution = table[:, COL["dissolution_frequency_hz"]] * np.exp(-barrier / kt_ev)
    return base * tilt, base / tilt, dissolution


def dissolution_step_rate(rate_hz: np.ndarray, dt_s: np.ndarray, temperature_k: np.ndarray,
                          table: np.ndarray) -> np.ndarray:
    """Mean dissolution rate per site (1/s) over a sub-step of ``dt_s`` from the rate at its start.

    With ``b > 0`` the rate falls as the gap it relaxes raises the barrier,
    ``dδ/dt = a r0 exp(−b δ/kT)``, solved exactly: ``δ(Δt) − δ0 = (kT/b) ln(1 + x)``,
    ``x = a b r0 Δt/kT``, i.e. the mean rate ``r0 ln(1 + x)/x``; ``b = 0`` is ``r0`` itself.
    """
    scale = table[:, COL["hop_distance_m"]] * table[:, COL["dissolution_barrier_slope_ev_per_m"]] / (
        BOLTZMANN_EV * temperature_k)
    x = scale * rate_hz * dt_s
    on = x > 0.0
    return np.where(on, rate_hz * np.log1p(x) / np.where(on, x, 1.0), rate_hz)


def heating_power(cell_v: np.ndarray, current_a: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Power (W) that heats the filament: the cell's ``V_cell I`` and ``series_heat_share`` of the series
    resistance's ``I² R_s``."""
    share = table[:, COL["series_heat_share"]]
    on = share > 0.0
    if not on.any():
        return cell_v * current_a
    return cell_v * current_a + np.where(on, share * current_a * current_a * table[:, COL["series_resistance_ohm"]], 0.0)


def barriers(cell_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray, relaxation_m: np.ndarray | float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activation energies (eV) of the forward, backward and dissolution rates of :func:`hop_rates`:
    ``Ea ∓ z a E/2`` (E after the F_min cut) and ``Ea_r + b δ``."""
    lower = 0.5 * table[:, COL["charge_number"]] * table[:, COL["hop_distance_m"]] * drive_field(cell_v, gap_m, table)
    ea = table[:, COL["activation_energy_ev"]]
    e_d = table[:, COL["dissolution_energy_ev"]] + table[:, COL["dissolution_barrier_slope_ev_per_m"]] * relaxation_m
    return ea - lower, ea + lower, e_d


def sinhc(x: np.ndarray) -> np.ndarray:
    """sinh(x)/x, by its series where the exponentials would cancel (the kernel's md_sinhc)."""
    small = np.abs(x) < 1e-3
    xs = np.where(small, 1.0, x)
    e = np.exp(xs)
    return np.where(small, 1.0 + x * x * (1.0 / 6.0 + x * x / 120.0), (e - 1.0 / e) / (2.0 * xs))


def rate_shape_factors(cell_v: np.ndarray, gap_m: np.ndarray, temperature_k: np.ndarray, steady_k: np.ndarray,
                       dt_s: np.ndarray, table: np.ndarray, relaxation_m: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over a sub-step of each rate over its value at the midpoint, where T relaxes with τ_th.

    Around the midpoint ``ln r_i`` changes at ``κ_i = E_i (T_ss − T)/(k T² τ)`` (T the midpoint
    temperature), so the mean of the exponential over the step is ``sinh(κ_i Δt/2)/(κ_i Δt/2)`` times
    the midpoint rate: the midpoint rule alone underestimates a convex rate by ``(κ_i Δt)²/24``, the
    same sign every step, and that bias would add up over the heating and cooling of every pulse."""
    e_f, e_b, e_d = barriers(cell_v, gap_m, table, relaxation_m)
    tau = table[:, COL["thermal_time_constant_s"]]
    rate_t = (steady_k - temperature_k) / (np.where(tau > 0.0, tau, 1.0) * BOLTZMANN_EV * temperature_k * temperature_k)
    half = 0.5 * dt_s * rate_t
    return sinhc(e_f * half), sinhc(e_b * half), sinhc(e_d * half)


def thermal_error_step(cell_v: np.ndarray, gap_m: np.ndarray, temperature_k: np.ndarray, steady_k: np.ndarray,
                       table: np.ndarray, relaxation_m: np.ndarray,
                       rates: tuple[np.ndarray, np.ndarray, np.ndarray], cap_m: np.ndarray) -> np.ndarray:
    """Sub-step (s) whose estimated gap error from the rates' change with the relaxing temperature is
    ``thermal_step_error_fraction`` of the gap bound ``cap_m`` (``inf`` where nothing changes).

    While T relaxes towards T_ss with ``τ_th``, each rate r_i = ν exp(−E_i/kT) changes as
    ``d ln r_i/dt = κ_i = E_i |T_ss − T| e^(−t/τ)/(k T² τ)``, so ``d²r_i/dt² ≈ r_i κ_i (κ_i + 1/τ)``
    and the midpoint rule errs on the gap change by ``a Δt³ Σ r_i κ_i (κ_i + 1/τ)/24``. ``rates`` are
    bounds on the rates over the step (at its hottest), κ is taken at its start, where |dT/dt| is
    largest; the barriers E_i are the field-lowered ones of :func:`hop_rates`, in magnitude."""
    r_fwd, r_bwd, r_dis = rates
    e_f, e_b, e_d = (np.abs(e) for e in barriers(cell_v, gap_m, table, relaxation_m))
    tau = table[:, COL["thermal_time_constant_s"]]
    safe_tau = np.where(tau > 0.0, tau, 1.0)
    rate_t = np.abs(steady_k - temperature_k) / (safe_tau * BOLTZMANN_EV * temperature_k * temperature_k)
    k_f, k_b, k_d = e_f * rate_t, e_b * rate_t, e_d * rate_t
    curv = table[:, COL["hop_distance_m"]] * (r_fwd * k_f * (k_f + 1.0 / safe_tau) + r_bwd * k_b * (k_b + 1.0 / safe_tau)
                                             + r_dis * k_d * (k_d + 1.0 / safe_tau))
    h = np.exp(np.log(24.0 * table[:, COL["thermal_step_error_fraction"]] * cap_m / np.where(curv > 0.0, curv, 1.0))
               / 3.0)
    return np.where(curv > 0.0, h, np.inf)


def field_excess(cell_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray) -> np.ndarray:
    """|E| − F_min (V/m) as :func:`hop_rates` forms E: the drive is on where it is >= 0."""
    gamma = enhancement(cell_v, gap_m, table)
    return np.abs(gamma * cell_v / table[:, COL["oxide_thickness_m"]]) - min_field(cell_v, table)


def read_conductance(voltage_v: float, state: DeviceState, table: np.ndarray, conduction: Any = None) -> np.ndarray:
    """Conductance I/V seen by the instrument at ``voltage_v`` (series resistance included); NaN
    where the solve failed. ``conduction``: a user law (:mod:`memdrift.emulator.conduction`) in place
    of the built-in one."""
    v = np.full(state.gap_m.shape, voltage_v)
    solve = cell_solve if conduction is None else conduction.cell_solve
    _, current, _, _, failed = solve(v, state.gap_m, table, state.read_share)
    return np.where(failed, np.nan, current / v)


def run_segment(voltage_v: float, duration_s: float, state: DeviceState, table: np.ndarray,
                rng: np.random.Generator | None, *, read: bool = False,
                flags: np.ndarray | None = None, conduction: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Advance every device through one constant-voltage segment (``read``: warm-start
    the solve from the last read rather than the last write; ``conduction``: a user law,
    :mod:`memdrift.emulator.conduction`, solved in place of the built-in one).

    Returns (peak temperature K, energy J delivered by the source) per device; ORs the
    ``memdrift.data.flags`` bits of what ended a device's segment early into ``flags``.
    """
    n = state.gap_m.size
    a = table[:, COL["hop_distance_m"]]
    m = table[:, COL["site_population"]]
    # the sub-step bounds scale with the tolerance (the kernel scales them the same way on loading a batch)
    tol = table[:, COL["integration_tolerance"]]
    cap = table[:, COL["max_gap_step_m"]] * tol
    max_steps = table[:, COL["max_substeps"]]
    r_th = table[:, COL["thermal_resistance_k_per_w"]]
    tau = table[:, COL["thermal_time_constant_s"]]
    t_amb = table[:, COL["ambient_temperature_k"]]
    g_min = table[:, COL["gap_min_m"]]
    g_max = table[:, COL["gap_max_m"]]
    ceiling = table[:, COL["thermal_ceiling_k"]]
    dt_max = table[:, COL["max_temperature_step_k"]] * tol
    if flags is None:
        flags = np.zeros(n, dtype=np.uint8)
    elapsed = np.zeros(n)
    steps = np.zeros(n)
    h_lim = np.full(n, np.inf)
    # the F_min crossing a sub-step was cut to end at (NaN: none pending)
    g_event = np.full(n, np.nan)
    # held at the F_min threshold by the last sub-step (sliding): its gap bounds nothing
    held = np.zeros(n, dtype=bool)
    f_min = min_field(np.full(n, float(voltage_v)), table)
    peak = state.temperature_k.copy()
    energy = np.zeros(n)
    volts = np.full(n, float(voltage_v))
    active = np.ones(n, dtype=bool) if duration_s > 0 else np.zeros(n, dtype=bool)
    share = state.read_share if read else state.write_share
    cell_solve_ = cell_solve if conduction is None else conduction.cell_solve
    while active.any():
        idx = np.flatnonzero(active)
        tb = table[idx]
        gap = state.gap_m[idx]
        temp = state.temperature_k[idx]
        vc, current, share[idx], slope, bad = cell_solve_(volts[idx], gap, tb, share[idx])
        t_ss = t_amb[idx] + heating_power(vc, current, tb) * r_th[idx]
        ci, ti = ceiling[idx], tau[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            # sized at the hottest the step can reach: T_ss, at most dt_max above T, at most the ceiling
            reach_t = np.where(ti > 0.0, temp + dt_max[idx], np.inf)  # tau = 0: T is T_ss at once
            hot = np.minimum(np.minimum(np.maximum(temp, t_ss), reach_t), ci)
            relax = state.relaxation_m[idx]
            r_fwd, r_bwd, r_dis = hop_rates(vc, gap, hot, tb, relax)
            ai, mi, capi = a[idx], m[idx], cap[idx]
            drift = ai * np.abs(r_bwd + r_dis - r_fwd)
            spread = ai * ai * (r_fwd + r_bwd + r_dis) / mi
        overflow = ~((drift <= np.finfo(float).max) & (spread <= np.finfo(float).max))
        rest = duration_s - elapsed[idx]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            dt = gap_bounded(rest, drift, spread, capi)
            # at a gap bound with hops biased outward (net >= half the total) the gap bounds nothing
            net, total = r_bwd + r_dis - r_fwd, r_fwd + r_bwd + r_dis
            pinned = ((gap >= g_max[idx]) & (net > 0.5 * total)) | ((gap <= g_min[idx]) & (-net > 0.5 * total))
            h_gap = dt
            dt = np.where(pinned | held[idx], rest, dt)
        safe_tau = np.where(ti > 0.0, ti, 1.0)
        span = np.abs(t_ss - temp)
        cooling = (tb[:, COL["thermal_step_error_fraction"]] > 0.0) & (ti > 0.0) & (temp > t_ss)
        if cooling.any():
            # a cooling device's rates at its start are the hottest of its step
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                h_err = thermal_error_step(vc, gap, temp, t_ss, tb, relax, (r_fwd, r_bwd, r_dis), capi)
            dt = np.where(cooling, np.minimum(dt, h_err), dt)
        warming = (ti > 0.0) & ~cooling & (span > dt_max[idx])
        h_t = -safe_tau * np.log(1.0 - np.where(warming, dt_max[idx] / np.where(warming, span, 1.0), 0.5))
        dt = np.where(warming & (h_t < dt), h_t, dt)
        heating = warming & (tb[:, COL["thermal_step_error_fraction"]] > 0.0)
        if heating.any():
            # or the step that bounds on its rates over the whole step allow (each rate is monotonic in
            # T, so the larger of its values at the two ends bounds it; their sum bounds the drift): the
            # larger of that and the temperature bound's step, each safe on its own
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                far = np.minimum(t_ss, ci)
                f_f, f_b, f_d = hop_rates(vc, gap, far, tb, relax)
                f_f, f_b, f_d = np.maximum(f_f, r_fwd), np.maximum(f_b, r_bwd), np.maximum(f_d, r_dis)
                h_far = thermal_error_step(vc, gap, temp, t_ss, tb, relax, (f_f, f_b, f_d), capi)
                total = f_f + f_b + f_d
                drift_ub, spread_ub = ai * total, ai * ai * total / mi
                h_far = gap_bounded(h_far, drift_ub, spread_ub, capi)
            h_far = np.where(heating & ~np.isnan(h_far), np.minimum(h_far, rest), 0.0)
            dt = np.maximum(dt, h_far)
        beyond = (ti > 0.0) & (t_ss > ci) & (temp < ci)
        with np.errstate(divide="ignore", invalid="ignore"):
            h_c = safe_tau * np.log(np.where(beyond, (t_ss - temp) / np.where(beyond, t_ss - ci, 1.0), 2.0))
        reach = beyond & (h_c <= dt)
        dt = np.where(reach, h_c, dt)
        dt = np.minimum(dt, h_lim[idx])
        last = steps[idx] >= max_steps[idx] - 1.0
        forced = last & (dt < rest)
        dt = np.where(last, rest, dt)
        fail = np.where(bad, SOLVE_NOT_CONVERGED, np.where(overflow, RATE_OVERFLOW, 0)).astype(np.uint8)
        # midpoint tau-leap (see module docstring)
        decay_half = np.where((ti > 0.0) & (0.5 * dt < 750.0 * safe_tau), np.exp(-0.5 * dt / safe_tau), 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            r_fwd, r_bwd, r_dis = hop_rates(vc, gap, t_ss + (temp - t_ss) * decay_half, tb, relax)
            drift_start = ai * (r_bwd + r_dis - r_fwd)
            g_mid = np.clip(gap + 0.5 * dt * drift_start, g_min[idx], g_max[idx])
        # the midpoint solve starts from the first solve moved along its slope
        share_mid = share[idx] + slope * np.where(np.isfinite(g_mid), g_mid - gap, 0.0)
        current_start, t_ss_start = current, t_ss
        vc_mid, current, _, _, bad = cell_solve_(volts[idx], np.nan_to_num(g_mid), tb, share_mid)
        fail = np.where((fail == 0) & bad, SOLVE_NOT_CONVERGED, fail).astype(np.uint8)
        t_ss = t_amb[idx] + heating_power(vc_mid, current, tb) * r_th[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            temp_mid = t_ss + (temp - t_ss) * decay_half
            r_fwd, r_bwd, r_dis = hop_rates(vc_mid, g_mid, temp_mid, tb, relax)
            shaped = (tb[:, COL["thermal_step_error_fraction"]] > 0.0) & (ti > 0.0)
            if shaped.any():
                s_f, s_b, s_d = rate_shape_factors(vc_mid, g_mid, temp_mid, t_ss, dt, tb, relax)
                r_fwd = np.where(shaped, r_fwd * s_f, r_fwd)
                r_bwd = np.where(shaped, r_bwd * s_b, r_bwd)
                r_dis = np.where(shaped, r_dis * s_d, r_dis)
            temp_new = t_ss + (temp - t_ss) * decay_half * decay_half
            r_dis = dissolution_step_rate(r_dis, dt, temp_mid, tb)
            mean_fwd, mean_bwd, mean_dis = mi * r_fwd * dt, mi * r_bwd * dt, mi * r_dis * dt
            # F_min event: the secant through |E| - F_min at the start and the midpoint, in units of the
            # half-step's mean gap change, meets zero at s; s in [0, 2) is a crossing within the step
            phi0 = field_excess(vc, gap, tb)
            phim = field_excess(vc_mid, g_mid, tb)
            s_cross = phi0 / np.where(phi0 != phim, phi0 - phim, 1.0)
            crossing = ((volts[idx] != 0.0) & (f_min[idx] > 0.0) & (phi0 != phim) & (s_cross >= 0.0)
                        & (s_cross < 2.0) & np.isfinite(g_mid))
            g_star = np.clip(gap + s_cross * (g_mid - gap), g_min[idx], g_max[idx])
            near = np.abs(g_star - gap) <= EVENT_GAP_TOL_M
            # drift towards the threshold from both sides (sliding): the device holds there
            hold = crossing & near & (drift_start * ai * (r_bwd + r_dis - r_fwd) < 0.0)
            g_cut = g_event[idx]
            pending = np.isfinite(g_cut) & (dt == h_lim[idx])
            cut = crossing & ~near & ~pending
            if cut.any():
                # the secant on |E(g)| - F_min alone (the cell solved at each estimate) from the start
                g_a, phi_a, g_b = gap, phi0, g_star
                for _ in range(EVENT_SECANT_ITER):
                    vc_b, _, _, _, bad_b = cell_solve_(volts[idx], g_b, tb, share[idx].copy())
                    phi_b = field_excess(vc_b, g_b, tb)
                    den = phi_b - phi_a
                    ok = cut & ~bad_b & (den != 0.0) & np.isfinite(phi_b)
                    g_n = np.clip(g_b - phi_b * (g_b - g_a) / np.where(ok, den, 1.0), g_min[idx], g_max[idx])
                    g_a, phi_a, g_b = g_b, phi_b, np.where(ok, g_n, g_b)
                g_star = np.where(cut, g_b, g_star)
                # the time the mean drift takes to get there
                s_cross = np.where(cut, (g_star - gap) / np.where(g_mid != gap, g_mid - gap, 1.0), s_cross)
                cut = cut & (s_cross > 0.0) & (s_cross < 2.0)
            total = mean_fwd + mean_bwd + mean_dis
        overflow = ~(total <= np.finfo(float).max)
        hot_end = ~(temp_new <= ci)
        # past the ceiling (the midpoint power exceeded the first estimate): again at half the step
        retry = (fail == 0) & ~overflow & hot_end & (ti > 0.0) & ~last & (dt > CEILING_MIN_STEP * ti)
        h_lim[idx] = np.where(retry, 0.5 * dt, np.inf)
        # a step heading past the threshold is taken again, ending where the secant meets it
        cut = cut & (fail == 0) & ~retry & ~overflow & ~last
        h_lim[idx] = np.where(cut, 0.5 * s_cross * dt, h_lim[idx])
        g_event[idx] = np.where(cut, g_star, np.nan)
        fail = np.where(fail == 0, np.where(overflow, RATE_OVERFLOW, np.where(hot_end & ~retry, THERMAL_CEILING, 0)),
                        fail).astype(np.uint8)
        # a step sized as held (its gap bound waived) whose device no longer holds is taken again at the
        # gap bound
        lost = held[idx] & ~hold & ~cut & (dt > h_gap) & (fail == 0) & ~retry & ~overflow & ~last
        h_lim[idx] = np.where(lost, h_gap, h_lim[idx])
        retry = retry | cut | lost
        go = (fail == 0) & ~retry
        # a held device sits at the threshold for the whole step: its power, and so its temperature and
        # the energy delivered, are those at the start, not at the midpoint the drift would have reached
        sits = hold & ~pending
        temp_new = np.where(sits, t_ss_start + (temp - t_ss_start) * decay_half * decay_half, temp_new)
        current = np.where(sits, current_start, current)
        held[idx] = np.where(go, sits, held[idx] & ~lost)
        if rng is None:
            n_fwd, n_bwd, n_dis = mean_fwd, mean_bwd, mean_dis
        else:
            n_fwd, n_bwd, n_dis = (np.zeros(idx.size) for _ in range(3))
            n_fwd[go] = rng.poisson(mean_fwd[go])
            n_bwd[go] = rng.poisson(mean_bwd[go])
            n_dis[go] = rng.poisson(mean_dis[go])
        gi = idx[go]
        # the cut step ends at the located crossing (plus its hops' deviation from their means); a held
        # device stays at the threshold, refined to the secant's estimate of it
        noise_dev = (n_bwd + n_dis - n_fwd) - (mean_bwd + mean_dis - mean_fwd)
        mean_end = np.where(pending, g_cut - gap, (mean_bwd + mean_dis - mean_fwd))
        step_m = np.where(pending, mean_end + (ai / mi) * noise_dev, (ai / mi) * (n_bwd + n_dis - n_fwd))
        step_m = np.where(hold & ~pending, g_star - gap, step_m)
        state.gap_m[gi] = np.clip(gap[go] + step_m[go], g_min[gi], g_max[gi])
        # dissolution relaxes the tip further; under bias the forward hops, which bring vacancies to the
        # tip, rebuild it (each site hopped into, probability 1 − exp(−N+/M), is repopulated); δ stays 0
        # where b = 0
        relaxed = relax[go] + (ai[go] / mi[go]) * n_dis[go]
        if voltage_v != 0.0:
            relaxed = relaxed * np.exp(-n_fwd[go] / mi[go])
        on = tb[go, COL["dissolution_barrier_slope_ev_per_m"]] > 0.0
        state.relaxation_m[gi] = np.where(on, relaxed, relax[go])
        state.temperature_k[gi] = temp_new[go]
        peak[gi] = np.maximum(peak[gi], temp_new[go])
        energy[gi] += np.abs(volts[gi] * current[go]) * dt[go]
        elapsed[gi] += dt[go]
        steps[idx[go | retry]] += 1.0
        at_ceiling = go & (temp_new >= ci - CEILING_BAND_K)
        flags[idx] |= fail
        flags[idx] |= np.where(at_ceiling, THERMAL_CEILING, 0).astype(np.uint8)
        flags[idx] |= np.where(forced, STEP_BUDGET, 0).astype(np.uint8)
        finished = ~retry & (~go | last | at_ceiling | (elapsed[idx] >= duration_s))
        active[idx[finished]] = False
    return peak, energy


def run_cycle_reference(segments: np.ndarray, state: DeviceState, table: np.ndarray,
                        rng: np.random.Generator | None, flags: np.ndarray | None = None, conduction: Any = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One cycle of (pulse, idle, read) segment triples for all devices.

    ``segments`` has rows (voltage V, duration s, kind). Returns per pulse:
    conductance read (S), peak temperature (K), pulse energy (J), gap after the read (m);
    ``flags`` (device, pulse), if given, receives each pulse's ``memdrift.data.flags`` bits
    (of its pulse, idle and read segments); ``conduction``: a user law in place of the built-in one.
    """
    n_pulses = int(np.sum(segments[:, 2] == PULSE))
    n = state.gap_m.size
    conductance = np.empty((n, n_pulses))
    peak = np.empty((n, n_pulses))
    energy = np.empty((n, n_pulses))
    gap = np.empty((n, n_pulses))
    pulse_flags = np.zeros((n, n_pulses), dtype=np.uint8)
    scratch = np.zeros(n, dtype=np.uint8)
    pulse = -1
    for voltage, duration, kind in segments:
        seg_flags = pulse_flags[:, pulse] if pulse >= 0 else scratch
        if kind == PULSE:
            pulse += 1
            seg_flags = pulse_flags[:, pulse]
            peak[:, pulse], energy[:, pulse] = run_segment(voltage, duration, state, table, rng, flags=seg_flags,
                                                            conduction=conduction)
        elif kind == READ:
            conductance[:, pulse] = read_conductance(voltage, state, table, conduction)
            seg_flags |= np.where(np.isnan(conductance[:, pulse]), SOLVE_NOT_CONVERGED, 0).astype(np.uint8)
            run_segment(voltage, duration, state, table, rng, read=True, flags=seg_flags, conduction=conduction)
            gap[:, pulse] = state.gap_m
        else:
            run_segment(0.0, duration, state, table, rng, flags=seg_flags, conduction=conduction)
        if pulse >= 0:
            pulse_flags[:, pulse] = seg_flags
    if flags is not None:
        flags[...] = pulse_flags
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
        _, i_now = cell_voltage(np.array([amplitude_v]), state.gap_m, table, state.write_share)
        current[k] = i_now[0]
    return {"time_s": times, "temperature_k": temperature, "gap_m": gap, "current_a": current}
