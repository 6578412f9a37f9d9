/* Linear algebra of the bulk film kernel (included by _bulk4t.pyx): the five-point matrix of the
 * potential (face conductances, products), CG's reductions, and the band Cholesky factor with its
 * solves.
 *
 * The factor L (lower, bandwidth bw = ny in the natural ordering) preconditions CG for the
 * potential and solves the heat equation outright. A substitution done column by column (the
 * form this replaces) is one long chain: each column's update of the next bw entries must land
 * before the next column can start, and because successive updates overlap shifted by one
 * entry, the store of one and the load of the next never match, so the CPU cannot forward the
 * store and waits for it. Here the columns go in blocks of MD_BLOCK: the triangle inside a block
 * is solved in registers, and the block's update of the bw entries below it is done in vectors
 * aligned to the block, so that the next block loads exactly what this one stored.
 *
 * The arithmetic is the column form's: every entry receives the same products in the same
 * order (the padding adds exact zeros), so the results are bit-identical to it, and, with
 * -ffp-contract=off, identical across the clones. Measured on one core (Zen 4, 32 x 32, two
 * right-hand sides): column form 27 us, blocked 15 us (AVX-512) and 21 us (AVX2).
 *
 * Packed layout (md_band_doubles), n8 and bwp rounded up to MD_BLOCK, wf = bwp + MD_BLOCK:
 *   F, column-major, n8 x wf: F[j*wf + r] = L[j+r, j], r = 0 .. bwp + 7 (zero past the band);
 *   B, row-major,    n8 x wf: B[i*wf + wf-1 - (i-j)] = L[i, j] (zero before the band);
 * diagonal slots hold 1 / L[i, i]; padding rows past n are the identity.
 */
#ifndef MEMDRIFT_BULK4T_LINALG_H
#define MEMDRIFT_BULK4T_LINALG_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "_lanes_math.h"

#define MD_BLOCK 8

typedef double md_block_v __attribute__((vector_size(MD_BLOCK * sizeof(double))));

MD_INLINE md_block_v md_block_load(const double *p)
{
    md_block_v v;
    memcpy(&v, p, sizeof v);
    return v;
}

MD_INLINE void md_block_store(double *p, md_block_v v)
{
    memcpy(p, &v, sizeof v);
}

static inline int md_band_round(int k)
{
    return (k + MD_BLOCK - 1) / MD_BLOCK * MD_BLOCK;
}

/* doubles of one packed factor (F and B) */
static inline size_t md_band_doubles(int n, int bw)
{
    return 2 * (size_t)md_band_round(n) * (size_t)(md_band_round(bw) + MD_BLOCK);
}

/* doubles of the scratch a solve needs: two padded vectors with a margin of bwp on each side,
 * where the updates of the first and last blocks land (on zeros, with zero factor entries) */
static inline size_t md_band_scratch(int n, int bw)
{
    return 2 * ((size_t)md_band_round(n) + 2 * (size_t)md_band_round(bw));
}

