/* conv.c — conv1d/2d/3d and conv_transpose1d through oneDNN (primitives cached per shape in the
 * backend state, see onednn.h). Activations are F32, in PyTorch's plain layouts (ncw, nchw,
 * ncdhw, or nhwc for channels-last conv2d), which oneDNN takes directly (no reorders) — except
 * for the 3x3 convolutions that run through Winograd (nx_cpu_set_conv_winograd in cpu_ops.h):
 * those need oneDNN's blocked layouts, so x, w and y are reordered around them on every call;
 * channels-last convolutions reorder their weights likewise (see conv_pd).
 *
 * F16/BF16 weights are converted to F32 once per call into a scratch buffer (on the pool), not
 * cached: conv weights are small next to the activations they are applied to (the largest SD
 * UNet kernel is 1280x1280x3x3: 15 M elements, ~4 ms of conversion on 2 cores against ~0.1-1 s of
 * convolution), and a cache keyed on weight pointers would keep a second copy of the model. */
#include "cpu_ops.h"
#include "cpu_util.h"
#include "onednn.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <string.h>

enum { KEY_CONV = 3, KEY_DECONV = 4, KEY_CONV_WINOGRAD = 5 };

typedef struct conv_desc {
    int     deconv;
    int     winograd;                 /* oneDNN's Winograd algorithm on blocked layouts */
    int     nsp;                      /* spatial dims: 1..3 */
    int64_t src[5], wei[6], dst[5];   /* dims */
    int64_t wei_strides[6];
    int     wnd;                      /* weight ndims */
    int     has_bias;
    int     is_1x1;                   /* 1x1, stride 1, no pad, 1 group: a matmul (gemm.c) */
    int     cl;                       /* channels last: x, y [N, H, W, C], w [O, kh, kw, C/G] */
    int64_t stride[3], dil[3], pl[3], pr[3];
    int64_t src_hfull, dst_hfull;     /* 0, or a row stripe of 2-D tensors this many rows high */
    int     amx;                      /* BF16 compute on AMX: oneDNN's nxc bf16 kernels (use_amx_conv) */
    int     wei_bf16;                 /* the caller's weights are BF16 (amx only) */
    int     wei_tag;                  /* 0, or they are packed in this dnnl_format_tag_t (nx_cpu_conv_pack) */
    int     src_bf16;                 /* amx only: x is BF16 already (nx_cpu_group_norm_conv) */
    int     epi_leaky, epi_res;       /* amx only: the epilogue as post-ops, leaky ReLU then + residual */
    float   epi_slope;
} conv_desc;

/* Strides of a [N, C, h, W] stripe of a [N, C, hfull, W] tensor. */
static const int64_t *stripe_strides(int64_t *s, const int64_t *dims, int64_t hfull)
{
    if (!hfull) return NULL;
    s[3] = 1;
    s[2] = dims[3];
    s[1] = hfull * dims[3];
    s[0] = dims[1] * s[1];
    return s;
}

/* Strides of a channels-last [N, C, *sp] tensor (dims in oneDNN's order, data [N, *sp, C]). */
static const int64_t *nxc_strides(int64_t *s, const int64_t *dims, int nd)
{
    int64_t acc = dims[1];
    s[1] = 1;
    for (int i = nd - 1; i >= 2; i--) {
        s[i] = acc;
        acc *= dims[i];
    }
    s[0] = acc;
    return s;
}

/* The primitive for d, and the caller's (plain) layout of each arg in user_mds. The primitive
 * takes those layouts too, except under Winograd, where oneDNN picks its own (format_tag_any). */
