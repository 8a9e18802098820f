/* wino1d.c — convolutions along one axis (conv1d; conv2d with a (k, 1) kernel) through a 1-D
 * Winograd F(4, 3): HiFi-GAN's resblock convolutions (k 3/7/11, dilation 1/3/5, 32-512 channels,
 * 2500-80000 samples) and Zeroscope's temporal (3, 1, 1) convolutions (over 8 frames, 320-1280
 * channels, run as a (3, 1) conv2d over [B, C, F, h*w]). Both ran at GEMM peak as direct
 * convolutions (oneDNN's gemm:jit, the path PyTorch takes too), so only fewer multiplies could
 * make them faster: F(4, 3) computes 4 outputs of a 3-tap filter with 6 multiplies instead of 12.
 *
 * A k-tap kernel is cut into ng = ceil(k / 3) groups of 3 taps (zero-padded). An output tile is
 * 4 positions d apart (d = dilation); group g reads the 6 inputs at t0 - pad + (3g + m) d,
 * m = 0..5. All groups share the tile's outputs, so they are summed in the transform domain:
 * for each of the 6 points a,
 *     M_a [O, cols] = U_a [O, ng C] . V_a [ng C, cols]      (one batched GEMM, 6 x)
 * with U_a[o][g C + c] = (G w[o, c, 3g .. 3g+2])_a and V_a[g C + c][tile, p] = (B^T x_window)_a,
 * then y = A^T M + bias. Multiplies per output: 6 ng / 4 against k: 2x fewer at k 3, 1.56x at 7,
 * 1.83x at 11 (k 7 and 11 pay for their zero taps). Points 0, +-1, +-2, inf (Lavin & Gray): in
 * F32 the result differs from direct by ~1e-6 relative.
 *
 * The GEMMs: for conv1d on AVX2 and AVX-512 register tiles of our own (nx_cpu_gemm_tiles), each
 * task taking chunks of columns through all three steps in its own L2-sized buffers, so no
 * oneDNN call alternates with the pool's transforms (GOMP's spinning waiters cost both); else
 * (the (k, 1) conv2d, no AVX2, or the direct paths switched off) one oneDNN batched matmul per
 * chunk, columns (tile x inner position) in chunks so V and M stay a few tens of MB. The
 * weight transform is redone per call (ng C x 6 per output channel: cheap next to the GEMMs
 * wherever the rule in conv.c takes this path); caching it would keep 2-4x the weights. */
#include "avx2_util.h"
#include "cpu_ops.h"
#include "cpu_util.h"
#include "wino_f43.h"

#include "../../core/alloc.h"
#include "../../core/cpu_isa.h"
#include "../../core/error.h"
#include "../../core/pool.h"

#include <stdatomic.h>
#include <string.h>

enum { T = NX_W43_T, A = NX_W43_A, R = NX_W43_R };
#define BT NX_W43_BT
#define G NX_W43_G
#define AT NX_W43_AT

typedef struct w1_job {
    const float *x, *w, *b;
    float       *y, *U, *V, *M;
    int64_t      C, O, L, P, Lo, k, d, pad, ng, Kc;
    int64_t      nblk;           /* blocks of 4 d outputs; tiles = nblk * d */
    int64_t      col0, ncol;     /* this chunk's columns (tile * P + p) */
    int64_t      ldv, ldm;       /* row strides of V and M (ncol, or the own GEMM's padded chunk) */
    bool         own;            /* the own GEMM (nx_cpu_gemm_tiles): U packed [A][Op / 8][Kc][8] */
    const float *xn;             /* this batch item's x [C, L, P] */
    float       *yn;             /* and y [O, Lo, P] */
    /* P == 1: x split into phases, X4[c][res][q][jj] = x[(4 jj + q) d + res - pad] (0 outside
     * [0, L)), jj < J, so that each of a tile's 6 samples is a contiguous run over tiles */
    float       *X4;
    int64_t      J;
    float       *Tb;             /* P == 1: [O, chunk] staging of one output row before its scatter */
    bool         leaky;          /* the fused epilogue (nx_conv_epi) */
    float        slope;
    const float *res, *resn;     /* residual [N, O, Lo, P] and this batch item's */
} w1_job;