/* x = (L L^T)^-1 b for one (two = 0) or two right-hand sides; x may alias b. */
MD_INLINE void md_band_solve_k(int n, int bw, const double *packed, const double *b1, const double *b2,
                               double *x1, double *x2, double *scratch, const int two)
{
    const int n8 = md_band_round(n), bwp = md_band_round(bw), wf = bwp + MD_BLOCK;
    const size_t len = (size_t)n8 + 2 * (size_t)bwp;
    const double *F = packed, *B = packed + (size_t)n8 * wf;
    double *X1 = scratch + bwp, *X2 = scratch + len + bwp;
    /* only the margins and the padding past n need zeros: the rest is b */
    for (int k = 0; k < (two ? 2 : 1); ++k) {
        memset(scratch + k * len, 0, (size_t)bwp * sizeof(double));
        memset(scratch + k * len + bwp + n, 0, (len - (size_t)bwp - (size_t)n) * sizeof(double));
    }
    memcpy(X1, b1, (size_t)n * sizeof(double));
    if (two)
        memcpy(X2, b2, (size_t)n * sizeof(double));
    for (int j0 = 0; j0 < n8; j0 += MD_BLOCK) {
        double t1[MD_BLOCK], t2[MD_BLOCK];
        for (int l = 0; l < MD_BLOCK; ++l) {
            t1[l] = X1[j0 + l];
            t2[l] = two ? X2[j0 + l] : 0.0;
        }
#pragma GCC unroll 8
        for (int c = 0; c < MD_BLOCK; ++c) {
            const double *col = F + (size_t)(j0 + c) * wf;
            double y1 = t1[c] * col[0], y2 = t2[c] * col[0];
            t1[c] = y1;
            t2[c] = y2;
#pragma GCC unroll 8
            for (int l = c + 1; l < MD_BLOCK; ++l) {
                t1[l] -= col[l - c] * y1;
                if (two)
                    t2[l] -= col[l - c] * y2;
            }
        }
        for (int l = 0; l < MD_BLOCK; ++l) {
            X1[j0 + l] = t1[l];
            if (two)
                X2[j0 + l] = t2[l];
        }
        for (int v = 0; v < bwp; v += MD_BLOCK) {
            double *p1 = X1 + j0 + MD_BLOCK + v, *p2 = X2 + j0 + MD_BLOCK + v;
            md_block_v a1 = md_block_load(p1), a2 = two ? md_block_load(p2) : a1;
#pragma GCC unroll 8
            for (int c = 0; c < MD_BLOCK; ++c) {
                md_block_v col = md_block_load(F + (size_t)(j0 + c) * wf + (MD_BLOCK + v - c));
                a1 -= col * t1[c];
                if (two)
                    a2 -= col * t2[c];
            }
            md_block_store(p1, a1);
            if (two)
                md_block_store(p2, a2);
        }
    }
    for (int i0 = n8 - MD_BLOCK; i0 >= 0; i0 -= MD_BLOCK) {
        double t1[MD_BLOCK], t2[MD_BLOCK];
        for (int l = 0; l < MD_BLOCK; ++l) {
            t1[l] = X1[i0 + l];
            t2[l] = two ? X2[i0 + l] : 0.0;
        }
#pragma GCC unroll 8
        for (int c = MD_BLOCK - 1; c >= 0; --c) {
            const double *row = B + (size_t)(i0 + c) * wf + (wf - 1);
            double y1 = t1[c] * row[0], y2 = t2[c] * row[0];
            t1[c] = y1;
            t2[c] = y2;
#pragma GCC unroll 8
            for (int l = c - 1; l >= 0; --l) {
                t1[l] -= row[l - c] * y1;
                if (two)
                    t2[l] -= row[l - c] * y2;
            }
        }
        for (int l = 0; l < MD_BLOCK; ++l) {
            X1[i0 + l] = t1[l];
            if (two)
                X2[i0 + l] = t2[l];
        }
        for (int v = 0; v < bwp; v += MD_BLOCK) {
            double *p1 = X1 + i0 - bwp + v, *p2 = X2 + i0 - bwp + v;
            md_block_v a1 = md_block_load(p1), a2 = two ? md_block_load(p2) : a1;
#pragma GCC unroll 8
            for (int c = MD_BLOCK - 1; c >= 0; --c) {
                md_block_v row = md_block_load(B + (size_t)(i0 + c) * wf + (wf - 1) - (c + bwp - v));
                a1 -= row * t1[c];
                if (two)
                    a2 -= row * t2[c];
            }
            md_block_store(p1, a1);
            if (two)
                md_block_store(p2, a2);
        }
    }
    memcpy(x1, X1, (size_t)n * sizeof(double));
    if (two)
        memcpy(x2, X2, (size_t)n * sizeof(double));
}