static ngpt_status conv_pd(dnnl_engine_t eng, const conv_desc *d, dnnl_primitive_desc_t *pd, int *ids,
                           dnnl_memory_desc_t *user_mds, int *n)
{
    dnnl_memory_desc_t src, wei, dst, bias;
    int64_t ss[5], ds[5];
    NX_TRY(nx_dnnl_md(&src, 2 + d->nsp, d->src, d->src_bf16 ? dnnl_bf16 : dnnl_f32,
                      d->cl ? nxc_strides(ss, d->src, 2 + d->nsp) : stripe_strides(ss, d->src, d->src_hfull)));
    if (d->wei_tag) {
        dnnl_dims_t wd;
        for (int i = 0; i < d->wnd; i++) wd[i] = d->wei[i];
        if (dnnl_memory_desc_init_by_tag(&wei, d->wnd, wd, dnnl_bf16, (dnnl_format_tag_t)d->wei_tag) != dnnl_success)
            return nx_err(NGPT_ERR_INTERNAL, "oneDNN: packed filter descriptor (format %d)", d->wei_tag);
    } else {
        NX_TRY(nx_dnnl_md(&wei, d->wnd, d->wei, d->wei_bf16 ? dnnl_bf16 : dnnl_f32, d->wei_strides));
    }
    NX_TRY(nx_dnnl_md(&dst, 2 + d->nsp, d->dst, dnnl_f32,
                      d->cl ? nxc_strides(ds, d->dst, 2 + d->nsp) : stripe_strides(ds, d->dst, d->dst_hfull)));
    if (d->has_bias) NX_TRY(nx_dnnl_md(&bias, 1, &d->dst[1], dnnl_f32, NULL));
    int k = 0;
    ids[k] = DNNL_ARG_SRC, user_mds[k++] = src;
    ids[k] = DNNL_ARG_WEIGHTS, user_mds[k++] = wei;
    if (d->has_bias) ids[k] = DNNL_ARG_BIAS, user_mds[k++] = bias;
    ids[k] = DNNL_ARG_DST, user_mds[k++] = dst;
    if (d->epi_res) ids[k] = DNNL_ARG_ATTR_MULTIPLE_POST_OP(d->epi_leaky) | DNNL_ARG_SRC_1, user_mds[k++] = dst;
    *n = k;
    dnnl_memory_desc_t asrc, awei, adst;
    if (d->winograd) {
        dnnl_status_t r = dnnl_memory_desc_init_by_tag(&asrc, 2 + d->nsp, src.dims, dnnl_f32, dnnl_format_tag_any);
        if (r == dnnl_success) r = dnnl_memory_desc_init_by_tag(&awei, d->wnd, wei.dims, dnnl_f32, dnnl_format_tag_any);
        if (r == dnnl_success) r = dnnl_memory_desc_init_by_tag(&adst, 2 + d->nsp, dst.dims, dnnl_f32, dnnl_format_tag_any);
        if (r != dnnl_success) return nx_err(NGPT_ERR_INTERNAL, "oneDNN: memory descriptor: %s", nx_dnnl_status_str(r));
    } else if (d->amx) {
        /* x reordered to BF16 channels last and the weights to oneDNN's blocked BF16 on every call
         * (both by oneDNN's reorders); y comes back F32 channels last */
        static const dnnl_format_tag_t nxc[4] = {dnnl_format_tag_undef, dnnl_nwc, dnnl_nhwc, dnnl_ndhwc};
        dnnl_status_t r = dnnl_memory_desc_init_by_tag(&asrc, 2 + d->nsp, src.dims, dnnl_bf16, nxc[d->nsp]);
        if (r == dnnl_success) r = dnnl_memory_desc_init_by_tag(&awei, d->wnd, wei.dims, dnnl_bf16, dnnl_format_tag_any);
        if (r == dnnl_success) r = dnnl_memory_desc_init_by_tag(&adst, 2 + d->nsp, dst.dims, dnnl_f32, nxc[d->nsp]);
        if (r != dnnl_success) return nx_err(NGPT_ERR_INTERNAL, "oneDNN: memory descriptor: %s", nx_dnnl_status_str(r));
    } else if (d->cl) {
        /* oneDNN's nhwc kernels want the weights in their own blocked layout (with ours they fall
         * back to its reference kernel, ~100x slower): reordered per call, like F16 weights are
         * converted per call */
        asrc = src, adst = dst;
        dnnl_status_t r = dnnl_memory_desc_init_by_tag(&awei, d->wnd, wei.dims, dnnl_f32, dnnl_format_tag_any);
        if (r != dnnl_success) return nx_err(NGPT_ERR_INTERNAL, "oneDNN: memory descriptor: %s", nx_dnnl_status_str(r));
    } else {
        asrc = src, awei = wei, adst = dst;
    }
    dnnl_dims_t st, dl, pl, pr;
    for (int i = 0; i < d->nsp; i++) {
        st[i] = d->stride[i];
        dl[i] = d->dil[i] - 1; /* oneDNN counts dilation from 0 */
        pl[i] = d->pl[i];
        pr[i] = d->pr[i];
    }
    dnnl_primitive_attr_t attr = NULL;
    NX_TRY(nx_dnnl_attr_new(&attr));
    dnnl_status_t r = dnnl_success;
    if (d->epi_leaky || d->epi_res) { /* y = conv + b, leaky_relu, + residual (y's layout) */
        dnnl_post_ops_t po = NULL;
        r = dnnl_post_ops_create(&po);
        if (r == dnnl_success && d->epi_leaky) r = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, d->epi_slope, 0.0f);
        if (r == dnnl_success && d->epi_res) r = dnnl_post_ops_append_binary(po, dnnl_binary_add, &dst);
        if (r == dnnl_success) r = dnnl_primitive_attr_set_post_ops(attr, po);
        if (po) dnnl_post_ops_destroy(po);
    }
    if (r != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return nx_err(NGPT_ERR_INTERNAL, "oneDNN convolution post-ops: %s", nx_dnnl_status_str(r));
    }
    if (d->deconv) {
        dnnl_deconvolution_desc_t cd;
        r = dnnl_dilated_deconvolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_deconvolution_direct, &asrc,
                                                         &awei, d->has_bias ? &bias : NULL, &adst, st, dl, pl, pr);
        if (r == dnnl_success) r = dnnl_primitive_desc_create(pd, &cd, attr, eng, NULL);
    } else {
        dnnl_convolution_desc_t cd;
        r = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                       d->winograd ? dnnl_convolution_winograd : dnnl_convolution_direct,
                                                       &asrc, &awei, d->has_bias ? &bias : NULL, &adst, st, dl, pl, pr);
        if (r == dnnl_success) r = dnnl_primitive_desc_create(pd, &cd, attr, eng, NULL);
    }
    dnnl_primitive_attr_destroy(attr);
    if (r != dnnl_success)
        return nx_err(NGPT_ERR_INTERNAL, "oneDNN %s descriptor: %s",
                      d->deconv ? "deconvolution" : d->winograd ? "Winograd convolution" : "convolution",
                      nx_dnnl_status_str(r));
    return NGPT_OK;
}

static ngpt_status conv_build(dnnl_engine_t eng, void *arg, dnnl_primitive_desc_t *pd, int *ids, int *n)
{
    dnnl_memory_desc_t user_mds[NX_DNNL_MAX_ARGS];
    return conv_pd(eng, arg, pd, ids, user_mds, n);
}

static ngpt_status conv_build_blocked(dnnl_engine_t eng, void *arg, dnnl_primitive_desc_t *pd, int *ids,
                                      dnnl_memory_desc_t *user_mds, int *n)
{
    return conv_pd(eng, arg, pd, ids, user_mds, n);
}

/* An NCHW 3x3 conv at stride 1 without dilation or groups, each side padded by [pmin, pmax]: the
 * shapes the 2-D Winograd paths can take. */