/* the epilogue of one output, y[i] = epi(v) with r = i's residual offset */
static inline float epi1(const w1_job *j, float v, int64_t i)
{
    if (j->leaky) v = v >= 0.f ? v : v * j->slope;
    return j->resn ? v + j->resn[i] : v;
}

#define NX_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define NX_INLINE static inline __attribute__((always_inline))

/* name(i0, i1, arg) for nx_cpu_parallel_for: name_t compiled three times, for AVX-512, AVX2 and
 * plain, picked at run time */
#define W1_DISPATCH(name)                                                                              \
    static NX_AVX512 void name##_avx512(const w1_job *j, int64_t a, int64_t b) { name##_t(j, a, b); } \
    static NX_AVX2 void name##_avx2(const w1_job *j, int64_t a, int64_t b) { name##_t(j, a, b); }     \
    static void name##_plain(const w1_job *j, int64_t a, int64_t b) { name##_t(j, a, b); }            \
    static void name(int64_t a, int64_t b, void *arg)                                                 \
    {                                                                                                  \
        const nx_isa isa = nx_cpu_isa();                                                               \
        if (isa == NX_ISA_AVX512) name##_avx512(arg, a, b);                                            \
        else if (isa == NX_ISA_AVX2) name##_avx2(arg, a, b);                                           \
        else name##_plain(arg, a, b);                                                                  \
    }

/* Where U_a[o][r] lives: [A][O][Kc] for oneDNN's matmul, or packed for the own GEMM (8-row
 * blocks, zeros past O: see nx_cpu_gemm_tiles). */
static inline int64_t u_at(const w1_job *j, int a, int64_t o, int64_t r)
{
    if (!j->own) return ((int64_t)a * j->O + o) * j->Kc + r;
    const int64_t Op = (j->O + 7) / 8 * 8;
    return ((int64_t)a * Op + o / 8 * 8) * j->Kc + r * 8 + o % 8;
}

/* U[a][o][g C + c] over output channels [o0, o1). */
NX_INLINE void weight_rows_t(const w1_job *j, int64_t o0, int64_t o1)
{
    for (int64_t o = o0; o < o1; o++)
        for (int64_t g = 0; g < j->ng; g++)
            for (int64_t c = 0; c < j->C; c++) {
                const float *wr = j->w + (o * j->C + c) * j->k;
                float t[R];
                for (int e = 0; e < R; e++) t[e] = 3 * g + e < j->k ? wr[3 * g + e] : 0.f;
                for (int a = 0; a < A; a++)
                    j->U[u_at(j, a, o, g * j->C + c)] = G[a][0] * t[0] + G[a][1] * t[1] + G[a][2] * t[2];
            }
}

W1_DISPATCH(weight_rows)

/* First output position of tile `tile` (tiles: blocks of 4 d outputs, d residues each). */
static inline int64_t tile_t0(const w1_job *j, int64_t tile)
{
    return tile / j->d * T * j->d + tile % j->d;
}

/* V[a][g C + c][col - col0] for rows [r0, r1) of (g, c). */
NX_INLINE void input_rows_t(const w1_job *j, int64_t r0, int64_t r1)
{
    const int64_t P = j->P, tile0 = j->col0 / P, tile1 = (j->col0 + j->ncol + P - 1) / P;
    float in[A][64];
    for (int64_t r = r0; r < r1; r++) {
        const int64_t g = r / j->C, c = r % j->C;
        const float *xc = j->xn + c * j->L * P;
        for (int64_t tile = tile0; tile < tile1; tile++) {
            const int64_t s0 = tile_t0(j, tile) - j->pad + 3 * g * j->d;
            const int64_t p_lo = tile == tile0 ? j->col0 % P : 0;
            const int64_t p_hi = tile == tile1 - 1 ? j->col0 + j->ncol - tile * P : P;
            for (int64_t p0 = p_lo; p0 < p_hi; p0 += 64) {
                const int64_t np = p_hi - p0 < 64 ? p_hi - p0 : 64;
                for (int m = 0; m < A; m++) {
                    const int64_t s = s0 + m * j->d;
                    if (s < 0 || s >= j->L) memset(in[m], 0, (size_t)np * sizeof(float));
                    else memcpy(in[m], xc + s * P + p0, (size_t)np * sizeof(float));
                }
                const int64_t col = tile * P + p0 - j->col0;
                for (int a = 0; a < A; a++) {
                    float *v = j->V + ((int64_t)a * j->Kc + r) * j->ldv + col;
                    for (int64_t q = 0; q < np; q++) {
                        float acc = 0.f;
                        for (int m = 0; m < A; m++) acc += BT[a][m] * in[m][q];
                        v[q] = acc;
                    }
                }
            }
        }
    }
}

