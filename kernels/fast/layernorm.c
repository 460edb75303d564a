/* fast/layernorm.c: layer normalisation, forward and backward, with the sums
 * of a row in vector lanes (simd.h) and 16 rows normalised side by side.
 * Must match kernels/reference/layernorm.c, the same formulas with sums in
 * channel order (tests/test_kernels.c compares them). */
#include "kernels/layernorm.h"

#include <math.h>
#include <stddef.h>

#include "kernels/fast/gemm.h"  /* transpose, for lane_totals */
#include "kernels/fast/vmath.h"

enum {
    ROW_BLOCK = 16,             /* rows per OpenMP work item in the forward */
    CHANNEL_SLICE = SUM_LANES,  /* channels per OpenMP work item in the dweight/dbias pass */
    LV = SUM_LANES / VLEN,      /* vectors across SUM_LANES channels */
};
_Static_assert(SUM_LANES % VLEN == 0 && ROW_BLOCK % VLEN == 0, "lanes and rows come in whole vectors");

/* One row: y = (x - m) s w + b with m the mean of x and s = 1/sqrt(var + eps).
 * y first holds x - m: the variance (two passes, numerically safer than
 * E[x^2] - m^2) is then a dot product of y with itself, in lanes as lanes_dot
 * (vmath.h) sums. The FMAs are written out (fmaf) rather than left to
 * -ffp-contract, whose choices differ with the optimisation level and the loop's
 * vectorisation: so a row has the same bits here as in normalize_rows16 below,
 * at -O2 as at -O3. */
static inline void normalize_row(float* y, float* mean, float* rstd, const float* x,
                                 const float* weight, const float* bias, int C) {
    float m = lanes_sum(x, C) / C;
    for (int c = 0; c < C; c++) y[c] = x[c] - m;
    float acc[SUM_LANES] = {0};  /* sum of y^2 in lanes, each lane a chain of FMAs */
    int c = 0;
    for (; c + SUM_LANES <= C; c += SUM_LANES)
        for (int j = 0; j < SUM_LANES; j++) acc[j] = fmaf(y[c + j], y[c + j], acc[j]);
    float var = lanes_total(acc);
    for (; c < C; c++) var = fmaf(y[c], y[c], var);
    float s = 1.0f / sqrtf(var / C + LAYERNORM_EPS);
    for (c = 0; c < C; c++) y[c] = fmaf(y[c] * s, weight[c], bias ? bias[c] : 0.0f);
    *mean = m;
    *rstd = s;
}

/* total[r] = ((0 + lanes[r][0]) + lanes[r][1]) + ... for the ROW_BLOCK rows:
 * the lanes transposed, so that a vector holds lane j of VLEN rows */
static void lane_totals(float total[ROW_BLOCK], const float lanes[ROW_BLOCK * SUM_LANES]) {
    float by_lane[SUM_LANES * ROW_BLOCK];
    transpose(by_lane, ROW_BLOCK, lanes, SUM_LANES, ROW_BLOCK, SUM_LANES);
    for (int r = 0; r < ROW_BLOCK; r += VLEN) {
        vf t = vzero();
        for (int j = 0; j < SUM_LANES; j++) t += vload(by_lane + j * ROW_BLOCK + r);
        vstore(total + r, t);
    }
}

/* normalize_row on ROW_BLOCK rows at once (rows at stride C, C a multiple of
 * SUM_LANES), the same operations in the same order: each row's sums in
 * SUM_LANES lanes, then its lanes added one after another, as lanes_total does;
 * here that last, serial part runs for the block's rows side by side, and so do
 * the divisions and square roots. One row at a time, those serial steps were
 * the row's critical path (about 130 cycles a row at n_embd 128; a third less
 * in blocks). With `res`, x = a + b is formed and stored first
 * (residual_layernorm_forward). */
