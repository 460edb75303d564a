/* fast/layernorm.c: layer normalisation, forward and backward, with the sums
 * of a row in vector lanes and, with AVX-512, 16 rows normalised side by side.
 * Must match kernels/reference/layernorm.c, the same formulas with sums in
 * channel order (tests/test_kernels.c compares them). */
#include "kernels/layernorm.h"

#include <math.h>
#include <stddef.h>

#include "kernels/fast/gemm.h"  /* transpose, for lane_totals */
#include "kernels/fast/vmath.h"

#ifdef __AVX512F__
#include <immintrin.h>
/* the rounding argument of the *_round intrinsics below: the current mode (to nearest) */
enum { ROUND = _MM_FROUND_CUR_DIRECTION };
#endif

enum {
    ROW_BLOCK = 16,             /* rows per OpenMP work item in the forward */
    CHANNEL_SLICE = SUM_LANES,  /* channels per OpenMP work item in the dweight/dbias pass */
};

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

#ifdef __AVX512F__
_Static_assert((int)ROW_BLOCK == (int)SUM_LANES, "a vector holds one lane of each row of a block");

/* total[r] = ((0 + lanes[r][0]) + lanes[r][1]) + ... for the ROW_BLOCK rows */
static __m512 lane_totals(const float lanes[ROW_BLOCK * SUM_LANES]) {
    float by_lane[SUM_LANES * ROW_BLOCK];
    transpose(by_lane, ROW_BLOCK, lanes, SUM_LANES, ROW_BLOCK, SUM_LANES);
    __m512 total = _mm512_setzero_ps();
    for (int j = 0; j < SUM_LANES; j++)
        total = _mm512_add_round_ps(total, _mm512_loadu_ps(by_lane + j * ROW_BLOCK), ROUND);
    return total;
}

/* normalize_row on ROW_BLOCK rows at once (rows at stride C, C a multiple of
 * SUM_LANES), the same operations in the same order: each row's sums in 16
 * lanes, then its lanes added one after another, as lanes_total does; here that
 * last, serial part runs for 16 rows side by side (the lanes transposed so that a
 * vector holds lane j of every row), and so do the divisions and square roots.
 * One row at a time, those serial steps were the row's critical path (about 130
 * cycles a row at n_embd 128; a third less in blocks). With `res`, x = a + b is
 * formed and stored first (residual_layernorm_forward). The *_round intrinsics
 * are never fused or reordered by the compiler; the FMAs are where normalize_row
 * writes its fmaf. */
static void normalize_rows16(float* y, float* mean, float* rstd, float* res, const float* x, const float* b,
                             const float* weight, const float* bias, int C) {
    float lanes[ROW_BLOCK * SUM_LANES];
    __m512 n = _mm512_set1_ps((float)C);
    for (int r = 0; r < ROW_BLOCK; r++) {  /* sums of x (x = a + b first, with res) */
        size_t row = (size_t)r * C;
        __m512 acc = _mm512_setzero_ps();
        for (int c = 0; c < C; c += SUM_LANES) {
            __m512 v = _mm512_loadu_ps(x + row + c);
            if (res) {
                v = _mm512_add_round_ps(v, _mm512_loadu_ps(b + row + c), ROUND);
                _mm512_storeu_ps(res + row + c, v);
            }
            acc = _mm512_add_round_ps(acc, v, ROUND);
        }
        _mm512_storeu_ps(lanes + r * SUM_LANES, acc);
    }
    _mm512_storeu_ps(mean, _mm512_div_round_ps(lane_totals(lanes), n, ROUND));
    if (res) x = res;
    for (int r = 0; r < ROW_BLOCK; r++) {  /* y = x - m, and sums of y^2 */
        size_t row = (size_t)r * C;
        __m512 m = _mm512_set1_ps(mean[r]), acc = _mm512_setzero_ps();
        for (int c = 0; c < C; c += SUM_LANES) {
            __m512 d = _mm512_sub_round_ps(_mm512_loadu_ps(x + row + c), m, ROUND);
            _mm512_storeu_ps(y + row + c, d);
            acc = _mm512_fmadd_round_ps(d, d, acc, ROUND);
        }
        _mm512_storeu_ps(lanes + r * SUM_LANES, acc);
    }
    __m512 var = _mm512_div_round_ps(lane_totals(lanes), n, ROUND);
    var = _mm512_add_round_ps(var, _mm512_set1_ps(LAYERNORM_EPS), ROUND);
    _mm512_storeu_ps(rstd, _mm512_div_round_ps(_mm512_set1_ps(1.0f), _mm512_sqrt_round_ps(var, ROUND), ROUND));
    for (int r = 0; r < ROW_BLOCK; r++) {  /* y = (y s) w + b */
        float* yr = y + (size_t)r * C;
        __m512 sr = _mm512_set1_ps(rstd[r]);
        for (int c = 0; c < C; c += SUM_LANES) {
            __m512 add = bias ? _mm512_loadu_ps(bias + c) : _mm512_setzero_ps();
            __m512 ys = _mm512_mul_round_ps(_mm512_loadu_ps(yr + c), sr, ROUND);
            _mm512_storeu_ps(yr + c, _mm512_fmadd_round_ps(ys, _mm512_loadu_ps(weight + c), add, ROUND));
        }
    }
}
#endif

