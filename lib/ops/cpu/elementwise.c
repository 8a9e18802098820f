/* elementwise.c — placeholder: these ops are not implemented yet (NGPT_ERR_UNIMPLEMENTED). */
#include "cpu_ops.h"

#include "../../core/error.h"

ngpt_status nx_cpu_softmax(nx_backend *be, nx_tensor *y, const nx_tensor *x, float scale)
{
    (void)be;
    (void)y;
    (void)x;
    (void)scale;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: softmax is not implemented yet");
}

ngpt_status nx_cpu_unary(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary op, float param)
{
    (void)be;
    (void)y;
    (void)x;
    (void)op;
    (void)param;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: unary is not implemented yet");
}

ngpt_status nx_cpu_binary(nx_backend *be, nx_tensor *y, const nx_tensor *a, const nx_tensor *b, nx_binary op)
{
    (void)be;
    (void)y;
    (void)a;
    (void)b;
    (void)op;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: binary is not implemented yet");
}

ngpt_status nx_cpu_scale(nx_backend *be, nx_tensor *y, const nx_tensor *x, float alpha, float beta)
{
    (void)be;
    (void)y;
    (void)x;
    (void)alpha;
    (void)beta;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: scale is not implemented yet");
}

ngpt_status nx_cpu_glu(nx_backend *be, nx_tensor *y, const nx_tensor *x, nx_unary act, bool gate_first)
{
    (void)be;
    (void)y;
    (void)x;
    (void)act;
    (void)gate_first;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: glu is not implemented yet");
}

ngpt_status nx_cpu_argmax(nx_backend *be, nx_tensor *y, const nx_tensor *x)
{
    (void)be;
    (void)y;
    (void)x;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: argmax is not implemented yet");
}
