/* img_layout.h — the two layouts of a 2-D image activation the diffusion models run in: NCHW
 * [N, C, H, W] (PyTorch's), or channels last [N, H, W, C] (cuDNN's NHWC; see
 * NGPT_DECODER_FLAG_CHANNELS_LAST). Shared by the UNet blocks, the UNets and the VAE. */
#ifndef NX_IMG_LAYOUT_H
#define NX_IMG_LAYOUT_H

#include "../ops/ops.h"

/* An image activation's dims in either layout. */
typedef struct nx_img {
    int64_t n, c, h, w;
} nx_img;

static inline nx_img nx_img_of(const nx_tensor *t, bool cl)
{
    return cl ? (nx_img){t->ne[0], t->ne[3], t->ne[1], t->ne[2]} : (nx_img){t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
}

/* The shape of [n, c, h, w] in layout cl, into ne[4]. */
static inline void nx_img_shape(int64_t *ne, bool cl, int64_t n, int64_t c, int64_t h, int64_t w)
{
    ne[0] = n;
    if (cl) ne[1] = h, ne[2] = w, ne[3] = c;
    else ne[1] = c, ne[2] = h, ne[3] = w;
}

/* Allocate [n, c, h, w] in layout cl (uninitialised backend memory). */
static inline ngpt_status nx_img_new(nx_backend *be, ngpt_dtype dt, nx_tensor *t, bool cl, int64_t n, int64_t c,
                                     int64_t h, int64_t w)
{
    int64_t ne[4];
    nx_img_shape(ne, cl, n, c, h, w);
    return nx_tensor_alloc(t, be, dt, 4, ne);
}

/* NCHW <-> channels last: a permuted copy into the caller's y of the other layout. */
static inline ngpt_status nx_img_to_nhwc(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    return nx_op_permute(be, y, x, (const int[]){0, 2, 3, 1});
}

static inline ngpt_status nx_img_to_nchw(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    return nx_op_permute(be, y, x, (const int[]){0, 3, 1, 2});
}

#endif
