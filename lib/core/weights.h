/* weights.h — checkpoint files as a name -> tensor table, whatever the format on disk.
 *
 * Formats:
 *  - safetensors (one file), mmapped: tensor data points into the mapping (zero copy);
 *  - sharded safetensors: `*.safetensors.index.json` (HF `weight_map`), every shard mmapped;
 *  - PyTorch `torch.save` zip files (.pt/.pth/.bin: `<name>/data.pkl` + `<name>/data/<key>`),
 *    read by a restricted pickle reader (core/pickle.c) that never executes code: only the
 *    globals that state dicts use are accepted (collections.OrderedDict,
 *    torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, torch.*Storage);
 *    anything else is NGPT_ERR_BAD_FORMAT naming the global. Stored (uncompressed) zip
 *    entries are mmapped too; tensors must be contiguous views of their storage (others
 *    are materialised into owned memory).
 *  - the legacy (pre-1.6, non-zip) torch.save format where supported (else UNSUPPORTED).
 *
 * Loaders fetch tensors by name with the dtype/shape they expect and get named errors;
 * nx_weights_check_unused() reports every tensor nobody asked for.
 */
#ifndef NX_WEIGHTS_H
#define NX_WEIGHTS_H

#include "dtype.h"
#include "error.h"

#include <stdbool.h>

typedef struct nx_wtensor {
    const char *name;
    ngpt_dtype  dtype;
    int         rank;
    int64_t     shape[NGPT_MAX_DIMS];
    const void *data;        /* little-endian, contiguous, row-major, aligned to the element size
                              * (misaligned tensors are copied); valid while the file is open */
    size_t      nbytes;
    const char *file;        /* the file it came from (for messages) */
    bool        used;        /* set by nx_weights_get / nx_weights_mark_used */
} nx_wtensor;

typedef struct nx_weights nx_weights;

/* Open a checkpoint: a .safetensors file, a *.safetensors.index.json, or a torch zip
 * (.pt/.pth/.bin, detected by content, not by name). Errors name the file and the problem
 * (truncated header, offsets out of range or overlapping, dtype/shape vs bytes, bad JSON,
 * forbidden pickle global ...). */
ngpt_status nx_weights_open(nx_weights **out, const char *path);
void nx_weights_close(nx_weights *w);

/* Number of tensors and access by index (order: as in the file(s)). */
size_t nx_weights_count(const nx_weights *w);
const nx_wtensor *nx_weights_at(const nx_weights *w, size_t i);
/* Lookup by exact name; NULL if absent (no error set). */
const nx_wtensor *nx_weights_find(const nx_weights *w, const char *name);

/* Fetch a tensor a loader needs and mark it used. rank/shape: the expected shape; a shape
 * entry of -1 matches anything. dtype_mask: NX_DTYPE_BIT set of accepted dtypes (0 = any).
 * Errors: NGPT_ERR_NOT_FOUND ("<file>: tensor 'x' not found"), NGPT_ERR_SHAPE_MISMATCH
 * ("<file>: tensor 'x': expected [64, 32], got [32, 64]"), NGPT_ERR_DTYPE_MISMATCH. */
ngpt_status nx_weights_get(nx_weights *w, const char *name, unsigned dtype_mask, int rank,
                           const int64_t *shape, const nx_wtensor **out);
void nx_weights_mark_used(nx_weights *w, const char *name);

/* NGPT_ERR_UNEXPECTED_TENSOR listing (up to a few dozen of) the tensors never fetched, with
 * their count; NGPT_OK when every tensor was used. */
ngpt_status nx_weights_check_unused(const nx_weights *w);

/* Decode one element / a whole tensor to F32 (F32/F16/BF16/I64/I32/U8/BOOL/F64 sources).
 * dst must hold numel floats. */
void nx_wtensor_to_f32(const nx_wtensor *t, float *dst);

/* Writing safetensors (for ngpt-case outputs, the converter and tests): tensors written in the
 * given order, 8-byte aligned header, optional metadata (string pairs, may be NULL/0). */
typedef struct nx_st_entry {
    const char *name;
    ngpt_dtype  dtype;
    int         rank;
    const int64_t *shape;
    const void *data;
} nx_st_entry;
ngpt_status nx_safetensors_write(const char *path, const nx_st_entry *entries, size_t n,
                                 const char *const *meta_kv, size_t n_meta);

#endif