MD_CLONES void md_band_solve1(int n, int bw, const double *packed, const double *b, double *x, double *scratch)
{
    md_band_solve_k(n, bw, packed, b, NULL, x, NULL, scratch, 0);
}

MD_CLONES void md_band_solve2(int n, int bw, const double *packed, const double *b1, const double *b2,
                              double *x1, double *x2, double *scratch)
{
    md_band_solve_k(n, bw, packed, b1, b2, x1, x2, scratch, 1);
}

/* The five-point matrix: cell i = ix*ny + iy; x faces k = ix*ny + iy join cells i and i + ny,
 * y faces k = ix*(ny-1) + iy join i and i + 1. */

/* Harmonic face conductances (S) and electrode couplings gb = sigma * bfac[terminal] (term < 0: none). */
MD_CLONES void md_faces(int nx, int ny, double cx, double cy, const double *restrict sigma,
                        const signed char *restrict term, const double *restrict bfac, double *restrict gx,
                        double *restrict gy, double *restrict gb)
{
    for (int i = 0; i < (nx - 1) * ny; ++i) {
        double s1 = sigma[i], s2 = sigma[i + ny];
        gx[i] = 2.0 * s1 * s2 / (s1 + s2) * cx;
    }
    for (int ix = 0; ix < nx; ++ix) {
        const double *col = sigma + (size_t)ix * ny;
        double *out = gy + (size_t)ix * (ny - 1);
        for (int iy = 0; iy < ny - 1; ++iy) {
            double s1 = col[iy], s2 = col[iy + 1];
            out[iy] = 2.0 * s1 * s2 / (s1 + s2) * cy;
        }
    }
    for (int i = 0; i < nx * ny; ++i)
        gb[i] = term[i] >= 0 ? sigma[i] * bfac[term[i] >= 0 ? term[i] : 0] : 0.0;
}

/* y = A x, A = diag(dg) minus the face conductances off the diagonal (the first and last cell of
 * a column are peeled off, so the loop over the rest has no conditions and vectorises; ny >= 2). */
MD_CLONES void md_matvec(int nx, int ny, const double *restrict gx, const double *restrict gy,
                         const double *restrict dg, const double *restrict x, double *restrict y)
{
    for (int ix = 0; ix < nx; ++ix) {
        const int i0 = ix * ny;
        const double *down = ix > 0 ? gx + (size_t)(ix - 1) * ny : NULL;
        const double *up = ix < nx - 1 ? gx + (size_t)ix * ny : NULL;
        const double *side = gy + (size_t)ix * (ny - 1);
        y[i0] = dg[i0] * x[i0] - side[0] * x[i0 + 1];
        for (int iy = 1; iy < ny - 1; ++iy) {
            int i = i0 + iy;
            y[i] = (dg[i] * x[i] - side[iy - 1] * x[i - 1]) - side[iy] * x[i + 1];
        }
        y[i0 + ny - 1] = dg[i0 + ny - 1] * x[i0 + ny - 1] - side[ny - 2] * x[i0 + ny - 2];
        if (down)
            for (int iy = 0; iy < ny; ++iy)
                y[i0 + iy] -= down[iy] * x[i0 + iy - ny];
        if (up)
            for (int iy = 0; iy < ny; ++iy)
                y[i0 + iy] -= up[iy] * x[i0 + iy + ny];
    }
}

/* largest |a/b - 1|: how far sigma has moved from the one a factor or a solve was made at */
MD_CLONES double md_max_rel_change(const double *restrict a, const double *restrict b, int n)
{
    double dev = 0.0;
    for (int i = 0; i < n; ++i) {
        double rel = fabs(a[i] / b[i] - 1.0);
        dev = rel > dev ? rel : dev;
    }
    return dev;
}

/* CG's reductions: eight partial sums in one block vector, added up in a fixed order at the
 * end, so the sum is the same on every instruction set (a plain loop is one chain of dependent
 * adds, which GCC may not reorder, and cost about a microsecond per product on 32 x 32). */
