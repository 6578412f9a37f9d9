/* Filament kernel over a batch of devices in lockstep (included by _filament.pyx).
 *
 * The equations and step control are those of memdrift/emulator/filament.py (the NumPy twin);
 * see its docstring. What this file adds is the arrangement: MD_LANES devices advance through
 * a segment together, one sub-step (and one Newton iteration) at a time, each lane with its own
 * state, step size and stream. A sub-step of one device is a long chain of dependent
 * transcendental calls and divisions, so a device alone keeps the core waiting on latency;
 * independent chains side by side fill it, and the plain loops over lanes below are
 * written so that the compiler turns them into SIMD code (the function is cloned for AVX-512,
 * AVX2 and baseline x86-64 and picked at load time). A lane that has finished its segment, or a
 * padding lane of a short batch, computes along but commits nothing, so a device's results do
 * not depend on which devices share its batch, on the batch size or on the thread count.
 *
 * Arithmetic is plain IEEE double without contraction (the extension is built with
 * -ffp-contract=off), so every clone gives the same bits. md_exp is a polynomial exp that
 * vectorises (libm's does not); the hop counts stay with the shared scalar stream sampler
 * (_streams.pxd), passed in as a function pointer, so a device draws exactly as before.
 */
#ifndef MEMDRIFT_FILAMENT_LANES_H
#define MEMDRIFT_FILAMENT_LANES_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Lanes per batch: two AVX-512 vectors per quantity, so that two independent chains overlap.
 * Measured (one thread, 20,000 devices, ramp cycle): 4 lanes 728, 8 lanes 514, 16 lanes 440,
 * 32 lanes 431 ns per device-pulse. */
#define MD_LANES 16
#define MD_BOLTZMANN_EV 8.617333262e-5
#define MD_NEWTON_MAX_ITER 60
#define MD_NEWTON_RTOL 1e-13

/* Column indices of the per-device parameter table: keep in step with
 * memdrift.emulator.filament.COLUMNS (run_cycle checks the count; the twin-agreement test
 * would see a swapped column). */
enum {
    C_A = 0, C_NU0, C_EA, C_Z, C_TOX, C_GAMMA0, C_BETA, C_ALPHA, C_FMIN, C_M, C_I0, C_G0, C_V0, C_RS,
    C_RTH, C_TAU, C_T0, C_GMIN, C_GMAX, C_NUR, C_EAR, C_CAP, C_MAXSTEPS, C_BETA_R, C_GAMMA0_R, N_COLUMNS
};

enum { K_PULSE = 0, K_IDLE = 1, K_READ = 2 };

/* Per-device state row: gap m, temperature K, V_cell/V of the last write, sub-steps taken,
 * V_cell/V of the last read (engine.kernel_state). */
enum { S_GAP = 0, S_TEMP, S_WRATIO, S_SUBSTEPS, S_RRATIO, N_STATE };

typedef double (*md_hops_fn)(double mean, uint64_t key, uint64_t *counter);

#define MD_INLINE static inline __attribute__((always_inline))
#define LANES for (int l = 0; l < MD_LANES; ++l)

#ifndef MD_CLONES /* defined empty to build one instruction set only (to compare clones) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MD_CLONES
#endif
#endif

/* exp(x) to about 1 ulp: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite, the high half of ln2
 * exact in k ln2), e^r by its Taylor series to r^13 (truncation < 4e-18 relative) evaluated
 * in Estrin's scheme (short dependency chains), times 2^(k-1) * 2 built from the exponent bits
 * (the split keeps 2^k representable up to x = 709.78). Overflow gives +inf as libm does;
 * results below 2^-1022 (x < -708) are flushed to 0, where libm returns subnormals: no
 * quantity of this model can tell 1e-308 from 0 (the thermal decay, the one exp that reaches
 * there, multiplies a temperature difference of at most a few thousand kelvin). NaN passes. */