static int is_3x3_unit(const conv_desc *d, int64_t pmin, int64_t pmax)
{
    if (d->deconv || d->cl || d->nsp != 2 || d->wnd != 4 || d->wei[2] != 3 || d->wei[3] != 3) return 0;
    for (int i = 0; i < 2; i++)
        if (d->stride[i] != 1 || d->dil[i] != 1 || d->pl[i] < pmin || d->pl[i] > pmax || d->pr[i] < pmin ||
            d->pr[i] > pmax)
            return 0;
    return 1;
}

/* Where a 2-D Winograd pays under AUTO, oneDNN's or ours. Measured on 2 AVX-512 cores with
 * oneDNN 2.6, reorders and weight transform included (bench_conv, quiet host): break-even at
 * N*H*W = 1024 (1.0x at 320-1280 channels), 1.3x at 2000 (AudioLDM's mel VAE, 512 channels),
 * 1.6x at 2048 (640 channels), 2.0-2.9x from 4096 up (SD's UNet at 64² latents and its VAE,
 * Zeroscope's frames); a loss at 512 (0.6x) and below, where transforming the weights on every
 * call costs more than the arithmetic saved. wino2d.c on an AVX2 AMD EPYC (session 12): 1.7-2.6x
 * oneDNN's direct conv at 1536+, 0.93x at 512 with 1280 channels, 0.28x at 128. */
static int winograd_pays(const conv_desc *d)
{
    return d->src[1] >= 64 && d->dst[1] >= 64 && d->src[0] * d->src[2] * d->src[3] >= 1536;
}

/* The Winograd rule (see nx_cpu_set_conv_winograd): oneDNN's kernels, AVX-512 only. */
static int use_winograd(nx_backend *be, const conv_desc *d)
{
    const nx_conv_winograd_mode mode = nx_cpu_conv_winograd(be);
    if (mode == NX_CONV_WINOGRAD_OFF || !is_3x3_unit(d, 1, 1)) return 0;
    if (!nx_cpu_has_avx512()) return 0; /* oneDNN 2.x has Winograd kernels for AVX-512 only */
    if (d->src[1] % 16 || d->dst[1] % 16) return 0; /* oneDNN's Winograd kernels work on 16-channel blocks */
    return mode == NX_CONV_WINOGRAD_ALWAYS || winograd_pays(d);
}

/* The own 2-D Winograd rule (wino2d.c): where oneDNN has no Winograd kernels (no AVX-512), F32
 * compute, padding up to 2, the same AUTO rule. */
static int use_wino2d(nx_backend *be, const conv_desc *d)
{
    const nx_conv_winograd_mode mode = nx_cpu_conv_winograd(be);
    if (mode == NX_CONV_WINOGRAD_OFF || !is_3x3_unit(d, 0, 2)) return 0;
    if (nx_cpu_has_avx512() || !nx_cpu_has_avx2() || nx_cpu_bf16_compute(be) || d->src_hfull || d->src[1] < 1) return 0;
    return mode == NX_CONV_WINOGRAD_ALWAYS || winograd_pays(d);
}

/* The 1-D Winograd rule (wino1d.c): a conv along one axis — conv1d, or conv2d with a (k, 1)
 * kernel and nothing along the second axis — of k >= 3 taps, stride 1, no groups, F32 compute.
 * AUTO only where bench_conv's "conv along one axis" table measured a win on 2 AVX-512 cores
 * over the best direct path (oneDNN, or conv1d_direct.c for conv1d; the transforms are
 * memory-bound passes over V and M): Zeroscope's temporal (3, 1) convs with >= 320 channels and
 * >= 1024 columns (1.2-1.3x over oneDNN), and HiFi-GAN's resblock convs with 11 taps at >= 256
 * channels or 3 taps at 512 (1.1-1.2x over the direct conv1d). 7 taps (4.5 of them zeros in
 * F(4, 3)'s 3-tap groups) and narrower stages go to the direct conv1d. */
static int use_wino1d(nx_backend *be, const conv_desc *d)
{
    const nx_conv_winograd_mode mode = nx_cpu_conv_winograd(be);
    if (mode == NX_CONV_WINOGRAD_OFF || d->deconv || d->cl || nx_cpu_bf16_compute(be)) return 0;
    if (d->wnd != d->nsp + 2 || d->wei[2] < 3 || d->stride[0] != 1) return 0; /* groups give wnd + 1 */
    if (d->nsp == 2 && (d->wei[3] != 1 || d->stride[1] != 1 || d->pl[1] != 0 || d->pr[1] != 0)) return 0;
    if (d->nsp != 1 && d->nsp != 2) return 0;
    if (d->pl[0] < 0 || d->pr[0] < 0) return 0;
    if (mode == NX_CONV_WINOGRAD_ALWAYS) return 1;
    const int64_t C = d->src[1], O = d->dst[1], k = d->wei[2], ch = C < O ? C : O;
    if (d->nsp == 2) return ch >= 320 && d->src[0] * d->dst[2] * d->dst[3] / 4 >= 1024;
    return (k >= 11 && ch >= 256) || (k == 3 && ch >= 512); /* on AVX2 too (vs oneDNN there: 1.1-1.3x at k 3) */
}

/* The DFT conv1d rule (fftconv1d.c): F32 conv1d at stride 1 without groups on AVX2 or AVX-512
 * with 2-16 taps (nx_cpu_conv1d_fft_fits). AUTO where bench_conv's "conv along one axis" table
 * measured a win over the best of the direct conv1d (AVX2: oneDNN's) and the 1-D Winograd:
 * HiFi-GAN's 7- and 11-tap resblock convs at >= 128 channels, and on AVX2 the 11-tap ones at 64
 * too (1.1-1.2x oneDNN there; the DFTs cost 1/O of the GEMMs per column, so narrower stages stay
 * direct). */
