/* compare.c — the comparison rules of ../shared/golden/FORMAT.md (same as its check.py). */
#include "compare.h"

#include "core/alloc.h"

#include <math.h>
#include <string.h>

static bool is_float(ngpt_dtype d)
{
    return d == NGPT_DTYPE_F32 || d == NGPT_DTYPE_F16 || d == NGPT_DTYPE_BF16 || d == NGPT_DTYPE_F64;
}

static int64_t numel(const nx_wtensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}



#define OUT(...) do { if (report) fprintf(report, __VA_ARGS__); } while (0)

ngpt_status case_compare(const nx_weights *expected, const nx_weights *output, double atol, double rtol,
                         FILE *report, int *passed)
{
    int ok = 1;
    size_t n = nx_weights_count(expected);
    for (size_t k = 0; k < n; k++) {
        const nx_wtensor *e = nx_weights_at(expected, k);
        const nx_wtensor *o = nx_weights_find(output, e->name);
        char es[160], os[160];
        nx_shape_str(es, sizeof es, e->rank, e->shape);
        if (!o) {
            OUT("  %s: MISSING in output  FAIL\n", e->name);
            ok = 0;
            continue;
        }
        nx_shape_str(os, sizeof os, o->rank, o->shape);
        bool same = o->rank == e->rank;
        for (int i = 0; same && i < e->rank; i++) same = o->shape[i] == e->shape[i];
        if (!same) {
            OUT("  %s: shape %s != expected %s  FAIL\n", e->name, os, es);
            ok = 0;
            continue;
        }
        int64_t cnt = numel(e);
        if (is_float(e->dtype)) {
            if (!is_float(o->dtype) && cnt > 0) {
                OUT("  %s: output is %s, expected float %s  FAIL\n", e->name, nx_dtype_name(o->dtype), nx_dtype_name(e->dtype));
                ok = 0;
                continue;
            }
            int64_t bad = 0, worst_i = 0;
            double mabs = 0, mrel = 0;
            bool nan_seen = false;
            for (int64_t i = 0; i < cnt; i++) {
                double ev = nx_dtype_get(e->data, e->dtype, (size_t)i), ov = nx_dtype_get(o->data, o->dtype, (size_t)i);
                double d = fabs(ov - ev);
                if (!(d <= atol + rtol * fabs(ev))) bad++;  /* NaN counts as bad */
                if (isnan(d)) {
                    if (!nan_seen) worst_i = i;
                    nan_seen = true;
                } else if (!nan_seen && d > mabs) {
                    mabs = d;
                    worst_i = i;
                }
                double r = d / fmax(fabs(ev), 1e-30);
                if (r > mrel || isnan(r)) mrel = r;
            }
            if (nan_seen) mabs = NAN;
            OUT("  %s: %s%s max_abs=%.3e max_rel=%.3e (atol=%g rtol=%g) bad=%lld", e->name, nx_dtype_name(e->dtype), es,
                mabs, mrel, atol, rtol, (long long)bad);
            if (bad) OUT(" worst at %lld: got %.6g want %.6g", (long long)worst_i, nx_dtype_get(o->data, o->dtype, (size_t)worst_i), nx_dtype_get(e->data, e->dtype, (size_t)worst_i));
            OUT("  %s\n", bad ? "FAIL" : "PASS");
            if (bad) ok = 0;
        } else {
            if (is_float(o->dtype)) {
                OUT("  %s: output is float, expected %s  FAIL\n", e->name, nx_dtype_name(e->dtype));
                ok = 0;
                continue;
            }
            int64_t neq = 0, first = -1;
            for (int64_t i = 0; i < cnt; i++) {
                if (nx_dtype_get_i64(o->data, o->dtype, (size_t)i) != nx_dtype_get_i64(e->data, e->dtype, (size_t)i)) {
                    if (first < 0) first = i;
                    neq++;
                }
            }
            OUT("  %s: %s%s exact, mismatches=%lld", e->name, nx_dtype_name(e->dtype), es, (long long)neq);
            if (neq) OUT(" first at flat index %lld: %lld != %lld", (long long)first, (long long)nx_dtype_get_i64(o->data, o->dtype, (size_t)first), (long long)nx_dtype_get_i64(e->data, e->dtype, (size_t)first));
            OUT("  %s\n", neq ? "FAIL" : "PASS");
            if (neq) ok = 0;
        }
    }
    *passed = ok;
    return NGPT_OK;
}
