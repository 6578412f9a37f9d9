# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled filament kernel: one cycle of (pulse, idle, read) segments for N devices.

Same equations and step control as ``memdrift.emulator.filament`` (the NumPy
twin); see its docstring. Devices are independent, so the loop over devices runs
in parallel with OpenMP. Each device draws its hop counts from its own
counter-based stream (SplitMix64 of key and counter), which makes the output
bit-identical for any thread count.
"""

from cython.parallel cimport prange
from libc.math cimport exp, fabs, sinh, cosh, sqrt, log, floor, pow, fmax, fmin, lgamma
from libc.stdint cimport uint64_t
import numpy as np

from memdrift.ext._streams cimport poisson

cdef double BOLTZMANN_EV = 8.617333262e-5
cdef int NEWTON_MAX_ITER = 60
cdef double NEWTON_RTOL = 1e-13

# Column indices: keep in step with memdrift.emulator.filament.COLUMNS
cdef enum:
    C_A = 0
    C_NU0
    C_EA
    C_Z
    C_TOX
    C_GAMMA0
    C_BETA
    C_ALPHA
    C_FMIN
    C_M
    C_I0
    C_G0
    C_V0
    C_RS
    C_RTH
    C_TAU
    C_T0
    C_GMIN
    C_GMAX
    C_NUR
    C_EAR
    C_CAP
    C_MAXSTEPS
    C_BETA_R
    C_GAMMA0_R
    N_COLUMNS

cdef enum:
    K_PULSE = 0
    K_IDLE = 1
    K_READ = 2


def n_columns():
    return N_COLUMNS


cdef inline double solve_cell(double volts, double gap, const double* p, double ratio,
                              double* current) noexcept nogil:
    """V_cell with V = V_cell + I R_s; writes I. Safeguarded Newton on |V|, started
    from ``ratio``·|V| (the last V_cell/V of the same kind of segment)."""
    cdef double rs = p[C_RS], v0 = p[C_V0]
    cdef double pref = p[C_I0] * exp(-gap / p[C_G0])
    cdef double sign = 1.0 if volts > 0.0 else (-1.0 if volts < 0.0 else 0.0)
    cdef double target = fabs(volts)
    cdef double x = fmin(fmax(ratio, 0.0), 1.0) * target
    cdef double lo = 0.0, hi = target, f, fp, step, u, k
    cdef int it
    if rs == 0.0:
        x = target
    elif target > 0.0:
        k = rs * pref
        for it in range(NEWTON_MAX_ITER):
            u = x / v0
            f = x + k * sinh(u) - target
            fp = 1.0 + k * cosh(u) / v0
            step = f / fp
            if fabs(step) <= NEWTON_RTOL * target:
                x = x - step
                break
            if f <= 0.0:
                lo = x
            else:
                hi = x
            x = x - step
            if x <= lo or x >= hi:
                x = 0.5 * (lo + hi)
    current[0] = sign * pref * sinh(x / v0)
    return sign * x


cdef inline void rates(double vc, double gap, double temp, const double* p,
                       double* fwd, double* bwd, double* dis) noexcept nogil:
    # RESET bias (vc < 0) has its own gamma(g): gamma0 + delta_R, slope beta + beta_R
    cdef bint reset = vc < 0.0
    cdef double beta = p[C_BETA] + p[C_BETA_R] if reset else p[C_BETA]
    cdef double gamma0 = p[C_GAMMA0] + p[C_GAMMA0_R] if reset else p[C_GAMMA0]
    cdef double gamma = fmax(gamma0 - beta * pow(gap / 1e-9, p[C_ALPHA]), 0.0)
    cdef double field = gamma * vc / p[C_TOX]
    cdef double kt = BOLTZMANN_EV * temp
    cdef double base, tilt
    if fabs(field) < p[C_FMIN]:
        field = 0.0
    base = p[C_NU0] * exp(-p[C_EA] / kt)
    tilt = exp(p[C_Z] * p[C_A] * field / (2.0 * kt))
    fwd[0] = base * tilt
    bwd[0] = base / tilt
    dis[0] = p[C_NUR] * exp(-p[C_EAR] / kt)


cdef void segment(double volts, double duration, double* gap, double* temp, double* ratio,
                  const double* p, uint64_t key, uint64_t* counter, int noise,
                  double* peak, double* energy, double* substeps) noexcept nogil:
    cdef double elapsed = 0.0, steps = 0.0, dt, vc, cur, t_ss, fwd, bwd, dis, drift, spread
    cdef double a = p[C_A], m = p[C_M], cap = p[C_CAP], tau = p[C_TAU], temp_new, g
    cdef double n_fwd, n_bwd, n_dis, hot, decay_half, g_mid, vc_mid
    cdef bint last
    peak[0] = temp[0]
    energy[0] = 0.0
    if duration <= 0.0:
        return
    while True:
        vc = solve_cell(volts, gap[0], p, ratio[0], &cur)
        if volts != 0.0:
            ratio[0] = vc / volts
        t_ss = p[C_T0] + vc * cur * p[C_RTH]
        hot = fmax(temp[0], t_ss)
        rates(vc, gap[0], hot, p, &fwd, &bwd, &dis)
        drift = a * fabs(bwd + dis - fwd)
        spread = a * a * (fwd + bwd + dis) / m
        dt = duration - elapsed
        if drift * dt > cap:
            dt = cap / drift
        if spread * dt > cap * cap:
            dt = cap * cap / spread
        last = steps >= p[C_MAXSTEPS] - 1.0
        if last:
            dt = duration - elapsed
        # Midpoint tau-leap: rates at the state half a step ahead (second order in the
        # mean), with the temperature relaxed exactly towards the steady state.
        if tau > 0.0:
            decay_half = exp(-0.5 * dt / tau)
        else:
            decay_half = 0.0
        rates(vc, gap[0], t_ss + (temp[0] - t_ss) * decay_half, p, &fwd, &bwd, &dis)
        g_mid = fmin(fmax(gap[0] + 0.5 * dt * a * (bwd + dis - fwd), p[C_GMIN]), p[C_GMAX])
        vc_mid = solve_cell(volts, g_mid, p, ratio[0], &cur)
        t_ss = p[C_T0] + vc_mid * cur * p[C_RTH]
        rates(vc_mid, g_mid, t_ss + (temp[0] - t_ss) * decay_half, p, &fwd, &bwd, &dis)
        temp_new = t_ss + (temp[0] - t_ss) * decay_half * decay_half
        if noise:
            n_fwd = poisson(m * fwd * dt, key, counter)
            n_bwd = poisson(m * bwd * dt, key, counter)
            n_dis = poisson(m * dis * dt, key, counter)
        else:
            n_fwd = m * fwd * dt
            n_bwd = m * bwd * dt
            n_dis = m * dis * dt
        g = gap[0] + (a / m) * (n_bwd + n_dis - n_fwd)
        gap[0] = fmin(fmax(g, p[C_GMIN]), p[C_GMAX])
        temp[0] = temp_new
        peak[0] = fmax(peak[0], temp_new)
        energy[0] += fabs(volts * cur) * dt
        elapsed += dt
        steps += 1.0
        substeps[0] += 1.0
        if last or elapsed >= duration:
            return


def run_cycle(const double[:, ::1] segments, double[:, ::1] state, const double[:, ::1] table,
              const uint64_t[::1] keys, uint64_t[::1] counters,
              double[:, :] conductance, double[:, :] temperature_peak, double[:, :] energy, double[:, :] gap_out,
              int noise, int threads):
    """Advance every device through one cycle.

    ``state`` rows are (gap m, temperature K, V_cell/V of the last write, sub-steps
    taken, V_cell/V of the last read; the ratios warm-start Newton) and are updated
    in place; ``counters`` are the devices' stream positions, also updated. The
    output arrays are (device, pulse).
    """
    cdef Py_ssize_t n = state.shape[0], n_seg = segments.shape[0], i, s
    cdef int pulse, kind
    cdef double peak, en, cur, volts
    if state.shape[1] != 5:
        raise ValueError(f"state has {state.shape[1]} columns; the kernel expects 5")
    if table.shape[1] != N_COLUMNS:
        raise ValueError(f"parameter table has {table.shape[1]} columns; the kernel expects {N_COLUMNS}")
    if table.shape[0] != n or keys.shape[0] != n or counters.shape[0] != n:
        raise ValueError("state, table, keys and counters must have one row per device")
    if threads < 1:
        threads = 1
    for i in prange(n, nogil=True, num_threads=threads, schedule="dynamic", chunksize=64):
        # Assigned here so that Cython makes them thread-private: they are only
        # written through pointers below, which prange does not see as assignments.
        peak = 0.0
        en = 0.0
        cur = 0.0
        pulse = -1
        for s in range(n_seg):
            kind = <int>segments[s, 2]
            volts = segments[s, 0]
            if kind == K_PULSE:
                pulse = pulse + 1
                segment(volts, segments[s, 1], &state[i, 0], &state[i, 1], &state[i, 2], &table[i, 0],
                        keys[i], &counters[i], noise, &peak, &en, &state[i, 3])
                temperature_peak[i, pulse] = peak
                energy[i, pulse] = en
            elif kind == K_READ:
                solve_cell(volts, state[i, 0], &table[i, 0], state[i, 4], &cur)
                conductance[i, pulse] = cur / volts
                segment(volts, segments[s, 1], &state[i, 0], &state[i, 1], &state[i, 4], &table[i, 0],
                        keys[i], &counters[i], noise, &peak, &en, &state[i, 3])
                gap_out[i, pulse] = state[i, 0]
            else:
                segment(0.0, segments[s, 1], &state[i, 0], &state[i, 1], &state[i, 2], &table[i, 0],
                        keys[i], &counters[i], noise, &peak, &en, &state[i, 3])
