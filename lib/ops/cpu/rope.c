/* rope.c — rotary position embedding on x[B, S, H, D]: angles pos[s] * theta^(-2i / n_rot),
 * evaluated in double once per (position, frequency) into a cos/sin table; then every
 * (b, s, h) row rotates its first n_rot dims (HF rotate_half pairs or GPT-J interleaved pairs).
 * y may alias x. */
#include "cpu_ops.h"
#include "cpu_util.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <math.h>
#include <string.h>

typedef struct {
    const float *x;
    float *y;
    const float *cs;  /* [S, half, 2]: cos, sin */
    int64_t s, h, d;
    int half;
    nx_rope_mode mode;
} rope_job;

static void rope_rows(int64_t r0, int64_t r1, void *vp)
{
    const rope_job *j = vp;
    int half = j->half;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * j->d;
        float *y = j->y + r * j->d;
        const float *cs = j->cs + ((r / j->h) % j->s) * half * 2;
        if (j->mode == NX_ROPE_HALF) {
            for (int i = 0; i < half; i++) {
                float a = x[i], b = x[i + half], c = cs[2 * i], s = cs[2 * i + 1];
                y[i] = a * c - b * s;
                y[i + half] = b * c + a * s;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float a = x[2 * i], b = x[2 * i + 1], c = cs[2 * i], s = cs[2 * i + 1];
                y[2 * i] = a * c - b * s;
                y[2 * i + 1] = b * c + a * s;
            }
        }
        if (y != x && j->d > 2 * half) memcpy(y + 2 * half, x + 2 * half, (size_t)(j->d - 2 * half) * sizeof *y);
    }
}

ngpt_status nx_cpu_rope(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *pos, int n_rot,
                        float theta, nx_rope_mode mode)
{
    int64_t s = x->ne[1];
    int half = n_rot / 2;
    float *cs = nx_malloc((size_t)(s * half * 2 + 1) * sizeof *cs);
    if (!cs) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "cpu rope: out of memory");
    const int32_t *p = pos->data;
    for (int i = 0; i < half; i++) {
        double inv = pow((double)theta, -2.0 * i / (double)n_rot);
        for (int64_t k = 0; k < s; k++) {
            double a = (double)p[k] * inv;
            cs[(k * half + i) * 2] = (float)cos(a);
            cs[(k * half + i) * 2 + 1] = (float)sin(a);
        }
    }
    rope_job j = {x->data, y->data, cs, s, x->ne[2], x->ne[3], half, mode};
    int64_t rows = x->ne[0] * s * x->ne[2];
    nx_cpu_parallel_for(be, rows, x->ne[3], rope_rows, &j);
    nx_free(cs);
    return NGPT_OK;
}
