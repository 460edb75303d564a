/* fast/matmul.c: the linear layer through register-tiled matrix products.
 * Must match kernels/reference/matmul.c, the same sums as plain loops
 * (tests/test_kernels.c compares them): each output element here is the same
 * chain of multiply-adds in the same order, only scheduled differently.
 *
 * Every linear product in the model is reduced to one kernel,
 * c += A b with b row-major: the inner loop then runs along contiguous rows
 * of b and c. Each (MR x NR) tile of c is held in registers while k runs
 * over a block of the reduction (KC at a time, so the KC x NR panel of b it
 * streams through stays in the L1 cache while the tiles below it reuse it).
 * Every element of c is one chain of fused multiply-adds, k = 0, 1, ..., K-1:
 * how the tiles are shared out, blocked or masked at the edges never changes
 * an element's bits.
 *
 * Threads take contiguous runs of tiles (in the cache-friendly order of
 * tile_run) and never split a reduction. The tile is written once, over the
 * vectors of kernels/fast/simd.h, which also sizes it from the target's
 * register file (AVX-512: 8 rows x 2 zmm = 16 accumulators; AVX2: 6 x 2 ymm =
 * 12; NEON: 8 x 3 q registers), so the accumulators never spill. Ragged right
 * edges run the same tile one vector wide, the last partial vector on
 * zero-padded copies (edge_tile). The forward's b = W^T is first copied into
 * panels of NR columns (packing, as BLAS libraries do), so that the tile always
 * streams contiguous rows.
 */
#include "kernels/matmul.h"

#include <omp.h>
#include <string.h>

#include "kernels/fast/gemm.h"
#include "kernels/fast/simd.h"
#include "kernels/fast/vmath.h"


enum {
    MR = TILE_MR,         /* rows of a register tile (simd.h: from the register count) */
    NR = TILE_NV * VLEN,  /* columns of a register tile: TILE_NV vectors */
    KC = 384,  /* reduction block: a KC x NR panel of b is 48 KiB at NR = 32 (AVX-512), the L1 cache
                * of Zen 5 and recent Intel cores, 24 KiB at NR = 16 (AVX2); one block for n_embd 384 */
    MC = 128,  /* rows per block: MC x KC of A is 192 KiB, for the L2 cache */
    NB = (96 + NR - 1) / NR,  /* panels per column block of an unpacked b (tile_origin): KC x 96
                               * columns is 144 KiB, for the L2 cache */
    B_AHEAD = 16,     /* rows of b a prefetching tile asks for ahead of its loads (tile_run) */
    LINE_FLOATS = 16, /* floats per 64-byte cache line: one prefetch each */
};

/* How a tile's accumulators start when k0 = 0: from c (c += A B), or from a row
 * vector broadcast down the rows, zero if NULL (c = bias + A B, nothing to read). */
typedef struct { int load_c; const float* row; } TileInit;

/* c[0..mr) x [0..nv*VLEN) (+)= A(0..mr, 0..K) b[0..K) x [0..nv*VLEN); mr <= MR,
 * nv <= TILE_NV vectors: a whole tile is nv = TILE_NV, the ragged right edge
 * narrower (edge_tile). Called with constant mr = MR and nv the guards fold
 * away: always_inline, since gcc otherwise keeps one out-of-line copy with a
 * compare and branch per row and k. prefetch_b (a constant at each call) asks
 * for b's row k + B_AHEAD while row k is used. */
static inline __attribute__((always_inline)) void tile(float* restrict c, int ldc, TileInit init,
                                                       const float* restrict a, ptrdiff_t a_row, ptrdiff_t a_col,
                                                       const float* restrict b, int ldb, int K, int mr, int nv,
                                                       int prefetch_b) {
    vf acc[MR][TILE_NV], r[TILE_NV];
    for (int v = 0; v < nv; v++) r[v] = init.row ? vload(init.row + v * VLEN) : vzero();
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < nv; v++) acc[i][v] = init.load_c && i < mr ? vload(c + (size_t)i * ldc + v * VLEN) : r[v];
    /* k runs as a walk of two pointers to an end: no counter to hold in a register */
    const float* brow = b;
    for (const float *ak = a, *a_end = a + K * a_col; ak != a_end; ak += a_col, brow += ldb) {
        if (prefetch_b && brow + (size_t)B_AHEAD * ldb < b + (size_t)K * ldb)
            for (int j = 0; j < nv * VLEN; j += LINE_FLOATS) __builtin_prefetch(brow + (size_t)B_AHEAD * ldb + j);
        vf bk[TILE_NV];
        for (int v = 0; v < nv; v++) bk[v] = vload(brow + v * VLEN);
        #pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            if (i < mr) {
                vf ai = vsplat(ak[i * a_row]);
                for (int v = 0; v < nv; v++) acc[i][v] = vmuladd(ai, bk[v], acc[i][v]);
            }
        }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
        if (i < mr)
            for (int v = 0; v < nv; v++) vstore(c + (size_t)i * ldc + v * VLEN, acc[i][v]);
}

