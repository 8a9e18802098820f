/* ops_test_util.h — shared setup for the CPU op tests: a 2-thread pool + CPU backend, and
 * rounding float data to F16/BF16 so references see exactly the weights the op sees. */
#ifndef OPS_TEST_UTIL_H
#define OPS_TEST_UTIL_H

#include "test.h"

#include "core/dtype.h"
#include "core/pool.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_ops.h"

static nx_pool *t_pool;
static nx_backend *t_be;

static inline int ops_test_init(int threads)
{
    if (nx_pool_create(&t_pool, threads) != NGPT_OK) return 0;
    if (nx_cpu_backend_create(&t_be, t_pool, NULL) != NGPT_OK) return 0;
    return 1;
}

static inline void ops_test_fini(void)
{
    nx_backend_free(t_be);
    nx_pool_free(t_pool);
}

/* Round p[n] to dtype dt in place (so a double reference uses the exact stored values) and
 * write the encoded data to out (n elements of dt). */
static inline void round_to(ngpt_dtype dt, float *p, void *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (dt == NGPT_DTYPE_F16) {
            uint16_t h = nx_f32_to_f16(p[i]);
            ((uint16_t *)out)[i] = h;
            p[i] = nx_f16_to_f32(h);
        } else if (dt == NGPT_DTYPE_BF16) {
            uint16_t h = nx_f32_to_bf16(p[i]);
            ((uint16_t *)out)[i] = h;
            p[i] = nx_bf16_to_f32(h);
        } else {
            ((float *)out)[i] = p[i];
        }
    }
}

/* |got - want| <= tol * scale[i] + atol for all i, where scale is the sum of |terms| that
 * formed want[i] (so the tolerance is relative to the magnitude the op summed). */
static inline int close_scaled(const char *what, const float *got, const double *want, const double *scale, size_t n,
                               double tol, double atol)
{
    size_t bad = 0, worst = 0;
    double wr = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double lim = tol * scale[i] + atol;
        if (!(d <= lim)) bad++;
        double r = d / lim;
        if (!(r <= wr)) {
            wr = r;
            worst = i;
        }
    }
    t_checks++;
    if (bad) {
        t_failed++;
        fprintf(stderr, "%s: %zu/%zu off; worst at %zu: got %.9g want %.9g (scale %g tol %g)\n", what, bad, n, worst,
                (double)got[worst], want[worst], scale[worst], tol);
        return 0;
    }
    return 1;
}

#endif
