/* The lane kernel for one batch width (included by _filament_lanes.h once per width, with
 * MD_LANES the width and MD_W(name) the name's width-suffixed form). Per lane the arithmetic is
 * the same at every width, so a device gives the same bits whichever width ran it. */

/* The batch's parameters, one array per column so that a column is contiguous over lanes. */
typedef struct {
    double p[N_COLUMNS][MD_LANES];
    double inv_v0[MD_LANES], inv_g0[MD_LANES], ln_v0[MD_LANES], ln_i0[MD_LANES], ln_rs_i0[MD_LANES];
    double gap[MD_LANES], temp[MD_LANES], wshare[MD_LANES], rshare[MD_LANES], substeps[MD_LANES], relax[MD_LANES];
    uint64_t key[MD_LANES], counter[MD_LANES];
    int64_t valid[MD_LANES], flag[MD_LANES];
} MD_W(md_batch);

/* The cell solve of every lane: V = V_cell + I R_s with I = I0 exp(-g/g0) sinh(V_cell/V0).
 *
 * Unknown: w = ln y, y = I R_s = |V| - |V_cell| the voltage across R_s. With k = R_s I0 exp(-g/g0)
 * the equation is h(w) = e^w + V0 asinh(e^w / k) - |V| = 0, and h is increasing and convex in w
 * (both terms are), so Newton from the right of the root descends to it monotonically and a step
 * from the left lands on the right of it: iterates are clamped to w <= ln|V| (where h > 0) and
 * need no lower bracket. Unlike Newton on V_cell, whose step is ~V0 wherever sinh dominates (60
 * iterations did not reach the root above ~3 V at V0 = 19 mV), a step in w is the step of Newton
 * on ln y where e^w dominates and exact where the logarithmic term does: at most ~17 iterations
 * over |V| in [1e-4, 10] V, V0 in [1e-3, 10] V, ln k in [-700, 20] from the cold start, 2-3 warm.
 * h''/h' <= 1, so after a step d the error in w (relative in I) is below d^2/2: a lane stops once
 * d^2 <= MD_SOLVE_TOL and takes that last step. asinh(z), z = e^(w - ln k), is taken as
 * log1p(z + z^2/(1 + sqrt(1 + z^2))) below z = 1 and as ln z + ln(1 + sqrt(1 + z^-2)) above, with
 * one md_log either way and no overflow for any z. R_s = 0 lanes have no unknown (V_cell = V).
 *
 * In: the lanes' ln(y/|V|) warm start (lnshare), updated to the solution for lanes in mask. Out:
 * V_cell (signed), I (signed), bad (mask & no converged finite solution), and, if dwdg is not
 * NULL, dw/dg at the solution (twin: filament.cell_solve). */