MD_INLINE double md_block_sum(md_block_v acc)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

MD_CLONES double md_dot(const double *a, const double *b, int n)
{
    md_block_v acc = {0.0};
    int i = 0;
    for (; i + MD_BLOCK <= n; i += MD_BLOCK)
        acc += md_block_load(a + i) * md_block_load(b + i);
    double rest = 0.0;
    for (; i < n; ++i)
        rest += a[i] * b[i];
    return md_block_sum(acc) + rest;
}

/* Cholesky of the band matrix given row-major (rows[i*(bw+1) + bw - (i-j)] = A[i, j]) into the
 * packed layout. Left-looking by columns, in F: column j is A's column less, for every earlier
 * column m that reaches row j, L[j, m] times column m from row j down, an axpy over contiguous
 * entries; then divided by its pivot, and B filled from F. (Row by row, each entry a dot product
 * of two short row segments, it spent its time adding up the partial sums of 34,000 dot products;
 * measured on 32 x 32, one core: 320 us row by row, 250-290 us this way, packing included.)
 * -1 when a pivot is not positive. */
MD_CLONES int md_band_factor(int n, int bw, const double *restrict rows, double *restrict packed)
{
    const int n8 = md_band_round(n), wf = md_band_round(bw) + MD_BLOCK, w = bw + 1;
    double *F = packed, *B = packed + (size_t)n8 * wf;
    double column[wf];
    memset(packed, 0, md_band_doubles(n, bw) * sizeof(double));
    for (int i = 0; i < n; ++i)
        for (int c = 0; c < w; ++c)
            if (i - bw + c >= 0)
                F[(size_t)(i - bw + c) * wf + (bw - c)] = rows[(size_t)i * w + c];
    for (int j = 0; j < n; ++j) {
        double *fj = F + (size_t)j * wf;
        memcpy(column, fj, (size_t)(bw + 1) * sizeof(double));
        for (int m = j - bw < 0 ? 0 : j - bw; m < j; ++m) {
            const double *below = F + (size_t)m * wf + (j - m); /* L[j + r, m], r = 0 .. bw - (j - m) */
            const double f = below[0];
            const int len = bw - (j - m) + 1;
            for (int r = 0; r < len; ++r)
                column[r] -= below[r] * f;
        }
        if (!(column[0] > 0.0))
            return -1;
        const double inv = 1.0 / sqrt(column[0]);
        fj[0] = inv;
        for (int r = 1; r <= bw; ++r)
            fj[r] = j + r < n ? column[r] * inv : 0.0;
    }
    for (int j = 0; j < n; ++j)
        for (int r = 0; r <= bw && j + r < n; ++r)
            B[(size_t)(j + r) * wf + (wf - 1) - r] = F[(size_t)j * wf + r];
    for (int i = n; i < n8; ++i) {
        F[(size_t)i * wf] = 1.0;
        B[(size_t)i * wf + wf - 1] = 1.0;
    }
    return 0;
}

/* x += alpha p, r -= alpha q; returns |r|^2 */
MD_CLONES double md_cg_advance(double *restrict x, double *restrict r, const double *restrict p,
                               const double *restrict q, double alpha, int n)
{
    md_block_v acc = {0.0};
    int i = 0;
    for (; i + MD_BLOCK <= n; i += MD_BLOCK) {
        md_block_store(x + i, md_block_load(x + i) + alpha * md_block_load(p + i));
        md_block_v ri = md_block_load(r + i) - alpha * md_block_load(q + i);
        md_block_store(r + i, ri);
        acc += ri * ri;
    }
    double rest = 0.0;
    for (; i < n; ++i) {
        x[i] += alpha * p[i];
        r[i] -= alpha * q[i];
        rest += r[i] * r[i];
    }
    return md_block_sum(acc) + rest;
}

#endif
