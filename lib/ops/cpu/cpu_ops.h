/* cpu_ops.h — the CPU backend's op implementations (one file per op family), wired into the
 * vtable by backend.c. Arguments are already validated by lib/ops/ops.c (see backend.h). */
#ifndef NX_CPU_OPS_H
#define NX_CPU_OPS_H

#include "../backend.h"
#include "../../core/cpu_isa.h"

/* gemm.c (oneDNN) + gemv.c (hand-written AVX-512 for M == 1) */
ngpt_status nx_cpu_linear(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b);
ngpt_status nx_cpu_linear_epi(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b,
                              const nx_linear_epi *e);
ngpt_status nx_cpu_linear_pack(nx_backend *, nx_tensor *w);
ngpt_status nx_cpu_conv_pack(nx_backend *, nx_tensor *w, const nx_conv_params *p);
ngpt_status nx_cpu_group_norm_conv(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *gw,
                                   const nx_tensor *gb, int groups, float eps, unsigned gn_flags, const nx_tensor *w,
                                   const nx_tensor *b, const nx_conv_params *p);
ngpt_status nx_cpu_matmul(nx_backend *, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                          bool trans_a, bool trans_b, float alpha, float beta);
/* Linear with F16/BF16 (or F32) weights computes in F32 by default; with bf16 compute on, linear
 * (M > 4) rounds x (and F32/F16 weights) to BF16 and runs oneDNN's BF16 (AMX) matmul with F32
 * accumulation and output. M <= 4 (the GEMV path) always computes in F32. (onednn.c) */
void nx_cpu_set_bf16_compute(nx_backend *be, bool on);
bool nx_cpu_bf16_compute(const nx_backend *be);
/* A per-thread override of the backend's bf16 setting, for one handle's calls: between begin
 * and end, linears on `be` issued from the calling thread compute in BF16 iff `on`; other
 * threads (other handles sharing the context, running concurrently) keep the backend's setting.
 * The ops read the setting on the calling thread before handing work to the pool, so the pool's
 * workers need no override. Scopes nest: end restores what begin returned. */
typedef struct nx_cpu_bf16_scope {
    const nx_backend *be;
    bool on;
} nx_cpu_bf16_scope;
nx_cpu_bf16_scope nx_cpu_bf16_scope_begin(const nx_backend *be, bool on);
void nx_cpu_bf16_scope_end(nx_cpu_bf16_scope prev);
/* 3x3 convolutions through oneDNN's Winograd (F(4x4,3x3) / F(2x2,3x3)) instead of direct:
 * ~2-4x less arithmetic, errors of the same order as direct's F32 rounding (~5e-6 relative),
 * but blocked layouts, so x and y are reordered and the weights transformed on every call.
 * AUTO (the default) takes it where that pays off: stride 1, pad 1, no dilation or groups, >= 64
 * channels in and out and N*H*W >= 1536 (SD's UNet at 32²-64² latents and its VAE, Zeroscope's
 * batched frames); OFF never, ALWAYS wherever oneDNN supports it (tests: the path on small
 * shapes). (conv.c) */
typedef enum nx_conv_winograd_mode {
    NX_CONV_WINOGRAD_AUTO = 0,
    NX_CONV_WINOGRAD_OFF = 1,
    NX_CONV_WINOGRAD_ALWAYS = 2,
} nx_conv_winograd_mode;
/* "off" / "always" / anything else (auto): the tools' environment switches for these modes */
nx_conv_winograd_mode nx_cpu_conv_mode_from_name(const char *name);
void nx_cpu_set_conv_winograd(nx_backend *be, nx_conv_winograd_mode mode);
nx_conv_winograd_mode nx_cpu_conv_winograd(const nx_backend *be);
/* The bytes of oneDNN Winograd scratchpad and blocked copies one call may take before conv.c cuts
 * it into stripes of output rows (winograd_run); 0 restores the default, 192 MiB (tests: small
 * values, many stripes). be NULL: the default (lib/api/memory.c's estimate). */
void   nx_cpu_set_conv_winograd_stripe(nx_backend *be, size_t bytes);
size_t nx_cpu_conv_winograd_stripe(const nx_backend *be);
/* The conv epilogue (nx_conv_params.act/residual) as the CPU's own conv paths fuse it into their
 * stores: y = (leaky ? leaky_relu(v, slope) : v) + (res ? res[i] : 0) with v = conv + bias;
 * res is laid out as y. NULL: none. */