MD_INLINE void MD_W(md_solve_cell)(const MD_W(md_batch) *B, double volts, const double *gap, double *lnshare,
                             const int64_t *mask, double *vc, double *cur, double *dwdg, int64_t *bad)
{
    double w[MD_LANES], lnk[MD_LANES], yf[MD_LANES], af[MD_LANES], rf[MD_LANES], hpf[MD_LANES], df[MD_LANES];
    double lo[MD_LANES], hi[MD_LANES], d_old[MD_LANES];
    int64_t done[MD_LANES], conv[MD_LANES], direct[MD_LANES];
    const double *rs = B->p[C_RS], *v0 = B->p[C_V0];
    if (volts == 0.0) {
        /* zero bias: V_cell = 0 and I = 0 exactly */
        LANES {
            vc[l] = 0.0;
            cur[l] = 0.0;
            bad[l] = 0;
        }
        if (dwdg != NULL) LANES dwdg[l] = 0.0;
        return;
    }
    const double sign = volts > 0.0 ? 1.0 : -1.0;
    const double target = fabs(volts);
    if (target < MD_LINEAR_V) {
        /* sinh(V_cell/V0) = V_cell/V0 to 1e-200: the cell is a resistor V0/(I0 e^(-g/g0)) in series with
         * R_s (and ln|V| would sit among subnormals) */
        LANES {
            double r_cell = B->p[C_V0][l] * md_exp(gap[l] * B->inv_g0[l] - B->ln_i0[l]);
            double i = target / (rs[l] + r_cell);
            vc[l] = sign * (target - i * rs[l]);
            cur[l] = sign * i;
            bad[l] = 0;
        }
        if (dwdg != NULL) LANES dwdg[l] = 0.0;
        return;
    }
    const double ln_target = md_log(target);
    LANES {
        lnk[l] = B->ln_rs_i0[l] - gap[l] * B->inv_g0[l];
        direct[l] = rs[l] == 0.0;
        /* the bracket: y <= |V|, and y = k sinh(V_cell/V0) >= k V_cell/V0 = k (|V| - y)/V0 gives
         * y >= k|V|/(V0 + k) >= k|V|/(2 max(V0, k)) */
        double big = B->ln_v0[l] > lnk[l] ? B->ln_v0[l] : lnk[l];
        lo[l] = lnk[l] + ln_target - big - MD_LN2;
        hi[l] = ln_target;
        double w0 = lnshare[l] + ln_target;
        w0 = w0 < hi[l] ? w0 : hi[l];
        w[l] = w0 > lo[l] ? w0 : lo[l];
        d_old[l] = INFINITY;
        done[l] = (mask[l] == 0) | direct[l];
        conv[l] = direct[l];
        yf[l] = 0.0;
        af[l] = 0.0;
        rf[l] = 0.0;
        hpf[l] = 1.0;
        df[l] = 0.0;
    }
    for (int it = 0; it < MD_NEWTON_MAX_ITER; ++it) {
        int64_t pending = 0;
        LANES pending |= done[l] == 0;
        if (!pending)
            break;
        double ys[MD_LANES], es[MD_LANES], hs[MD_LANES], hps[MD_LANES], as[MD_LANES], rs_[MD_LANES];
        double lons[MD_LANES], hins[MD_LANES], wns[MD_LANES], dos[MD_LANES], ds[MD_LANES];
        int64_t fins[MD_LANES];
        LANES {
            ys[l] = md_exp(w[l]);
            es[l] = md_exp(-fabs(w[l] - lnk[l]));
        }
        LANES {
            double y = ys[l];
            double zl = w[l] - lnk[l];
            double e = es[l];
            int small = zl < 0.0;
            double zs = small ? e : 1.0;
            double root_s = sqrt(1.0 + zs * zs);
            double t = zs + zs * zs / (1.0 + root_s);
            double root_l = sqrt(1.0 + (small ? 1.0 : e * e));
            double q = small ? 1.0 + t : 1.0 + root_l;
            double lq = md_log(q);
            double qm1 = q - 1.0;
            /* log1p(t) = log(1 + t) t / ((1 + t) - 1): the rounding of 1 + t cancels */
            double lp = lq * (t / (qm1 == 0.0 ? 1.0 : qm1));
            lp = qm1 == 0.0 ? t : lp;
            double a = small ? lp : zl + lq;
            double r = small ? zs / root_s : 1.0 / root_l;
            hs[l] = y + v0[l] * a - target;
            hps[l] = y + v0[l] * r;
            ys[l] = y;
            as[l] = a;
            rs_[l] = r;
        }
        LANES {
            double h = hs[l], hp = hps[l], y = ys[l], a = as[l], r = rs_[l];
            double d = h / hp;
            int64_t fin = d * d <= MD_SOLVE_TOL;
            double lo_n = h <= 0.0 ? w[l] : lo[l];
            double hi_n = h <= 0.0 ? hi[l] : w[l];
            double wn = w[l] - d;
            /* bisect when Newton leaves the bracket or does not at least halve its step (rtsafe): a
             * start far right of the root in the linear regime creeps by ~1 in w per step */
            int64_t slow = !(fabs(d) <= 0.5 * fabs(d_old[l]));
            int64_t out = !((wn > lo_n) & (wn < hi_n));
            int64_t bisect = (out | slow) & !fin;
            wn = bisect ? 0.5 * (lo_n + hi_n) : wn;
            fins[l] = fin;
            lons[l] = lo_n;
            hins[l] = hi_n;
            wns[l] = wn;
            dos[l] = bisect ? 0.5 * (hi_n - lo_n) : d;
            ds[l] = d;
        }
        LANES {
            double h = hs[l], hp = hps[l], y = ys[l], a = as[l], r = rs_[l];
            double lo_n = lons[l], hi_n = hins[l], wn = wns[l], d = ds[l];
            int64_t fin = fins[l];
            int64_t keep = done[l];
            lo[l] = keep ? lo[l] : lo_n;
            hi[l] = keep ? hi[l] : hi_n;
            d_old[l] = keep ? d_old[l] : dos[l];
            w[l] = keep ? w[l] : wn;
            yf[l] = keep ? yf[l] : y;
            af[l] = keep ? af[l] : a;
            rf[l] = keep ? rf[l] : r;
            hpf[l] = keep ? hpf[l] : hp;
            df[l] = keep ? df[l] : d;
            conv[l] = keep ? conv[l] : fin;
            done[l] = keep | fin;
        }
    }
    /* R_s = 0: I = I0 e^(-g/g0) sinh(|V|/V0) with the prefactor inside the exponentials, so that a
     * small prefactor does not underflow against a large sinh (only in a batch that has such a lane) */
    double free_i[MD_LANES];
    int64_t any_direct = 0;
    LANES {
        free_i[l] = 0.0;
        any_direct |= direct[l];
    }
    if (any_direct) LANES {
        double u = target * B->inv_v0[l];
        double lnpref = B->ln_i0[l] - gap[l] * B->inv_g0[l];
        double uc = u < 0.5 ? 0.5 : u;
        double u2 = u * u;
        double series = u * (1.0 + u2 * (1.0 / 6.0) * (1.0 + u2 * (1.0 / 20.0) * (1.0 + u2 * (1.0 / 42.0) *
                        (1.0 + u2 * (1.0 / 72.0) * (1.0 + u2 * (1.0 / 110.0) * (1.0 + u2 * (1.0 / 156.0) *
                        (1.0 + u2 * (1.0 / 210.0))))))));
        free_i[l] = u < 0.5 ? md_exp(lnpref) * series : 0.5 * (md_exp(lnpref + uc) - md_exp(lnpref - uc));
    }
    LANES {
        /* y and asinh at the last step's end from their values at its start: |d| <= 3.2e-7, so
         * y e^-d to d^2 and asinh - r d are within 1e-13 relative */
        double d = df[l];
        double y = yf[l] * (1.0 - d + 0.5 * d * d);
        double x = direct[l] ? target : v0[l] * (af[l] - rf[l] * d);
        double i = direct[l] ? free_i[l] : y / (direct[l] ? 1.0 : rs[l]);
        int64_t on = mask[l] != 0;
        int64_t finite = (fabs(i) <= DBL_MAX) & (fabs(x) <= DBL_MAX);
        bad[l] = on & ((conv[l] == 0) | (finite == 0));
        vc[l] = sign * x;
        cur[l] = sign * i;
        lnshare[l] = on & (direct[l] == 0) ? w[l] - ln_target : lnshare[l];
        if (dwdg != NULL)
            dwdg[l] = direct[l] ? 0.0 : -v0[l] * rf[l] * B->inv_g0[l] / hpf[l];
    }
}

/* γ(g) = max(γ0 − β (g / 1 nm)^α, 0); under RESET bias (V < 0) γ0 + δ_R and β + β_R. The power
 * as exp(α log(g / 1 nm)): libm's pow does not vectorise and took a fifth of the kernel. */
MD_INLINE void MD_W(md_enhancement)(const MD_W(md_batch) *B, const double *gap, int reset, double *gamma)
{
    LANES {
        double gamma0 = reset ? B->p[C_GAMMA0][l] + B->p[C_GAMMA0_R][l] : B->p[C_GAMMA0][l];
        double beta = reset ? B->p[C_BETA][l] + B->p[C_BETA_R][l] : B->p[C_BETA][l];
        double g = beta == 0.0 ? gamma0 : gamma0 - beta * md_exp(B->p[C_ALPHA][l] * md_log(gap[l] / 1e-9));
        gamma[l] = g > 0.0 ? g : 0.0;
    }
}

