/* gemm.c — placeholder: these ops are not implemented yet (NGPT_ERR_UNIMPLEMENTED). */
#include "cpu_ops.h"

#include "../../core/error.h"

ngpt_status nx_cpu_linear(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b)
{
    (void)be;
    (void)y;
    (void)x;
    (void)w;
    (void)b;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: linear is not implemented yet");
}

ngpt_status nx_cpu_matmul(nx_backend *be, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                          bool trans_a, bool trans_b, float alpha, float beta)
{
    (void)be;
    (void)c;
    (void)a;
    (void)b;
    (void)trans_a;
    (void)trans_b;
    (void)alpha;
    (void)beta;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "cpu: matmul is not implemented yet");
}