static int use_fft1d(nx_backend *be, const conv_desc *d)
{
    const nx_conv_winograd_mode mode = nx_cpu_conv_fft1d(be);
    if (mode == NX_CONV_WINOGRAD_OFF || d->deconv || nx_cpu_bf16_compute(be) || !nx_cpu_has_avx2()) return 0;
    if (d->nsp != 1 || d->wnd != 3 || d->stride[0] != 1 || d->pl[0] < 0 || d->pr[0] < 0 || d->src[1] < 1) return 0;
    if (!nx_cpu_conv1d_fft_fits(d->wei[2], d->src[2], d->dst[2])) return 0;
    if (mode == NX_CONV_WINOGRAD_ALWAYS) return 1;
    const int64_t ch = d->src[1] < d->dst[1] ? d->src[1] : d->dst[1];
    return (d->wei[2] >= 7 && ch >= 128) || (d->wei[2] >= 11 && ch >= 64 && !nx_cpu_has_avx512());
}

/* The direct conv1d rule (conv1d_direct.c): F32 conv1d at stride 1 without groups, wherever the
 * DFT conv1d and the 1-D Winograd are not taken (bench_conv's "conv along one axis" table, AVX-512:
 * 1.2-3.4x oneDNN's ncw path on HiFi-GAN's 32-256-channel stages, on par at 512, where it still
 * saves the epilogue's passes); and narrow ConvTranspose1d without dilation or groups, as one
 * such conv per output phase (HiFi-GAN's last upsamplers). On AVX2 (4 x 24 tiles) under AUTO only
 * from 7 taps up: 1.2-1.4x oneDNN at 32 channels, on par at 64, but 0.6-0.7x with 3 taps and as
 * the upsamplers' 2-4-tap phases (session 12, bench/RESULTS.md). */
static int use_direct1d(nx_backend *be, const conv_desc *d)
{
    const nx_conv_winograd_mode mode = nx_cpu_conv_direct1d(be);
    if (mode == NX_CONV_WINOGRAD_OFF || nx_cpu_bf16_compute(be) || !nx_cpu_has_avx2()) return 0;
    if (d->src[1] < 1) return 0; /* no input channels: no channel chunk runs, y would stay unwritten */
    if (mode == NX_CONV_WINOGRAD_AUTO && !nx_cpu_has_avx512() && (d->deconv || d->wei[d->wnd - 1] < 7)) return 0;
    /* ConvTranspose1d: no groups or dilation, any stride; 1.1-1.3x oneDNN's deconvolution from 128
     * input channels down, a loss at 512-1024 (bench_conv's upsampler rows), so there only */
    if (d->deconv) return d->wnd == 3 && d->dil[0] == 1 && d->pl[0] >= 0 && d->src[1] <= 256;
    return d->nsp == 1 && d->wnd == 3 && d->stride[0] == 1 && d->pl[0] >= 0 && d->pr[0] >= 0;
}

static int use_winograd(nx_backend *be, const conv_desc *d);

/* The BF16 compute rule (conv_bf16.c): under nx_cpu_set_bf16_compute with oneDNN's bf16 matmul
 * (AVX-512), plain-layout conv1d/conv2d without groups — except, without AMX, the 3x3 convs the
 * F32 path gives oneDNN's Winograd: measured on Zen 4 (AVX512-BF16, a BF16 peak 1.9x the F32
 * one), F(4x4, 3x3)'s 4x fewer products beat the BF16 columns from 2 x 32² pixels up (equal at
 * 320 channels there; 0.76x at 64², 0.62x at 128², 0.52x at 512²), while the convs it leaves direct
 * ran 1.85x faster in BF16 (640 channels at 2 x 16²). Elsewhere BF16 compute leaves the
 * convolutions in F32 (on AVX2 a bf16 GEMM is emulated in F32 and would gain nothing). */
static int use_bf16_gemm(nx_backend *be, const conv_desc *d)
{
    if (!nx_cpu_bf16_compute(be) || !nx_cpu_has_avx512()) return 0;
    if (d->deconv || d->cl || d->src_hfull || d->src[1] < 1) return 0;
    if ((d->nsp != 1 && d->nsp != 2) || d->wnd != d->nsp + 2) return 0;
    return nx_cpu_has_amx_bf16() || !use_winograd(be, d);
}

/* The AMX rule: under BF16 compute on a CPU with AMX-BF16, conv1d/conv2d without groups (the
 * columns path's set, any layout) go to oneDNN's brgconv kernels on channels-last BF16: x and W
 * reordered to BF16 per call by oneDNN (round to nearest even, as the columns path rounds), y F32.
 * Measured on 2 cores of an AMX Xeon (bench/RESULTS.md, session 29): 3.0-4.3 TFLOP/s on SD's VAE
 * and UNet shapes against 0.5-1.0 for the BF16 columns + matmul; with NCHW tensors the two
 * transposing reorders around each call cost as much as the convolution, hence channels last
 * inside the decoders on such CPUs (decoder.c). Stride 1 only: with stride 2 (AudioLDM's
 * downsamplers: 2 x 256 channels, 128 x 16, pad 1) oneDNN 2.6's AMX kernel computed ~1% of the
 * outputs wrong (the first pixel of the second image among them) while smaller shapes and SD's
 * 320 channels at 64² came out right; the few strided convolutions stay on the F32 or columns
 * paths (test_ops_conv keeps that shape). */
static int use_amx_conv(nx_backend *be, const conv_desc *d)
{
    if (!nx_cpu_bf16_compute(be) || !nx_cpu_has_amx_bf16()) return 0;
    if (d->deconv || d->src_hfull || d->src[1] < 1) return 0;
    for (int i = 0; i < d->nsp; i++)
        if (d->stride[i] != 1) return 0; /* see above: oneDNN 2.6's strided brgconv can be wrong */
    return (d->nsp == 1 || d->nsp == 2) && d->wnd == d->nsp + 2;
}