/* Hop rates (1/s) of every lane: forward (shrinks the gap), backward, dissolution (barrier
 * Ea_r + b delta, delta = B->relax), at cell voltage vc, field enhancement gamma and temperature
 * temp. biased = 0: zero bias, no tilt. */
/* F_min of lane l for a cell voltage vc: RESET bias (vc < 0) has its own, F_min times
 * reset_min_field_ratio (twin: filament.min_field) */
MD_INLINE double MD_W(md_fmin)(const MD_W(md_batch) *B, int l, double vc)
{
    return B->p[C_FMIN][l] * (vc < 0.0 ? B->p[C_FMINR][l] : 1.0);
}

/* The field that drives lane l's hops, E = gamma V_cell / t_ox, and 0 below its F_min
 * (twin: filament.drive_field) */
MD_INLINE double MD_W(md_drive_field)(const MD_W(md_batch) *B, int l, double vc, double gamma)
{
    double field = gamma * vc / B->p[C_TOX][l];
    return fabs(field) < MD_W(md_fmin)(B, l, vc) ? 0.0 : field;
}

MD_INLINE void MD_W(md_rates)(const MD_W(md_batch) *B, int biased, const double *vc, const double *gamma, const double *temp,
                        double *fwd, double *bwd, double *dis)
{
    if (!biased) {
        LANES {
            double kt = MD_BOLTZMANN_EV * temp[l];
            double base = B->p[C_NU0][l] * md_exp(-B->p[C_EA][l] / kt);
            fwd[l] = base;
            bwd[l] = base;
            dis[l] = B->p[C_NUR][l] * md_exp(-(B->p[C_EAR][l] + B->p[C_BDIS][l] * B->relax[l]) / kt);
        }
        return;
    }
    LANES {
        double field = MD_W(md_drive_field)(B, l, vc[l], gamma[l]);
        double kt = MD_BOLTZMANN_EV * temp[l];
        double base = B->p[C_NU0][l] * md_exp(-B->p[C_EA][l] / kt);
        double tilt = md_exp(B->p[C_Z][l] * B->p[C_A][l] * field / (2.0 * MD_BOLTZMANN_EV * temp[l]));
        fwd[l] = base * tilt;
        bwd[l] = base / tilt;
        dis[l] = B->p[C_NUR][l] * md_exp(-(B->p[C_EAR][l] + B->p[C_BDIS][l] * B->relax[l]) / kt);
    }
}

/* The mean dissolution rate over a sub-step of dt from the rate dis at its start, for lanes with
 * b > 0 (twin: filament.dissolution_step_rate): the relaxation it causes raises its own barrier,
 * d delta/dt = a r0 exp(-b delta/kT), solved exactly: mean rate r0 ln(1 + x)/x, x = a b r0 dt/kT.
 * Only in a batch that has such a lane; b = 0 keeps r0. */
MD_INLINE void MD_W(md_dissolution_step)(const MD_W(md_batch) *B, const double *temp, const double *dt, double *dis)
{
    int64_t any_b = 0;
    LANES any_b |= B->p[C_BDIS][l] > 0.0;
    if (!any_b)
        return;
    LANES {
        double scale = B->p[C_A][l] * B->p[C_BDIS][l] / (MD_BOLTZMANN_EV * temp[l]);
        double x = scale * dis[l] * dt[l];
        int64_t on = x > 0.0;
        double q = 1.0 + (on ? x : 1.0);
        double lq = md_log(q);
        double qm1 = q - 1.0;
        /* log1p(x) = log(1 + x) x / ((1 + x) - 1): the rounding of 1 + x cancels */
        double lp = qm1 == 0.0 ? x : lq * (x / (qm1 == 0.0 ? 1.0 : qm1));
        dis[l] = on ? dis[l] * (lp / (on ? x : 1.0)) : dis[l];
    }
}

/* activation energies (eV) of lane l's forward, backward and dissolution rates (twin: filament.barriers):
 * Ea -+ z a E/2, E = gamma V_cell / t_ox after the F_min cut (0 unbiased), and Ea_r + b delta */
MD_INLINE void MD_W(md_barriers)(const MD_W(md_batch) *B, int l, int biased, double vc, double gamma, double *e_f,
                           double *e_b, double *e_d)
{
    double field = biased ? MD_W(md_drive_field)(B, l, vc, gamma) : 0.0;
    double lower = 0.5 * B->p[C_Z][l] * B->p[C_A][l] * field;
    *e_f = B->p[C_EA][l] - lower;
    *e_b = B->p[C_EA][l] + lower;
    *e_d = B->p[C_EAR][l] + B->p[C_BDIS][l] * B->relax[l];
}

/* The sub-step (s) whose estimated gap error from the rates' change with the relaxing temperature is
 * thermal_step_error_fraction of the gap bound, for lanes in mask (twin: filament.thermal_error_step):
 * r_i = nu exp(-E_i/kT) changes as d ln r_i/dt = kappa_i = E_i |T_ss - T|/(k T^2 tau) at the step's
 * start, so the midpoint rule errs by a h^3 sum r_i kappa_i (kappa_i + 1/tau)/24; fwd, bwd, dis are
 * the rates at the hottest temperature the step reaches, kappa at the present one. */
