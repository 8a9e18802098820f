/* LOCAL STUB (uncommitted): naive linear/matmul until opsb lands. */
#include "cpu_ops.h"
#include "../../core/error.h"
static float wat(const nx_tensor *w, int64_t i)
{
    if (w->dtype == NGPT_DTYPE_F32) return ((const float *)w->data)[i];
    uint16_t h = ((const uint16_t *)w->data)[i];
    return w->dtype == NGPT_DTYPE_F16 ? nx_f16_to_f32(h) : nx_bf16_to_f32(h);
}
ngpt_status nx_cpu_linear(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b)
{
    (void)be;
    int64_t N = w->ne[0], K = w->ne[1], M = nx_numel(x) / K;
    const float *xd = x->data; float *yd = y->data;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = b ? wat(b, n) : 0;
            for (int64_t k = 0; k < K; k++) acc += (double)xd[m * K + k] * wat(w, n * K + k);
            yd[m * N + n] = (float)acc;
        }
    return NGPT_OK;
}
ngpt_status nx_cpu_matmul(nx_backend *be, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                          bool trans_a, bool trans_b, float alpha, float beta)
{
    (void)be;
    if (trans_a || trans_b || a->rank != 2 || b->rank != 2) return nx_err(NGPT_ERR_UNIMPLEMENTED, "stub matmul");
    int64_t M = a->ne[0], K = a->ne[1], N = b->ne[1];
    const float *ad = a->data, *bd = b->data; float *cd = c->data;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)ad[m * K + k] * bd[k * N + n];
            cd[m * N + n] = (float)(alpha * acc + beta * cd[m * N + n]);
        }
    return NGPT_OK;
}