MD_INLINE double md_exp(double x)
{
    const double shifter = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    double xc = x > 709.79 ? 709.79 : x;
    xc = xc < -708.0 ? -708.0 : xc;
    double t = xc * 1.4426950408889634 + shifter;
    double kf = t - shifter;
    double r = (xc - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10;
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double q0 = (1.0 + r) + (1.0 / 2.0 + r * (1.0 / 6.0)) * r2;
    double q1 = (1.0 / 24.0 + r * (1.0 / 120.0)) + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2;
    double q2 = (1.0 / 40320.0 + r * (1.0 / 362880.0)) + (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) * r2;
    double q3 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
    double p = (q0 + q1 * r4) + (q2 + q3 * r4) * r8;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    /* the low bits of t hold k in two's complement; the add and shift put k - 1 + 1023 into
     * the exponent field and push the rest out */
    bits = (bits + 1022u) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    double y = (p * scale) * 2.0;
    y = x > 709.782712893384 ? INFINITY : y;
    y = x < -708.0 ? 0.0 : y;
    return y;
}

/* log(x) within 4 ulp for x > 0 (tested; the power it serves needs no more): x = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(f),
 * f = (m - 1)/(m + 1), |f| <= 0.172, by its series to f^21 (truncation < 3e-17 relative). The
 * exponent goes to a double by the same shifter trick as in md_exp, which needs no int64
 * conversion instruction (AVX2 has none). 0 gives -inf, a negative x NaN, +inf +inf, NaN NaN. */
MD_INLINE double md_log(double x)
{
    const double shifter = 6755399441055744.0;
    int tiny = x < 2.2250738585072014e-308;
    double xs = tiny ? x * 4503599627370496.0 : x; /* subnormals: scale by 2^52 first */
    uint64_t bits;
    memcpy(&bits, &xs, sizeof bits);
    uint64_t biased = (bits >> 52) & 0x7ffu;
    uint64_t mbits = (bits & 0x000fffffffffffffu) | 0x3ff0000000000000u;
    double mant;
    memcpy(&mant, &mbits, sizeof mant);
    int high = mant > 1.4142135623730951;
    mant = high ? 0.5 * mant : mant;
    uint64_t ebits = 0x4338000000000000u + biased - 1023u + (high ? 1u : 0u);
    double e;
    memcpy(&e, &ebits, sizeof e);
    e = e - shifter - (tiny ? 52.0 : 0.0);
    double f = (mant - 1.0) / (mant + 1.0), f2 = f * f, f4 = f2 * f2, f8 = f4 * f4;
    double q0 = (1.0 + f2 * (1.0 / 3.0)) + (1.0 / 5.0 + f2 * (1.0 / 7.0)) * f4;
    double q1 = (1.0 / 9.0 + f2 * (1.0 / 11.0)) + (1.0 / 13.0 + f2 * (1.0 / 15.0)) * f4;
    double q2 = (1.0 / 17.0 + f2 * (1.0 / 19.0)) + (1.0 / 21.0) * f4;
    double series = (q0 + q1 * f8) + q2 * (f8 * f8);
    double y = e * 6.93147180369123816490e-01 + (2.0 * f * series + e * 1.90821492927058770002e-10);
    y = x == 0.0 ? -INFINITY : y;
    y = x < 0.0 ? NAN : y;
    y = x == INFINITY ? INFINITY : y;
    y = x != x ? x : y; /* NaN */
    return y;
}

/* sinh and cosh for u >= 0 from one exp; below u = 0.5, where e - 1/e would cancel digits,
 * their series to u^15 / u^14 (next terms < 4e-20 relative). Branch-free, so it vectorises. */
MD_INLINE void md_sinh_cosh(double u, double *s, double *c)
{
    double e = md_exp(u);
    double inv = 1.0 / e;
    double u2 = u * u;
    double ss = u * (1.0 + u2 * (1.0 / 6.0) * (1.0 + u2 * (1.0 / 20.0) * (1.0 + u2 * (1.0 / 42.0) *
                (1.0 + u2 * (1.0 / 72.0) * (1.0 + u2 * (1.0 / 110.0) * (1.0 + u2 * (1.0 / 156.0) *
                (1.0 + u2 * (1.0 / 210.0))))))));
    double cs = 1.0 + u2 * 0.5 * (1.0 + u2 * (1.0 / 12.0) * (1.0 + u2 * (1.0 / 30.0) * (1.0 + u2 * (1.0 / 56.0) *
                (1.0 + u2 * (1.0 / 90.0) * (1.0 + u2 * (1.0 / 132.0) * (1.0 + u2 * (1.0 / 182.0)))))));
    *s = u < 0.5 ? ss : 0.5 * (e - inv);
    *c = u < 0.5 ? cs : 0.5 * (e + inv);
}

/* The batch's parameters, one array per column so that a column is contiguous over lanes. */
typedef struct {
    double p[N_COLUMNS][MD_LANES];
    double inv_v0[MD_LANES];
    double gap[MD_LANES], temp[MD_LANES], wratio[MD_LANES], rratio[MD_LANES], substeps[MD_LANES];
    uint64_t key[MD_LANES], counter[MD_LANES];
    int64_t valid[MD_LANES];
} md_batch;

/* V_cell of every lane with V = V_cell + I R_s, I = I0 exp(-g/g0) sinh(V_cell/V0): safeguarded
 * Newton on |V| from ratio * |V|, stopped once the error bound step^2/(2 V0) of the step just
 * taken is below half the tolerance (f''/f' < 1/V0). Writes I and, if slope is not NULL,
 * d|V_cell|/dg at the solution (twin: filament.cell_voltage, cell_voltage_slope). Lanes with
 * mask 0 iterate no further than their start. */
MD_INLINE void md_solve_cell(const md_batch *B, double volts, const double *gap, const double *ratio,
                             const int64_t *mask, double *vc, double *cur, double *slope)
{
    double pref[MD_LANES], x[MD_LANES], lo[MD_LANES], hi[MD_LANES], k[MD_LANES];
    double sh[MD_LANES], ch[MD_LANES], step[MD_LANES];
    int64_t done[MD_LANES], conv[MD_LANES];
    const double *rs = B->p[C_RS], *v0 = B->p[C_V0], *inv_v0 = B->inv_v0;
    if (volts == 0.0) {
        /* zero bias: V_cell = 0 and I = 0 exactly */
        LANES {
            vc[l] = 0.0;
            cur[l] = 0.0;
        }
        if (slope != NULL) LANES slope[l] = 0.0;
        return;
    }
    const double sign = volts > 0.0 ? 1.0 : -1.0;
    const double target = fabs(volts);
    LANES {
        pref[l] = B->p[C_I0][l] * md_exp(-gap[l] / B->p[C_G0][l]);
        double r = ratio[l] > 0.0 ? ratio[l] : 0.0;
        r = r < 1.0 ? r : 1.0;
        x[l] = rs[l] == 0.0 ? target : r * target;
        lo[l] = 0.0;
        hi[l] = target;
        k[l] = rs[l] * pref[l];
        done[l] = (mask[l] == 0) | (rs[l] == 0.0);
        conv[l] = 0;
        sh[l] = 0.0;
        ch[l] = 0.0;
        step[l] = 0.0;
    }
    for (int it = 0; it < MD_NEWTON_MAX_ITER; ++it) {
        int64_t pending = 0;
        LANES pending |= done[l] == 0;
        if (!pending)
            break;
        LANES {
            double u = x[l] * inv_v0[l], s, c;
            md_sinh_cosh(u, &s, &c);
            double f = x[l] + k[l] * s - target;
            double fp = 1.0 + (k[l] * inv_v0[l]) * c;
            double st = f / fp;
            int64_t fin = st * st <= v0[l] * MD_NEWTON_RTOL * target;
            double lo_n = f <= 0.0 ? x[l] : lo[l];
            double hi_n = f <= 0.0 ? hi[l] : x[l];
            double xn = x[l] - st;
            xn = (!fin & ((xn <= lo_n) | (xn >= hi_n))) ? 0.5 * (lo_n + hi_n) : xn;
            int64_t keep = done[l];
            x[l] = keep ? x[l] : xn;
            lo[l] = keep ? lo[l] : lo_n;
            hi[l] = keep ? hi[l] : hi_n;
            sh[l] = keep ? sh[l] : s;
            ch[l] = keep ? ch[l] : c;
            step[l] = keep ? step[l] : st;
            conv[l] = keep ? conv[l] : fin & (u >= 0.5);
            done[l] = keep | fin;
        }
    }
    int64_t fresh = 0;
    LANES fresh |= conv[l] == 0;
    if (fresh) {
        /* a lane that stopped without a converged iterate (R_s = 0, the 60-iteration limit, u < 0.5)
         * takes sinh and cosh at its final x */
        LANES {
            double s, c;
            md_sinh_cosh(x[l] * inv_v0[l], &s, &c);
            sh[l] = conv[l] ? sh[l] : s;
            ch[l] = conv[l] ? ch[l] : c;
            step[l] = conv[l] ? step[l] : 0.0;
        }
    }
    LANES {
        /* sinh(u - d) = sinh u cosh d - cosh u sinh d from the last iterate; d <= 1e-5 (step^2 <=
         * V0 tol |V|), so the series to d^3 is exact in double (d = 0: unchanged) */
        double d = step[l] * inv_v0[l];
        double even = 1.0 + 0.5 * d * d, odd = d * (1.0 + d * d / 6.0);
        double s = sh[l] * even - ch[l] * odd;
        double c = ch[l] * even - sh[l] * odd;
        cur[l] = sign * pref[l] * s;
        vc[l] = sign * x[l];
        if (slope != NULL)
            slope[l] = rs[l] * pref[l] * s / (B->p[C_G0][l] * (1.0 + rs[l] * pref[l] * c * inv_v0[l]));
    }
}

/* γ(g) = max(γ0 − β (g / 1 nm)^α, 0); under RESET bias (V < 0) γ0 + δ_R and β + β_R. The power
 * as exp(α log(g / 1 nm)): libm's pow does not vectorise and took a fifth of the kernel. */
MD_INLINE void md_enhancement(const md_batch *B, const double *gap, int reset, double *gamma)
{
    LANES {
        double gamma0 = reset ? B->p[C_GAMMA0][l] + B->p[C_GAMMA0_R][l] : B->p[C_GAMMA0][l];
        double beta = reset ? B->p[C_BETA][l] + B->p[C_BETA_R][l] : B->p[C_BETA][l];
        double g = beta == 0.0 ? gamma0 : gamma0 - beta * md_exp(B->p[C_ALPHA][l] * md_log(gap[l] / 1e-9));
        gamma[l] = g > 0.0 ? g : 0.0;
    }
}

/* Hop rates (1/s) of every lane: forward (shrinks the gap), backward, dissolution, at cell
 * voltage vc, field enhancement gamma and temperature temp. biased = 0: zero bias, no tilt. */
MD_INLINE void md_rates(const md_batch *B, int biased, const double *vc, const double *gamma, const double *temp,
                        double *fwd, double *bwd, double *dis)
{
    if (!biased) {
        LANES {
            double kt = MD_BOLTZMANN_EV * temp[l];
            double base = B->p[C_NU0][l] * md_exp(-B->p[C_EA][l] / kt);
            fwd[l] = base;
            bwd[l] = base;
            dis[l] = B->p[C_NUR][l] * md_exp(-B->p[C_EAR][l] / kt);
        }
        return;
    }
    LANES {
        double field = gamma[l] * vc[l] / B->p[C_TOX][l];
        field = fabs(field) < B->p[C_FMIN][l] ? 0.0 : field;
        double kt = MD_BOLTZMANN_EV * temp[l];
        double base = B->p[C_NU0][l] * md_exp(-B->p[C_EA][l] / kt);
        double tilt = md_exp(B->p[C_Z][l] * B->p[C_A][l] * field / (2.0 * MD_BOLTZMANN_EV * temp[l]));
        fwd[l] = base * tilt;
        bwd[l] = base / tilt;
        dis[l] = B->p[C_NUR][l] * md_exp(-B->p[C_EAR][l] / kt);
    }
}

/* One constant-voltage segment for every valid lane: adaptive midpoint tau-leaps (twin:
 * filament.run_segment). peak and energy receive each lane's peak temperature and delivered
 * energy; first_current (or NULL) the current of the first sub-step, i.e. the reading at the
 * gap and warm start the segment was entered with. */
MD_INLINE void md_segment(md_batch *B, double volts, double duration, double *ratio, int noise, md_hops_fn hops,
                          double *peak, double *energy, double *first_current)
{
    double elapsed[MD_LANES], steps[MD_LANES];
    int64_t active[MD_LANES];
    const int biased = volts != 0.0, reset = volts < 0.0;
    const double *a = B->p[C_A], *m = B->p[C_M], *cap = B->p[C_CAP], *tau = B->p[C_TAU];
    const double *t0 = B->p[C_T0], *rth = B->p[C_RTH], *gmin = B->p[C_GMIN], *gmax = B->p[C_GMAX];
    LANES {
        peak[l] = B->temp[l];
        energy[l] = 0.0;
        elapsed[l] = 0.0;
        steps[l] = 0.0;
        active[l] = B->valid[l];
    }
    if (duration <= 0.0)
        return;
    for (int first = 1;; first = 0) {
        int64_t any = 0;
        LANES any |= active[l];
        if (!any)
            return;
        double vc[MD_LANES], cur[MD_LANES], dvdg[MD_LANES], gamma[MD_LANES], temp_mid[MD_LANES];
        double fwd[MD_LANES], bwd[MD_LANES], dis[MD_LANES], dt[MD_LANES], decay[MD_LANES];
        double g_mid[MD_LANES], ratio_mid[MD_LANES];
        int64_t last[MD_LANES];
        md_solve_cell(B, volts, B->gap, ratio, active, vc, cur, dvdg);
        if (first && first_current != NULL) LANES first_current[l] = cur[l];
        if (biased) LANES ratio[l] = active[l] ? vc[l] / volts : ratio[l];
        /* the step is sized with the rates at the hotter of the present and the steady-state
         * temperature, so that runaway heating is resolved */
        double hot[MD_LANES], t_ss[MD_LANES];
        LANES {
            t_ss[l] = t0[l] + vc[l] * cur[l] * rth[l];
            hot[l] = B->temp[l] > t_ss[l] ? B->temp[l] : t_ss[l];
        }
        if (biased)
            md_enhancement(B, B->gap, reset, gamma);
        md_rates(B, biased, vc, gamma, hot, fwd, bwd, dis);
        LANES {
            double drift = a[l] * fabs(bwd[l] + dis[l] - fwd[l]);
            double spread = a[l] * a[l] * (fwd[l] + bwd[l] + dis[l]) / m[l];
            double rest = duration - elapsed[l];
            double h = rest;
            h = drift * h > cap[l] ? cap[l] / drift : h;
            h = spread * h > cap[l] * cap[l] ? cap[l] * cap[l] / spread : h;
            last[l] = steps[l] >= B->p[C_MAXSTEPS][l] - 1.0;
            h = last[l] ? rest : h;
            dt[l] = h;
            /* exp(-750) underflows to 0 in libm too (reads are ~800 time constants long) */
            int relaxing = (tau[l] > 0.0) & (0.5 * h < 750.0 * tau[l]);
            double safe_tau = tau[l] > 0.0 ? tau[l] : 1.0;
            decay[l] = relaxing ? md_exp(-0.5 * h / safe_tau) : 0.0;
            temp_mid[l] = t_ss[l] + (B->temp[l] - t_ss[l]) * decay[l];
        }
        /* midpoint tau-leap: rates at the state half a step ahead, the temperature relaxed
         * exactly towards the steady state */
        md_rates(B, biased, vc, gamma, temp_mid, fwd, bwd, dis);
        LANES {
            double g = B->gap[l] + 0.5 * dt[l] * a[l] * (bwd[l] + dis[l] - fwd[l]);
            g = g > gmin[l] ? g : gmin[l];
            g_mid[l] = g < gmax[l] ? g : gmax[l];
            /* Newton for the midpoint gap starts from the first solve moved along its slope */
            ratio_mid[l] = biased ? (fabs(vc[l]) + dvdg[l] * (g_mid[l] - B->gap[l])) / fabs(volts) : ratio[l];
        }
        md_solve_cell(B, volts, g_mid, ratio_mid, active, vc, cur, NULL);
        LANES {
            t_ss[l] = t0[l] + vc[l] * cur[l] * rth[l];
            temp_mid[l] = t_ss[l] + (B->temp[l] - t_ss[l]) * decay[l];
        }
        if (biased)
            md_enhancement(B, g_mid, reset, gamma);
        md_rates(B, biased, vc, gamma, temp_mid, fwd, bwd, dis);
        double n_fwd[MD_LANES], n_bwd[MD_LANES], n_dis[MD_LANES];
        LANES {
            n_fwd[l] = m[l] * fwd[l] * dt[l];
            n_bwd[l] = m[l] * bwd[l] * dt[l];
            n_dis[l] = m[l] * dis[l] * dt[l];
        }
        if (noise) {
            /* hop counts from each device's own stream, in the order the scalar kernel drew them */
            for (int l = 0; l < MD_LANES; ++l) {
                if (!active[l])
                    continue;
                n_fwd[l] = hops(n_fwd[l], B->key[l], &B->counter[l]);
                n_bwd[l] = hops(n_bwd[l], B->key[l], &B->counter[l]);
                n_dis[l] = hops(n_dis[l], B->key[l], &B->counter[l]);
            }
        }
        LANES {
            double temp_new = t_ss[l] + (B->temp[l] - t_ss[l]) * decay[l] * decay[l];
            double g = B->gap[l] + (a[l] / m[l]) * (n_bwd[l] + n_dis[l] - n_fwd[l]);
            g = g > gmin[l] ? g : gmin[l];
            g = g < gmax[l] ? g : gmax[l];
            double el = elapsed[l] + dt[l];
            int64_t on = active[l];
            B->gap[l] = on ? g : B->gap[l];
            B->temp[l] = on ? temp_new : B->temp[l];
            peak[l] = on & (temp_new > peak[l]) ? temp_new : peak[l];
            energy[l] = on ? energy[l] + fabs(volts * cur[l]) * dt[l] : energy[l];
            elapsed[l] = on ? el : elapsed[l];
            steps[l] = on ? steps[l] + 1.0 : steps[l];
            B->substeps[l] = on ? B->substeps[l] + 1.0 : B->substeps[l];
            active[l] = on & !(last[l] | (el >= duration));
        }
    }
}

/* Advance devices first .. first + n_lanes - 1 (n_lanes <= MD_LANES) through one cycle of
 * segments (rows: voltage V, duration s, kind). state and table have rows of N_STATE and
 * N_COLUMNS doubles per device; out[0..3] (conductance S, peak temperature K, pulse energy J,
 * gap after the read m) are (device, pulse) arrays with row and pulse strides in elements. */
MD_CLONES void memdrift_filament_batch(ptrdiff_t first, int n_lanes, const double *segments, ptrdiff_t n_seg,
                                       double *state, const double *table, const uint64_t *keys,
                                       uint64_t *counters, double *const *out, const ptrdiff_t *row_stride,
                                       const ptrdiff_t *pulse_stride, int noise, md_hops_fn hops)
{
    md_batch B;
    double peak[MD_LANES], energy[MD_LANES], cur[MD_LANES];
    state += first * N_STATE;
    table += first * N_COLUMNS;
    keys += first;
    counters += first;
    LANES {
        /* padding lanes repeat the last device, so they compute on sane numbers */
        int src = l < n_lanes ? l : n_lanes - 1;
        for (int c = 0; c < N_COLUMNS; ++c)
            B.p[c][l] = table[(ptrdiff_t)src * N_COLUMNS + c];
        B.inv_v0[l] = 1.0 / B.p[C_V0][l];
        const double *row = state + (ptrdiff_t)src * N_STATE;
        B.gap[l] = row[S_GAP];
        B.temp[l] = row[S_TEMP];
        B.wratio[l] = row[S_WRATIO];
        B.substeps[l] = row[S_SUBSTEPS];
        B.rratio[l] = row[S_RRATIO];
        B.key[l] = keys[src];
        B.counter[l] = counters[src];
        B.valid[l] = l < n_lanes;
    }
    ptrdiff_t pulse = -1;
    for (ptrdiff_t s = 0; s < n_seg; ++s) {
        const double volts = segments[3 * s], duration = segments[3 * s + 1];
        const int kind = (int)segments[3 * s + 2];
        if (kind == K_PULSE) {
            pulse += 1;
            md_segment(&B, volts, duration, B.wratio, noise, hops, peak, energy, NULL);
            for (int l = 0; l < n_lanes; ++l) {
                out[1][(first + l) * row_stride[1] + pulse * pulse_stride[1]] = peak[l];
                out[2][(first + l) * row_stride[2] + pulse * pulse_stride[2]] = energy[l];
            }
        } else if (kind == K_READ) {
            /* the read's first sub-step solves the cell at the same gap from the same warm start
             * as the instrument's reading, so its current is the reading */
            if (duration > 0.0) {
                md_segment(&B, volts, duration, B.rratio, noise, hops, peak, energy, cur);
            } else {
                double vc[MD_LANES];
                md_solve_cell(&B, volts, B.gap, B.rratio, B.valid, vc, cur, NULL);
            }
            for (int l = 0; l < n_lanes; ++l) {
                out[0][(first + l) * row_stride[0] + pulse * pulse_stride[0]] = cur[l] / volts;
                out[3][(first + l) * row_stride[3] + pulse * pulse_stride[3]] = B.gap[l];
            }
        } else {
            md_segment(&B, 0.0, duration, B.wratio, noise, hops, peak, energy, NULL);
        }
    }
    for (int l = 0; l < n_lanes; ++l) {
        double *row = state + (ptrdiff_t)l * N_STATE;
        row[S_GAP] = B.gap[l];
        row[S_TEMP] = B.temp[l];
        row[S_WRATIO] = B.wratio[l];
        row[S_SUBSTEPS] = B.substeps[l];
        row[S_RRATIO] = B.rratio[l];
        counters[l] = B.counter[l];
    }
}

#endif