/* One product for tile_run: c (+)= A B with A(m,k) = a[m*a_row + k*a_col] and B
 * either row-major (row stride ldb) or, when `packed`, stored panel by panel:
 * the K x NR panel p at b + p*K*NR, its rows NR floats apart (pack_transposed). */
typedef struct {
    float* c; int ldc;
    int load_c; const float* init_row;  /* see TileInit; init_row is indexed by n */
    const float* a; ptrdiff_t a_row, a_col;
    const float* b; int ldb; int packed;
    int M, N, K;
    int column_blocks;  /* walk the tiles in column blocks (tile_origin) */
} Gemm;

/* Where tile t of the grid starts, (m0, n0), in the order that keeps each block
 * in its cache: row blocks of MC rows; within one, column panel after column
 * panel; within a panel, the row tiles top to bottom. So the KC x NR panel of b
 * stays in L1 while every tile of the row block uses it, and the MC x KC block
 * of A stays in L2 while every panel passes.
 * An unpacked b (dweight's: the layer's input) has rows far apart that do not
 * stay in L1 anyway, and the KC rows of all of b that a row block walks (0.6 to
 * 2.4 MB at n_embd 384) do not stay in L2 either: with column_blocks the walk
 * takes column blocks of NB panels instead, and within one each row tile across
 * the block's panels, so that KC x NB*NR of b stays in L2 while all of A passes.
 * Inlined: a call would spill the caller's vector registers. */
static inline __attribute__((always_inline)) void tile_origin(const Gemm* g, int t, int* m0, int* n0) {
    int tiles_m = (g->M + MR - 1) / MR, tiles_n = (g->N + NR - 1) / NR;
    if (g->column_blocks) {
        int blk = t / (NB * tiles_m), r = t - blk * NB * tiles_m;
        int in_block = tiles_n - blk * NB < NB ? tiles_n - blk * NB : NB;
        *m0 = (r / in_block) * MR;
        *n0 = (blk * NB + r % in_block) * NR;
        return;
    }
    int block_tiles = MC / MR;  /* row tiles per row block */
    int blk = t / (block_tiles * tiles_n), r = t - blk * block_tiles * tiles_n;
    int in_block = tiles_m - blk * block_tiles < block_tiles ? tiles_m - blk * block_tiles : block_tiles;
    *m0 = (blk * block_tiles + r % in_block) * MR;
    *n0 = (r / in_block) * NR;
}

/* Tiles t0..t1 of the grid, in tile_origin's order, the whole run repeated per
 * KC block of k. A tile starts by loading (or ends by storing) its MR rows of c,
 * which for a c larger than L2 come from memory: a chain of FMAs cannot start
 * before its accumulator arrives, so the next tile's rows are prefetched while
 * this one computes.
 * In the column walk the first row tile of a block is the first to read the
 * block's rows of b, which in a training step come from L3 or memory (dweight's b
 * is the layer's input, saved in the forward); the hardware does not fetch them
 * ahead fast enough, so that tile asks for its rows of b B_AHEAD ahead. The tiles
 * below it find them in L2, where a prefetch per k would only cost issue slots. */
/* The last, partial vector of an unpacked b's ragged right edge, zero-padded
 * to VLEN columns (edge_tile), kept for the tiles below it: b's rows k0.. at
 * column n0. */
typedef struct { int n0, k0; float b[KC * VLEN]; } EdgePanel;

/* One per thread, emptied at the start of each tile_run: off tile_run's stack,
 * whose registers the tiles need (an array there costs it a frame pointer). */
static _Thread_local EdgePanel edge_pad;

/* The tile at the ragged right edge, nr < NR columns from (m0, n0): strips of
 * one vector, the whole ones on c and b directly, the last partial one (nr not
 * a multiple of VLEN) on copies padded with zeros to VLEN columns, of c's rows,
 * of the initial row and, unless b is packed (its panels are padded already),
 * of b's rows. The same chains of FMAs as in a whole tile; the padding columns
 * are computed and dropped. Out of line: tile_run's tiles keep their registers. */
