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

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_lanes_math.h"

#define MD_NEWTON_MAX_ITER 60
/* squared last Newton step in ln I below which the solve stops: the error left is below half of it */
#define MD_SOLVE_TOL 1e-13
#define MD_LN2 0.6931471805599453
/* a pulse ends once T is this close (K) below the ceiling; a step past it is retried at half length
 * while longer than this fraction of tau (filament.CEILING_BAND_K, CEILING_MIN_STEP) */
#define MD_CEILING_BAND 1.0
#define MD_CEILING_MIN_STEP 1e-9
/* a located F_min crossing closer than this (m) to a sub-step's start is where the device is; secant
 * iterations that refine a crossing (filament.EVENT_GAP_TOL_M, EVENT_SECANT_ITER) */
#define MD_EVENT_GAP_TOL 1e-15
#define MD_EVENT_SECANT_ITER 4
/* |V| below which the cell solve is linear (filament.LINEAR_V) */
#define MD_LINEAR_V 1e-100

/* pulse flag bits (memdrift/data/flags.py) */
#define MD_FLAG_SOLVE 1
#define MD_FLAG_CEILING 2
#define MD_FLAG_BUDGET 4
#define MD_FLAG_RATES 16

/* Columns of the per-device parameter table, each index beside the name of the parameter it holds
 * (memdrift.emulator.filament.COLUMNS). The enum and the names come from this one list, and
 * _filament.pyx exports the names as COLUMNS: loading the kernel compares them with the twin's
 * name by name, so a column added or moved on one side only is refused. */
#define MD_FILAMENT_COLUMNS(X) \
    X(C_A, "hop_distance_m") \
    X(C_NU0, "attempt_frequency_hz") \
    X(C_EA, "activation_energy_ev") \
    X(C_Z, "charge_number") \
    X(C_TOX, "oxide_thickness_m") \
    X(C_GAMMA0, "field_enhancement") \
    X(C_BETA, "field_enhancement_slope") \
    X(C_ALPHA, "field_enhancement_power") \
    X(C_FMIN, "min_field_v_per_m") \
    X(C_M, "site_population") \
    X(C_I0, "tunnel_current_a") \
    X(C_G0, "tunnel_length_m") \
    X(C_V0, "tunnel_voltage_v") \
    X(C_RS, "series_resistance_ohm") \
    X(C_RTH, "thermal_resistance_k_per_w") \
    X(C_TAU, "thermal_time_constant_s") \
    X(C_T0, "ambient_temperature_k") \
    X(C_GMIN, "gap_min_m") \
    X(C_GMAX, "gap_max_m") \
    X(C_NUR, "dissolution_frequency_hz") \
    X(C_EAR, "dissolution_energy_ev") \
    X(C_CAP, "max_gap_step_m") \
    X(C_MAXSTEPS, "max_substeps") \
    X(C_BETA_R, "reset_field_enhancement_slope") \
    X(C_GAMMA0_R, "reset_field_enhancement_offset") \
    X(C_TCEIL, "thermal_ceiling_k") \
    X(C_DTMAX, "max_temperature_step_k") \
    X(C_TOL, "integration_tolerance") \
    X(C_BDIS, "dissolution_barrier_slope_ev_per_m") \
    X(C_TERR, "thermal_step_error_fraction") \
    X(C_FMINR, "reset_min_field_ratio") \
    X(C_RSHEAT, "series_heat_share")

#define MD_COLUMN_INDEX(index, name) index,
enum { MD_FILAMENT_COLUMNS(MD_COLUMN_INDEX) N_COLUMNS };
#undef MD_COLUMN_INDEX

/* the parameter name of column c (NULL outside the table) */
static inline const char *md_filament_column_name(int c)
{
#define MD_COLUMN_NAME(index, name) name,
    static const char *const names[N_COLUMNS] = { MD_FILAMENT_COLUMNS(MD_COLUMN_NAME) };
#undef MD_COLUMN_NAME
    return c >= 0 && c < N_COLUMNS ? names[c] : NULL;
}

/* h cut so that neither the expected gap change (drift h) nor its standard deviation (sqrt(spread h))
 * exceeds the gap bound cap (twin: filament.gap_bounded) */
MD_INLINE double md_gap_bounded(double h, double drift, double spread, double cap)
{
    h = drift * h > cap ? cap / drift : h;
    return spread * h > cap * cap ? cap * cap / spread : h;
}

/* sinh(x)/x, by its series where the exponentials would cancel (twin: filament.sinhc) */
MD_INLINE double md_sinhc(double x)
{
    int small = fabs(x) < 1e-3;
    double xs = small ? 1.0 : x, e = md_exp(xs);
    return small ? 1.0 + x * x * (1.0 / 6.0 + x * x / 120.0) : (e - 1.0 / e) / (2.0 * xs);
}

enum { K_PULSE = 0, K_IDLE = 1, K_READ = 2 };

/* Per-device state row: gap m, temperature K, ln(I R_s / |V|) of the last write, sub-steps
 * taken, ln(I R_s / |V|) of the last read (engine.kernel_state; the solve's warm starts), gap
 * relaxed by dissolution since the tip was last rebuilt (m; filament.DeviceState.relaxation_m). */
enum { S_GAP = 0, S_TEMP, S_WSHARE, S_SUBSTEPS, S_RSHARE, S_RELAX, N_STATE };

typedef double (*md_hops_fn)(double mean, uint64_t key, uint64_t *counter);

#define LANES for (int l = 0; l < MD_LANES; ++l)
#define MD_PASTE(name, width) name##_##width
#define MD_NAME(name, width) MD_PASTE(name, width)


/* Widths: 16 lanes for the bulk of an ensemble (two AVX-512 vectors per quantity, so that two
 * independent chains overlap; measured on one thread, 20,000 devices, ramp cycle: 4 lanes 728,
 * 8 lanes 514, 16 lanes 440, 32 lanes 431 ns per device-pulse), and 1 for the few devices left
 * over (up to 3, see _filament.pyx): a lane computes whether or not it holds a device, so one
 * device alone in a 16-lane batch cost 3.5x the scalar kernel (a nominal device in a
 * calibration, a small write-verify group), and 1.2x at width 1. */
#define MD_LANES 16
#define MD_W(name) MD_NAME(name, 16)
#include "_filament_lanes_body.h"
#undef MD_W
#undef MD_LANES

#define MD_LANES 1
#define MD_W(name) MD_NAME(name, 1)
#include "_filament_lanes_body.h"
#undef MD_W
#undef MD_LANES

/* The cell solve of one device (parameter row table_row) at bias volts and gap, from the warm
 * start ln(I R_s / |V|) = lnshare: the kernel's own solve, for tests against an independent root. */
static void memdrift_filament_solve(const double *table_row, double volts, double gap, double lnshare, double *vc,
                                    double *cur, int64_t *bad)
{
    md_batch_1 B;
    for (int c = 0; c < N_COLUMNS; ++c)
        B.p[c][0] = table_row[c];
    B.inv_v0[0] = 1.0 / B.p[C_V0][0];
    B.inv_g0[0] = 1.0 / B.p[C_G0][0];
    B.ln_i0[0] = md_log(B.p[C_I0][0]);
    B.ln_v0[0] = md_log(B.p[C_V0][0]);
    B.ln_rs_i0[0] = B.p[C_RS][0] > 0.0 ? md_log(B.p[C_RS][0] * B.p[C_I0][0]) : 0.0;
    int64_t mask = 1;
    md_solve_cell_1(&B, volts, &gap, &lnshare, &mask, vc, cur, NULL, bad);
}

#endif
