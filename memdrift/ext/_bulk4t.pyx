# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels of the 2D bulk four-terminal film (twin: memdrift/emulator/bulk4t.py).

Everything per device runs without the GIL; devices are spread over threads with
prange. Each device draws from its own counter-based stream (``_streams.pxd``,
shared with the filament kernel), so results do not depend on the thread count;
the hop counts of a step give every draw its own block of that stream's counters
(``_poisson_lanes.h``), so the draws are independent and run in SIMD lanes.

This file keeps the structure (FFP events, pulses, steps, the paired PCG); the
arithmetic is C, cloned per instruction set: ``_bulk4t_linalg.h`` (matrix, band
Cholesky and its blocked solves, CG reductions) and ``_bulk4t_hops.h`` (rates,
the face sums of a step, sigma).

Linear solves: the potential matrix A(sigma) is factorised by a banded Cholesky
(bandwidth ny) and the factor is kept per device; later solves run preconditioned
CG with that factor, and the factor is rebuilt only when sigma has moved by more
than ``refactor_tolerance`` since it was built, or when a solve needed more than
MAX_STALE_ITERATIONS. Read and write share A (all four terminals are Dirichlet in
both). Each device also keeps the last phi of two voltage patterns (the read's and
the write's): a solve of a pattern seen before starts CG from the scaled old phi.
The heat path is linear and constant: the local sink's matrix is factorised once per device; the substrate
half-space's is a dense operator (cells x cells, built by memdrift.emulator.bulk4t.substrate_heat_operator)
applied by a matrix-vector product, one per distinct device.
"""

from cython.parallel cimport prange
from libc.math cimport sqrt, fabs, floor
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset, memcmp
from libc.stdint cimport uint64_t, int8_t

import numpy as np
cimport numpy as cnp

from memdrift.ext._streams cimport next_uniform, poisson as stream_poisson

cdef extern from "_bulk4t_hops.h" nogil:
    void md_bulk_rates(int nx, int ny, double hx_m, double hy_m, double a_m, double nu0_hz, double ea_ev, double z,
                       double nmax, int sg, const double *n_cells, const double *phi, const double *temp, double *forward,
                       double *back)
    void md_face_totals(int nx, int ny, const double *first, const double *second, double *total)
    void md_expected_counts(int nx, int ny, const double *n_cells, const double *rate_f, const double *rate_b,
                            double dt_s, double *forward, double *back)
    void md_apply_hops(int nx, int ny, const double *forward, const double *back, double *n_cells)
    void md_conductivity(int n, const double *n_cells, const double *temp, double base_s_per_m,
                         double vacancy_s_per_m, double exponent, double activation_ev, double ambient_k,
                         double n_mean, double *sigma)

cdef extern from "_poisson_lanes.h" nogil:
    int MD_DRAW_BITS
    void md_poisson_lanes(const double *lam, double *k_out, int count, uint64_t key, uint64_t base)

cdef extern from "_bulk4t_linalg.h" nogil:
    void md_faces(int nx, int ny, double cx, double cy, const double *sigma, const int8_t *term, const double *bfac,
                  double *gx, double *gy, double *gb)
    void md_matvec(int nx, int ny, const double *gx, const double *gy, const double *dg, const double *x, double *y)
    double md_max_rel_change(const double *a, const double *b, int n)
    size_t md_band_doubles(int n, int bw)
    size_t md_band_scratch(int n, int bw)
    double md_dot(const double *a, const double *b, int n)
    int md_band_factor(int n, int bw, const double *rows, double *packed)
    double md_cg_advance(double *x, double *r, const double *p, const double *q, double alpha, int n)
    void md_band_solve1(int n, int bw, const double *packed, const double *b, double *x, double *scratch)
    void md_band_solve2(int n, int bw, const double *packed, const double *b1, const double *b2, double *x1,
                        double *x2, double *scratch)

# CG iterations beyond which the stale band factor is rebuilt before the next solve (set by measurement,
# bench/bench_bulk4t.py: a factorisation costs about as much as fourteen CG iterations on 32 x 32; with
# warm starts 4 gives 33 factorisations and 4131 iterations over the bench's 555 events, 3 gives 158 and 2937).
cdef int MAX_STALE_ITERATIONS = 4

# Columns of the per-device table (memdrift.emulator.bulk4t.DEVICE_COLUMNS).
cdef enum:
    C_A = 0
    C_NU0 = 1
    C_EA = 2
    C_Z = 3
    C_NMEAN = 4
    C_NMAX = 5
    C_SBASE = 6
    C_SVAC = 7
    C_SEXP = 8
    C_SEA = 9
    C_KAPPA = 10
    C_GSUB = 11
    C_HEAT = 12
    C_T0 = 13
    C_TMAX = 14
    C_SG = 15
    C_TMODEL = 16
    C_KSUB = 17
    NCOL = 18

# Each column beside the parameter it holds, exported as COLUMNS: loading the kernel compares them with
# the twin's memdrift.emulator.bulk4t.DEVICE_COLUMNS name by name, so a column added or moved on one side
# only is refused (an index left without a name reads as "").
_COLUMN_NAMES = {
    C_A: "hop_distance_m", C_NU0: "attempt_frequency_hz", C_EA: "activation_energy_ev", C_Z: "charge_number",
    C_NMEAN: "n_mean", C_NMAX: "n_max", C_SBASE: "conductivity_base_s_per_m",
    C_SVAC: "conductivity_vacancy_s_per_m", C_SEXP: "conductivity_exponent", C_SEA: "conductivity_activation_ev",
    C_KAPPA: "thermal_conductivity_w_per_mk", C_GSUB: "substrate_conductance_w_per_m2k",
    C_HEAT: "joule_heating", C_T0: "ambient_temperature_k", C_TMAX: "thermal_ceiling_k",
    C_SG: "scharfetter_gummel", C_TMODEL: "thermal_model", C_KSUB: "substrate_thermal_conductivity_w_per_mk",
}
#: the parameter held in each column of the per-device table the kernel takes
COLUMNS = tuple(_COLUMN_NAMES.get(c, "") for c in range(NCOL))

# Per-pulse quality bits (memdrift.data.flags: the same values).
cdef enum:
    FLAG_NOT_CONVERGED = 1
    FLAG_THERMAL_CEILING = 2
    FLAG_STEP_BUDGET = 4

# sigma(n, T) and T are iterated (Picard, from below: the first guess is the ambient or the last field) until
# the temperature is within this of the fixed point (K), the error estimated from the contraction of the last
# two sweeps (tested against a tolerance a hundred times finer). A field that has not settled after
# MAX_THERMAL_ITERATIONS is not a solution.
cdef double THERMAL_TOLERANCE_K = 1e-3
cdef int MAX_THERMAL_ITERATIONS = 500


cdef struct Geo:
    int nx
    int ny
    int n
    int bw
    double hx
    double hy
    double t
    double bfac[4]
    int8_t *term
    # contact conductance (S) of each cell under an electrode, or NULL: ideal segments, sigma * bfac
    const double *gcon
    # cells on either side of face k (x faces, then y faces): set by the entries that step hops
    int *fi
    int *fj


# ---------------------------------------------------------------------------
# Matrices: face conductances, banded Cholesky, PCG
# ---------------------------------------------------------------------------

cdef inline void _faces(const Geo *g, const double *sigma, double *gx, double *gy, double *gb) noexcept nogil:
    """Harmonic face conductances gx ((nx-1)*ny), gy (nx*(ny-1)) and electrode couplings gb (n)."""
    cdef int i
    md_faces(g.nx, g.ny, g.t * g.hy / g.hx, g.t * g.hx / g.hy, sigma, g.term, g.bfac, gx, gy, gb)
    if g.gcon != NULL:
        # through the contact resistivity the coupling does not depend on the film's conductivity
        for i in range(g.n):
            gb[i] = g.gcon[i] if g.term[i] >= 0 else 0.0


cdef void _diag(const Geo *g, const double *gx, const double *gy, const double *extra, double *dg) noexcept nogil:
    cdef int ix, iy, i
    for i in range(g.n):
        dg[i] = extra[i]
    for ix in range(g.nx - 1):
        for iy in range(g.ny):
            i = ix * g.ny + iy
            dg[i] += gx[i]
            dg[i + g.ny] += gx[i]
    for ix in range(g.nx):
        for iy in range(g.ny - 1):
            i = ix * g.ny + iy
            dg[i] += gy[ix * (g.ny - 1) + iy]
            dg[i + 1] += gy[ix * (g.ny - 1) + iy]


cdef inline void _matvec(const Geo *g, const double *gx, const double *gy, const double *dg, const double *x,
                         double *y) noexcept nogil:
    md_matvec(g.nx, g.ny, gx, gy, dg, x, y)


cdef int _band_cholesky(const Geo *g, const double *gx, const double *gy, const double *dg,
                        double *packed) noexcept nogil:
    """Lower band Cholesky of the matrix (gx, gy, dg) into ``packed`` (md_band_factor's layout, _bulk4t_linalg.h).

    The matrix is assembled row-major, A[i*(bw+1) + bw - (i-j)] = A_ij for 0 <= i-j <= bw; the factor's
    diagonal slots hold 1 / L_ii, so that the solves do not divide. -1: not positive definite, -2: out of
    memory.
    """
    cdef int bw = g.bw, w = g.bw + 1, i, ix, iy
    cdef double *L = <double *> malloc(g.n * w * sizeof(double))
    if L == NULL:
        return -2
    memset(L, 0, g.n * w * sizeof(double))
    for i in range(g.n):
        L[i * w + bw] = dg[i]
        ix = i // g.ny
        iy = i - ix * g.ny
        if iy > 0:
            L[i * w + bw - 1] = -gy[ix * (g.ny - 1) + iy - 1]
        if ix > 0:
            L[i * w + bw - g.ny] = -gx[i - g.ny]
    if md_band_factor(g.n, bw, L, packed) != 0:
        free(L)
        return -1
    free(L)
    return 0


cdef inline void _band_solve(const Geo *g, const double *L, const double *b, double *x, double *scratch) noexcept nogil:
    """x = (L L^T)^-1 b (_bulk4t_linalg.h: blocked substitutions)."""
    md_band_solve1(g.n, g.bw, L, b, x, scratch)


cdef inline void _band_solve2(const Geo *g, const double *L, const double *b1, const double *b2, double *x1,
                              double *x2, double *scratch) noexcept nogil:
    """_band_solve of two right-hand sides in one sweep over the factor (each result bit-identical to a
    single solve; the two substitution chains interleave)."""
    md_band_solve2(g.n, g.bw, L, b1, b2, x1, x2, scratch)


cdef struct Cg:
    # one CG recurrence: right-hand side, iterate, residual, preconditioned residual, direction, A p
    const double *b
    double *x
    double *r
    double *z
    double *p
    double *q
    double bnorm
    double rz
    int active


cdef void _precondition(const Geo *g, const double *L, Cg *s1, Cg *s2, double *scratch) noexcept nogil:
    """z = M^-1 r for the recurrences still running (two at once when both are)."""
    if s1.active and s2 != NULL and s2.active:
        _band_solve2(g, L, s1.r, s2.r, s1.z, s2.z, scratch)
    elif s1.active:
        _band_solve(g, L, s1.r, s1.z, scratch)
    elif s2 != NULL and s2.active:
        _band_solve(g, L, s2.r, s2.z, scratch)


cdef void _cg_residual(const Geo *g, const double *gx, const double *gy, const double *dg, Cg *s,
                       double rtol) noexcept nogil:
    cdef int i
    cdef double rnorm = 0.0
    _matvec(g, gx, gy, dg, s.x, s.q)
    for i in range(g.n):
        s.r[i] = s.b[i] - s.q[i]
    rnorm = md_dot(s.r, s.r, g.n)
    if sqrt(rnorm) <= rtol * s.bnorm:
        s.active = 0


cdef void _cg_direction(const Geo *g, Cg *s, int first) noexcept nogil:
    cdef int i
    cdef double rz_new = 0.0, beta
    if first:
        memcpy(s.p, s.z, g.n * sizeof(double))
        s.rz = md_dot(s.r, s.z, g.n)
        return
    rz_new = md_dot(s.r, s.z, g.n)
    beta = rz_new / s.rz
    s.rz = rz_new
    for i in range(g.n):
        s.p[i] = s.z[i] + beta * s.p[i]


cdef void _cg_step(const Geo *g, const double *gx, const double *gy, const double *dg, Cg *s,
                   double rtol) noexcept nogil:
    cdef int i
    cdef double pq = 0.0, alpha, rnorm = 0.0
    _matvec(g, gx, gy, dg, s.p, s.q)
    pq = md_dot(s.p, s.q, g.n)
    alpha = s.rz / pq
    rnorm = md_cg_advance(s.x, s.r, s.p, s.q, alpha, g.n)
    if sqrt(rnorm) <= rtol * s.bnorm:
        s.active = 0


cdef int _pcg(const Geo *g, const double *gx, const double *gy, const double *dg, const double *L,
              Cg *s1, Cg *s2, double rtol, int maxit, int warm1, int warm2, double *scratch) noexcept nogil:
    """Solve A x = b by CG preconditioned with the (possibly stale) band factor, for s1 and (unless NULL)
    s2 in lockstep; x starts at M^-1 b, or at the guess already in x when ``warm``. Returns the iterations
    of the slower one."""
    cdef int i, it, k
    cdef Cg *sk
    for k in range(2):
        sk = s1 if k == 0 else s2
        if sk == NULL:
            continue
        sk.bnorm = sqrt(md_dot(sk.b, sk.b, g.n))
        sk.active = sk.bnorm != 0.0
        if not sk.active:
            memset(sk.x, 0, g.n * sizeof(double))
    if s2 != NULL and s1.active and s2.active and not warm1 and not warm2:
        _band_solve2(g, L, s1.b, s2.b, s1.x, s2.x, scratch)
    else:
        if s1.active and not warm1:
            _band_solve(g, L, s1.b, s1.x, scratch)
        if s2 != NULL and s2.active and not warm2:
            _band_solve(g, L, s2.b, s2.x, scratch)
    for k in range(2):
        sk = s1 if k == 0 else s2
        if sk != NULL and sk.active:
            _cg_residual(g, gx, gy, dg, sk, rtol)
    _precondition(g, L, s1, s2, scratch)
    for k in range(2):
        sk = s1 if k == 0 else s2
        if sk != NULL and sk.active:
            _cg_direction(g, sk, 1)
    it = 0
    while (s1.active or (s2 != NULL and s2.active)) and it < maxit:
        it += 1
        for k in range(2):
            sk = s1 if k == 0 else s2
            if sk != NULL and sk.active:
                _cg_step(g, gx, gy, dg, sk, rtol)
        _precondition(g, L, s1, s2, scratch)
        for k in range(2):
            sk = s1 if k == 0 else s2
            if sk != NULL and sk.active:
                _cg_direction(g, sk, 0)
    return it


# ---------------------------------------------------------------------------
# One device
# ---------------------------------------------------------------------------

cdef struct Work:
    double *sigma
    double *gx
    double *gy
    double *gb
    double *dg
    double *rhs
    double *phi
    double *theta
    double *pw
    double *r
    double *z
    double *p
    double *q
    double *rf
    double *rb
    double *cf
    double *cb
    double *tmp
    # second right-hand side of a paired solve
    double *rhs2
    double *phi2
    double *r2
    double *z2
    double *p2
    double *q2
    # padded vectors of the band solves (md_band_scratch)
    double *scratch


cdef int _alloc(Work *w, const Geo *g) noexcept nogil:
    cdef int n = g.n
    cdef double *block = <double *> malloc((24 * n + md_band_scratch(g.n, g.bw)) * sizeof(double))
    if block == NULL:
        return -1
    w.sigma = block
    w.gx = block + n
    w.gy = block + 2 * n
    w.gb = block + 3 * n
    w.dg = block + 4 * n
    w.rhs = block + 5 * n
    w.phi = block + 6 * n
    w.theta = block + 7 * n
    w.pw = block + 8 * n
    w.r = block + 9 * n
    w.z = block + 10 * n
    w.p = block + 11 * n
    w.q = block + 12 * n
    # rates/counts per face: x faces then y faces, 2n slots each
    w.rf = block + 13 * n
    w.rb = block + 15 * n
    w.cf = w.rf
    w.cb = w.rb
    w.tmp = block + 17 * n
    w.rhs2 = block + 18 * n
    w.phi2 = block + 19 * n
    w.r2 = block + 20 * n
    w.z2 = block + 21 * n
    w.p2 = block + 22 * n
    w.q2 = block + 23 * n
    w.scratch = block + 24 * n
    return 0


cdef inline void _conductivity(const Geo *g, const double *row, const double *n_cells, const double *temp,
                               double *sigma) noexcept nogil:
    md_conductivity(g.n, n_cells, temp, row[C_SBASE], row[C_SVAC], row[C_SEXP], row[C_SEA], row[C_T0], row[C_NMEAN],
                    sigma)


cdef inline double _ratio(const double *volts, const double *stored) noexcept nogil:
    """c with volts == c * stored (to rounding), or 0 when they are not proportional or stored is empty."""
    cdef int k, kmax = 0
    cdef double c, big = 0.0
    for k in range(4):
        if fabs(stored[k]) > fabs(stored[kmax]):
            kmax = k
        if fabs(volts[k]) > big:
            big = fabs(volts[k])
    if stored[kmax] == 0.0:
        return 0.0
    c = volts[kmax] / stored[kmax]
    for k in range(4):
        if fabs(volts[k] - c * stored[k]) > 1e-14 * big:
            return 0.0
    return c


cdef int _solve_potential(const Geo *g, Work *w, double *L, double *state, const double *volts,
                          double refactor_tol, double *currents, int pair) noexcept nogil:
    """phi into w.phi for terminal voltages; factor rebuilt when sigma moved past refactor_tol.

    ``state`` (per device, state_size(n) doubles): sigma at the last factorisation (n; zero or negative
    first entry: rebuild), the slot used last (1), two slots (terminal voltages (4), "solved at
    sigma_solved" flag (1), phi (n)), and sigma_solved (n), the sigma of the last solve.

    A solve whose voltages are a multiple of a slot's starts CG from that multiple of the slot's phi (reads
    and writes alternate, and sigma moves little between two solves of the same pattern); right after a
    refactorisation M^-1 b is the better start. A slot solved at exactly this sigma is reused without CG.
    With ``pair`` (reads), the other slot's pattern is solved alongside in the same CG sweeps, so the write
    that follows a read on the same film finds its phi ready.
    """
    cdef int i, k, it, slot = -1, other, fresh = 0, warm = 0, warm2 = 0, co = 0
    cdef double dev = 0.0, rel, c = 0.0
    cdef double *sigma_ref = state
    cdef double *sigma_solved = &state[3 * g.n + 11]
    cdef double *cache
    cdef double *cache2
    cdef Cg s1, s2
    for k in range(2):
        c = _ratio(volts, &state[g.n + 1 + k * (g.n + 5)])
        if c != 0.0:
            slot = k
            break
    if slot < 0:
        # no slot for this pattern: take the one not used last
        slot = 1 - <int>state[g.n]
    other = 1 - slot
    cache = &state[g.n + 1 + slot * (g.n + 5)]
    cache2 = &state[g.n + 1 + other * (g.n + 5)]
    state[g.n] = slot
    _faces(g, w.sigma, w.gx, w.gy, w.gb)
    if c != 0.0 and cache[4] != 0.0 and memcmp(w.sigma, sigma_solved, g.n * sizeof(double)) == 0:
        for i in range(g.n):
            w.phi[i] = c * cache[5 + i]
        it = 0
    else:
        dev = md_max_rel_change(w.sigma, sigma_ref, g.n)
        _diag(g, w.gx, w.gy, w.gb, w.dg)
        if dev > refactor_tol or sigma_ref[0] <= 0.0:
            if _band_cholesky(g, w.gx, w.gy, w.dg, L) != 0:
                return -1
            memcpy(sigma_ref, w.sigma, g.n * sizeof(double))
            fresh = 1
        if c != 0.0 and not fresh:
            warm = 1
            for i in range(g.n):
                w.phi[i] = c * cache[5 + i]
        for i in range(g.n):
            if g.term[i] >= 0:
                w.rhs[i] = w.gb[i] * volts[g.term[i]]
            else:
                w.rhs[i] = 0.0
        co = pair and (cache2[0] != 0.0 or cache2[1] != 0.0 or cache2[2] != 0.0 or cache2[3] != 0.0)
        s1.b = w.rhs
        s1.x = w.phi
        s1.r = w.r
        s1.z = w.z
        s1.p = w.p
        s1.q = w.q
        if co:
            for i in range(g.n):
                if g.term[i] >= 0:
                    w.rhs2[i] = w.gb[i] * cache2[g.term[i]]
                else:
                    w.rhs2[i] = 0.0
            if not fresh:
                warm2 = 1
                memcpy(w.phi2, &cache2[5], g.n * sizeof(double))
            s2.b = w.rhs2
            s2.x = w.phi2
            s2.r = w.r2
            s2.z = w.z2
            s2.p = w.p2
            s2.q = w.q2
            it = _pcg(g, w.gx, w.gy, w.dg, L, &s1, &s2, 1e-12, 200, warm, warm2, w.scratch)
            memcpy(&cache2[5], w.phi2, g.n * sizeof(double))
        else:
            it = _pcg(g, w.gx, w.gy, w.dg, L, &s1, NULL, 1e-12, 200, warm, 0, w.scratch)
        if it > MAX_STALE_ITERATIONS:
            # the factor has gone stale: rebuild it at the next solve
            sigma_ref[0] = -1.0
        memcpy(sigma_solved, w.sigma, g.n * sizeof(double))
        cache2[4] = 1.0 if co else 0.0
        cache[4] = 1.0
        for k in range(4):
            cache[k] = volts[k]
        memcpy(&cache[5], w.phi, g.n * sizeof(double))
    for k in range(4):
        currents[k] = 0.0
    for i in range(g.n):
        if g.term[i] >= 0:
            currents[g.term[i]] += w.gb[i] * (volts[g.term[i]] - w.phi[i])
    return it


cdef void _joule(const Geo *g, Work *w, const double *volts, double scale) noexcept nogil:
    cdef int ix, iy, i, j
    cdef double d, e
    for i in range(g.n):
        if g.term[i] >= 0:
            d = volts[g.term[i]] - w.phi[i]
            w.pw[i] = w.gb[i] * d * d
        else:
            w.pw[i] = 0.0
    for ix in range(g.nx - 1):
        for iy in range(g.ny):
            i = ix * g.ny + iy
            d = w.phi[i] - w.phi[i + g.ny]
            e = 0.5 * w.gx[i] * d * d
            w.pw[i] += e
            w.pw[i + g.ny] += e
    for ix in range(g.nx):
        for iy in range(g.ny - 1):
            i = ix * g.ny + iy
            j = ix * (g.ny - 1) + iy
            d = w.phi[i] - w.phi[i + 1]
            e = 0.5 * w.gy[j] * d * d
            w.pw[i] += e
            w.pw[i + 1] += e
    for i in range(g.n):
        w.pw[i] *= scale


cdef void _dense_apply(int n, const double *m, const double *x, double *y) noexcept nogil:
    """y = M x, M dense row-major (n, n): the substrate heat path (twin: DenseHeat.solve)."""
    cdef int i, j
    cdef double acc
    cdef const double *mi
    for i in range(n):
        mi = m + <Py_ssize_t> i * n
        acc = 0.0
        for j in range(n):
            acc = acc + mi[j] * x[j]
        y[i] = acc


cdef inline int _settled(double change, double last) noexcept nogil:
    """Within THERMAL_TOLERANCE_K of the fixed point: the error after a sweep is change q / (1 - q), q the
    contraction change / last (twin: _settled in bulk4t.py; ``last`` < 0 before the second sweep)."""
    cdef double q
    if change > THERMAL_TOLERANCE_K:
        return 0
    q = change / last if last > 0.0 else 0.0
    return q < 1.0 and change * q <= THERMAL_TOLERANCE_K * (1.0 - q)


cdef int _fields(const Geo *g, Work *w, const double *row, const double *n_cells, double *temp,
                 double *L, double *state, const double *HL, const double *volts, double refactor_tol,
                 double *power) noexcept nogil:
    """phi, theta and temp = T0 + theta, self-consistent with sigma(n, T); ``temp`` holds the first guess.

    Returns -1 (solve failed), 0, FLAG_THERMAL_CEILING (a cell above the thermal ceiling, or no finite
    temperature: the iteration is stopped there) or FLAG_NOT_CONVERGED (no fixed point within
    MAX_THERMAL_ITERATIONS). Without heating or without thermal activation sigma does not depend on T and
    one solve is the answer.
    """
    cdef double cur[4]
    cdef int i, it = 0
    cdef double t0 = row[C_T0], tnew, dmax, tmax, last = -1.0
    cdef int coupled = row[C_HEAT] > 0.0 and row[C_SEA] > 0.0
    while True:
        _conductivity(g, row, n_cells, temp, w.sigma)
        if _solve_potential(g, w, L, state, volts, refactor_tol, cur, 0) < 0:
            return -1
        power[0] = volts[0] * cur[0] + volts[1] * cur[1] + volts[2] * cur[2] + volts[3] * cur[3]
        if row[C_HEAT] > 0.0:
            _joule(g, w, volts, row[C_HEAT])
            if row[C_TMODEL] > 0.0:
                _dense_apply(g.n, HL, w.pw, w.theta)
            else:
                _band_solve(g, HL, w.pw, w.theta, w.scratch)
        else:
            for i in range(g.n):
                w.theta[i] = 0.0
        dmax = 0.0
        tmax = t0
        for i in range(g.n):
            tnew = t0 + w.theta[i]
            if fabs(tnew - temp[i]) > dmax:
                dmax = fabs(tnew - temp[i])
            if not (tnew <= tmax):
                tmax = tnew
            temp[i] = tnew
        if not (tmax <= row[C_TMAX]):
            return FLAG_THERMAL_CEILING
        if not coupled or _settled(dmax, last):
            return 0
        last = dmax
        it += 1
        if it >= MAX_THERMAL_ITERATIONS:
            return FLAG_NOT_CONVERGED


cdef inline void _rates(const Geo *g, const double *row, const double *n_cells, const double *phi,
                        const double *temp, double *rf, double *rb) noexcept nogil:
    """Per-vacancy face crossing rates; x faces in [0, (nx-1)*ny), y faces after them (_bulk4t_hops.h)."""
    md_bulk_rates(g.nx, g.ny, g.hx, g.hy, row[C_A], row[C_NU0], row[C_EA], row[C_Z], row[C_NMAX],
                  1 if row[C_SG] > 0.0 else 0, n_cells, phi,
                  temp, rf, rb)


cdef int _pulse_one(const Geo *g, const double *row, double *n_cells, double *L, double *state,
                    const double *HL, const double *volts, double width, int deterministic, uint64_t key,
                    uint64_t *counter, double f_max, double tol, double refactor_tol, long max_steps,
                    double *out) noexcept nogil:
    """One pulse on one device; out = (peak T, mean T, energy, steps, flag bits, time simulated).

    Every step is bounded by f_max; a pulse that has not ended after max_steps steps stops there with
    FLAG_STEP_BUDGET, and one whose field passes the thermal ceiling (or has no self-consistent temperature)
    stops at that solve with its flag: the time simulated is then shorter than the width.
    """
    cdef Work w
    cdef int i, j, k, nf = (g.nx - 1) * g.ny + g.nx * (g.ny - 1), over, st, flag = 0
    cdef double t0 = row[C_T0], remaining = width, dt, omax, power = 0.0, peak, mean_acc = 0.0
    cdef double energy = 0.0, tmean, cap, room
    cdef long steps = 0
    cdef double *temp
    cdef double *sig_solved
    cdef double *outr
    cdef double *inr
    if _alloc(&w, g) != 0:
        return -2
    temp = <double *> malloc(4 * g.n * sizeof(double))
    if temp == NULL:
        free(w.sigma)
        return -2
    sig_solved = temp + g.n
    outr = temp + 2 * g.n
    inr = temp + 3 * g.n
    # site exclusion: a cell never holds more than n_max (whole vacancies when the counts are integers)
    cap = row[C_NMAX] if deterministic else floor(row[C_NMAX])
    for i in range(g.n):
        temp[i] = t0
    st = _fields(g, &w, row, n_cells, temp, L, state, HL, volts, refactor_tol, &power)
    if st < 0:
        free(w.sigma)
        free(temp)
        return -1
    flag |= st
    memcpy(sig_solved, w.sigma, g.n * sizeof(double))
    peak = t0
    for i in range(g.n):
        if temp[i] > peak:
            peak = temp[i]
    while remaining > 0.0 and flag == 0:
        if steps >= max_steps:
            flag |= FLAG_STEP_BUDGET
            break
        _rates(g, row, n_cells, w.phi, temp, w.rf, w.rb)
        md_face_totals(g.nx, g.ny, w.rf, w.rb, outr)
        omax = 0.0
        for i in range(g.n):
            if outr[i] > omax:
                omax = outr[i]
        if omax > 0.0 and f_max / omax < remaining:
            dt = f_max / omax
        else:
            dt = remaining
        # expected counts -> (Poisson) counts, in place over the rate arrays
        md_expected_counts(g.nx, g.ny, n_cells, w.rf, w.rb, dt, w.cf, w.cb)
        if not deterministic:
            # every draw of the step has its own block of the device's counters (_poisson_lanes.h), forward
            # counts first, so the draws are independent of one another and run side by side in SIMD lanes
            md_poisson_lanes(w.cf, w.cf, nf, key, counter[0])
            md_poisson_lanes(w.cb, w.cb, nf, key, counter[0] + (<uint64_t>nf << MD_DRAW_BITS))
            counter[0] += <uint64_t>(2 * nf) << MD_DRAW_BITS
            md_face_totals(g.nx, g.ny, w.cf, w.cb, outr)
            over = 0
            for i in range(g.n):
                if outr[i] > n_cells[i]:
                    over = 1
                    break
            for k in range(nf if over else 0):
                i = g.fi[k]
                j = g.fj[k]
                if outr[i] > n_cells[i]:
                    w.cf[k] = floor(w.cf[k] * (n_cells[i] / outr[i]))
                if outr[j] > n_cells[j]:
                    w.cb[k] = floor(w.cb[k] * (n_cells[j] / outr[j]))
        # arrivals are thinned to the room left under the cap (counting none of the step's departures, so the
        # cap holds whatever order the hops take); the exclusion factor of the rates alone bounds the expected
        # arrivals only while dt is small against the rate into a nearly full cell
        md_face_totals(g.nx, g.ny, w.cb, w.cf, inr)
        over = 0
        for i in range(g.n):
            if inr[i] > cap - n_cells[i]:
                over = 1
                break
        for k in range(nf if over else 0):
            i = g.fi[k]
            j = g.fj[k]
            room = cap - n_cells[j]
            if inr[j] > room:
                w.cf[k] = w.cf[k] * (room / inr[j]) if room > 0.0 else 0.0
                if not deterministic:
                    w.cf[k] = floor(w.cf[k])
            room = cap - n_cells[i]
            if inr[i] > room:
                w.cb[k] = w.cb[k] * (room / inr[i]) if room > 0.0 else 0.0
                if not deterministic:
                    w.cb[k] = floor(w.cb[k])
        md_apply_hops(g.nx, g.ny, w.cf, w.cb, n_cells)
        energy += power * dt
        tmean = 0.0
        for i in range(g.n):
            tmean += temp[i]
        mean_acc += tmean / g.n * dt
        steps += 1
        remaining -= dt
        if remaining < 1e-12 * width:
            remaining = 0.0
        if remaining > 0.0:
            _conductivity(g, row, n_cells, temp, w.tmp)
            if md_max_rel_change(w.tmp, sig_solved, g.n) > tol:
                st = _fields(g, &w, row, n_cells, temp, L, state, HL, volts, refactor_tol, &power)
                if st < 0:
                    free(w.sigma)
                    free(temp)
                    return -1
                flag |= st
                memcpy(sig_solved, w.sigma, g.n * sizeof(double))
                for i in range(g.n):
                    if temp[i] > peak:
                        peak = temp[i]
    # a device given no pulse was never heated: it reports its ambient, not the field solve's peak
    if width > 0.0 and width - remaining > 0.0:
        out[1] = mean_acc / (width - remaining)
    elif width > 0.0:
        # stopped at the first solve: the field it reached
        tmean = 0.0
        for i in range(g.n):
            tmean += temp[i]
        out[1] = tmean / g.n
    else:
        out[1] = t0
    out[0] = peak if width > 0.0 else t0
    out[2] = energy
    out[3] = <double>steps
    out[4] = <double>(flag if width > 0.0 else 0)
    out[5] = width - remaining if width > 0.0 else 0.0
    free(w.sigma)
    free(temp)
    return 0


cdef int _read_one(const Geo *g, const double *row, const double *n_cells, double *L, double *state,
                   const double *volts, double refactor_tol, double *currents) noexcept nogil:
    cdef Work w
    cdef int i, it
    cdef double *temp = <double *> malloc(g.n * sizeof(double))
    if temp == NULL:
        return -2
    if _alloc(&w, g) != 0:
        free(temp)
        return -2
    for i in range(g.n):
        temp[i] = row[C_T0]
    _conductivity(g, row, n_cells, temp, w.sigma)
    it = _solve_potential(g, &w, L, state, volts, refactor_tol, currents, 1)
    free(w.sigma)
    free(temp)
    return it


cdef inline double _interp(double x, const double *xp, const double *fp, int m) noexcept nogil:
    """numpy.interp for one point (xp increasing, ends clamped), the same arithmetic."""
    cdef int lo = 0, hi = m - 1, mid
    cdef double slope, res
    if x != x:
        return x
    if x < xp[0]:
        return fp[0]
    if x >= xp[m - 1]:
        return fp[m - 1]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xp[mid] <= x:
            lo = mid
        else:
            hi = mid
    slope = (fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo])
    res = slope * (x - xp[lo]) + fp[lo]
    if res != res:
        res = slope * (x - xp[lo + 1]) + fp[lo + 1]
        if res != res and fp[lo] == fp[lo + 1]:
            res = fp[lo]
    return res


cdef int _ffp_one(const Geo *g, const double *row, double *n_cells, double *L, double *state,
                  const double *HL, const double *r_grid, const double *vw, int m, double sign, double width,
                  double read_v, double r_stop, long limit, double *r_now, long *events, int deterministic,
                  uint64_t key, uint64_t *counter, double f_max, double tol, double refactor_tol, long max_steps,
                  double *rec) noexcept nogil:
    """Feedforward loop of one device: read r -> Vw(r) write -> read, while r is on the far side of r_stop.

    rec[e] = (r after the event, signed amplitude, peak T, mean T, energy, flag bits), from event events[0] up
    to limit.
    """
    cdef double volts[4]
    cdef double rvolts[4]
    cdef double cur[4]
    cdef double pout[6]
    cdef double r = r_now[0], v
    cdef long e = events[0]
    cdef int st
    rvolts[0] = read_v
    rvolts[1] = 0.0
    rvolts[2] = 0.0
    rvolts[3] = 0.0
    while e < limit and ((r > r_stop) if sign > 0.0 else (r < r_stop)):
        v = sign * _interp(r, r_grid, vw, m)
        volts[0] = 0.0
        volts[1] = v
        volts[2] = 0.0
        volts[3] = v
        st = _pulse_one(g, row, n_cells, L, state, HL, volts, width, deterministic, key, counter, f_max, tol,
                        refactor_tol, max_steps, pout)
        if st < 0:
            return st
        st = _read_one(g, row, n_cells, L, state, rvolts, refactor_tol, cur)
        if st < 0:
            return st
        r = rvolts[0] / -cur[2]
        rec[6 * e] = r
        rec[6 * e + 1] = v
        rec[6 * e + 2] = pout[0]
        rec[6 * e + 3] = pout[1]
        rec[6 * e + 4] = pout[2]
        rec[6 * e + 5] = pout[4]
        e += 1
    r_now[0] = r
    events[0] = e
    return 0


# ---------------------------------------------------------------------------
# Python entry points (arrays in, arrays out)
# ---------------------------------------------------------------------------

cdef Geo _geo(int nx, int ny, double hx, double hy, double t, double[::1] bfac, int8_t[::1] term,
              double[::1] gcon):
    cdef Geo g
    cdef int k
    g.nx = nx
    g.ny = ny
    g.n = nx * ny
    g.bw = ny
    g.hx = hx
    g.hy = hy
    g.t = t
    for k in range(4):
        g.bfac[k] = bfac[k]
    g.term = &term[0]
    if gcon.shape[0] == 0:
        g.gcon = NULL
    elif gcon.shape[0] == nx * ny:
        g.gcon = &gcon[0]
    else:
        raise ValueError(f"contact conductances have shape ({gcon.shape[0]},); allowed: (0,) or ({nx * ny},)")
    g.fi = NULL
    g.fj = NULL
    return g


cdef _face_table(Geo *g):
    """(2, faces) cell indices of each face, pointed to by g.fi / g.fj; the caller keeps the array alive."""
    cdef int ix, iy, k = 0
    table = np.empty((2, (g.nx - 1) * g.ny + g.nx * (g.ny - 1)), dtype=np.intc)
    cdef int[:, ::1] f = table
    for ix in range(g.nx - 1):
        for iy in range(g.ny):
            f[0, k] = ix * g.ny + iy
            f[1, k] = ix * g.ny + iy + g.ny
            k += 1
    for ix in range(g.nx):
        for iy in range(g.ny - 1):
            f[0, k] = ix * g.ny + iy
            f[1, k] = ix * g.ny + iy + 1
            k += 1
    g.fi = &f[0, 0]
    g.fj = &f[1, 0]
    return table


def band_size(int n, int ny):
    """Doubles of one device's packed band factor (_bulk4t_linalg.h) for n cells, ny per column."""
    return md_band_doubles(n, ny)


def state_size(int n):
    """Doubles of per-device solver state (factor reference sigma, warm-start slots) for n cells."""
    return 4 * n + 11


cdef _check_band(double[:, ::1] band, Py_ssize_t nd, const Geo *g):
    cdef Py_ssize_t size = md_band_doubles(g.n, g.bw)
    if band.shape[0] != nd or band.shape[1] != size:
        raise ValueError(f"band has shape ({band.shape[0]}, {band.shape[1]}); allowed: ({nd}, {size})")


cdef _check_heat(double[:, ::1] heat, int[::1] index, double[:, ::1] table, Py_ssize_t nd, const Geo *g):
    """The heat operators: a band factor per device (local sink) or dense ones shared through ``index``."""
    cdef Py_ssize_t d
    cdef Py_ssize_t size
    if index.shape[0] != nd or table.shape[0] != nd or table.shape[1] != NCOL:
        raise ValueError(f"heat index ({nd},) and table ({nd}, {NCOL}) expected")
    for d in range(nd):
        size = <Py_ssize_t> g.n * g.n if table[d, C_TMODEL] > 0.0 else md_band_doubles(g.n, g.bw)
        if index[d] < 0 or index[d] >= heat.shape[0] or heat.shape[1] != size:
            raise ValueError(f"heat operators have shape ({heat.shape[0]}, {heat.shape[1]}); device {d} needs a "
                             f"row of {size} at index {index[d]}")


cdef _check_state(double[:, ::1] state, Py_ssize_t nd, int n):
    if state.shape[0] != nd or state.shape[1] != 4 * n + 11:
        raise ValueError(f"solver state has shape ({state.shape[0]}, {state.shape[1]}); allowed: ({nd}, {4 * n + 11})")


def heat_factor(int nx, int ny, double hx, double hy, double t, double[::1] bfac, int8_t[::1] term,
                double[::1] gcon, double[:, ::1] table, double[:, ::1] heat_band):
    """Band Cholesky of the (constant) heat matrix of every device, into heat_band."""
    cdef Geo g = _geo(nx, ny, hx, hy, t, bfac, term, gcon)
    cdef Py_ssize_t d
    cdef int i
    cdef double *gx = <double *> malloc(3 * g.n * sizeof(double))
    cdef double *gy = gx + g.n
    cdef double *dg = gx + 2 * g.n
    cdef double kx, ky, sink
    try:
        _check_band(heat_band, table.shape[0], &g)
        for d in range(table.shape[0]):
            kx = table[d, C_KAPPA] * t * hy / hx
            ky = table[d, C_KAPPA] * t * hx / hy
            sink = table[d, C_GSUB] * hx * hy
            for i in range(g.n):
                gx[i] = kx
                gy[i] = ky
                dg[i] = sink
            _diag(&g, gx, gy, dg, dg)
            if _band_cholesky(&g, gx, gy, dg, &heat_band[d, 0]) != 0:
                raise ArithmeticError("heat matrix is not positive definite")
    finally:
        free(gx)


def pulse(int nx, int ny, double hx, double hy, double t, double[::1] bfac, int8_t[::1] term,
          double[::1] gcon, double[:, ::1] table, double[:, ::1] n_cells, double[:, ::1] band,
          double[:, ::1] state,
          double[:, ::1] heat_band, int[::1] heat_index, double[:, ::1] volts, double[::1] width,
          bint deterministic, uint64_t[::1] keys, uint64_t[::1] counters, double f_max, double tol,
          double refactor_tol, long max_steps, double[:, ::1] out, int threads=1):
    """Advance every device through one pulse (terminal voltages ``volts[d]`` for ``width[d]``)."""
    cdef Geo g = _geo(nx, ny, hx, hy, t, bfac, term, gcon)
    cdef Py_ssize_t d, nd = n_cells.shape[0]
    cdef int[::1] status = np.zeros(nd, dtype=np.intc)
    cdef int det = 1 if deterministic else 0
    _check_state(state, nd, g.n)
    _check_band(band, nd, &g)
    _check_heat(heat_band, heat_index, table, nd, &g)
    if table.shape[0] != nd or table.shape[1] != NCOL or volts.shape[0] != nd or width.shape[0] != nd \
            or out.shape[0] != nd or out.shape[1] != 6:
        raise ValueError(f"pulse: table ({nd}, {NCOL}), volts ({nd}, 4), width ({nd},) and out ({nd}, 6) expected")
    faces = _face_table(&g)
    for d in prange(nd, nogil=True, num_threads=threads, schedule="static"):
        status[d] = _pulse_one(&g, &table[d, 0], &n_cells[d, 0], &band[d, 0], &state[d, 0],
                               &heat_band[heat_index[d], 0], &volts[d, 0], width[d], det, keys[d], &counters[d],
                               f_max, tol, refactor_tol, max_steps, &out[d, 0])
    return np.asarray(status)


def read(int nx, int ny, double hx, double hy, double t, double[::1] bfac, int8_t[::1] term,
         double[::1] gcon, double[:, ::1] table, double[:, ::1] n_cells, double[:, ::1] band,
         double[:, ::1] state,
         double[:, ::1] volts, double refactor_tol, double[:, ::1] currents, int threads=1):
    """Terminal currents (into the film) of every device under terminal voltages ``volts[d]``."""
    cdef Geo g = _geo(nx, ny, hx, hy, t, bfac, term, gcon)
    cdef Py_ssize_t d, nd = n_cells.shape[0]
    cdef int[::1] iters = np.zeros(nd, dtype=np.intc)
    _check_state(state, nd, g.n)
    _check_band(band, nd, &g)
    for d in prange(nd, nogil=True, num_threads=threads, schedule="static"):
        iters[d] = _read_one(&g, &table[d, 0], &n_cells[d, 0], &band[d, 0], &state[d, 0], &volts[d, 0],
                             refactor_tol, &currents[d, 0])
    return np.asarray(iters)


def ffp(int nx, int ny, double hx, double hy, double t, double[::1] bfac, int8_t[::1] term,
        double[::1] gcon, double[:, ::1] table, double[:, ::1] n_cells, double[:, ::1] band,
        double[:, ::1] state,
        double[:, ::1] heat_band, int[::1] heat_index, double[::1] r_grid, double[::1] vw, double sign,
        double width, double read_v, double r_stop, long limit, double[::1] r_now, long[::1] events,
        bint deterministic, uint64_t[::1] keys, uint64_t[::1] counters, double f_max, double tol,
        double refactor_tol, long max_steps, double[:, :, ::1] rec, int threads=1):
    """FFP events of every device until its r crosses r_stop or events[d] reaches limit (r_now, events in/out)."""
    cdef Geo g = _geo(nx, ny, hx, hy, t, bfac, term, gcon)
    cdef Py_ssize_t d, nd = n_cells.shape[0]
    cdef int[::1] status = np.zeros(nd, dtype=np.intc)
    cdef int det = 1 if deterministic else 0
    cdef int m = r_grid.shape[0]
    if vw.shape[0] != m or m < 1 or rec.shape[2] != 6 or rec.shape[1] < limit:
        raise ValueError("ffp: table or record shapes do not match")
    _check_state(state, nd, g.n)
    _check_band(band, nd, &g)
    _check_heat(heat_band, heat_index, table, nd, &g)
    faces = _face_table(&g)
    for d in prange(nd, nogil=True, num_threads=threads, schedule="static"):
        status[d] = _ffp_one(&g, &table[d, 0], &n_cells[d, 0], &band[d, 0], &state[d, 0],
                             &heat_band[heat_index[d], 0],
                             &r_grid[0], &vw[0], m, sign, width, read_v, r_stop, limit, &r_now[d], &events[d], det,
                             keys[d], &counters[d], f_max, tol, refactor_tol, max_steps, &rec[d, 0, 0])
    return np.asarray(status)


def band_solves(int nx, int ny, double[:, ::1] gx, double[:, ::1] gy, double[:, ::1] diag_extra, double[::1] b1,
                double[::1] b2):
    """Factor the five-point matrix of (gx (nx-1, ny), gy (nx, ny-1), diag_extra (nx, ny)) and solve it for b1
    alone and for (b1, b2) paired: (x1, x1 paired, x2 paired), for tests of the factor and the solves."""
    # geometry and electrodes play no part in the factor of a given matrix: unit spacings, no terminals
    no_terminals = np.full(max(nx * ny, 1), -1, dtype=np.int8)
    cdef Geo g = _geo(nx, ny, 1.0, 1.0, 1.0, np.ones(4), no_terminals, np.zeros(0))
    if nx < 2 or ny < 2 or gx.shape[0] != nx - 1 or gx.shape[1] != ny or gy.shape[0] != nx or gy.shape[1] != ny - 1 \
            or diag_extra.shape[0] != nx or diag_extra.shape[1] != ny or b1.shape[0] != g.n or b2.shape[0] != g.n:
        raise ValueError("band_solves: shapes do not match the grid")
    cdef double[::1] dg = np.zeros(g.n)
    cdef double[::1] packed = np.zeros(md_band_doubles(g.n, g.bw))
    cdef double[::1] scratch = np.zeros(md_band_scratch(g.n, g.bw))
    out = np.zeros((3, g.n))
    cdef double[:, ::1] o = out
    _diag(&g, &gx[0, 0], &gy[0, 0], &diag_extra[0, 0], &dg[0])
    if _band_cholesky(&g, &gx[0, 0], &gy[0, 0], &dg[0], &packed[0]) != 0:
        raise ArithmeticError("band_solves: matrix is not positive definite")
    _band_solve(&g, &packed[0], &b1[0], &o[0, 0], &scratch[0])
    _band_solve2(&g, &packed[0], &b1[0], &b2[0], &o[1, 0], &o[2, 0], &scratch[0])
    return out


def poisson_lanes(double[::1] lam, uint64_t key, uint64_t base):
    """Hop counts as the film kernel draws them: draw d of Poisson(lam[d]) from the device stream's block
    of counters base + d * 2**MD_DRAW_BITS (for tests of the sampler)."""
    out = np.empty(lam.shape[0])
    cdef double[::1] o = out
    if lam.shape[0] > 0:
        with nogil:
            md_poisson_lanes(&lam[0], &o[0], <int>lam.shape[0], key, base)
    return out


def poisson_sequence(double[::1] lam, uint64_t key, uint64_t counter):
    """Poisson(lam[d]) drawn one after another from one counter with the shared scalar sampler of
    _streams.pxd (the filament kernel's sampler, and the film's before the lanes; for its tests and benchmark)."""
    out = np.empty(lam.shape[0])
    cdef double[::1] o = out
    cdef uint64_t c = counter
    cdef Py_ssize_t d
    with nogil:
        for d in range(lam.shape[0]):
            o[d] = stream_poisson(lam[d], key, &c)
    return out


def draw_bits():
    """log2 of the counters each hop-count draw owns."""
    return MD_DRAW_BITS


def uniforms(uint64_t key, uint64_t counter, Py_ssize_t count):
    """The device stream's uniforms from ``counter`` on (for tests of the generator)."""
    out = np.empty(count)
    cdef double[::1] o = out
    cdef uint64_t c = counter
    cdef Py_ssize_t i
    for i in range(count):
        o[i] = next_uniform(key, &c)
    return out
