/* layout.c — placeholder: these ops are not implemented yet (NGPT_ERR_UNIMPLEMENTED). */
#include "cpu_ops.h"

#include "../../core/error.h"

ngpt_status nx_cpu_get_rows(nx_backend *be, nx_tensor *y, const nx_tensor *table, const nx_tensor *ids)
{
    (void)be;
    (void)y;
    (void)table;
    (void)ids;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: get_rows is not implemented yet");
}

ngpt_status nx_cpu_concat(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, int axis)
{
    (void)be;
    (void)y;
    (void)a;
    (void)b;
    (void)axis;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: concat is not implemented yet");
}

ngpt_status nx_cpu_slice(nx_backend *be, nx_tensor *y, const nx_tensor *x, int axis, int64_t start)
{
    (void)be;
    (void)y;
    (void)x;
    (void)axis;
    (void)start;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: slice is not implemented yet");
}

ngpt_status nx_cpu_permute(nx_backend *be, nx_tensor *y, const nx_tensor *x, const int *perm)
{
    (void)be;
    (void)y;
    (void)x;
    (void)perm;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: permute is not implemented yet");
}

ngpt_status nx_cpu_cast(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    (void)be;
    (void)y;
    (void)x;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: cast is not implemented yet");
}

ngpt_status nx_cpu_resize(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_resize_mode mode, bool align_corners)
{
    (void)be;
    (void)y;
    (void)x;
    (void)mode;
    (void)align_corners;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: resize is not implemented yet");
}
