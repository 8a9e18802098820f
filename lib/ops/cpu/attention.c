/* attention.c — placeholder: these ops are not implemented yet (NGPT_ERR_UNIMPLEMENTED). */
#include "cpu_ops.h"

#include "../../core/error.h"

ngpt_status nx_cpu_attention(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                             const nx_tensor *v, const nx_tensor *mask, float scale, bool causal)
{
    (void)be;
    (void)out;
    (void)q;
    (void)k;
    (void)v;
    (void)mask;
    (void)scale;
    (void)causal;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: attention is not implemented yet");
}
