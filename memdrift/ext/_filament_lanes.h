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

#include "_lanes_math.h"

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

#define LANES for (int l = 0; l < MD_LANES; ++l)
#define MD_PASTE(name, width) name##_##width
#define MD_NAME(name, width) MD_PASTE(name, width)


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

#endif