W1_DISPATCH(input_rows)

/* ---- P == 1 (conv1d): columns are col = res * nblk + blk (tile t0 = 4 d blk + res) ---- */

/* X4 for channels [c0, c1). */
static void phase_rows(int64_t c0, int64_t c1, void *arg)
{
    const w1_job *j = arg;
    for (int64_t c = c0; c < c1; c++) {
        const float *xc = j->xn + c * j->L;
        float *dst = j->X4 + c * j->d * 4 * j->J;
        for (int64_t res = 0; res < j->d; res++)
            for (int q = 0; q < 4; q++, dst += j->J)
                for (int64_t jj = 0; jj < j->J; jj++) {
                    const int64_t s = (4 * jj + q) * j->d + res - j->pad;
                    dst[jj] = s >= 0 && s < j->L ? xc[s] : 0.f;
                }
    }
}

/* V rows [r0, r1) of (g, c) over this chunk's columns: for each residue, a run of blocks. */
NX_INLINE void input_rows_p1_t(const w1_job *j, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++) {
        const int64_t g = r / j->C, c = r % j->C;
        for (int64_t col = j->col0; col < j->col0 + j->ncol;) {
            const int64_t res = col / j->nblk, b0 = col % j->nblk;
            const int64_t nb = (j->nblk - b0 < j->col0 + j->ncol - col) ? j->nblk - b0 : j->col0 + j->ncol - col;
            const float *in[A];
            for (int m = 0; m < A; m++) {
                const int64_t e = 3 * g + m;
                in[m] = j->X4 + ((c * j->d + res) * 4 + (e & 3)) * j->J + (e >> 2) + b0;
            }
            for (int a = 0; a < A; a++) {
                float *v = j->V + ((int64_t)a * j->Kc + r) * j->ldv + (col - j->col0);
                const float b0a = BT[a][0], b1 = BT[a][1], b2 = BT[a][2], b3 = BT[a][3], b4 = BT[a][4], b5 = BT[a][5];
                for (int64_t q = 0; q < nb; q++)
                    v[q] = b0a * in[0][q] + b1 * in[1][q] + b2 * in[2][q] + b3 * in[3][q] + b4 * in[4][q] + b5 * in[5][q];
            }
            col += nb;
        }
    }
}

W1_DISPATCH(input_rows_p1)

