# cython: language_level=3
"""Counter-based random streams shared by the compiled kernels (twin: memdrift/emulator/randomness.py).

One stream per device: draw k of device key K is SplitMix64(K ^ k * golden gamma),
so a device's draws depend on its key and counter only — never on the thread
that computes it or on how devices are chunked.
"""

from libc.math cimport exp, log, sqrt, fabs, floor
from libc.stdint cimport uint64_t

cdef extern from *:
    # lgamma() stores the sign in the global `signgam`, a shared cache line written by
    # every thread in the PTRS slow path; lgamma_r (same value, in glibc's libm since
    # forever, declared here because -std=c11 hides it) keeps the sign local.
    """
    double lgamma_r(double, int *);
    """
    double lgamma_r(double x, int* sign) noexcept nogil


cdef inline uint64_t splitmix64(uint64_t x) noexcept nogil:
    cdef uint64_t z = x + <uint64_t>0x9E3779B97F4A7C15ULL
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline double next_uniform(uint64_t key, uint64_t* counter) noexcept nogil:
    """Uniform in (0, 1) from the device stream; advances the counter."""
    cdef uint64_t bits = splitmix64(key ^ (counter[0] * <uint64_t>0x9E3779B97F4A7C15ULL))
    counter[0] += 1
    return (<double>(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0)


cdef inline double poisson(double lam, uint64_t key, uint64_t* counter) noexcept nogil:
    """Poisson variate: inversion for small means, Hörmann's PTRS above 10."""
    cdef double u, v, us, k, prod, limit, slam, loglam, a, b, invalpha, vr
    cdef int gamma_sign
    if lam <= 0.0:
        return 0.0
    if lam < 10.0:
        # multiplication method: count uniforms until their product drops below e^-lam
        prod = next_uniform(key, counter)
        # e^-lam >= 1 - lam, and 1e-15 covers the rounding of both sides, so a first
        # uniform below this gives k = 0 exactly as the comparison with exp(-lam)
        # would; saves the exp for the tiny means of reads and idle gaps.
        if prod <= (1.0 - lam) - 1e-15:
            return 0.0
        limit = exp(-lam)
        k = 0.0
        while prod > limit:
            prod *= next_uniform(key, counter)
            k += 1.0
        return k
    slam = sqrt(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    vr = 0.9277 - 3.6224 / (b - 2.0)
    # log(lam) and alpha serve only the slow test (about one draw in ten): computed on first need
    loglam = 0.0
    invalpha = 0.0
    while True:
        u = next_uniform(key, counter) - 0.5
        v = next_uniform(key, counter)
        us = 0.5 - fabs(u)
        k = floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if invalpha == 0.0:
            loglam = log(lam)
            invalpha = 1.1239 + 1.1328 / (b - 3.4)
        if (log(v) + log(invalpha) - log(a / (us * us) + b)) <= (-lam + k * loglam - lgamma_r(k + 1.0, &gamma_sign)):
            return k
