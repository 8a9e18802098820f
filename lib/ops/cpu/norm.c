/* norm.c — placeholder: these ops are not implemented yet (NGPT_ERR_UNIMPLEMENTED). */
#include "cpu_ops.h"

#include "../../core/error.h"

ngpt_status nx_cpu_rms_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, float eps)
{
    (void)be;
    (void)y;
    (void)x;
    (void)w;
    (void)eps;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: rms_norm is not implemented yet");
}

ngpt_status nx_cpu_layer_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, float eps)
{
    (void)be;
    (void)y;
    (void)x;
    (void)w;
    (void)b;
    (void)eps;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: layer_norm is not implemented yet");
}

ngpt_status nx_cpu_group_norm(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, int groups, float eps, bool silu)
{
    (void)be;
    (void)y;
    (void)x;
    (void)w;
    (void)b;
    (void)groups;
    (void)eps;
    (void)silu;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: group_norm is not implemented yet");
}
