/* LOCAL STUB (uncommitted): naive attention until opsb lands. */
#include "cpu_ops.h"
#include "../../core/error.h"
#include "../../core/alloc.h"
#include <math.h>
ngpt_status nx_cpu_attention(nx_backend *be, nx_tensor *out, const nx_tensor *q, const nx_tensor *k,
                             const nx_tensor *v, const nx_tensor *mask, float scale, bool causal)
{
    (void)be;
    if (mask) return nx_err(NGPT_ERR_UNIMPLEMENTED, "stub attention mask");
    int64_t B = q->ne[0], Sq = q->ne[1], H = q->ne[2], D = q->ne[3], Skv = k->ne[1], Hk = k->ne[2];
    double *s = nx_malloc((size_t)Skv * sizeof(double));
    if (!s) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "stub");
    const float *qd = q->data, *kd = k->data, *vd = v->data; float *od = out->data;
    for (int64_t b = 0; b < B; b++) for (int64_t i = 0; i < Sq; i++) for (int64_t h = 0; h < H; h++) {
        int64_t hk = h / (H / Hk), lim = causal ? i + (Skv - Sq) : Skv - 1;
        const float *qr = qd + ((b * Sq + i) * H + h) * D;
        double mx = -INFINITY;
        for (int64_t j = 0; j <= lim; j++) {
            const float *kr = kd + ((b * Skv + j) * Hk + hk) * D;
            double a = 0; for (int64_t d = 0; d < D; d++) a += (double)qr[d] * kr[d];
            s[j] = a * scale; if (s[j] > mx) mx = s[j];
        }
        double sum = 0; for (int64_t j = 0; j <= lim; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
        float *o = od + ((b * Sq + i) * H + h) * D;
        for (int64_t d = 0; d < D; d++) {
            double a = 0; for (int64_t j = 0; j <= lim; j++) a += s[j] * vd[((b * Skv + j) * Hk + hk) * D + d];
            o[d] = (float)(a / sum);
        }
    }
    nx_free(s);
    return NGPT_OK;
}