static nx_conv_bf16_shape bf16_shape(const conv_desc *d)
{
    const int two = d->nsp == 2; /* conv1d: H = 1, the length is W */
    nx_conv_bf16_shape s = {
        .N = d->src[0], .C = d->src[1], .O = d->dst[1],
        .H = two ? d->src[2] : 1, .W = d->src[2 + two], .Ho = two ? d->dst[2] : 1, .Wo = d->dst[2 + two],
        .kh = two ? d->wei[2] : 1, .kw = d->wei[2 + two], .sh = two ? d->stride[0] : 1, .sw = d->stride[two],
        .ph = two ? d->pl[0] : 0, .pw = d->pl[two], .dh = two ? d->dil[0] : 1, .dw = d->dil[two],
    };
    return s;
}

static nx_dnnl_key conv_key(const conv_desc *d)
{
    nx_dnnl_key k;
    memset(&k, 0, sizeof k);
    int i = 0;
    k.v[i++] = d->deconv ? KEY_DECONV : d->winograd ? KEY_CONV_WINOGRAD : KEY_CONV;
    k.v[i++] = d->nsp;
    k.v[i++] = d->has_bias;
    for (int a = 0; a < 5; a++) {
        k.v[i++] = d->src[a];
        k.v[i++] = d->dst[a];
    }
    for (int a = 0; a < 6; a++) k.v[i++] = d->wei[a]; /* strides follow from dims + op */
    for (int a = 0; a < 3; a++) {
        k.v[i++] = d->stride[a];
        k.v[i++] = d->dil[a];
        k.v[i++] = d->pl[a];
        k.v[i++] = d->pr[a];
    }
    k.v[i++] = d->src_hfull;
    k.v[i++] = d->dst_hfull;
    k.v[i++] = d->cl;
    k.v[i++] = d->amx;
    k.v[i++] = d->wei_bf16;
    k.v[i++] = d->wei_tag;
    k.v[i++] = d->src_bf16;
    k.v[i++] = d->epi_leaky;
    k.v[i++] = d->epi_res;
    uint32_t slope;
    memcpy(&slope, &d->epi_slope, sizeof slope);
    k.v[i++] = slope;
    return k;
}

/* oneDNN's F(4x4, 3x3) Winograd keeps the transformed input and output of a whole call in its
 * scratchpad, 36/16 (C + O) floats per output pixel, beside blocked copies of x and y: 1.1 GiB of
 * scratchpad alone for the SD VAE's 256-channel convs at 512², most of the CPU turn's peak
 * (bench/pipeline_memory). So a call that needs more than nx_cpu_conv_winograd_stripe (192 MiB)
 * runs as stripes of output rows (multiples of 4, the tile height), each reading its rows of x
 * and their 1-row halo in place through strided descriptors and writing its rows of y: the same
 * arithmetic, ~1/7 of the memory at 512². */
static ngpt_status winograd_run(nx_backend *be, const conv_desc *d, void *const *h, bool has_bias, const char *what)
{
    const int64_t N = d->src[0], C = d->src[1], O = d->dst[1], Hi = d->src[2], H = d->dst[2], W = d->dst[3];
    const double row_bytes = (36.0 / 16.0 + 1.0) * (double)(C + O) * (double)(N * W) * sizeof(float);
    int64_t rows = (int64_t)((double)nx_cpu_conv_winograd_stripe(be) / row_bytes) / 4 * 4;
    rows = rows < 4 ? 4 : rows;
    conv_desc ds = *d;
    ds.winograd = 1;
    if (rows >= H) { /* one call */
        nx_dnnl_key key = conv_key(&ds);
        return nx_dnnl_run_blocked(be, &key, conv_build_blocked, &ds, h, what);
    }
    const int xi = 0, yi = has_bias ? 3 : 2;
    ngpt_status s = NGPT_OK;
    for (int64_t r0 = 0; s == NGPT_OK && r0 < H; r0 += rows) {
        const int64_t r1 = r0 + rows < H ? r0 + rows : H;
        /* output row r reads input rows r - 1 .. r + 1 (pad 1, stride 1) */
        const int64_t in0 = r0 > 0 ? r0 - 1 : 0, in1 = r1 + 1 < Hi ? r1 + 1 : Hi;
        ds.src[2] = in1 - in0;
        ds.dst[2] = r1 - r0;
        ds.pl[0] = r0 == 0 ? 1 : 0;
        ds.pr[0] = (r1 - r0 - 1) + 3 - ds.src[2] - ds.pl[0];
        ds.src_hfull = Hi;
        ds.dst_hfull = H;
        void *hs[4];
        memcpy(hs, h, sizeof hs);
        hs[xi] = (float *)h[xi] + in0 * d->src[3];
        hs[yi] = (float *)h[yi] + r0 * W;
        nx_dnnl_key key = conv_key(&ds);
        s = nx_dnnl_run_blocked(be, &key, conv_build_blocked, &ds, hs, what);
    }
    return s;
}

/* The epilogue after a path that does not fuse it: the same unary and binary ops run in place. */
static ngpt_status epilogue_ops(nx_backend *be, nx_tensor *y, const nx_conv_params *p)
{
    if (p->act != NX_UNARY_IDENTITY) NX_TRY(nx_cpu_unary(be, y, y, p->act, p->act_param));
    if (p->residual) NX_TRY(nx_cpu_binary(be, y, y, p->residual, NX_BINARY_ADD));
    return NGPT_OK;
}

/* F32 views of w and b (converted into scratch when needed) and the run; p (NULL: none) carries
 * the epilogue, fused where the path can. */