typedef struct nx_conv_epi {
    bool         leaky;
    float        slope;
    const float *res;
} nx_conv_epi;
/* wino1d.c: y[N, O, Lo, P] = conv of x[N, C, L, P] with w[O, C, k] along L (dilation dil, left
 * pad `pad`, zeros outside [0, L); stride 1) + b[O] (may be NULL), through a 1-D Winograd F(4, 3)
 * over 3-tap groups of the kernel. conv.c takes it for conv1d and (k, 1) conv2d under the
 * Winograd mode (AUTO: where it pays, see use_wino1d). */
ngpt_status nx_cpu_conv_wino1d(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                               int64_t C, int64_t O, int64_t L, int64_t P, int64_t Lo, int64_t k, int64_t dil,
                               int64_t pad, const nx_conv_epi *epi);
/* conv1d_direct.c: y[N, O, Lo] = conv1d of x[N, C, L] with w[O, C, k] (dilation dil, left pad
 * `pad`, zeros outside [0, L); stride 1, no groups) + b[O] (may be NULL), F32, AVX-512 only: a
 * register-blocked direct convolution on the plain ncw layout. conv.c takes it (use_direct1d) for
 * every such conv1d the 1-D Winograd does not take, unless the mode (the Winograd enum's values)
 * is OFF: every conv1d to oneDNN (tests compare the two). */
ngpt_status nx_cpu_conv1d_direct(nx_backend *be, float *y, const float *x, const float *w, const float *b,
                                 int64_t N, int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k, int64_t dil,
                                 int64_t pad, const nx_conv_epi *epi);
/* fftconv1d.c: the same conv1d as nx_cpu_conv1d_direct (any dilation and pad, stride 1, no
 * groups, F32, AVX-512 only) through 32-point DFTs of overlapping blocks: fewer multiplies from 7
 * taps up. _fits: the shapes it takes (k <= 16, lengths within int32 indexing). conv.c takes it
 * under nx_cpu_set_conv_fft1d (AUTO: where bench_conv measured a win, see use_fft1d). */
bool nx_cpu_conv1d_fft_fits(int64_t k, int64_t L, int64_t Lo);
ngpt_status nx_cpu_conv1d_fft(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                              int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k, int64_t dil, int64_t pad,
                              const nx_conv_epi *epi);
void nx_cpu_set_conv_fft1d(nx_backend *be, nx_conv_winograd_mode mode);
nx_conv_winograd_mode nx_cpu_conv_fft1d(const nx_backend *be);
/* wino2d.c: y[N, O, Ho, Wo] = conv2d 3x3 (stride 1, dilation 1, no groups, top/left pad pt/pl,
 * zeros past x's edges) of x[N, C, H, W] with w[O, C, 3, 3] + b[O] (b may be NULL), through
 * F(4x4, 3x3) Winograd on nx_cpu_gemm_tiles. Needs AVX2. */
ngpt_status nx_cpu_conv_wino2d(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                               int64_t C, int64_t O, int64_t H, int64_t W, int64_t Ho, int64_t Wo, int64_t pt,
                               int64_t pl);
/* y[O][n] = W x[K][n] with register tiles (AVX2 or AVX-512: gemm_tiles_avx2.c, and the direct
 * conv's own in conv1d_direct.c), on the calling thread: W packed as a k = 1 conv's weights,
 * [ceil(O / 8)][K][8] (rows past O zero); x's rows ldx apart and readable to a whole number of
 * 48 columns (lanes past n are read, not used); y's rows ldy apart. The 1-D Winograd's and the
 * DFT conv1d's GEMMs. Needs AVX2. */
void nx_cpu_gemm_tiles(float *y, int64_t ldy, const float *wp, const float *x, int64_t ldx, int64_t K, int64_t O,
                       int64_t n);
void nx_cpu_gemm_tiles_avx512(float *y, int64_t ldy, const float *wp, const float *x, int64_t ldx, int64_t K,
                              int64_t O, int64_t n);
/* Rows of packed W that one task of nx_cpu_gemm_tiles calls takes (K >= 1): rows x K floats within
 * ~256 KiB (L2, beside the panel of x), whole 8-row blocks, at least one. */