/* y[o][(4 blk + i) d + res] = (A^T M)_i + b[o] for output channels [o0, o1). */
NX_INLINE void output_rows_p1_t(const w1_job *j, int64_t o0, int64_t o1, float *tmp)
{
    for (int64_t o = o0; o < o1; o++, tmp += j->ncol) {
        const float bias = j->b ? j->b[o] : 0.f;
        float *yo = j->yn + o * j->Lo;
        const float *m[A];
        for (int a = 0; a < A; a++) m[a] = j->M + ((int64_t)a * j->O + o) * j->ldm;
        for (int i = 0; i < T; i++) {
            const float a0 = AT[i][0], a1 = AT[i][1], a2 = AT[i][2], a3 = AT[i][3], a4 = AT[i][4], a5 = AT[i][5];
            for (int64_t q = 0; q < j->ncol; q++)
                tmp[q] = bias + a0 * m[0][q] + a1 * m[1][q] + a2 * m[2][q] + a3 * m[3][q] + a4 * m[4][q] + a5 * m[5][q];
            /* scatter: column col0 + q is (res, blk) = divmod(col, nblk), output (4 blk + i) d + res */
            for (int64_t col = j->col0, q = 0; q < j->ncol;) {
                const int64_t res = col / j->nblk, b0 = col % j->nblk;
                const int64_t nb = j->nblk - b0 < j->ncol - q ? j->nblk - b0 : j->ncol - q;
                int64_t t = (4 * b0 + i) * j->d + res;
                for (int64_t bb = 0; bb < nb && t < j->Lo; bb++, t += 4 * j->d) yo[t] = epi1(j, tmp[q + bb], o * j->Lo + t);
                q += nb;
                col += nb;
            }
        }
    }
}

static NX_AVX512 void output_rows_p1_avx512(const w1_job *j, int64_t o0, int64_t o1, float *tmp)
{
    output_rows_p1_t(j, o0, o1, tmp);
}
static NX_AVX2 void output_rows_p1_avx2(const w1_job *j, int64_t o0, int64_t o1, float *tmp)
{
    output_rows_p1_t(j, o0, o1, tmp);
}
static void output_rows_p1_plain(const w1_job *j, int64_t o0, int64_t o1, float *tmp) { output_rows_p1_t(j, o0, o1, tmp); }

static void output_rows_p1(int64_t o0, int64_t o1, void *arg)
{
    const w1_job *j = arg;
    float *tmp = j->Tb + o0 * j->ncol;  /* this range's rows of the staging buffer */
    const nx_isa isa = nx_cpu_isa();
    if (isa == NX_ISA_AVX512) output_rows_p1_avx512(j, o0, o1, tmp);
    else if (isa == NX_ISA_AVX2) output_rows_p1_avx2(j, o0, o1, tmp);
    else output_rows_p1_plain(j, o0, o1, tmp);
}

/* ---- P > 1 (a (k, 1) conv2d): columns are col = tile * P + p ---- */

/* y[o][t0 + i d][p] = (A^T M)_i + b[o] for output channels [o0, o1). */
NX_INLINE void output_rows_t(const w1_job *j, int64_t o0, int64_t o1)
{
    const int64_t P = j->P, tile0 = j->col0 / P, tile1 = (j->col0 + j->ncol + P - 1) / P;
    for (int64_t o = o0; o < o1; o++) {
        const float bias = j->b ? j->b[o] : 0.f;
        float *yo = j->yn + o * j->Lo * P;
        for (int64_t tile = tile0; tile < tile1; tile++) {
            const int64_t t0 = tile_t0(j, tile);
            const int64_t p_lo = tile == tile0 ? j->col0 % P : 0;
            const int64_t p_hi = tile == tile1 - 1 ? j->col0 + j->ncol - tile * P : P;
            const int64_t col = tile * P - j->col0;
            for (int i = 0; i < T; i++) {
                const int64_t t = t0 + i * j->d;
                if (t >= j->Lo) break;
                float *yr = yo + t * P;
                for (int64_t p = p_lo; p < p_hi; p++) {
                    float acc = bias;
                    for (int a = 0; a < A; a++) acc += AT[i][a] * j->M[((int64_t)a * j->O + o) * j->ldm + col + p];
                    yr[p] = epi1(j, acc, (o * j->Lo + t) * P + p);
                }
            }
        }
    }
}

W1_DISPATCH(output_rows)

/* ---- the own GEMM (P == 1, AVX2 and AVX-512): each task takes chunks of columns through all three steps,
 * V and M in its own buffers, so they stay in L2 instead of making two passes through memory ---- */

typedef struct w1_own {
    const w1_job   *j;
    float          *buf;         /* per task: V [A][Kc][ldv], M [A][O][ldv], Tb [O][ldv] */
    int64_t         per_task;    /* floats */
    int64_t         chunk, cols;
    _Atomic int64_t next;        /* the next chunk to hand out */
} w1_own;