static ngpt_status conv_run(nx_backend *be, const conv_desc *d, const nx_tensor *x, const nx_tensor *w,
                            const nx_tensor *b, nx_tensor *y, const nx_conv_params *p, const char *what)
{
    const bool has_epi = p && (p->act != NX_UNARY_IDENTITY || p->residual);
    const bool fusable = !has_epi || p->act == NX_UNARY_IDENTITY || p->act == NX_UNARY_LEAKY_RELU;
    nx_conv_epi epi = {.leaky = has_epi && p->act == NX_UNARY_LEAKY_RELU, .slope = p ? p->act_param : 0.0f,
                       .res = has_epi && p->residual ? p->residual->data : NULL};
    bool fused = false;
    void *wc = NULL, *bc = NULL;
    const void *wd = w->data, *bd = b ? b->data : NULL;
    ngpt_status s;
    conv_desc da; /* the AMX path: d with the BF16 layouts */
    const bool amx = use_amx_conv(be, d);
    if (amx) {
        da = *d;
        da.amx = 1;
        da.wei_bf16 = w->dtype == NGPT_DTYPE_BF16; /* used as stored, like F32 */
        da.wei_tag = w->packed;
    } else if (use_bf16_gemm(be, d)) { /* before the F32 weights below: BF16 W is used in place */
        const nx_conv_bf16_shape sh = bf16_shape(d);
        s = nx_cpu_conv_bf16(be, y->data, x->data, w, b, &sh);
        goto done;
    }
    if (w->dtype != NGPT_DTYPE_F32 && !(amx && w->dtype == NGPT_DTYPE_BF16)) {
        wc = nx_malloc_aligned(nx_numel(w) * sizeof(float));
        if (!wc) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: cannot allocate F32 weights", what);
        nx_cpu_convert(be, wc, NGPT_DTYPE_F32, w->data, w->dtype, nx_numel(w));
        wd = wc;
    }
    if (b && b->dtype != NGPT_DTYPE_F32) {
        bc = nx_malloc_aligned(nx_numel(b) * sizeof(float));
        if (!bc) {
            nx_free_aligned(wc);
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory (bias)", what);
        }
        nx_cpu_convert(be, bc, NGPT_DTYPE_F32, b->data, b->dtype, nx_numel(b));
        bd = bc;
    }
    if (amx) { /* oneDNN's AMX convolution: none of the F32 paths below */
        if (has_epi && fusable && d->cl) { /* as post-ops, where y needs no reorder after the call */
            da.epi_leaky = epi.leaky;
            da.epi_slope = epi.leaky ? epi.slope : 0.0f;
            da.epi_res = epi.res != NULL;
            fused = true;
        }
        d = &da;
        goto onednn;
    }
    if (d->is_1x1 && d->cl) { /* y [NHW, O] = x [NHW, C] . w [O, C]^T + b: a linear layer */
        const int64_t P = nx_numel(x) / d->src[1];
        nx_tensor xv = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){P, d->src[1]}, x->data, x->be);
        nx_tensor yv = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){P, d->dst[1]}, y->data, y->be);
        nx_tensor wv = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){d->dst[1], d->src[1]}, (void *)wd, w->be);
        nx_tensor bv = nx_view(NGPT_DTYPE_F32, 1, &d->dst[1], (void *)bd, b ? b->be : NULL);
        s = nx_cpu_linear(be, &yv, &xv, &wv, b ? &bv : NULL);
        goto done;
    }
    if (d->is_1x1) {
        int64_t P = 1;
        for (int i = 0; i < d->nsp; i++) P *= d->src[2 + i];
        s = nx_cpu_conv1x1(be, y->data, x->data, wd, bd, d->src[0], d->dst[1], d->src[1], P);
        goto done;
    }
    if (use_wino2d(be, d)) {
        s = nx_cpu_conv_wino2d(be, y->data, x->data, wd, bd, d->src[0], d->src[1], d->dst[1], d->src[2], d->src[3],
                               d->dst[2], d->dst[3], d->pl[0], d->pl[1]);
        goto done;
    }
    if (use_fft1d(be, d)) {
        fused = fusable;
        s = nx_cpu_conv1d_fft(be, y->data, x->data, wd, bd, d->src[0], d->src[1], d->dst[1], d->src[2], d->dst[2],
                              d->wei[2], d->dil[0], d->pl[0], fused && has_epi ? &epi : NULL);
        goto done;
    }
    if (use_wino1d(be, d)) {
        fused = fusable;
        s = nx_cpu_conv_wino1d(be, y->data, x->data, wd, bd, d->src[0], d->src[1], d->dst[1], d->src[2],
                               d->nsp == 2 ? d->src[3] : 1, d->dst[2], d->wei[2], d->dil[0], d->pl[0],
                               fused && has_epi ? &epi : NULL);
        goto done;
    }
    if (d->deconv && use_direct1d(be, d)) {
        fused = fusable;
        s = nx_cpu_conv_transpose1d_direct(be, y->data, x->data, wd, bd, d->src[0], d->src[1], d->dst[1], d->src[2],
                                           d->dst[2], d->wei[d->wnd - 1], d->stride[0], d->pl[0]);
        goto done;
    }
    if (use_direct1d(be, d)) {
        fused = fusable;
        s = nx_cpu_conv1d_direct(be, y->data, x->data, wd, bd, d->src[0], d->src[1], d->dst[1], d->src[2], d->dst[2],
                                 d->wei[2], d->dil[0], d->pl[0], fused && has_epi ? &epi : NULL);
        goto done;
    }
onednn:;
    void *h[5];
    int k = 0;
    h[k++] = x->data;
    h[k++] = (void *)wd;
    if (b) h[k++] = (void *)bd;
    h[k++] = y->data;
    if (d->epi_res) h[k++] = (void *)epi.res;
    if (!d->amx && use_winograd(be, d)) {
        s = winograd_run(be, d, h, b != NULL, what);
        if (s != NGPT_ERR_INTERNAL) goto done;
        ngpt_clear_error();  /* oneDNN has no Winograd kernel for this shape or CPU: direct below */
    }
    nx_dnnl_key key = conv_key(d);
    s = d->cl || d->amx ? nx_dnnl_run_blocked(be, &key, conv_build_blocked, (void *)d, h, what)
              : nx_dnnl_run(be, &key, conv_build, (void *)d, h, what);