MD_INLINE void MD_W(md_thermal_error_step)(const MD_W(md_batch) *B, int biased, const double *vc, const double *gamma,
                                     const double *t_ss, const double *fwd, const double *bwd, const double *dis,
                                     const int64_t *mask, double *h_err)
{
    LANES {
        double e_f, e_b, e_d;
        MD_W(md_barriers)(B, l, biased, vc[l], gamma[l], &e_f, &e_b, &e_d);
        e_f = fabs(e_f);
        e_b = fabs(e_b);
        e_d = fabs(e_d);
        double safe_tau = B->p[C_TAU][l] > 0.0 ? B->p[C_TAU][l] : 1.0;
        double rate_t = fabs(t_ss[l] - B->temp[l]) / (safe_tau * MD_BOLTZMANN_EV * B->temp[l] * B->temp[l]);
        double k_f = e_f * rate_t, k_b = e_b * rate_t, k_d = e_d * rate_t, inv_tau = 1.0 / safe_tau;
        double curv = B->p[C_A][l] * (fwd[l] * k_f * (k_f + inv_tau) + bwd[l] * k_b * (k_b + inv_tau) +
                                      dis[l] * k_d * (k_d + inv_tau));
        /* the cube root as exp(ln x / 3): the lane functions vectorise, libm's cbrt does not */
        double h = md_exp(md_log(24.0 * B->p[C_TERR][l] * B->p[C_CAP][l] / (curv > 0.0 ? curv : 1.0)) / 3.0);
        h_err[l] = mask[l] & (curv > 0.0) ? h : INFINITY;
    }
}

/* Each midpoint rate times the mean of its exponential over the step (twin:
 * filament.rate_shape_factors), for lanes with thermal_step_error_fraction > 0 and tau > 0: ln r_i
 * changes at kappa_i = E_i (T_ss - T)/(k T^2 tau) around the midpoint, so the mean is
 * sinh(kappa_i dt/2)/(kappa_i dt/2) times the midpoint rate. Only in a batch with such a lane. */
MD_INLINE void MD_W(md_rate_shape)(const MD_W(md_batch) *B, int biased, const double *vc, const double *gamma,
                             const double *temp, const double *t_ss, const double *dt, double *fwd, double *bwd,
                             double *dis)
{
    int64_t any_s = 0;
    LANES any_s |= (B->p[C_TERR][l] > 0.0) & (B->p[C_TAU][l] > 0.0);
    if (!any_s)
        return;
    LANES {
        int64_t on = (B->p[C_TERR][l] > 0.0) & (B->p[C_TAU][l] > 0.0);
        double e_f, e_b, e_d;
        MD_W(md_barriers)(B, l, biased, vc[l], gamma[l], &e_f, &e_b, &e_d);
        double safe_tau = on ? B->p[C_TAU][l] : 1.0;
        double half = 0.5 * dt[l] * (t_ss[l] - temp[l]) / (safe_tau * MD_BOLTZMANN_EV * temp[l] * temp[l]);
        fwd[l] = on ? fwd[l] * md_sinhc(e_f * half) : fwd[l];
        bwd[l] = on ? bwd[l] * md_sinhc(e_b * half) : bwd[l];
        dis[l] = on ? dis[l] * md_sinhc(e_d * half) : dis[l];
    }
}

/* One constant-voltage segment for every valid lane: adaptive midpoint tau-leaps (twin:
 * filament.run_segment). peak and energy receive each lane's peak temperature and delivered
 * energy; first_current (or NULL) the current of the first sub-step, i.e. the reading at the
 * gap and warm start the segment was entered with, and first_bad whether that solve failed.
 * A lane whose solve fails or whose rates leave double range ends the segment there, its flag bit
 * set in B->flag and the failing sub-step not committed. Heading past the thermal ceiling, the
 * step is cut to the instant the relaxation meets it, taken again at half length if the midpoint
 * power carried it past, and the segment ends, flagged, once T is within MD_CEILING_BAND of it. */
