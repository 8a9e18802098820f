/* fuzz_media.h — the checks the three media targets share: a preprocessed tensor has the shape
 * the header promises and holds only finite values. */
#ifndef NX_FUZZ_MEDIA_H
#define NX_FUZZ_MEDIA_H

#include "fuzz.h"

#include <math.h>

static inline void fuzz_check_tensor(const char *what, const ngpt_tensor *t, int rank, const int64_t *shape)
{
    FUZZ_REQUIRE(t->dtype == NGPT_DTYPE_F32 && t->rank == rank, "%s: dtype %d rank %d", what, (int)t->dtype, t->rank);
    for (int d = 0; d < rank; d++)
        FUZZ_REQUIRE(t->shape[d] == shape[d], "%s: dim %d is %lld, expected %lld", what, d, (long long)t->shape[d],
                     (long long)shape[d]);
    const float *x = t->data;
    const int64_t n = ngpt_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) FUZZ_REQUIRE(isfinite(x[i]), "%s: element %lld is %g", what, (long long)i, x[i]);
}

#endif
