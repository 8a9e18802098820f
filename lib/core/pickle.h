/* pickle.h — a restricted pickle reader for torch state dicts. It never executes code: it is
 * a small virtual machine that knows the opcodes torch.save emits (protocol 2, plus the
 * protocol 4 framing opcodes) and only these globals, "called" symbolically:
 *   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
 *   torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage.
 * Any other global is NGPT_ERR_BAD_FORMAT naming it. Memo, stack, mark depth, string lengths
 * and the total memory used are bounded.
 *
 * The unpickled object must be a dict (OrderedDict or plain). Its tensors are reported with
 * their names; nested dicts ({"model": {...}}, {"state_dict": {...}}) are flattened with '.'
 * ("model.layer.weight"), integer keys are written in decimal, other values (numbers,
 * strings, lists, None) are skipped. */
#ifndef NX_PICKLE_H
#define NX_PICKLE_H

#include "dtype.h"
#include "error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nx_pkl_tensor {
    const char *name;          /* flattened name */
    ngpt_dtype  dtype;         /* from the storage type */
    const char *storage_key;   /* persistent id key: zip entry "<archive>/data/<key>" */
    int64_t     storage_numel; /* elements in the storage */
    int64_t     offset;        /* storage offset, elements */
    int         rank;
    int64_t     shape[NGPT_MAX_DIMS];
    int64_t     stride[NGPT_MAX_DIMS];
} nx_pkl_tensor;

typedef ngpt_status (*nx_pkl_tensor_fn)(void *user, const nx_pkl_tensor *t);

/* Run the pickle in buf and call fn for every tensor of the resulting state dict, in order.
 * `file` names the source in messages. */
ngpt_status nx_pickle_state_dict(const unsigned char *buf, size_t len, const char *file, nx_pkl_tensor_fn fn,
                                 void *user);

#endif
