/* The film's local physics per step (included by _bulk4t.pyx; twins: face_rates, conductivity,
 * apply_hops in memdrift/emulator/bulk4t.py): hop rates, the face sums and updates of a step,
 * and sigma(n, T). Two exps per face per step, about 4,000 a step on 32 x 32: with libm's exp the
 * loop stays scalar; md_exp (_lanes_math.h, within 2 ulp of libm) lets GCC turn the loops over a
 * column of faces into SIMD code, in clones per instruction set that round alike (the extension
 * is built with -ffp-contract=off). */
#ifndef MEMDRIFT_BULK4T_HOPS_H
#define MEMDRIFT_BULK4T_HOPS_H

#include <math.h>
#include <string.h>

#include "_lanes_math.h"

/* Bernoulli function pair of the Scharfetter-Gummel flux: *b_minus = B(-pe), *b_plus = B(pe),
 * B(t) = t / (exp(t) - 1), from one exponential of -|pe| (no overflow at any Peclet number);
 * the series below 1e-2, where t / (exp(t) - 1) loses digits to the cancellation. */
MD_INLINE void md_bernoulli_pair(double pe, double *b_minus, double *b_plus)
{
    double ap = pe < 0.0 ? -pe : pe;
    if (ap < 1e-2) {
        double even = 1.0 + pe * pe * (1.0 / 12.0) - pe * pe * pe * pe * (1.0 / 720.0);
        *b_minus = even + 0.5 * pe;
        *b_plus = even - 0.5 * pe;
        return;
    }
    double u = md_exp(-ap);
    double g = ap / (1.0 - u);
    *b_minus = pe > 0.0 ? g : g * u;
    *b_plus = pe > 0.0 ? g * u : g;
}

/* Per-vacancy crossing rates of one face, forward (first cell to second) and back, between
 * cells of potential phi1, phi2 (V), temperature t1, t2 (K) and counts n1, n2. The lattice law
 * gives the face its diffusivity D = a^2 (r+ + r-) / 2 and drift velocity v = a (r+ - r-);
 * ``sg`` 0: first-order upwind (D / h^2 both ways plus v / h downstream), 1: Scharfetter-Gummel
 * (D / h^2 B(-Pe) forward, D / h^2 B(Pe) back, Pe = v h / D: exact for a constant field between
 * the cell centres, the same net drift v / h). */
MD_INLINE void md_face_rates(double a_m, double nu0_hz, double ea_ev, double z, double nmax, double h_m, int sg,
                             double phi1, double phi2, double t1, double t2, double n1, double n2,
                             double *forward, double *back)
{
    /* one division for 1/kT where the textbook form takes four (vector divisions are the slowest
     * instructions of the loop); the face's constants fold at compile time in md_bulk_rates */
    double inv_kt = 1.0 / (MD_BOLTZMANN_EV * 0.5 * (t1 + t2));
    double r0 = nu0_hz * md_exp(-ea_ev * inv_kt);
    double x = (0.5 * z * a_m / h_m) * (phi1 - phi2) * inv_kt;
    double ex = md_exp(x);
    double rp = r0 * ex, rm = r0 / ex;
    double dif = (a_m / h_m) * (a_m / h_m) * 0.5 * (rp + rm);
    double dr = (a_m / h_m) * (rp - rm);
    /* a full cell takes no more: exclusion by the free fraction of the target */
    double inv_nmax = 1.0 / nmax;
    double free2 = 1.0 - n2 * inv_nmax, free1 = 1.0 - n1 * inv_nmax;
    free2 = free2 < 0.0 ? 0.0 : (free2 > 1.0 ? 1.0 : free2);
    free1 = free1 < 0.0 ? 0.0 : (free1 > 1.0 ? 1.0 : free1);
    if (sg) {
        double bm, bp;
        md_bernoulli_pair(dif > 0.0 ? dr / dif : 0.0, &bm, &bp);
        *forward = dif * bm * free2;
        *back = dif * bp * free1;
        return;
    }
    *forward = (dif + (dr > 0.0 ? dr : 0.0)) * free2;
    *back = (dif + (dr < 0.0 ? -dr : 0.0)) * free1;
}

/* Rates of every face: x faces (cell i to i + ny) at k = i, then y faces (cell i to i + 1) at
 * k = (nx-1) ny + ix (ny-1) + iy. */
MD_CLONES void md_bulk_rates(int nx, int ny, double hx_m, double hy_m, double a_m, double nu0_hz, double ea_ev,
                             double z, double nmax, int sg, const double *restrict n_cells, const double *restrict phi,
                             const double *restrict temp, double *restrict forward, double *restrict back)
{
    for (int ix = 0; ix < nx - 1; ++ix) {
        const int i0 = ix * ny;
        for (int iy = 0; iy < ny; ++iy) {
            int i = i0 + iy, j = i + ny;
            md_face_rates(a_m, nu0_hz, ea_ev, z, nmax, hx_m, sg, phi[i], phi[j], temp[i], temp[j], n_cells[i],
                          n_cells[j], &forward[i], &back[i]);
        }
    }
    const int off = (nx - 1) * ny;
    for (int ix = 0; ix < nx; ++ix) {
        const int i0 = ix * ny, k0 = off + ix * (ny - 1);
        for (int iy = 0; iy < ny - 1; ++iy) {
            int i = i0 + iy;
            md_face_rates(a_m, nu0_hz, ea_ev, z, nmax, hy_m, sg, phi[i], phi[i + 1], temp[i], temp[i + 1], n_cells[i],
                          n_cells[i + 1], &forward[k0 + iy], &back[k0 + iy]);
        }
    }
}