static __attribute__((noinline)) void edge_tile(const Gemm* g, int m0, int n0, int k0, int kc,
                                               int mr, int nr) {
    EdgePanel* pad = &edge_pad;
    TileInit init = {.load_c = g->load_c || k0 > 0, .row = NULL};
    const float* a = g->a + m0 * g->a_row + k0 * g->a_col;
    int ldb = g->packed ? NR : g->ldb;
    for (int j = 0; j < nr; j += VLEN) {
        int n = n0 + j, w = nr - j < VLEN ? nr - j : VLEN;
        float* ct = g->c + (size_t)m0 * g->ldc + n;
        /* packed: panel n0 / NR from row k0, at column j */
        const float* b = g->packed ? g->b + (size_t)n0 * g->K + (size_t)k0 * NR + j : g->b + (size_t)k0 * g->ldb + n;
        init.row = g->init_row ? g->init_row + n : NULL;
        float c[MR * VLEN] = {0}, row[VLEN] = {0};
        float* cs = ct;
        int ldc = g->ldc, ldbs = ldb;
        if (w < VLEN) {
            if (init.load_c)
                for (int i = 0; i < mr; i++) memcpy(c + i * VLEN, ct + (size_t)i * g->ldc, sizeof(float) * w);
            if (init.row) {
                memcpy(row, init.row, sizeof(float) * w);
                init.row = row;
            }
            if (!g->packed) {
                if (pad->n0 != n || pad->k0 != k0) {
                    for (int k = 0; k < kc; k++) {
                        memcpy(pad->b + k * VLEN, b + (size_t)k * ldb, sizeof(float) * w);
                        memset(pad->b + k * VLEN + w, 0, sizeof(float) * (VLEN - w));
                    }
                    pad->n0 = n, pad->k0 = k0;
                }
                b = pad->b, ldbs = VLEN;
            }
            cs = c, ldc = VLEN;
        }
        tile(cs, ldc, init, a, g->a_row, g->a_col, b, ldbs, kc, mr, 1, 0);
        if (w < VLEN)
            for (int i = 0; i < mr; i++) memcpy(ct + (size_t)i * g->ldc, c + i * VLEN, sizeof(float) * w);
    }
}

static void tile_run(const Gemm* g, int t0, int t1) {
    edge_pad.n0 = -1;
    for (int k0 = 0; k0 < g->K; k0 += KC) {
        int kc = g->K - k0 < KC ? g->K - k0 : KC;
        int next_m0 = 0, next_n0 = 0;
        if (t0 < t1) tile_origin(g, t0, &next_m0, &next_n0);
        for (int t = t0; t < t1; t++) {
            int m0 = next_m0, n0 = next_n0;
            if (t + 1 < t1) {
                tile_origin(g, t + 1, &next_m0, &next_n0);
                const float* next_c = g->c + (size_t)next_m0 * g->ldc + next_n0;
                for (int i = 0; i < MR && next_m0 + i < g->M; i++)
                    for (int j = 0; j < NR; j += LINE_FLOATS) __builtin_prefetch(next_c + (size_t)i * g->ldc + j, 1);
            }
            int mr = g->M - m0 < MR ? g->M - m0 : MR, nr = g->N - n0 < NR ? g->N - n0 : NR;
            if (nr < NR) {
                edge_tile(g, m0, n0, k0, kc, mr, nr);
                continue;
            }
            const float* bt = g->packed ? g->b + (size_t)n0 * g->K + (size_t)k0 * NR : g->b + (size_t)k0 * g->ldb + n0;
            int ldb = g->packed ? NR : g->ldb;
            TileInit init = {.load_c = g->load_c || k0 > 0, .row = g->init_row ? g->init_row + n0 : NULL};
            float* ct = g->c + (size_t)m0 * g->ldc + n0;
            const float* at = g->a + m0 * g->a_row + k0 * g->a_col;
            if (g->column_blocks && m0 == 0) tile(ct, g->ldc, init, at, g->a_row, g->a_col, bt, ldb, kc, mr, TILE_NV, 1);
            else if (mr == MR) tile(ct, g->ldc, init, at, g->a_row, g->a_col, bt, ldb, kc, MR, TILE_NV, 0);
            else tile(ct, g->ldc, init, at, g->a_row, g->a_col, bt, ldb, kc, mr, TILE_NV, 0);
        }
    }
}

/* The calling thread's contiguous share of n items. */
static void my_share(int n, int* i0, int* i1) {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    *i0 = (int)((long)n * id / nt);
    *i1 = (int)((long)n * (id + 1) / nt);
}