done:
    nx_free_aligned(wc);
    nx_free_aligned(bc);
    if (s == NGPT_OK && has_epi && !fused) s = epilogue_ops(be, y, p);
    return s;
}

/* The descriptor of conv(x, w) -> y with p, from the shapes (x rank 3-5, ne[0] outermost). */
static void conv_desc_init(conv_desc *d, int xrank, const int64_t *xne, const int64_t *wne, const int64_t *yne,
                           const nx_conv_params *p, bool has_bias)
{
    memset(d, 0, sizeof *d);
    d->nsp = xrank - 2;
    d->cl = p->channels_last;
    /* dims in oneDNN's order ([N, C, *sp]) whatever the layout; the strides say where they are */
    const int xc = d->cl ? xrank - 1 : 1, xsp = d->cl ? 1 : 2;
    const int64_t G = p->groups, O = wne[0], Cg = wne[xc];
    d->src[0] = xne[0], d->dst[0] = yne[0];
    d->src[1] = xne[xc], d->dst[1] = yne[xc];
    for (int i = 0; i < d->nsp; i++) {
        d->src[2 + i] = xne[xsp + i];
        d->dst[2 + i] = yne[xsp + i];
    }
    /* weights [G, O/G, C/G, k...] over PyTorch's dense [O, C/G, k...], or [O, k..., C/G] */
    int64_t ksz = 1;
    for (int i = 0; i < d->nsp; i++) ksz *= wne[xsp + i];
    d->wnd = 0;
    if (G > 1) d->wei[d->wnd++] = G;
    d->wei[d->wnd++] = O / G;
    d->wei[d->wnd++] = Cg;
    for (int i = 0; i < d->nsp; i++) d->wei[d->wnd++] = wne[xsp + i];
    if (d->cl) { /* C/G innermost, then the kernel dims, then O/G, then G */
        const int k0 = d->wnd - d->nsp;
        int64_t acc = Cg;
        d->wei_strides[k0 - 1] = 1;
        for (int i = d->wnd - 1; i >= k0; i--) {
            d->wei_strides[i] = acc;
            acc *= d->wei[i];
        }
        d->wei_strides[k0 - 2] = acc; /* O/G */
        if (G > 1) d->wei_strides[0] = acc * (O / G);
    } else {
        int64_t acc = 1;
        for (int i = d->wnd - 1; i >= 0; i--) {
            d->wei_strides[i] = acc;
            acc *= d->wei[i];
        }
    }
    d->has_bias = has_bias;
    for (int i = 0; i < d->nsp; i++) {
        int64_t k = wne[xsp + i];
        d->stride[i] = p->stride[i];
        d->dil[i] = p->dilation[i];
        d->pl[i] = p->pad[i];
        /* right pad implied by the output size (PyTorch floors, so it may be < pad) */
        d->pr[i] = (d->dst[2 + i] - 1) * d->stride[i] + (k - 1) * d->dil[i] + 1 - d->src[2 + i] - d->pl[i];
    }
    d->is_1x1 = ksz == 1 && G == 1;
    for (int i = 0; i < d->nsp; i++)
        if (d->stride[i] != 1 || d->pl[i] != 0) d->is_1x1 = 0;
}

/* The plain layout of a filter packed for d (w->packed) and the packed one. */
static ngpt_status filter_mds(const conv_desc *d, int tag, dnnl_memory_desc_t *plain, dnnl_memory_desc_t *packed)
{
    NX_TRY(nx_dnnl_md(plain, d->wnd, d->wei, dnnl_bf16, d->wei_strides));
    dnnl_dims_t wd;
    for (int i = 0; i < d->wnd; i++) wd[i] = d->wei[i];
    if (dnnl_memory_desc_init_by_tag(packed, d->wnd, wd, dnnl_bf16, (dnnl_format_tag_t)tag) != dnnl_success)
        return nx_err(NGPT_ERR_INTERNAL, "conv: packed filter descriptor (format %d)", tag);
    return NGPT_OK;
}

ngpt_status nx_cpu_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                        const nx_tensor *b, const nx_conv_params *p)
{
    if (nx_numel(y) == 0) return NGPT_OK;
    conv_desc d;
    conv_desc_init(&d, x->rank, x->ne, w->ne, y->ne, p, b != NULL);
    if (!w->packed || use_amx_conv(be, &d)) return conv_run(be, &d, x, w, b, y, p, "conv");
    /* a filter packed for the AMX path, on another one: unpacked for the call */
    const size_t n = nx_nbytes(w);
    void *tmp = nx_cpu_block_alloc(be, n);
    if (!tmp) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate %zu bytes to unpack a filter", n);
    dnnl_memory_desc_t plain, packed;
    ngpt_status s = filter_mds(&d, w->packed, &plain, &packed);
    if (s == NGPT_OK) s = nx_dnnl_reorder(be, &packed, w->data, &plain, tmp, "conv: unpacking a filter");
    nx_tensor wv = nx_view(w->dtype, w->rank, w->ne, tmp, w->be);
    wv.name = w->name;
    if (s == NGPT_OK) s = conv_run(be, &d, x, &wv, b, y, p, "conv");
    nx_cpu_block_free(be, tmp);
    return s;
}

/* conv(group_norm(x)). Under BF16 compute on the AMX path with channels-last activations (the
 * BF16 decoders' layout there) the norm writes its output in BF16 into a block of our own, and
 * the convolution reads it as it is: the F32 copy and oneDNN's F32 -> BF16 reorder of it (a read
 * and two writes of an activation per ResNet convolution) are gone, with the same rounding
 * (nearest even). Elsewhere the two ops, through an F32 temporary. */
