/* fuzz_weights.c — checkpoint files: safetensors (length prefix, header JSON, dtypes, offsets)
 * and torch zips (zip directory, stored entries, the restricted pickle VM), through
 * nx_weights_open as a model load calls it. A file that opens must describe every tensor
 * consistently (bytes = elements x dtype size, all of them readable); one that doesn't must say
 * why. */
#include "fuzz.h"

#include "core/dtype.h"
#include "core/weights.h"

static void use_weights(nx_weights *w)
{
    for (size_t i = 0; i < nx_weights_count(w); i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        FUZZ_REQUIRE(t && t->name, "tensor %zu has no name", i);
        FUZZ_REQUIRE(t->rank >= 0 && t->rank <= NGPT_MAX_DIMS, "%s: rank %d", t->name, t->rank);
        FUZZ_REQUIRE(nx_dtype_size(t->dtype) > 0, "%s: unknown dtype accepted", t->name);
        uint64_t numel = 1;
        for (int d = 0; d < t->rank; d++) {
            FUZZ_REQUIRE(t->shape[d] >= 0, "%s: negative dim %lld", t->name, (long long)t->shape[d]);
            numel *= (uint64_t)t->shape[d];
        }
        FUZZ_REQUIRE(t->nbytes == numel * nx_dtype_size(t->dtype), "%s: %zu bytes for %llu x %s", t->name,
                     t->nbytes, (unsigned long long)numel, nx_dtype_name(t->dtype));
        FUZZ_REQUIRE(t->nbytes == 0 || t->data, "%s: no data", t->name);
        FUZZ_REQUIRE(nx_weights_find(w, t->name) != NULL, "%s: listed but not found", t->name);
        if (numel <= (1u << 20)) {
            float *dst = malloc((size_t)(numel ? numel : 1) * sizeof(float));
            if (dst) nx_wtensor_to_f32(t, dst); /* reads every byte the header promised */
            free(dst);
        }
        const nx_wtensor *got = NULL;
        const int64_t shape[2] = {-1, 3};
        fuzz_status("nx_weights_get", nx_weights_get(w, t->name, 0, 2, shape, &got));
    }
    fuzz_status("nx_weights_get(missing)", nx_weights_get(w, "no.such.tensor", 0, -1, NULL, &(const nx_wtensor *){0}));
    fuzz_status("nx_weights_check_unused", nx_weights_check_unused(w));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    const int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    const int64_t blocks = nx_alloc_blocks();
    nx_weights *w = NULL;
    const ngpt_status st = nx_weights_open(&w, path);
    fuzz_status("nx_weights_open", st);
    FUZZ_REQUIRE((st == NGPT_OK) == (w != NULL), "status %d with handle %p", (int)st, (void *)w);
    if (w) {
        use_weights(w);
        nx_weights_close(w);
    }
    fuzz_no_leak("nx_weights_open", blocks);
    close(fd);
    return 0;
}