static int gemm_tiles(const Gemm* g) { return ((g->M + MR - 1) / MR) * ((g->N + NR - 1) / NR); }

/* The calling thread's contiguous run of the grid's tiles (inside a parallel
 * region; the whole grid outside one). No barrier: the caller places it. */
static void gemm_share(const Gemm* g) {
    int t0, t1;
    my_share(gemm_tiles(g), &t0, &t1);
    tile_run(g, t0, t1);
}

/* c (+)= A b on the calling thread alone: load_c = 1 accumulates, 0 overwrites. */
static void gemm_serial(float* c, int ldc, int load_c, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                        const float* b, int ldb, int M, int N, int K) {
    Gemm g = {c, ldc, load_c, NULL, a, a_row, a_col, b, ldb, 0, M, N, K, 0};
    tile_run(&g, 0, gemm_tiles(&g));
}

void gemm_accumulate_serial(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                            const float* b, int ldb, int M, int N, int K) {
    gemm_serial(c, ldc, 1, a, a_row, a_col, b, ldb, M, N, K);
}

void gemm_set_serial(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float* b, int ldb, int M, int N, int K) {
    gemm_serial(c, ldc, 0, a, a_row, a_col, b, ldb, M, N, K);
}

void gemm_accumulate(float* c, int ldc, const float* a, ptrdiff_t a_row, ptrdiff_t a_col,
                     const float* b, int ldb, int M, int N, int K) {
    Gemm g = {c, ldc, 1, NULL, a, a_row, a_col, b, ldb, 0, M, N, K, 0};
    #pragma omp parallel
    gemm_share(&g);
}

#define STR(x) #x
#define XSTR(x) STR(x)
const char* matmul_path(void) {
    return "fast-" SIMD_ISA "-vlen" XSTR(VLEN) "-tile" XSTR(TILE_MR) "x" XSTR(TILE_NV) "v";
}

size_t matmul_scratch_floats(int C, int OC) { return (size_t)C * ((OC + NR - 1) / NR) * NR; }

size_t matmul_backward_scratch_floats(int C, int OC) { return (size_t)OC * ((C + NR - 1) / NR) * NR; }

/* The VLEN x VLEN block at src (row stride lds) into dst transposed (row stride
 * ldd), in registers: VLEN row loads, VLEN log2(VLEN) shuffles, VLEN row
 * stores, where a scalar loop stores each element to a different row of dst.
 * Each round interleaves row i with row i + VLEN/2; numbering an element by its
 * row's bits then its lane's, a round rotates that number left by one bit, so
 * log2(VLEN) rounds swap row and lane. Moves bits only. */
static void transpose_block(float* dst, int ldd, const float* src, int lds) {
    vf r[VLEN];
    for (int i = 0; i < VLEN; i++) r[i] = vload(src + (size_t)i * lds);
#if VLEN > 1
    for (int round = 1; round < VLEN; round *= 2) {
        vf t[VLEN];
        for (int i = 0; i < VLEN / 2; i++) {
            t[2 * i] = vzip_lo(r[i], r[i + VLEN / 2]);
            t[2 * i + 1] = vzip_hi(r[i], r[i + VLEN / 2]);
        }
        memcpy(r, t, sizeof r);
    }
#endif
    for (int i = 0; i < VLEN; i++) vstore(dst + (size_t)i * ldd, r[i]);
}

/* dst (cols, rows) = src (rows, cols)^T, row strides ldd and lds: whole VLEN x
 * VLEN blocks in registers (where the element loop stores each element to
 * another row of dst, one cache line per element), the edges element by element. */
