/* conv.c — placeholder: these ops are not implemented yet (NGPT_ERR_UNIMPLEMENTED). */
#include "cpu_ops.h"

#include "../../core/error.h"

ngpt_status nx_cpu_conv(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                        const nx_tensor *b, const nx_conv_params *p)
{
    (void)be;
    (void)y;
    (void)x;
    (void)w;
    (void)b;
    (void)p;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: conv is not implemented yet");
}

ngpt_status nx_cpu_conv_transpose1d(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                    const nx_tensor *b, int stride, int pad, int output_padding,
                                    int dilation, int groups)
{
    (void)be;
    (void)y;
    (void)x;
    (void)w;
    (void)b;
    (void)stride;
    (void)pad;
    (void)output_padding;
    (void)dilation;
    (void)groups;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: conv_transpose1d is not implemented yet");
}