MD_INLINE void MD_W(md_segment)(MD_W(md_batch) *B, double volts, double duration, double *lnshare, int noise,
                          md_hops_fn hops, double *peak, double *energy, double *first_current, int64_t *first_bad)
{
    double elapsed[MD_LANES], steps[MD_LANES], h_lim[MD_LANES], g_event[MD_LANES];
    /* held at the F_min threshold by the last sub-step (sliding): its gap bounds nothing */
    int64_t active[MD_LANES], held[MD_LANES];
    const int biased = volts != 0.0, reset = volts < 0.0;
    const double *a = B->p[C_A], *m = B->p[C_M], *cap = B->p[C_CAP], *tau = B->p[C_TAU];
    const double *t0 = B->p[C_T0], *rth = B->p[C_RTH], *gmin = B->p[C_GMIN], *gmax = B->p[C_GMAX];
    const double *ceil_k = B->p[C_TCEIL], *dt_max = B->p[C_DTMAX];
    LANES {
        peak[l] = B->temp[l];
        energy[l] = 0.0;
        elapsed[l] = 0.0;
        steps[l] = 0.0;
        h_lim[l] = INFINITY;
        g_event[l] = NAN;
        active[l] = B->valid[l];
        held[l] = 0;
    }
    if (duration <= 0.0)
        return;
    for (int first = 1;; first = 0) {
        int64_t any = 0;
        LANES any |= active[l];
        if (!any)
            return;
        double vc[MD_LANES], cur[MD_LANES], dwdg[MD_LANES], gamma[MD_LANES], temp_mid[MD_LANES];
        double fwd[MD_LANES], bwd[MD_LANES], dis[MD_LANES], dt[MD_LANES], decay[MD_LANES];
        double g_mid[MD_LANES], share_mid[MD_LANES];
        double h_arr[MD_LANES], h_gap[MD_LANES], cur0[MD_LANES], tss0[MD_LANES];
        int64_t last[MD_LANES], forced[MD_LANES], bad[MD_LANES], fail[MD_LANES], reach[MD_LANES], retry[MD_LANES];
        MD_W(md_solve_cell)(B, volts, B->gap, lnshare, active, vc, cur, dwdg, bad);
        if (first && first_current != NULL) LANES {
            first_current[l] = cur[l];
            first_bad[l] = bad[l];
        }
        /* the step is sized with the rates at the hotter of the present and the steady-state
         * temperature, so that runaway heating is resolved */
        double hot[MD_LANES], t_ss[MD_LANES];
        LANES {
            t_ss[l] = t0[l] + (vc[l] * cur[l] + (B->p[C_RSHEAT][l] > 0.0 ? B->p[C_RSHEAT][l] * cur[l] * cur[l] * B->p[C_RS][l] : 0.0)) * rth[l];
            hot[l] = B->temp[l] > t_ss[l] ? B->temp[l] : t_ss[l];
            /* the step below keeps T within dt_max of its present value (tau > 0; with tau = 0, T is
             * T_ss at once), and a lane past the ceiling ends this sub-step: neither bound is passed */
            double reach_t = tau[l] > 0.0 ? B->temp[l] + dt_max[l] : INFINITY;
            hot[l] = hot[l] < reach_t ? hot[l] : reach_t;
            hot[l] = hot[l] < ceil_k[l] ? hot[l] : ceil_k[l];
        }
        /* md_rates reads gamma only under bias; zeros keep the unbiased lanes defined */
        if (biased)
            MD_W(md_enhancement)(B, B->gap, reset, gamma);
        else
            LANES gamma[l] = 0.0;
        MD_W(md_rates)(B, biased, vc, gamma, hot, fwd, bwd, dis);
        /* |E| - F_min at the start, for the F_min event (twin: filament.field_excess) */
        double phi0[MD_LANES], drift0[MD_LANES];
        LANES phi0[l] = fabs(gamma[l] * vc[l] / B->p[C_TOX][l]) - MD_W(md_fmin)(B, l, vc[l]);
        /* a cooling lane's step from the thermal error estimate, its rates at the start (the hottest) */
        double h_err[MD_LANES];
        int64_t cooling[MD_LANES], any_e = 0;
        LANES {
            cooling[l] = (B->p[C_TERR][l] > 0.0) & (tau[l] > 0.0) & (B->temp[l] > t_ss[l]);
            any_e |= cooling[l];
            h_err[l] = INFINITY;
        }
        if (any_e)
            MD_W(md_thermal_error_step)(B, biased, vc, gamma, t_ss, fwd, bwd, dis, cooling, h_err);
        LANES {
            double drift = a[l] * fabs(bwd[l] + dis[l] - fwd[l]);
            double spread = a[l] * a[l] * (fwd[l] + bwd[l] + dis[l]) / m[l];
            int64_t overflow = !((drift <= DBL_MAX) & (spread <= DBL_MAX));
            double h = INFINITY; /* the rest of the segment caps it below */
            /* a device at a gap bound whose hops are biased outward (net over total >= 1/2) stays within
             * about a hop quantum of it for any step: its gap bounds nothing, only its heating does */
            double net = bwd[l] + dis[l] - fwd[l], total = fwd[l] + bwd[l] + dis[l];
            int64_t pinned = ((B->gap[l] >= gmax[l]) & (net > 0.5 * total)) | ((B->gap[l] <= gmin[l]) & (-net > 0.5 * total));
            double h_g = md_gap_bounded(h, drift, spread, cap[l]);
            h_gap[l] = h_g;
            h_arr[l] = pinned | held[l] ? h : h_g;
            fail[l] = bad[l] ? MD_FLAG_SOLVE : (overflow ? MD_FLAG_RATES : 0);
        }
        /* the temperature moves by |T_ss - T| (1 - e^(-h/tau)) in a sub-step: at most dt_max; heading
         * past the ceiling, the step stops where T(t) = T_ss + (T - T_ss) e^(-t/tau) meets it. Their
         * logarithms are taken only in a batch where some lane needs one (the others compute along
         * on dummies and keep their step) */
        int64_t warming[MD_LANES], beyond[MD_LANES], any_t = 0;
        LANES {
            double rest = duration - elapsed[l];
            h_arr[l] = h_arr[l] < rest ? h_arr[l] : rest;
            h_arr[l] = h_arr[l] < h_err[l] ? h_arr[l] : h_err[l];
            warming[l] = (tau[l] > 0.0) & !cooling[l] & (fabs(t_ss[l] - B->temp[l]) > dt_max[l]);
            beyond[l] = (tau[l] > 0.0) & (t_ss[l] > ceil_k[l]) & (B->temp[l] < ceil_k[l]);
            any_t |= warming[l] | beyond[l];
            reach[l] = 0;
        }
        /* a warming lane in error mode may instead take the step that bounds on its rates over the whole
         * step allow (the gap bounds with the total rate as drift, and the thermal error estimate): the
         * larger of that and the temperature bound's step, each safe on its own */
        double h_far[MD_LANES];
        int64_t heating[MD_LANES], any_w = 0;
        LANES {
            heating[l] = warming[l] & (B->p[C_TERR][l] > 0.0);
            any_w |= heating[l];
            h_far[l] = 0.0;
        }
        if (any_w) {
            double far[MD_LANES], f_f[MD_LANES], f_b[MD_LANES], f_d[MD_LANES];
            LANES far[l] = t_ss[l] < ceil_k[l] ? t_ss[l] : ceil_k[l];
            MD_W(md_rates)(B, biased, vc, gamma, far, f_f, f_b, f_d);
            /* each rate is monotonic in T, so the larger of its values at the two ends bounds it over
             * the step, and their sum bounds the drift */
            LANES {
                f_f[l] = f_f[l] > fwd[l] ? f_f[l] : fwd[l];
                f_b[l] = f_b[l] > bwd[l] ? f_b[l] : bwd[l];
                f_d[l] = f_d[l] > dis[l] ? f_d[l] : dis[l];
            }
            MD_W(md_thermal_error_step)(B, biased, vc, gamma, t_ss, f_f, f_b, f_d, heating, h_far);
            LANES {
                double total = f_f[l] + f_b[l] + f_d[l];
                double drift = a[l] * total, spread = a[l] * a[l] * total / m[l];
                double h = md_gap_bounded(h_far[l], drift, spread, cap[l]);
                double rest = duration - elapsed[l];
                h_far[l] = heating[l] & (h == h) ? (h < rest ? h : rest) : 0.0;
            }
        }
        if (any_t) LANES {
            double h = h_arr[l];
            double span = fabs(t_ss[l] - B->temp[l]);
            double safe_tau = tau[l] > 0.0 ? tau[l] : 1.0;
            double h_t = -safe_tau * md_log(1.0 - (warming[l] ? dt_max[l] / span : 0.5));
            h = warming[l] & (h_t < h) ? h_t : h;
            double h_c = safe_tau * md_log(beyond[l] ? (t_ss[l] - B->temp[l]) / (t_ss[l] - ceil_k[l]) : 2.0);
            h = h > h_far[l] ? h : h_far[l];
            reach[l] = beyond[l] & (h_c <= h);
            h_arr[l] = reach[l] ? h_c : h;
        }
        LANES {
            double rest = duration - elapsed[l];
            double h = h_arr[l];
            h = h < h_lim[l] ? h : h_lim[l];
            last[l] = steps[l] >= B->p[C_MAXSTEPS][l] - 1.0;
            forced[l] = last[l] & (h < rest);
            h = last[l] ? rest : h;
            dt[l] = h;
        }
        LANES {
            double h = dt[l];
            double safe_tau = tau[l] > 0.0 ? tau[l] : 1.0;
            /* exp(-750) underflows to 0 in libm too (reads are ~800 time constants long) */
            int relaxing = (tau[l] > 0.0) & (0.5 * h < 750.0 * tau[l]);
            decay[l] = relaxing ? md_exp(-0.5 * h / safe_tau) : 0.0;
            temp_mid[l] = t_ss[l] + (B->temp[l] - t_ss[l]) * decay[l];
        }
        /* midpoint tau-leap: rates at the state half a step ahead, the temperature relaxed
         * exactly towards the steady state */
        MD_W(md_rates)(B, biased, vc, gamma, temp_mid, fwd, bwd, dis);
        LANES {
            drift0[l] = a[l] * (bwd[l] + dis[l] - fwd[l]);
            double g = B->gap[l] + 0.5 * dt[l] * drift0[l];
            g = g > gmin[l] ? g : gmin[l];
            g_mid[l] = g < gmax[l] ? g : gmax[l];
            /* the midpoint solve starts from the first solve moved along its slope */
            share_mid[l] = lnshare[l] + dwdg[l] * (g_mid[l] - B->gap[l]);
        }
        int64_t go[MD_LANES];
        LANES {
            go[l] = active[l] & (fail[l] == 0);
            cur0[l] = cur[l];
            tss0[l] = t_ss[l];
        }
        MD_W(md_solve_cell)(B, volts, g_mid, share_mid, go, vc, cur, NULL, bad);
        LANES {
            t_ss[l] = t0[l] + (vc[l] * cur[l] + (B->p[C_RSHEAT][l] > 0.0 ? B->p[C_RSHEAT][l] * cur[l] * cur[l] * B->p[C_RS][l] : 0.0)) * rth[l];
            temp_mid[l] = t_ss[l] + (B->temp[l] - t_ss[l]) * decay[l];
            fail[l] = fail[l] ? fail[l] : (bad[l] ? MD_FLAG_SOLVE : 0);
        }
        if (biased)
            MD_W(md_enhancement)(B, g_mid, reset, gamma);
        MD_W(md_rates)(B, biased, vc, gamma, temp_mid, fwd, bwd, dis);
        MD_W(md_rate_shape)(B, biased, vc, gamma, temp_mid, t_ss, dt, fwd, bwd, dis);
        MD_W(md_dissolution_step)(B, temp_mid, dt, dis);
        double n_fwd[MD_LANES], n_bwd[MD_LANES], n_dis[MD_LANES], temp_new[MD_LANES];
        /* F_min event: the secant through |E| - F_min at the start and the midpoint, in units of the
         * half-step's mean gap change, meets zero at s; s in [0, 2) is a crossing within the step. A
         * crossing at the start with the drift towards it from both sides (sliding) holds the device
         * there; one further on cuts the step to end at it, located by a secant on |E(g)| - F_min */
        double s_cross[MD_LANES], g_star[MD_LANES], g_cut[MD_LANES];
        int64_t cut[MD_LANES], hold[MD_LANES], pending[MD_LANES], any_cut = 0;
        LANES {
            double phim = fabs(gamma[l] * vc[l] / B->p[C_TOX][l]) - MD_W(md_fmin)(B, l, vc[l]);
            double den = phi0[l] != phim ? phi0[l] - phim : 1.0;
            double sc = phi0[l] / den;
            int64_t crossing = biased & (MD_W(md_fmin)(B, l, volts) > 0.0) & (phi0[l] != phim) & (sc >= 0.0) & (sc < 2.0) &
                               (fabs(g_mid[l]) <= DBL_MAX);
            double gs = B->gap[l] + sc * (g_mid[l] - B->gap[l]);
            gs = gs > gmin[l] ? gs : gmin[l];
            gs = gs < gmax[l] ? gs : gmax[l];
            int64_t near = fabs(gs - B->gap[l]) <= MD_EVENT_GAP_TOL;
            hold[l] = crossing & near & (drift0[l] * (a[l] * (bwd[l] + dis[l] - fwd[l])) < 0.0);
            g_cut[l] = g_event[l];
            pending[l] = (g_cut[l] == g_cut[l]) & (dt[l] == h_lim[l]);
            cut[l] = active[l] & crossing & !near & !pending[l];
            any_cut |= cut[l];
            s_cross[l] = sc;
            g_star[l] = gs;
        }
        if (any_cut) {
            double g_a[MD_LANES], phi_a[MD_LANES], g_b[MD_LANES], vc_b[MD_LANES], cur_b[MD_LANES], ls[MD_LANES];
            double gam_b[MD_LANES];
            int64_t bad_b[MD_LANES];
            LANES {
                g_a[l] = B->gap[l];
                phi_a[l] = phi0[l];
                g_b[l] = g_star[l];
            }
            for (int it = 0; it < MD_EVENT_SECANT_ITER; ++it) {
                LANES ls[l] = lnshare[l];
                MD_W(md_solve_cell)(B, volts, g_b, ls, cut, vc_b, cur_b, NULL, bad_b);
                MD_W(md_enhancement)(B, g_b, reset, gam_b);
                LANES {
                    double phi_b = fabs(gam_b[l] * vc_b[l] / B->p[C_TOX][l]) - MD_W(md_fmin)(B, l, vc_b[l]);
                    double den = phi_b - phi_a[l];
                    int64_t ok = cut[l] & !bad_b[l] & (den != 0.0) & (fabs(phi_b) <= DBL_MAX);
                    double gn = g_b[l] - phi_b * (g_b[l] - g_a[l]) / (ok ? den : 1.0);
                    gn = gn > gmin[l] ? gn : gmin[l];
                    gn = gn < gmax[l] ? gn : gmax[l];
                    g_a[l] = g_b[l];
                    phi_a[l] = phi_b;
                    g_b[l] = ok ? gn : g_b[l];
                }
            }
            LANES {
                g_star[l] = cut[l] ? g_b[l] : g_star[l];
                /* the time the mean drift takes to get there */
                double dg = g_mid[l] != B->gap[l] ? g_mid[l] - B->gap[l] : 1.0;
                s_cross[l] = cut[l] ? (g_star[l] - B->gap[l]) / dg : s_cross[l];
                cut[l] = cut[l] & (s_cross[l] > 0.0) & (s_cross[l] < 2.0);
            }
        }
        LANES {
            n_fwd[l] = m[l] * fwd[l] * dt[l];
            n_bwd[l] = m[l] * bwd[l] * dt[l];
            n_dis[l] = m[l] * dis[l] * dt[l];
            temp_new[l] = t_ss[l] + (B->temp[l] - t_ss[l]) * decay[l] * decay[l];
        }
        LANES {
            int64_t overflow = !((n_fwd[l] + n_bwd[l] + n_dis[l]) <= DBL_MAX);
            int64_t hot_end = !(temp_new[l] <= ceil_k[l]);
            /* past the ceiling (the midpoint power exceeded the first estimate): the step is taken
             * again at half its length, down to a billionth of tau */
            retry[l] = active[l] & (fail[l] == 0) & !overflow & hot_end & (tau[l] > 0.0) & !last[l] &
                       (dt[l] > MD_CEILING_MIN_STEP * tau[l]);
            h_lim[l] = retry[l] ? 0.5 * dt[l] : INFINITY;
            fail[l] = fail[l] ? fail[l] : (overflow ? MD_FLAG_RATES : (hot_end & !retry[l] ? MD_FLAG_CEILING : 0));
            /* a step heading past the threshold is taken again, ending where the secant meets it */
            cut[l] = cut[l] & active[l] & (fail[l] == 0) & !retry[l] & !last[l];
            h_lim[l] = cut[l] ? 0.5 * s_cross[l] * dt[l] : h_lim[l];
            g_event[l] = cut[l] ? g_star[l] : NAN;
            /* a step sized as held (its gap bound waived) whose device no longer holds is taken again at
             * the gap bound */
            int64_t lost = active[l] & held[l] & !hold[l] & !cut[l] & (dt[l] > h_gap[l]) & (fail[l] == 0) &
                           !retry[l] & !overflow & !last[l];
            h_lim[l] = lost ? h_gap[l] : h_lim[l];
            retry[l] = retry[l] | cut[l] | lost;
            go[l] = active[l] & (fail[l] == 0) & !retry[l];
            /* a held device sits at the threshold for the whole step: its power, and so its temperature
             * and the energy delivered, are those at the start, not at the midpoint the drift would reach */
            int64_t sits = hold[l] & !pending[l];
            temp_new[l] = sits ? tss0[l] + (B->temp[l] - tss0[l]) * decay[l] * decay[l] : temp_new[l];
            cur[l] = sits ? cur0[l] : cur[l];
            held[l] = go[l] ? sits : (held[l] & !lost);
        }
        double mean_net[MD_LANES];
        LANES mean_net[l] = n_bwd[l] + n_dis[l] - n_fwd[l];
        if (noise) {
            /* hop counts from each device's own stream, in the order the scalar kernel drew them */
            for (int l = 0; l < MD_LANES; ++l) {
                if (!go[l])
                    continue;
                n_fwd[l] = hops(n_fwd[l], B->key[l], &B->counter[l]);
                n_bwd[l] = hops(n_bwd[l], B->key[l], &B->counter[l]);
                n_dis[l] = hops(n_dis[l], B->key[l], &B->counter[l]);
            }
        }
        LANES {
            /* the cut step ends at the located crossing (plus its hops' deviation from their means); a
             * held device stays at the threshold, refined to the secant's estimate of it */
            double net = n_bwd[l] + n_dis[l] - n_fwd[l];
            double step_m = pending[l] ? (g_cut[l] - B->gap[l]) + (a[l] / m[l]) * (net - mean_net[l])
                                       : (a[l] / m[l]) * net;
            step_m = hold[l] & !pending[l] ? g_star[l] - B->gap[l] : step_m;
            double g = B->gap[l] + step_m;
            g = g > gmin[l] ? g : gmin[l];
            g = g < gmax[l] ? g : gmax[l];
            double el = elapsed[l] + dt[l];
            int64_t on = go[l];
            B->gap[l] = on ? g : B->gap[l];
            /* dissolution relaxes the tip further (lanes with b > 0; delta stays 0 otherwise) */
            double relaxed = B->relax[l] + (a[l] / m[l]) * n_dis[l];
            B->relax[l] = on & (B->p[C_BDIS][l] > 0.0) ? relaxed : B->relax[l];
            B->temp[l] = on ? temp_new[l] : B->temp[l];
            peak[l] = on & (temp_new[l] > peak[l]) ? temp_new[l] : peak[l];
            energy[l] = on ? energy[l] + fabs(volts * cur[l]) * dt[l] : energy[l];
            elapsed[l] = on ? el : elapsed[l];
            steps[l] = on | retry[l] ? steps[l] + 1.0 : steps[l];
            B->substeps[l] = on ? B->substeps[l] + 1.0 : B->substeps[l];
            int64_t f = B->flag[l] | (active[l] ? fail[l] : 0);
            /* within MD_CEILING_BAND of the ceiling: the pulse ends there */
            int64_t at_ceiling = on & (temp_new[l] >= ceil_k[l] - MD_CEILING_BAND);
            f |= at_ceiling ? MD_FLAG_CEILING : 0;
            /* the budget's last sub-step covered more than the step control allowed */
            f |= active[l] & forced[l] ? MD_FLAG_BUDGET : 0;
            B->flag[l] = f;
            active[l] = retry[l] | (on & !(last[l] | (el >= duration) | at_ceiling));
        }
        /* under bias the forward hops, which bring vacancies to the tip, rebuild it: a site hopped into
         * (probability 1 - exp(-N+/M)) is repopulated, so delta shrinks by exp(-N+/M); only in a batch
         * with a b > 0 lane */
        if (biased) {
            int64_t any_b = 0;
            LANES any_b |= B->p[C_BDIS][l] > 0.0;
            if (any_b) LANES {
                double kept = B->relax[l] * md_exp(-n_fwd[l] / m[l]);
                B->relax[l] = go[l] & (B->p[C_BDIS][l] > 0.0) ? kept : B->relax[l];
            }
        }
    }
}