static void own_task(int64_t task, int64_t n_tasks, void *arg)
{
    (void)n_tasks;
    w1_own *o = arg;
    w1_job l = *o->j;
    const int64_t Op = (l.O + 7) / 8 * 8;
    l.V = o->buf + task * o->per_task;
    l.M = l.V + A * l.Kc * l.ldv;
    l.Tb = l.M + A * l.O * l.ldm;
    for (int64_t c = atomic_fetch_add(&o->next, 1); c * o->chunk < o->cols; c = atomic_fetch_add(&o->next, 1)) {
        l.col0 = c * o->chunk;
        l.ncol = o->cols - l.col0 < o->chunk ? o->cols - l.col0 : o->chunk;
        input_rows_p1(0, l.Kc, &l);
        if (l.ncol % 48) /* the GEMM reads whole 48-column tiles: no stale values (or denormals) there */
            for (int64_t r = 0; r < A * l.Kc; r++)
                memset(l.V + r * l.ldv + l.ncol, 0, (size_t)(48 - l.ncol % 48) * sizeof(float));
        for (int a = 0; a < A; a++)
            nx_cpu_gemm_tiles(l.M + (int64_t)a * l.O * l.ldm, l.ldm, l.U + (int64_t)a * Op * l.Kc,
                              l.V + (int64_t)a * l.Kc * l.ldv, l.ldv, l.Kc, l.O, l.ncol);
        output_rows_p1(0, l.O, &l); /* staged in l.Tb */
    }
}

/* Columns per chunk of the own path: a multiple of the GEMM's 48-column tiles with the chunk's V,
 * M and staging rows (6 Kc + 7 O floats a column) within ~1 MiB, at least 2 tiles, and at least 4
 * chunks a thread where there are columns for them. */
static int64_t own_chunk(int64_t Kc, int64_t O, int64_t cols, int threads)
{
    int64_t c = ((int64_t)1 << 18) / (A * Kc + 7 * O) / 48 * 48;
    c = c < 96 ? 96 : c;
    const int64_t even = (cols / (4 * threads) + 47) / 48 * 48;
    return c > even && even >= 96 ? even : c;
}

