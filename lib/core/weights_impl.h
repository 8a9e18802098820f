/* weights_impl.h — what the format readers (safetensors.c, torchzip.c) share with weights.c:
 * the table they fill, file mappings, and owned buffers. Internal to lib/core. */
#ifndef NX_WEIGHTS_IMPL_H
#define NX_WEIGHTS_IMPL_H

#include "weights.h"

#include <stdint.h>

/* Largest safetensors header we accept (the format's own reader uses the same limit). */
#define NX_ST_MAX_HEADER ((uint64_t)100 << 20)

typedef struct nx_mapping {
    void  *addr;   /* NULL for an empty file */
    size_t len;
    char  *path;   /* owned; wtensor.file points here */
} nx_mapping;

struct nx_weights {
    char       *path;
    nx_wtensor *t;        /* t[i].name owned */
    size_t      n, cap;
    size_t     *slots;    /* open-addressing hash: index+1, 0 = empty */
    size_t      n_slots;  /* power of two */
    nx_mapping *maps;
    size_t      n_maps, cap_maps;
    void      **owned;    /* materialised tensor data */
    size_t      n_owned, cap_owned;
};

/* mmap `path` read-only and keep it for the weights' lifetime. *m is owned by w (valid until
 * the next nx_w_map call: copy the fields you need). */
ngpt_status nx_w_map(nx_weights *w, const char *path, const nx_mapping **m);
/* Append a tensor (name copied; duplicate names are BAD_FORMAT). */
ngpt_status nx_w_add(nx_weights *w, const char *name, ngpt_dtype dt, int rank, const int64_t *shape,
                     const void *data, size_t nbytes, const char *file);
/* nbytes of owned memory freed with w (for non-contiguous torch tensors). */
ngpt_status nx_w_alloc_owned(nx_weights *w, size_t nbytes, void **out);

/* Format readers: add every tensor of the file to w. */
ngpt_status nx_safetensors_read(nx_weights *w, const char *path);
ngpt_status nx_safetensors_index_read(nx_weights *w, const char *path);
ngpt_status nx_torchzip_read(nx_weights *w, const char *path);

/* numel of a shape with overflow check (false on overflow or a negative entry). */
bool nx_numel_checked(int rank, const int64_t *shape, uint64_t *numel);

#endif