static inline int64_t nx_cpu_gemm_tile_rows(int64_t K)
{
    const int64_t r = ((int64_t)1 << 16) / K / 8 * 8;
    return r < 8 ? 8 : r;
}
/* y[N, O, Lo] = ConvTranspose1d of x[N, C, L] with w[C, O, k] (PyTorch's layout; stride, pad;
 * dilation 1, no groups, output padding implied by Lo) + b[O], through the same kernel: one conv1d
 * per output phase. Taken under the same mode. */
ngpt_status nx_cpu_conv_transpose1d_direct(nx_backend *be, float *y, const float *x, const float *w, const float *b,
                                           int64_t N, int64_t C, int64_t O, int64_t L, int64_t Lo, int64_t k,
                                           int64_t stride, int64_t pad);
/* OFF, AUTO (conv.c's rule: on AVX2 only from 7 taps and no ConvTranspose1d), or ALWAYS */
void nx_cpu_set_conv_direct1d(nx_backend *be, nx_conv_winograd_mode mode);
nx_conv_winograd_mode nx_cpu_conv_direct1d(const nx_backend *be);
/* backend.c: host memory for activations and scratch, 64-byte aligned. Blocks of
 * NX_CPU_BLOCK_MIN and more are kept when freed (up to NX_CPU_BLOCKS_CAP in all, oldest dropped
 * first) and handed out again for requests of up to their size and at least 2/3 of it;
 * nx_cpu_trim releases them. */
void *nx_cpu_block_alloc(nx_backend *be, size_t nbytes);
/* nx_malloc_aligned with transparent huge pages requested (free with nx_free_aligned). */
void *nx_cpu_huge_alloc(size_t nbytes);
void  nx_cpu_block_free(nx_backend *be, void *p);
void  nx_cpu_trim(nx_backend *be);
/* winograd.c: the F(4x4, 3x3) weight transform of w[O, C, 3, 3] (F32, dense) into oneDNN's
 * jit_wino_4x3 layout (dnnl_wino_wei_OBaaIBOIio), whose blocking (from the primitive's weights
 * descriptor) is given here without oneDNN types; channels padded by the layout get zeros. */
typedef struct nx_wino_layout {
    int64_t ic, oc;                /* padded channel counts */
    int64_t ic_block, oc_block, ic2_block, oc2_block;
} nx_wino_layout;
bool nx_cpu_wino_layout_ok(const nx_wino_layout *l);
void nx_cpu_wino_weights_4x3(nx_backend *be, float *dst, const nx_wino_layout *l, const float *w, int64_t O, int64_t C);
/* gemv.c: y[M, N] = x[M, K] @ w[N, K]^T (+ b) for small M (any M works; fast for M <= 4). */
ngpt_status nx_cpu_gemv(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b);
/* gemm_wcvt.c: y[M, N] = x[M, K] @ w[N, K]^T (+ bias) with F16/BF16 w converted inside the GEMM,
 * all in F32 (nx_cpu_linear's F32-compute path for those weights); only where _ok says so. */
bool        nx_cpu_linear_wcvt_ok(ngpt_dtype wdt);
void        nx_cpu_set_wcvt(bool on); /* false: the oneDNN path instead (tests, bench_gemm) */
ngpt_status nx_cpu_linear_wcvt(nx_backend *be, float *y, const float *x, const void *w, ngpt_dtype wdt,
                               const float *bias, int64_t M, int64_t N, int64_t K);
/* gemm.c: convert n elements between F32/F16/BF16 on the pool (also used by conv.c). */
void nx_cpu_convert(nx_backend *be, void *dst, ngpt_dtype ddt, const void *src, ngpt_dtype sdt, int64_t n);
/* gemm.c: 1x1 conv y[N, O, P] = w[O, C] @ x[N, C, P] (+ b[O]) as one batched matmul (all F32). */
ngpt_status nx_cpu_conv1x1(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                           int64_t O, int64_t C, int64_t P);
/* gemm.c: y[n][o][:P] += b[o] for n < N, o < O (the bias the NCHW matmul convolutions add in a
 * pass of their own), on the pool. */
void nx_cpu_add_row_bias(nx_backend *be, float *y, const float *b, int64_t N, int64_t O, int64_t P);
/* gemm.c: y[n] (O x Pc, row stride ldy, image n at y + n * y_img) = w[O, K] @ col[n][K, Pc], BF16
 * operands, F32 accumulation and output (conv_bf16.c). Needs AVX-512 (oneDNN's bf16 matmul). */