/* Face loops of a step without the face table: x faces k = i (cells i, i + ny), y faces
 * k = (nx-1) ny + ix (ny-1) + iy (cells i, i + 1). Per cell the terms come in the order of the
 * face index, as in a loop over faces (a cell is the second cell of its lower face before it is
 * the first of its upper one), so the sums are those of that loop, bit for bit. */

/* total[i] = sum of first[k] over faces whose first cell is i, plus second[k] over faces whose
 * second cell is i (per-vacancy outflow rates, or counts leaving each cell) */
MD_CLONES void md_face_totals(int nx, int ny, const double *restrict first, const double *restrict second,
                              double *restrict total)
{
    const int nxf = (nx - 1) * ny;
    memset(total, 0, (size_t)nx * ny * sizeof(double));
    for (int i = 0; i < nxf; ++i)
        total[i + ny] += second[i];
    for (int i = 0; i < nxf; ++i)
        total[i] += first[i];
    for (int ix = 0; ix < nx; ++ix) {
        double *t = total + (size_t)ix * ny;
        const double *f = first + nxf + (size_t)ix * (ny - 1), *b = second + nxf + (size_t)ix * (ny - 1);
        for (int iy = 0; iy < ny - 1; ++iy)
            t[iy + 1] += b[iy];
        for (int iy = 0; iy < ny - 1; ++iy)
            t[iy] += f[iy];
    }
}

/* expected counts of a step: forward[k] = n[first cell] rate_f[k] dt, back[k] = n[second] rate_b[k] dt */
MD_CLONES void md_expected_counts(int nx, int ny, const double *restrict n_cells, const double *restrict rate_f,
                                  const double *restrict rate_b, double dt_s, double *restrict forward,
                                  double *restrict back)
{
    const int nxf = (nx - 1) * ny;
    for (int i = 0; i < nxf; ++i) {
        forward[i] = n_cells[i] * rate_f[i] * dt_s;
        back[i] = n_cells[i + ny] * rate_b[i] * dt_s;
    }
    for (int ix = 0; ix < nx; ++ix) {
        const double *nc = n_cells + (size_t)ix * ny;
        const int k0 = nxf + ix * (ny - 1);
        for (int iy = 0; iy < ny - 1; ++iy) {
            forward[k0 + iy] = nc[iy] * rate_f[k0 + iy] * dt_s;
            back[k0 + iy] = nc[iy + 1] * rate_b[k0 + iy] * dt_s;
        }
    }
}

/* n[first] += back - forward, n[second] += forward - back for every face */
MD_CLONES void md_apply_hops(int nx, int ny, const double *restrict forward, const double *restrict back,
                             double *restrict n_cells)
{
    const int nxf = (nx - 1) * ny;
    for (int i = 0; i < nxf; ++i)
        n_cells[i + ny] += forward[i] - back[i];
    for (int i = 0; i < nxf; ++i)
        n_cells[i] += back[i] - forward[i];
    for (int ix = 0; ix < nx; ++ix) {
        double *nc = n_cells + (size_t)ix * ny;
        const double *f = forward + nxf + (size_t)ix * (ny - 1), *b = back + nxf + (size_t)ix * (ny - 1);
        for (int iy = 0; iy < ny - 1; ++iy)
            nc[iy + 1] += f[iy] - b[iy];
        for (int iy = 0; iy < ny - 1; ++iy)
            nc[iy] += b[iy] - f[iy];
    }
}

/* sigma(n, T) of every cell (twin: conductivity in memdrift/emulator/bulk4t.py): base plus the
 * vacancy term (n / n_mean)^exponent, times an Arrhenius factor when activation_ev > 0. The
 * exponent 1 of the presets takes the branch-free loop; any other goes through libm's pow. */
MD_CLONES void md_conductivity(int n, const double *restrict n_cells, const double *restrict temp,
                               double base_s_per_m, double vacancy_s_per_m, double exponent, double activation_ev,
                               double ambient_k, double n_mean, double *restrict sigma)
{
    if (exponent == 1.0) {
        for (int i = 0; i < n; ++i) {
            double x = (n_cells[i] > 0.0 ? n_cells[i] : 0.0) / n_mean;
            sigma[i] = base_s_per_m + vacancy_s_per_m * x;
        }
    } else {
        for (int i = 0; i < n; ++i) {
            double x = (n_cells[i] > 0.0 ? n_cells[i] : 0.0) / n_mean;
            sigma[i] = base_s_per_m + vacancy_s_per_m * pow(x, exponent);
        }
    }
    if (activation_ev > 0.0)
        for (int i = 0; i < n; ++i)
            sigma[i] *= md_exp(-activation_ev / MD_BOLTZMANN_EV * (1.0 / temp[i] - 1.0 / ambient_k));
}

#endif