/* Advance devices first .. first + n_lanes - 1 (n_lanes <= MD_LANES) through one cycle of
 * segments (rows: voltage V, duration s, kind). state and table have rows of N_STATE and
 * N_COLUMNS doubles per device; out[0..4] (conductance S, peak temperature K, pulse energy J,
 * gap after the read m, pulse flag bits) are (device, pulse) arrays with row and pulse strides
 * in elements. A pulse's flag gathers its pulse, idle and read segments; a read whose solve
 * failed reports NaN. */
MD_CLONES void MD_W(memdrift_filament_batch)(ptrdiff_t first, int n_lanes, const double *segments, ptrdiff_t n_seg,
                                       double *state, const double *table, const uint64_t *keys,
                                       uint64_t *counters, double *const *out, const ptrdiff_t *row_stride,
                                       const ptrdiff_t *pulse_stride, int noise, md_hops_fn hops)
{
    MD_W(md_batch) B;
    /* cur is zeroed because md_segment leaves it untouched when no lane is active */
    double peak[MD_LANES], energy[MD_LANES], cur[MD_LANES] = {0.0};
    int64_t read_bad[MD_LANES] = {0};
    state += first * N_STATE;
    table += first * N_COLUMNS;
    keys += first;
    counters += first;
    LANES {
        /* padding lanes repeat the last device, so they compute on sane numbers */
        int src = l < n_lanes ? l : n_lanes - 1;
        for (int c = 0; c < N_COLUMNS; ++c)
            B.p[c][l] = table[(ptrdiff_t)src * N_COLUMNS + c];
        /* the sub-step bounds in use: the tolerance times the stated bounds (twin: filament.run_segment) */
        B.p[C_CAP][l] *= B.p[C_TOL][l];
        B.p[C_DTMAX][l] *= B.p[C_TOL][l];
        B.inv_v0[l] = 1.0 / B.p[C_V0][l];
        B.inv_g0[l] = 1.0 / B.p[C_G0][l];
        B.ln_i0[l] = md_log(B.p[C_I0][l]);
        B.ln_v0[l] = md_log(B.p[C_V0][l]);
        /* R_s = 0 lanes have no series unknown and never read this */
        B.ln_rs_i0[l] = B.p[C_RS][l] > 0.0 ? md_log(B.p[C_RS][l] * B.p[C_I0][l]) : 0.0;
        const double *row = state + (ptrdiff_t)src * N_STATE;
        B.gap[l] = row[S_GAP];
        B.temp[l] = row[S_TEMP];
        B.wshare[l] = row[S_WSHARE];
        B.substeps[l] = row[S_SUBSTEPS];
        B.rshare[l] = row[S_RSHARE];
        B.relax[l] = row[S_RELAX];
        B.key[l] = keys[src];
        B.counter[l] = counters[src];
        B.valid[l] = l < n_lanes;
        B.flag[l] = 0;
    }
    ptrdiff_t pulse = -1;
    for (ptrdiff_t s = 0; s < n_seg; ++s) {
        const double volts = segments[3 * s], duration = segments[3 * s + 1];
        const int kind = (int)segments[3 * s + 2];
        if (kind == K_PULSE) {
            pulse += 1;
            LANES B.flag[l] = 0;
            MD_W(md_segment)(&B, volts, duration, B.wshare, noise, hops, peak, energy, NULL, NULL);
            for (int l = 0; l < n_lanes; ++l) {
                out[1][(first + l) * row_stride[1] + pulse * pulse_stride[1]] = peak[l];
                out[2][(first + l) * row_stride[2] + pulse * pulse_stride[2]] = energy[l];
            }
        } else if (kind == K_READ) {
            /* the read's first sub-step solves the cell at the same gap from the same warm start
             * as the instrument's reading, so its current is the reading */
            if (duration > 0.0) {
                MD_W(md_segment)(&B, volts, duration, B.rshare, noise, hops, peak, energy, cur, read_bad);
            } else {
                double vc[MD_LANES];
                MD_W(md_solve_cell)(&B, volts, B.gap, B.rshare, B.valid, vc, cur, NULL, read_bad);
                LANES B.flag[l] |= read_bad[l] ? MD_FLAG_SOLVE : 0;
            }
            for (int l = 0; l < n_lanes; ++l) {
                out[0][(first + l) * row_stride[0] + pulse * pulse_stride[0]] = read_bad[l] ? NAN : cur[l] / volts;
                out[3][(first + l) * row_stride[3] + pulse * pulse_stride[3]] = B.gap[l];
            }
        } else {
            MD_W(md_segment)(&B, 0.0, duration, B.wshare, noise, hops, peak, energy, NULL, NULL);
        }
        if (pulse >= 0)
            for (int l = 0; l < n_lanes; ++l)
                out[4][(first + l) * row_stride[4] + pulse * pulse_stride[4]] = (double)B.flag[l];
    }
    for (int l = 0; l < n_lanes; ++l) {
        double *row = state + (ptrdiff_t)l * N_STATE;
        row[S_GAP] = B.gap[l];
        row[S_TEMP] = B.temp[l];
        row[S_WSHARE] = B.wshare[l];
        row[S_SUBSTEPS] = B.substeps[l];
        row[S_RSHARE] = B.rshare[l];
        row[S_RELAX] = B.relax[l];
        counters[l] = B.counter[l];
    }
}