static void normalize_block(float* y, float* mean, float* rstd, float* res, const float* x, const float* b,
                            const float* weight, const float* bias, int C) {
    float lanes[ROW_BLOCK * SUM_LANES];
    const vf n = vsplat((float)C);
    for (int r = 0; r < ROW_BLOCK; r++) {  /* sums of x (x = a + b first, with res) */
        vf acc[LV];
        for (int i = 0; i < LV; i++) acc[i] = vzero();
        for (int c = 0; c < C; c += SUM_LANES)
            for (int i = 0; i < LV; i++) {
                size_t at = (size_t)r * C + c + i * VLEN;
                vf v = vload(x + at);
                if (res) {
                    v += vload(b + at);
                    vstore(res + at, v);
                }
                acc[i] += v;
            }
        for (int i = 0; i < LV; i++) vstore(lanes + r * SUM_LANES + i * VLEN, acc[i]);
    }
    lane_totals(mean, lanes);
    for (int r = 0; r < ROW_BLOCK; r += VLEN) vstore(mean + r, vload(mean + r) / n);
    if (res) x = res;
    for (int r = 0; r < ROW_BLOCK; r++) {  /* y = x - m, and sums of y^2 */
        vf m = vsplat(mean[r]), acc[LV];
        for (int i = 0; i < LV; i++) acc[i] = vzero();
        for (int c = 0; c < C; c += SUM_LANES)
            for (int i = 0; i < LV; i++) {
                size_t at = (size_t)r * C + c + i * VLEN;
                vf d = vload(x + at) - m;
                vstore(y + at, d);
                acc[i] = vfma(d, d, acc[i]);
            }
        for (int i = 0; i < LV; i++) vstore(lanes + r * SUM_LANES + i * VLEN, acc[i]);
    }
    lane_totals(rstd, lanes);
    for (int r = 0; r < ROW_BLOCK; r += VLEN)  /* s = 1 / sqrt(var + eps) */
        vstore(rstd + r, vsplat(1.0f) / vsqrt(vload(rstd + r) / n + vsplat(LAYERNORM_EPS)));
    for (int r = 0; r < ROW_BLOCK; r++) {  /* y = (y s) w + b */
        float* yr = y + (size_t)r * C;
        vf s = vsplat(rstd[r]);
        for (int c = 0; c < C; c += VLEN)
            vstore(yr + c, vfma(vload(yr + c) * s, vload(weight + c), bias ? vload(bias + c) : vzero()));
    }
}

/* Rows r0..r1 of a layer norm, x = a + b first when res is given. */
static void normalize_rows(float* out, float* mean, float* rstd, float* res, const float* a, const float* b,
                           const float* weight, const float* bias, int r0, int r1, int C) {
    if (r1 - r0 == ROW_BLOCK && C % SUM_LANES == 0) {
        size_t first = (size_t)r0 * C;
        normalize_block(out + first, mean + r0, rstd + r0, res ? res + first : NULL, a + first,
                         b ? b + first : NULL, weight, bias, C);
        return;
    }
    for (int r = r0; r < r1; r++) {
        const float* x = a + (size_t)r * C;
        if (res) {
            float* sum = res + (size_t)r * C;
            for (int c = 0; c < C; c++) sum[c] = x[c] + b[(size_t)r * C + c];
            x = sum;
        }
        normalize_row(out + (size_t)r * C, mean + r, rstd + r, x, weight, bias, C);
    }
}

/* The rows in blocks of ROW_BLOCK, each block one OpenMP work item (any split
 * gives the same bits: a row's result does not depend on its block). */
static void normalize_all(float* out, float* mean, float* rstd, float* res, const float* a, const float* b,
                          const float* weight, const float* bias, int N, int C) {
    int blocks = (N + ROW_BLOCK - 1) / ROW_BLOCK;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int r0 = blk * ROW_BLOCK, r1 = r0 + ROW_BLOCK < N ? r0 + ROW_BLOCK : N;
        normalize_rows(out, mean, rstd, res, a, b, weight, bias, r0, r1, C);
    }
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
    normalize_all(out, mean, rstd, NULL, inp, NULL, weight, bias, N, C);
}

void residual_layernorm_forward(float* res, float* out, float* mean, float* rstd, const float* a,
                                const float* b, const float* weight, const float* bias, int N, int C) {
    normalize_all(out, mean, rstd, res, a, b, weight, bias, N, C);
}

/* The lane sums of dinp_rows below over whole vectors of channels, in
 * registers: acc_g[j] = sum of g = dy w, acc_gx[j] = sum of g (x - m) s, each
 * lane's terms added in channel order. Returns the channels done. */