void transpose(float* dst, int ldd, const float* src, int lds, int rows, int cols) {
    int r_blocks = rows - rows % VLEN, c_blocks = cols - cols % VLEN;
    for (int r = 0; r < r_blocks; r += VLEN)
        for (int c = 0; c < c_blocks; c += VLEN)
            transpose_block(dst + (size_t)c * ldd + r, ldd, src + (size_t)r * lds + c, lds);
    for (int r = 0; r < rows; r++)
        for (int c = r < r_blocks ? c_blocks : 0; c < cols; c++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

/* packed (panels of W^T) from W (OC, C): panel p holds W^T's columns p*NR.. as
 * C rows of NR floats, the layout the tile streams. W is read row by row. */
static void pack_transposed(float* packed, const float* weight, int C, int OC, int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        int nr = OC - p * NR < NR ? OC - p * NR : NR;
        float* panel = packed + (size_t)p * C * NR;
        transpose(panel, NR, weight + (size_t)p * NR * C, C, nr, C);
        if (nr < NR)  /* the last panel padded with zeros: the tile reads NR columns */
            for (int k = 0; k < C; k++) memset(panel + (size_t)k * NR + nr, 0, sizeof(float) * (NR - nr));
    }
}

/* packed (panels of b) from b (K, N) row-major with row stride ldb: panel p
 * holds b's columns p*NR.. as K rows of NR floats, the layout the tile streams.
 * Rows of an unpacked b lie ldb floats apart: at n_embd = 128 that is 512 bytes,
 * and the KC rows of a panel then share 16 of the L1 cache's 64 sets and do not
 * stay in it; packed, they are contiguous. */
static void pack_panels(float* packed, const float* b, int ldb, int K, int N, int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        float* panel = packed + (size_t)p * K * NR;
        int nr = N - p * NR < NR ? N - p * NR : NR;
        for (int k = 0; k < K; k++) {
            memcpy(panel + (size_t)k * NR, b + (size_t)k * ldb + p * NR, sizeof(float) * nr);
            if (nr < NR) memset(panel + (size_t)k * NR + nr, 0, sizeof(float) * (NR - nr));  /* padding, as above */
        }
    }
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, float* scratch,
                    int BT, int C, int OC) {
    /* out = bias + inp W^T, with W^T packed into scratch: each thread packs its
     * share of panels, then all wait until every panel is ready. The product's
     * accumulators start from the bias: no separate pass over out. */
    Gemm g = {out, OC, 0, bias, inp, C, 1, scratch, NR, 1, BT, OC, C, 0};
    #pragma omp parallel
    {
        int p0, p1;
        my_share((OC + NR - 1) / NR, &p0, &p1);
        pack_transposed(scratch, weight, C, OC, p0, p1);
        #pragma omp barrier
        gemm_share(&g);
    }
}

void matmul_backward(float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight, float* scratch,
                     int BT, int C, int OC, GradMode mode) {
    /* Three independent products in one parallel region, without a barrier
     * between them: a thread goes on to its share of the next as soon as it is
     * done with the last (each output element still has one writer and one order).
     * dinp (BT, C) = dout (BT, OC) W (OC, C): the accumulators start at 0, not from dinp;
     * W is first packed into panels in scratch (each thread its share, then a barrier).
     * dweight (OC, C) (+)= dout^T (OC, BT) inp (BT, C): A(o, r) = dout[r*OC + o]. */
    int add = mode == GRADS_ADD;
    Gemm gi = {dinp, C, 0, NULL, dout, OC, 1, scratch, NR, 1, BT, C, OC, 0};
    Gemm gw = {dweight, C, add, NULL, dout, 1, OC, inp, C, 0, OC, C, BT, 1};
    enum { SLICE = 64 };  /* dbias outputs per work item: four vectors of sums */
    int slices = dbias ? (OC + SLICE - 1) / SLICE : 0;
    #pragma omp parallel
    {
        if (dinp) {
            int p0, p1;
            my_share((C + NR - 1) / NR, &p0, &p1);
            pack_panels(scratch, weight, C, OC, C, p0, p1);
            #pragma omp barrier
            gemm_share(&gi);
        }
        gemm_share(&gw);
        /* dbias: each thread owns slices of outputs and sums the rows in order */
        #pragma omp for schedule(static) nowait
        for (int s = 0; s < slices; s++) {
            int o0 = s * SLICE, w = OC - o0 < SLICE ? OC - o0 : SLICE;
            float acc[SLICE];  /* in registers: the same adds, in row order */
            for (int j = 0; j < w; j++) acc[j] = add ? dbias[o0 + j] : 0.0f;
            for (int r = 0; r < BT; r++) {
                const float* row = dout + (size_t)r * OC + o0;
                if (w == SLICE)  /* a constant trip count: the sums stay in registers */
                    for (int j = 0; j < SLICE; j++) acc[j] += row[j];
                else
                    for (int j = 0; j < w; j++) acc[j] += row[j];
            }
            for (int j = 0; j < w; j++) dbias[o0 + j] = acc[j];
        }
    }
}

void matvec_forward(float* out, const float* inp, const float* weight, const float* bias, int C, int OC) {
    /* out_o = b_o + W_o . x, each dot in vector lanes (vmath.h): a fixed order per
     * output, any threads */
    #pragma omp parallel for schedule(static) if (OC * C > 65536)
    for (int o = 0; o < OC; o++)
        out[o] = (bias ? bias[o] : 0.0f) + lanes_dot(weight + (size_t)o * C, inp, C);
}
