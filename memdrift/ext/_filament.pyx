# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled filament kernel: one cycle of (pulse, idle, read) segments for N devices.

Same equations and step control as ``memdrift.emulator.filament`` (the NumPy
twin); see its docstring. Devices are independent, so the loop over devices runs
in parallel with OpenMP. Each device draws its hop counts from its own
counter-based stream (SplitMix64 of key and counter), which makes the output
bit-identical for any thread count.
"""

from cython.parallel cimport prange
from libc.math cimport NAN, exp, fabs, sinh, cosh, sqrt, log, floor, pow, fmax, fmin, lgamma
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


cdef inline void sinh_cosh(double u, double* s, double* c) noexcept nogil:
    """sinh(u) and cosh(u) for u >= 0 from one exp: libm's sinh and cosh each cost an
    expm1. Below u = 0.5 the difference e - 1/e would lose digits, so libm is used there
    (the Newton iterates of this model sit at u = V_cell/V0 of a few to a few tens)."""
    cdef double e, r
    if u < 0.5:
        s[0] = sinh(u)
        c[0] = cosh(u)
        return
    e = exp(u)
    r = 1.0 / e
    s[0] = 0.5 * (e - r)
    c[0] = 0.5 * (e + r)


cdef inline double solve_cell(double volts, double gap, const double* p, double ratio,
                              double* current, double* slope) noexcept nogil:
    """V_cell with V = V_cell + I R_s; writes I. Safeguarded Newton on |V|, started
    from ``ratio``·|V| (the last V_cell/V of the same kind of segment). ``slope`` (or
    NULL) receives d|V_cell|/dg = (R_s |I| / g0) / f'(|V_cell|) at the solution (twin:
    ``cell_voltage_slope``)."""
    cdef double rs = p[C_RS], v0 = p[C_V0], inv_v0 = 1.0 / p[C_V0]
    cdef double pref, sign, target, x, lo = 0.0, hi, f, fp, step, k, kv, sh, ch, sh_last, u, d
    cdef bint converged = False
    cdef int it
    if volts == 0.0:
        # zero bias: V_cell = 0 and I = 0 exactly, no exp needed
        current[0] = 0.0
        if slope != NULL:
            slope[0] = 0.0
        return 0.0
    pref = p[C_I0] * exp(-gap / p[C_G0])
    sign = 1.0 if volts > 0.0 else -1.0
    target = fabs(volts)
    hi = target
    x = fmin(fmax(ratio, 0.0), 1.0) * target
    if rs == 0.0:
        x = target
    else:
        k = rs * pref
        kv = k * inv_v0
        for it in range(NEWTON_MAX_ITER):
            u = x * inv_v0
            sinh_cosh(u, &sh, &ch)
            f = x + k * sh - target
            fp = 1.0 + kv * ch
            step = f / fp
            # after this step the error is at most step^2 f''/(2 f') < step^2 / (2 V0)
            # (f'' / f' = (k/V0^2) sinh / (1 + (k/V0) cosh) < 1/V0), so stop once that
            # is below half the tolerance instead of taking one more step to see it
            if step * step <= v0 * NEWTON_RTOL * target:
                x = x - step
                converged = u >= 0.5
                break
            if f <= 0.0:
                lo = x
            else:
                hi = x
            x = x - step
            if x <= lo or x >= hi:
                x = 0.5 * (lo + hi)
    if converged:
        # sinh(u - d) = sinh u cosh d - cosh u sinh d from the last iterate; d <= 1e-5
        # here (step^2 <= V0 tol |V|), so the series to d^3 is exact in double
        d = step * inv_v0
        sh_last = sh
        sh = sh * (1.0 + 0.5 * d * d) - ch * d * (1.0 + d * d / 6.0)
        ch = ch * (1.0 + 0.5 * d * d) - sh_last * d * (1.0 + d * d / 6.0)
    else:
        sinh_cosh(x * inv_v0, &sh, &ch)
    current[0] = sign * pref * sh
    if slope != NULL:
        slope[0] = rs * pref * sh / (p[C_G0] * (1.0 + rs * pref * ch * inv_v0))
    return sign * x


cdef struct Arrhenius:
    # exp(-Ea/kT) factors of the last temperature seen (NaN: none yet)
    double temp
    double base
    double dis


cdef inline void arrhenius(double temp, const double* p, Arrhenius* th) noexcept nogil:
    """ν0 exp(−Ea/kT) and ν_r exp(−Ea_r/kT), recomputed only when T changed (the
    step-size and midpoint rates often share T, e.g. in reads and relaxed gaps)."""
    cdef double kt
    if temp == th.temp:
        return
    kt = BOLTZMANN_EV * temp
    th.temp = temp
    th.base = p[C_NU0] * exp(-p[C_EA] / kt)
    th.dis = p[C_NUR] * exp(-p[C_EAR] / kt)


cdef inline double enhancement(double gap, const double* p, bint reset) noexcept nogil:
    """γ(g) = max(γ0 − β (g / 1 nm)^α, 0); under RESET bias (V < 0, hence V_cell < 0) its own
    offset and slope, γ0 + δ_R and β + β_R. No pow() when the slope is 0."""
    cdef double gamma0 = p[C_GAMMA0] + p[C_GAMMA0_R] if reset else p[C_GAMMA0]
    cdef double beta = p[C_BETA] + p[C_BETA_R] if reset else p[C_BETA]
    if beta == 0.0:
        return fmax(gamma0, 0.0)
    return fmax(gamma0 - beta * pow(gap / 1e-9, p[C_ALPHA]), 0.0)


cdef inline void rates(double vc, double gamma, double temp, const double* p, Arrhenius* th,
                       double* fwd, double* bwd, double* dis) noexcept nogil:
    """Hop rates at cell voltage ``vc``, field enhancement ``gamma`` = γ(g) and ``temp``."""
    cdef double field = gamma * vc / p[C_TOX]
    cdef double tilt
    if fabs(field) < p[C_FMIN]:
        field = 0.0
    arrhenius(temp, p, th)
    if field == 0.0:
        # exp(0) = 1: zero bias (idle gaps) needs no tilt
        fwd[0] = th.base
        bwd[0] = th.base
    else:
        tilt = exp(p[C_Z] * p[C_A] * field / (2.0 * BOLTZMANN_EV * temp))
        fwd[0] = th.base * tilt
        bwd[0] = th.base / tilt
    dis[0] = th.dis


cdef void segment(double volts, double duration, double* gap, double* temp, double* ratio,
                  const double* p, uint64_t key, uint64_t* counter, int noise,
                  double* peak, double* energy, double* substeps, double* first_current) noexcept nogil:
    """One constant-voltage segment; ``first_current`` (or NULL) receives I of the
    first sub-step, i.e. at the gap and warm start the segment was entered with."""
    cdef double elapsed = 0.0, steps = 0.0, dt, vc, cur, t_ss, fwd, bwd, dis, drift, spread
    cdef double a = p[C_A], m = p[C_M], cap = p[C_CAP], tau = p[C_TAU], temp_new, g
    cdef double n_fwd, n_bwd, n_dis, hot, decay_half, g_mid, vc_mid, gamma, dvdg, ratio_mid
    cdef bint last
    cdef Arrhenius th
    th.temp = NAN
    th.base = 0.0
    th.dis = 0.0
    peak[0] = temp[0]
    energy[0] = 0.0
    if duration <= 0.0:
        return
    while True:
        vc = solve_cell(volts, gap[0], p, ratio[0], &cur, &dvdg)
        if first_current != NULL and steps == 0.0:
            first_current[0] = cur
        if volts != 0.0:
            ratio[0] = vc / volts
        t_ss = p[C_T0] + vc * cur * p[C_RTH]
        hot = fmax(temp[0], t_ss)
        # γ(g) only matters under bias (the field is γ V_cell / t_ox, and V_cell = 0 at V = 0)
        gamma = enhancement(gap[0], p, volts < 0.0) if volts != 0.0 else 0.0
        rates(vc, gamma, hot, p, &th, &fwd, &bwd, &dis)
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
        if tau > 0.0 and 0.5 * dt < 750.0 * tau:
            decay_half = exp(-0.5 * dt / tau)
        else:
            # exp(-750) underflows to exactly 0 (reads are ~800 time constants long)
            decay_half = 0.0
        rates(vc, gamma, t_ss + (temp[0] - t_ss) * decay_half, p, &th, &fwd, &bwd, &dis)
        g_mid = fmin(fmax(gap[0] + 0.5 * dt * a * (bwd + dis - fwd), p[C_GMIN]), p[C_GMAX])
        # Newton for the midpoint gap starts from the first solve moved along its slope
        ratio_mid = ratio[0]
        if volts != 0.0:
            ratio_mid = (fabs(vc) + dvdg * (g_mid - gap[0])) / fabs(volts)
        vc_mid = solve_cell(volts, g_mid, p, ratio_mid, &cur, NULL)
        t_ss = p[C_T0] + vc_mid * cur * p[C_RTH]
        gamma = enhancement(g_mid, p, volts < 0.0) if volts != 0.0 else 0.0
        rates(vc_mid, gamma, t_ss + (temp[0] - t_ss) * decay_half, p, &th, &fwd, &bwd, &dis)
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
                        keys[i], &counters[i], noise, &peak, &en, &state[i, 3], NULL)
                temperature_peak[i, pulse] = peak
                energy[i, pulse] = en
            elif kind == K_READ:
                # the read's first sub-step solves the cell at the same gap from the same
                # warm start as the instrument's reading, so its current is the reading
                if segments[s, 1] > 0.0:
                    segment(volts, segments[s, 1], &state[i, 0], &state[i, 1], &state[i, 4], &table[i, 0],
                            keys[i], &counters[i], noise, &peak, &en, &state[i, 3], &cur)
                else:
                    solve_cell(volts, state[i, 0], &table[i, 0], state[i, 4], &cur, NULL)
                conductance[i, pulse] = cur / volts
                gap_out[i, pulse] = state[i, 0]
            else:
                segment(0.0, segments[s, 1], &state[i, 0], &state[i, 1], &state[i, 2], &table[i, 0],
                        keys[i], &counters[i], noise, &peak, &en, &state[i, 3], NULL)
