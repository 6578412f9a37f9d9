/* The lane kernel for one batch width (included by _filament_lanes.h once per width, with
 * MD_LANES the width and MD_W(name) the name's width-suffixed form). Per lane the arithmetic is
 * the same at every width, so a device gives the same bits whichever width ran it. */

/* The batch's parameters, one array per column so that a column is contiguous over lanes. */
typedef struct {
    double p[N_COLUMNS][MD_LANES];
    double inv_v0[MD_LANES];
    double gap[MD_LANES], temp[MD_LANES], wratio[MD_LANES], rratio[MD_LANES], substeps[MD_LANES];
    uint64_t key[MD_LANES], counter[MD_LANES];
    int64_t valid[MD_LANES];
} MD_W(md_batch);

/* V_cell of every lane with V = V_cell + I R_s, I = I0 exp(-g/g0) sinh(V_cell/V0): safeguarded
 * Newton on |V| from ratio * |V|, stopped once the error bound step^2/(2 V0) of the step just
 * taken is below half the tolerance (f''/f' < 1/V0). Writes I and, if slope is not NULL,
 * d|V_cell|/dg at the solution (twin: filament.cell_voltage, cell_voltage_slope). Lanes with
 * mask 0 iterate no further than their start. */
MD_INLINE void MD_W(md_solve_cell)(const MD_W(md_batch) *B, double volts, const double *gap, const double *ratio,
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
            xn = ((!fin) & ((xn <= lo_n) | (xn >= hi_n))) ? 0.5 * (lo_n + hi_n) : xn;
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
MD_INLINE void MD_W(md_enhancement)(const MD_W(md_batch) *B, const double *gap, int reset, double *gamma)
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
MD_INLINE void MD_W(md_rates)(const MD_W(md_batch) *B, int biased, const double *vc, const double *gamma, const double *temp,
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
MD_INLINE void MD_W(md_segment)(MD_W(md_batch) *B, double volts, double duration, double *ratio, int noise, md_hops_fn hops,
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
        MD_W(md_solve_cell)(B, volts, B->gap, ratio, active, vc, cur, dvdg);
        if (first && first_current != NULL) LANES first_current[l] = cur[l];
        if (biased) LANES ratio[l] = active[l] ? vc[l] / volts : ratio[l];
        /* the step is sized with the rates at the hotter of the present and the steady-state
         * temperature, so that runaway heating is resolved */
        double hot[MD_LANES], t_ss[MD_LANES];
        LANES {
            t_ss[l] = t0[l] + vc[l] * cur[l] * rth[l];
            hot[l] = B->temp[l] > t_ss[l] ? B->temp[l] : t_ss[l];
        }
        /* md_rates reads gamma only under bias; zeros keep the unbiased lanes defined */
        if (biased)
            MD_W(md_enhancement)(B, B->gap, reset, gamma);
        else
            LANES gamma[l] = 0.0;
        MD_W(md_rates)(B, biased, vc, gamma, hot, fwd, bwd, dis);
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
        MD_W(md_rates)(B, biased, vc, gamma, temp_mid, fwd, bwd, dis);
        LANES {
            double g = B->gap[l] + 0.5 * dt[l] * a[l] * (bwd[l] + dis[l] - fwd[l]);
            g = g > gmin[l] ? g : gmin[l];
            g_mid[l] = g < gmax[l] ? g : gmax[l];
            /* Newton for the midpoint gap starts from the first solve moved along its slope */
            ratio_mid[l] = biased ? (fabs(vc[l]) + dvdg[l] * (g_mid[l] - B->gap[l])) / fabs(volts) : ratio[l];
        }
        MD_W(md_solve_cell)(B, volts, g_mid, ratio_mid, active, vc, cur, NULL);
        LANES {
            t_ss[l] = t0[l] + vc[l] * cur[l] * rth[l];
            temp_mid[l] = t_ss[l] + (B->temp[l] - t_ss[l]) * decay[l];
        }
        if (biased)
            MD_W(md_enhancement)(B, g_mid, reset, gamma);
        MD_W(md_rates)(B, biased, vc, gamma, temp_mid, fwd, bwd, dis);
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
MD_CLONES void MD_W(memdrift_filament_batch)(ptrdiff_t first, int n_lanes, const double *segments, ptrdiff_t n_seg,
                                       double *state, const double *table, const uint64_t *keys,
                                       uint64_t *counters, double *const *out, const ptrdiff_t *row_stride,
                                       const ptrdiff_t *pulse_stride, int noise, md_hops_fn hops)
{
    MD_W(md_batch) B;
    /* cur is zeroed because md_segment leaves it untouched when no lane is active */
    double peak[MD_LANES], energy[MD_LANES], cur[MD_LANES] = {0.0};
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
            MD_W(md_segment)(&B, volts, duration, B.wratio, noise, hops, peak, energy, NULL);
            for (int l = 0; l < n_lanes; ++l) {
                out[1][(first + l) * row_stride[1] + pulse * pulse_stride[1]] = peak[l];
                out[2][(first + l) * row_stride[2] + pulse * pulse_stride[2]] = energy[l];
            }
        } else if (kind == K_READ) {
            /* the read's first sub-step solves the cell at the same gap from the same warm start
             * as the instrument's reading, so its current is the reading */
            if (duration > 0.0) {
                MD_W(md_segment)(&B, volts, duration, B.rratio, noise, hops, peak, energy, cur);
            } else {
                double vc[MD_LANES];
                MD_W(md_solve_cell)(&B, volts, B.gap, B.rratio, B.valid, vc, cur, NULL);
            }
            for (int l = 0; l < n_lanes; ++l) {
                out[0][(first + l) * row_stride[0] + pulse * pulse_stride[0]] = cur[l] / volts;
                out[3][(first + l) * row_stride[3] + pulse * pulse_stride[3]] = B.gap[l];
            }
        } else {
            MD_W(md_segment)(&B, 0.0, duration, B.wratio, noise, hops, peak, energy, NULL);
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