/* Rows r0..r1 of a layer norm, x = a + b first when res is given. */
static void normalize_rows(float* out, float* mean, float* rstd, float* res, const float* a, const float* b,
                           const float* weight, const float* bias, int r0, int r1, int C) {
#ifdef __AVX512F__
    if (r1 - r0 == ROW_BLOCK && C % SUM_LANES == 0) {
        size_t first = (size_t)r0 * C;
        normalize_rows16(out + first, mean + r0, rstd + r0, res ? res + first : NULL, a + first,
                         b ? b + first : NULL, weight, bias, C);
        return;
    }
#endif
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

#ifdef __AVX512F__
/* The lane sums of dinp_rows below over whole vectors of channels, in registers:
 * acc_g[j] = sum of g, acc_gx[j] = sum of round(g (x - m) s), each product
 * rounded before it is added. The portable loop leaves the fusing to the
 * compiler, and gcc had vectorised it across blocks of channels with every
 * lane added in order, one scalar add at a time; its results are
 * these wherever it did so (n_embd a multiple of 128, every config here). The
 * *_round intrinsics are never fused into an FMA, as a plain multiply and add
 * may be under -ffp-contract=fast. Returns the channels done. */
static int row_sums_avx512(float acc_g[SUM_LANES], float acc_gx[SUM_LANES], const float* dy, const float* x,
                           const float* weight, float m, float s, int C) {
    __m512 sum_g = _mm512_setzero_ps(), sum_gx = _mm512_setzero_ps();
    __m512 mv = _mm512_set1_ps(m), sv = _mm512_set1_ps(s);
    int c = 0;
    for (; c + SUM_LANES <= C; c += SUM_LANES) {
        __m512 g = _mm512_mul_round_ps(_mm512_loadu_ps(dy + c), _mm512_loadu_ps(weight + c), ROUND);
        sum_g = _mm512_add_round_ps(sum_g, g, ROUND);
        __m512 xm = _mm512_sub_round_ps(_mm512_loadu_ps(x + c), mv, ROUND);
        __m512 gx = _mm512_mul_round_ps(_mm512_mul_round_ps(g, xm, ROUND), sv, ROUND);
        sum_gx = _mm512_add_round_ps(sum_gx, gx, ROUND);
    }
    _mm512_storeu_ps(acc_g, sum_g);
    _mm512_storeu_ps(acc_gx, sum_gx);
    return c;
}

/* dparams_channels below for one whole slice of SUM_LANES channels, the sums in
 * registers through all N rows instead of a load and a store of dweight and
 * dbias per row; the same operations, fused as gcc
 * fuses the portable loop: dweight += (dout (x - m)) s as one FMA. */
static void slice_sums_avx512(float* dweight, float* dbias, const float* dout, const float* inp, const float* mean,
                              const float* rstd, int N, int C, int c0) {
    __m512 sum_w = _mm512_loadu_ps(dweight + c0), sum_b = dbias ? _mm512_loadu_ps(dbias + c0) : _mm512_setzero_ps();
    for (int n = 0; n < N; n++) {
        __m512 dy = _mm512_loadu_ps(dout + (size_t)n * C + c0);
        __m512 xm = _mm512_sub_round_ps(_mm512_loadu_ps(inp + (size_t)n * C + c0), _mm512_set1_ps(mean[n]), ROUND);
        sum_w = _mm512_fmadd_round_ps(_mm512_mul_round_ps(dy, xm, ROUND), _mm512_set1_ps(rstd[n]), sum_w, ROUND);
        sum_b = _mm512_add_round_ps(sum_b, dy, ROUND);
    }
    _mm512_storeu_ps(dweight + c0, sum_w);
    if (dbias) _mm512_storeu_ps(dbias + c0, sum_b);
}
#endif

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
        float acc_g[SUM_LANES] = {0}, acc_gx[SUM_LANES] = {0};
        int c = 0;
#ifdef __AVX512F__
        c = row_sums_avx512(acc_g, acc_gx, dy, x, weight, m, s, C);
#endif
        for (; c + SUM_LANES <= C; c += SUM_LANES)
            for (int j = 0; j < SUM_LANES; j++) {
                float g = dy[c + j] * weight[c + j];
                acc_g[j] += g;
                acc_gx[j] += g * (x[c + j] - m) * s;
            }
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
#ifdef __AVX512F__
        if (c1 - c0 == SUM_LANES) {
            slice_sums_avx512(dweight, dbias, dout, inp, mean, rstd, N, C, c0);
            continue;
        }
#endif
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