ngpt_status nx_cpu_group_norm_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *gw,
                                   const nx_tensor *gb, int groups, float eps, unsigned gn_flags, const nx_tensor *w,
                                   const nx_tensor *b, const nx_conv_params *p)
{
    conv_desc d;
    conv_desc_init(&d, x->rank, x->ne, w->ne, y->ne, p, b != NULL);
    if (nx_numel(y) > 0 && d.cl && use_amx_conv(be, &d)) {
        const size_t n = (size_t)nx_numel(x) * sizeof(uint16_t);
        void *xb = nx_cpu_block_alloc(be, n);
        if (!xb) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "group_norm_conv: cannot allocate %zu bytes", n);
        ngpt_status s = nx_cpu_group_norm_cl_bf16(be, xb, x, gw, gb, groups, eps, (gn_flags & NX_GN_SILU) != 0);
        nx_tensor xv = nx_view(NGPT_DTYPE_BF16, x->rank, x->ne, xb, x->be);
        d.src_bf16 = 1;
        if (s == NGPT_OK) s = conv_run(be, &d, &xv, w, b, y, p, "group_norm_conv");
        nx_cpu_block_free(be, xb);
        return s;
    }
    nx_tensor t = {0};
    NX_TRY(nx_tensor_alloc(&t, be, x->dtype, x->rank, x->ne));
    ngpt_status s = nx_cpu_group_norm(be, &t, x, gw, gb, groups, eps, gn_flags);
    if (s == NGPT_OK) s = nx_cpu_conv(be, y, &t, w, b, p);
    nx_tensor_free(&t);
    return s;
}

/* The sizes a filter is packed at (the layout oneDNN picks can depend on them: for 320 channels
 * one layout up to 128², another from 256²): a 2 x 32² batch (the UNets' latents at 256² images
 * and their CFG batch), 2 x 64 samples in 1-D. */
enum { PACK_N = 2, PACK_HW = 32, PACK_L = 64 };

ngpt_status nx_cpu_conv_pack(nx_backend *be, nx_tensor *w, const nx_conv_params *p)
{
    const int nsp = w->rank - 2;
    if (w->dtype != NGPT_DTYPE_BF16 || !nx_cpu_has_amx_bf16() || p->groups != 1 || (nsp != 1 && nsp != 2))
        return NGPT_OK;
    const int xc = p->channels_last ? w->rank - 1 : 1, xsp = p->channels_last ? 1 : 2;
    int64_t xne[4] = {PACK_N}, yne[4] = {PACK_N};
    xne[xc] = w->ne[xc];
    yne[xc] = w->ne[0];
    for (int i = 0; i < nsp; i++) {
        const int64_t in = nsp == 2 ? PACK_HW : PACK_L;
        const int64_t span = in + 2 * (int64_t)p->pad[i] - (int64_t)p->dilation[i] * (w->ne[xsp + i] - 1) - 1;
        if (p->stride[i] != 1 || span < 0) return NGPT_OK;
        xne[xsp + i] = in;
        yne[xsp + i] = span + 1;
    }
    conv_desc d;
    conv_desc_init(&d, w->rank, xne, w->ne, yne, p, false);
    d.amx = 1;
    d.wei_bf16 = 1;
    dnnl_memory_desc_t want, plain, packed;
    NX_TRY(nx_dnnl_query_md(be, conv_build_blocked, &d, DNNL_ARG_WEIGHTS, &want, "conv: packing a filter"));
    const int tag = nx_dnnl_tag_of(&want);
    const size_t n = nx_nbytes(w);
    if (!tag || dnnl_memory_desc_get_size(&want) != n) return NGPT_OK; /* padded, or no tag: stays plain */
    NX_TRY(filter_mds(&d, tag, &plain, &packed));
    if (dnnl_memory_desc_equal(&plain, &packed)) return NGPT_OK;
    void *tmp = nx_cpu_block_alloc(be, n);
    if (!tmp)
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "conv: cannot allocate %zu bytes to pack %s", n, w->name ? w->name : "a filter");
    ngpt_status s = nx_dnnl_reorder(be, &plain, w->data, &packed, tmp, "conv: packing a filter");
    if (s == NGPT_OK) {
        memcpy(w->data, tmp, n);
        w->packed = tag;
    }
    nx_cpu_block_free(be, tmp);
    return s;
}

ngpt_status nx_cpu_conv_transpose1d(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                    const nx_tensor *b, int stride, int pad, int output_padding,
                                    int dilation, int groups)
{
    (void)output_padding; /* implied by y's length: right pad = pad - output_padding */
    if (nx_numel(y) == 0) return NGPT_OK;
    conv_desc d;
    memset(&d, 0, sizeof d);
    d.deconv = 1;
    d.nsp = 1;
    const int64_t G = groups, C = w->ne[0], Og = w->ne[1], k = w->ne[2], Cg = C / G;
    for (int i = 0; i < 3; i++) {
        d.src[i] = x->ne[i];
        d.dst[i] = y->ne[i];
    }
    /* oneDNN deconv weights are [G,] O/G, C/G, k; PyTorch stores [C, O/G, k] = [G, C/G, O/G, k]. */
    d.wnd = 0;
    if (G > 1) {
        d.wei[0] = G;
        d.wei_strides[0] = Cg * Og * k;
        d.wnd = 1;
    }
    d.wei[d.wnd] = Og;
    d.wei_strides[d.wnd++] = k;
    d.wei[d.wnd] = Cg;
    d.wei_strides[d.wnd++] = Og * k;
    d.wei[d.wnd] = k;
    d.wei_strides[d.wnd++] = 1;
    d.has_bias = b != NULL;
    d.stride[0] = stride;
    d.dil[0] = dilation;
    d.pl[0] = pad;
    d.pr[0] = (x->ne[2] - 1) * stride + (k - 1) * dilation + 1 - pad - y->ne[2];
    return conv_run(be, &d, x, w, b, y, NULL, "conv_transpose1d");
}