ngpt_status nx_cpu_conv_gemm_bf16(nx_backend *be, float *y, int64_t y_img, int64_t ldy, const uint16_t *w,
                                  const uint16_t *col, int64_t N, int64_t O, int64_t K, int64_t Pc);
/* conv_bf16.c: conv2d (conv1d as H = 1) in BF16 compute (nx_cpu_set_bf16_compute on a CPU with
 * AVX-512): x gathered into BF16 columns (im2col) and multiplied by w rounded to BF16 (used in
 * place when stored BF16), one oneDNN bf16 matmul per chunk of output rows, F32 out, + b[O].
 * Plain layouts only: x[N, C, H, W] F32, w[O, C, kh, kw], y[N, O, Ho, Wo] F32, no groups. */
typedef struct nx_conv_bf16_shape {
    int64_t N, C, O, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw;
} nx_conv_bf16_shape;
ngpt_status nx_cpu_conv_bf16(nx_backend *be, float *y, const float *x, const nx_tensor *w, const nx_tensor *b,
                             const nx_conv_bf16_shape *sh);
/* conv.c (oneDNN) */
ngpt_status nx_cpu_conv(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                        const nx_tensor *b, const nx_conv_params *p);
ngpt_status nx_cpu_conv_transpose1d(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                    const nx_tensor *b, int stride, int pad, int output_padding,
                                    int dilation, int groups);
/* attention.c */
ngpt_status nx_cpu_attention(nx_backend *, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                             const nx_tensor *v, const nx_tensor *mask, float scale, bool causal);
/* norm.c */
ngpt_status nx_cpu_rms_norm(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, float eps);
ngpt_status nx_cpu_rms_norm_add(nx_backend *, nx_tensor *y, nx_tensor *x, const nx_tensor *r, const nx_tensor *w,
                                float eps);
ngpt_status nx_cpu_layer_norm(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, float eps);
ngpt_status nx_cpu_group_norm(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, int groups, float eps, unsigned flags);
/* The channels-last group norm (+ SiLU with silu) of x [N, *spatial, C] written as BF16 into y
 * (numel(x) elements): nx_op_group_norm_conv's input for oneDNN's AMX convolution (conv.c). */
ngpt_status nx_cpu_group_norm_cl_bf16(nx_backend *, uint16_t *y, const nx_tensor *x, const nx_tensor *w,
                                      const nx_tensor *b, int groups, float eps, bool silu);
/* rope.c */
ngpt_status nx_cpu_rope(nx_backend *, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos,
                        int n_rot, float theta, nx_rope_mode mode);
/* elementwise.c */
ngpt_status nx_cpu_softmax(nx_backend *, nx_tensor *y, const nx_tensor *x, float scale);
ngpt_status nx_cpu_unary(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_unary op, float param);
ngpt_status nx_cpu_binary(nx_backend *, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, nx_binary op);
ngpt_status nx_cpu_scale(nx_backend *, nx_tensor *y, const nx_tensor *x, float alpha, float beta);
ngpt_status nx_cpu_glu(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first);
ngpt_status nx_cpu_argmax(nx_backend *, nx_tensor *y, const nx_tensor *x);
ngpt_status nx_cpu_set_rows(nx_backend *, nx_tensor *dst, const nx_tensor *src, const nx_tensor *pos);
ngpt_status nx_cpu_attention_len(nx_backend *, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                                 const nx_tensor *v, const nx_tensor *len, float scale);
ngpt_status nx_cpu_timestep_embedding(nx_backend *, nx_tensor *y, const nx_tensor *t, const nx_timestep_params *p);
ngpt_status nx_cpu_sched_step(nx_backend *, const nx_sched_step *p, nx_tensor *x, const nx_tensor *eps,
                              const nx_tensor *noise, nx_tensor *const *slot);
/* layout.c */
ngpt_status nx_cpu_get_rows(nx_backend *, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids);
ngpt_status nx_cpu_concat(nx_backend *, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis);
ngpt_status nx_cpu_slice(nx_backend *, nx_tensor *y, const nx_tensor *x, int axis, int64_t start);
ngpt_status nx_cpu_permute(nx_backend *, nx_tensor *y, const nx_tensor *x, const int *perm);
ngpt_status nx_cpu_cast(nx_backend *, nx_tensor *y, const nx_tensor *x);
ngpt_status nx_cpu_resize(nx_backend *, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode, bool align_corners,
                          bool channels_last);

#endif