ngpt_status nx_cpu_conv_wino1d(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                               int64_t C, int64_t O, int64_t L, int64_t P, int64_t Lo, int64_t k, int64_t dil,
                               int64_t pad, const nx_conv_epi *epi)
{
    w1_job j = {.x = x, .w = w, .b = b, .y = y, .C = C, .O = O, .L = L, .P = P, .Lo = Lo, .k = k, .d = dil,
                .pad = pad, .ng = (k + R - 1) / R};
    if (epi) {
        j.leaky = epi->leaky;
        j.slope = epi->slope;
        j.res = epi->res;
    }
    j.Kc = j.ng * C;
    j.nblk = (Lo + T * dil - 1) / (T * dil);
    /* the own GEMM for conv1d on AVX2 and AVX-512 unless the direct paths are switched off (then oneDNN's
     * batched matmul: the tests compare the two) */
    j.own = P == 1 && nx_cpu_has_avx2() && nx_cpu_conv_direct1d(be) != NX_CONV_WINOGRAD_OFF;
    const int64_t cols = j.nblk * dil * P;
    const int threads = nx_pool_threads(be ? be->pool : NULL);
    int64_t chunk, per_task = 0, n_tasks = 0;
    if (j.own) {
        chunk = own_chunk(j.Kc, O, cols, threads);
        j.ldv = j.ldm = chunk;
        per_task = (A * j.Kc + A * O + O) * chunk;
        n_tasks = (cols + chunk - 1) / chunk < threads ? (cols + chunk - 1) / chunk : threads;
        n_tasks = n_tasks < 1 ? 1 : n_tasks;
    } else {
        /* columns per chunk: V and M (6 x (Kc + O) x chunk floats) within ~48 MB */
        chunk = ((int64_t)12 << 20) / (A * (j.Kc + O));
        chunk = chunk < 256 ? 256 : chunk;
        chunk = chunk > cols ? cols : chunk;
    }
    /* P == 1: phases up to the last block's farthest sample, 4 nblk + 3 (ng - 1) + 5 < 4 J */
    j.J = j.nblk + (3 * (j.ng - 1) + 5) / 4 + 1;
    if (P == 1) j.X4 = nx_cpu_block_alloc(be, (size_t)(C * dil * 4 * j.J) * sizeof(float));
    const int64_t Op = (O + 7) / 8 * 8; /* U's rows, padded for the own GEMM's 8-row blocks */
    j.U = nx_cpu_block_alloc(be, (size_t)(A * Op * j.Kc) * sizeof(float));
    float *own_buf = NULL;
    if (j.own) {
        own_buf = nx_cpu_block_alloc(be, (size_t)(n_tasks * per_task) * sizeof(float));
    } else {
        if (P == 1) j.Tb = nx_cpu_block_alloc(be, (size_t)(O * chunk) * sizeof(float));
        j.V = nx_cpu_block_alloc(be, (size_t)(A * j.Kc * chunk) * sizeof(float));
        j.M = nx_cpu_block_alloc(be, (size_t)(A * O * chunk) * sizeof(float));
    }
    ngpt_status s = NGPT_OK;
    if (!j.U || (P == 1 && !j.X4) || (j.own ? !own_buf : !j.V || !j.M || (P == 1 && !j.Tb)))
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate the 1-D Winograd buffers (%lld x %lld channels, "
                   "%lld columns)", (long long)O, (long long)j.Kc, (long long)chunk);
    if (s == NGPT_OK && j.own) memset(j.U, 0, (size_t)(A * Op * j.Kc) * sizeof(float)); /* rows past O */
    if (s == NGPT_OK) nx_cpu_parallel_for(be, O, j.Kc * A, weight_rows, &j);
    for (int64_t n = 0; s == NGPT_OK && n < N; n++) {
        j.xn = x + n * C * L * P;
        j.yn = y + n * O * Lo * P;
        j.resn = j.res ? j.res + n * O * Lo * P : NULL;
        if (P == 1) nx_cpu_parallel_for(be, C, dil * 4 * j.J, phase_rows, &j);
        if (j.own) {
            w1_own o = {.j = &j, .buf = own_buf, .per_task = per_task, .chunk = chunk, .cols = cols};
            atomic_init(&o.next, 0);
            nx_pool_run(be ? be->pool : NULL, n_tasks, own_task, &o);
            continue;
        }
        for (j.col0 = 0; s == NGPT_OK && j.col0 < cols; j.col0 += chunk) {
            j.ncol = cols - j.col0 < chunk ? cols - j.col0 : chunk;
            j.ldv = j.ldm = j.ncol;
            nx_cpu_parallel_for(be, j.Kc, j.ncol * A * A, P == 1 ? input_rows_p1 : input_rows, &j);
            nx_tensor tu = nx_view(NGPT_DTYPE_F32, 3, (int64_t[]){A, O, j.Kc}, j.U, be);
            nx_tensor tv = nx_view(NGPT_DTYPE_F32, 3, (int64_t[]){A, j.Kc, j.ncol}, j.V, be);
            nx_tensor tm = nx_view(NGPT_DTYPE_F32, 3, (int64_t[]){A, O, j.ncol}, j.M, be);
            s = nx_cpu_matmul(be, &tm, &tu, &tv, false, false, 1.0f, 0.0f);
            if (s == NGPT_OK) nx_cpu_parallel_for(be, O, j.ncol * A, P == 1 ? output_rows_p1 : output_rows, &j);
        }
    }
    nx_cpu_block_free(be, j.X4);
    nx_cpu_block_free(be, j.U);
    if (j.own) {
        nx_cpu_block_free(be, own_buf);
    } else {
        nx_cpu_block_free(be, j.Tb);
        nx_cpu_block_free(be, j.V);
        nx_cpu_block_free(be, j.M);
    }
    return s;
}