static int row_sums(float acc_g[SUM_LANES], float acc_gx[SUM_LANES], const float* dy, const float* x,
                    const float* weight, float m, float s, int C) {
    vf sum_g[LV], sum_gx[LV];
    const vf mv = vsplat(m), sv = vsplat(s);
    for (int i = 0; i < LV; i++) sum_g[i] = sum_gx[i] = vzero();
    int c = 0;
    for (; c + SUM_LANES <= C; c += SUM_LANES)
        for (int i = 0; i < LV; i++) {
            int at = c + i * VLEN;
            vf dyv = vload(dy + at), w = vload(weight + at);
            sum_g[i] = vfma(dyv, w, sum_g[i]);
            sum_gx[i] = vfma(dyv * w * (vload(x + at) - mv), sv, sum_gx[i]);
        }
    for (int i = 0; i < LV; i++) {
        vstore(acc_g + i * VLEN, sum_g[i]);
        vstore(acc_gx + i * VLEN, sum_gx[i]);
    }
    return c;
}

/* dparams_channels below for one whole slice of SUM_LANES channels, the sums in
 * registers through all N rows instead of a load and a store of dweight and
 * dbias per row: dweight += (dout (x - m)) s, dbias += dout. */
static void slice_sums(float* dweight, float* dbias, const float* dout, const float* inp, const float* mean,
                       const float* rstd, int N, int C, int c0) {
    vf sum_w[LV], sum_b[LV];
    for (int i = 0; i < LV; i++) {
        sum_w[i] = vload(dweight + c0 + i * VLEN);
        sum_b[i] = dbias ? vload(dbias + c0 + i * VLEN) : vzero();
    }
    for (int n = 0; n < N; n++) {
        vf m = vsplat(mean[n]), s = vsplat(rstd[n]);
        for (int i = 0; i < LV; i++) {
            size_t at = (size_t)n * C + c0 + i * VLEN;
            vf dy = vload(dout + at);
            sum_w[i] = vfma(dy * (vload(inp + at) - m), s, sum_w[i]);
            sum_b[i] += dy;
        }
    }
    for (int i = 0; i < LV; i++) {
        vstore(dweight + c0 + i * VLEN, sum_w[i]);
        if (dbias) vstore(dbias + c0 + i * VLEN, sum_b[i]);
    }
}

/* Backward pass 1, per row: with xhat = (x - mean) * rstd and g = dout * weight,
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). Called inside a parallel
 * region: the rows are shared out, and no barrier follows. */
static void dinp_rows(float* dinp, const float* dout, const float* inp, const float* weight,
                      const float* mean, const float* rstd, int N, int C) {
    #pragma omp for schedule(static) nowait
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float acc_g[SUM_LANES], acc_gx[SUM_LANES];
        int c = row_sums(acc_g, acc_gx, dy, x, weight, m, s, C);  /* then the channels past its last whole vector */
        float g_mean = lanes_total(acc_g), gx_mean = lanes_total(acc_gx);
        for (; c < C; c++) {
            float g = dy[c] * weight[c];
            g_mean += g;
            gx_mean += g * (x[c] - m) * s;
        }
        g_mean /= C;
        gx_mean /= C;
        float* dx = dinp + (size_t)n * C;
        for (c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            dx[c] += s * (dy[c] * weight[c] - g_mean - xhat * gx_mean);
        }
    }
}

/* Backward pass 2, per channel: dweight = sum_n dout * xhat, dbias = sum_n dout.
 * Threads own channel slices and sum the rows in order; no barrier follows. */
static void dparams_channels(float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* mean, const float* rstd, int N, int C) {
    int slices = (C + CHANNEL_SLICE - 1) / CHANNEL_SLICE;
    #pragma omp for schedule(static) nowait
    for (int sl = 0; sl < slices; sl++) {
        int c0 = sl * CHANNEL_SLICE, c1 = c0 + CHANNEL_SLICE < C ? c0 + CHANNEL_SLICE : C;
        if (c1 - c0 == SUM_LANES) {
            slice_sums(dweight, dbias, dout, inp, mean, rstd, N, C, c0);
            continue;
        }
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C;
            const float* dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1; c++) {
                dweight[c] += dy[c] * (x[c] - m) * s;
                if (dbias) dbias[c] += dy[c];
            }
        }
    }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean,
                        const float* rstd, int N, int C) {
    /* the two passes write different tensors: one region, one barrier at its end */
    #pragma omp parallel
    {
        dinp_rows(dinp, dout, inp, weight, mean, rstd, N, C);
        dparams_channels(dweight, dbias, dout, inp, mean, rstd, N, C);
    }
}
