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
} nx_mw;

/* Open the first of `files` (NULL-terminated names) that exists in `dir`; NGPT_ERR_NOT_FOUND
 * listing them when none does. */
ngpt_status nx_mw_open(nx_mw *m, nx_backend *be, const char *dir, const char *const *files);
/* Fetch tensor `name` (F32/F16/BF16) with the given shape (-1 = any) and mark it used. */
ngpt_status nx_mw_get(nx_mw *m, const nx_tensor **out, const char *name, int rank, const int64_t *shape);
/* Mark every tensor whose name starts with `prefix` as used (parts a model does not load). */
void nx_mw_skip_prefix(nx_mw *m, const char *prefix);
/* A small F32 constant tensor owned by the table (e.g. a divisor for nx_op_binary). */
ngpt_status nx_mw_const(nx_mw *m, const nx_tensor **out, const float *vals, int64_t n);
/* NGPT_ERR_UNEXPECTED_TENSOR naming the tensors nobody fetched. */
ngpt_status nx_mw_check_unused(const nx_mw *m);
/* Free the tensors and close the file. A zeroed nx_mw is a no-op. */
void nx_mw_close(nx_mw *m);

#endif
