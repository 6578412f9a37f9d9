/* What the C kernels share (_filament_lanes.h, _bulk4t_hops.h, _bulk4t_linalg.h,
 * _poisson_lanes.h): exp and log as branch-free polynomials, because libm's calls stop GCC from
 * turning a loop over lanes into SIMD code; the attribute that clones a function per instruction
 * set; and Boltzmann's constant. Build with -ffp-contract=off so that every clone rounds alike. */
#ifndef MEMDRIFT_LANES_MATH_H
#define MEMDRIFT_LANES_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MD_BOLTZMANN_EV 8.617333262e-5 /* k_B in eV/K, for every kernel's kT */

#ifndef MD_INLINE
#define MD_INLINE static inline __attribute__((always_inline))
#endif

#ifndef MD_CLONES /* defined empty to build one instruction set only (to compare clones) */
/* clones need the loader's ifunc support: GCC on x86-64 glibc Linux; elsewhere one baseline build */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
#define MD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* for code whose AVX-512 form needs more than F: 64-bit integer multiplies are one instruction
 * with AVX-512DQ (in x86-64-v4) and three without; integer products are exact, so the bits are
 * those of every other clone */
#define MD_CLONES_DQ __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define MD_CLONES
#endif
#endif
#ifndef MD_CLONES_DQ /* MD_CLONES given (or no clones here): the same for both */
#define MD_CLONES_DQ MD_CLONES
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

#endif
