/* mweights.h — a model's weights as op-layer tensors: open the checkpoint of a component folder,
 * fetch tensors by name with their expected shape (named errors from nx_weights_get), and hold
 * them for the model's lifetime.
 *
 * On the CPU backend a tensor is a view into the mmapped file (zero copy); on other backends it
 * is uploaded once at load. Every tensor fetched lives in one table (`t`), freed together by
 * nx_mw_close, so a model struct holds plain `const nx_tensor *` pointers into it.
 * (lib/models' VAE and HiFi-GAN use this; the UNet may adopt it later.) */
#ifndef NX_MWEIGHTS_H
#define NX_MWEIGHTS_H

#include "../core/weights.h"
#include "../ops/backend.h"

typedef struct nx_mw {
    nx_backend *be;
    nx_weights *w;      /* the open checkpoint (kept open: CPU views point into it) */
    char       *path;   /* its path (messages) */
    nx_tensor  *t;      /* [cap] tensors handed out */
    size_t      n, cap;
    ngpt_dtype  dt;     /* the model's compute dtype (set after nx_mw_open; F32 = keep the checkpoint's
                         * dtype): F16/BF16 convert every float tensor to it once, at fetch */
    bool        filters_nhwc; /* nx_mw_get_filter permutes conv filters for channels-last convs */
} nx_mw;

/* A checkpoint tensor as a backend tensor. On the CPU backend (activations F32 there) a view of
 * the mapping (zero copy), except that with dt F16/BF16 (the CPU's BF16 compute) matrices and
 * filters (rank >= 2) become owned copies in dt. Elsewhere uploaded in the checkpoint's dtype
 * and, when `dt` is F16/BF16 and differs, converted to `dt` on the device (nx_op_cast) so that
 * every GEMM and convolution of the model runs same-dtype. dt F32 keeps the checkpoint's dtype
 * (the ops widen F16/BF16 weights under F32 activations exactly). */
ngpt_status nx_weight_fetch(nx_tensor *out, nx_backend *be, const nx_wtensor *wt, int rank, const int64_t *shape,
                            ngpt_dtype dt);
/* An F32 host array as a backend tensor of dtype dt (allocated here; converted on the device). */
ngpt_status nx_upload_f32_as(nx_tensor *out, nx_backend *be, ngpt_dtype dt, int rank, const int64_t *shape,
                             const float *host);

/* Open the first of `files` (NULL-terminated names) that exists in `dir`; NGPT_ERR_NOT_FOUND
 * listing them when none does. */
ngpt_status nx_mw_open(nx_mw *m, nx_backend *be, const char *dir, const char *const *files);
/* Fetch tensor `name` (F32/F16/BF16) with the given shape (-1 = any) and mark it used. */
ngpt_status nx_mw_get(nx_mw *m, const nx_tensor **out, const char *name, int rank, const int64_t *shape);
/* A conv filter [O, C, kh, kw] (shape checked as stored); with filters_nhwc set it is held
 * permuted to [O, kh, kw, C], the layout of nx_conv_params.channels_last. */
ngpt_status nx_mw_get_filter(nx_mw *m, const nx_tensor **out, const char *name, const int64_t *shape);
/* A held weight seen with another shape of the same numel, in place; a backend copy stays owned
 * (nx_reshape alone makes a view). */
ngpt_status nx_weight_reshape(nx_tensor *w, int rank, const int64_t *ne);
/* w [O, C, k...] -> [O, k..., C] in place (conv1d/2d/3d filters: a permuted copy replaces it; a
 * 1x1 filter only changes shape). */
ngpt_status nx_filter_to_nhwc(nx_backend *be, nx_tensor *w);
/* nx_mw_get of the tensor named fmt formatted with i (e.g. "...layer.%d.bias"): [d0] when d1 is 0,
 * else [d0, d1]. */
ngpt_status nx_mw_get_fmt(nx_mw *m, const nx_tensor **out, int64_t d0, int64_t d1, const char *fmt, int i);
/* Mark every tensor whose name starts with `prefix` as used (parts a model does not load). */
void nx_mw_skip_prefix(nx_mw *m, const char *prefix);
/* A small constant tensor owned by the table (e.g. a divisor for nx_op_binary): in the table's
 * dtype dt, except on the CPU backend, whose activations are F32 whatever dt (dt there converts
 * matrices and filters only, see nx_weight_fetch). */
ngpt_status nx_mw_const(nx_mw *m, const nx_tensor **out, const float *vals, int64_t n);
/* NGPT_ERR_UNEXPECTED_TENSOR naming the tensors nobody fetched. */
ngpt_status nx_mw_check_unused(const nx_mw *m);
/* Free the tensors and close the file. A zeroed nx_mw is a no-op. */
void nx_mw_close(nx_mw *m);

#endif
