/* fuzz_pickle.c — the restricted pickle VM on its own (what a torch zip's data.pkl feeds it),
 * without the zip around it, so that every mutation reaches the opcodes. It must never run
 * code, never loop without bound, and report only tensors whose records are self-consistent. */
#include "fuzz.h"

#include "core/dtype.h"
#include "core/pickle.h"

static ngpt_status on_tensor(void *user, const nx_pkl_tensor *t)
{
    (*(size_t *)user)++;
    FUZZ_REQUIRE(t->name && t->storage_key, "a tensor without a name or storage key");
    FUZZ_REQUIRE(t->rank >= 0 && t->rank <= NGPT_MAX_DIMS, "%s: rank %d", t->name, t->rank);
    FUZZ_REQUIRE(nx_dtype_size(t->dtype) > 0, "%s: unknown dtype", t->name);
    (void)strlen(t->name);
    (void)strlen(t->storage_key);
    return NGPT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int64_t blocks = nx_alloc_blocks();
    size_t n = 0;
    fuzz_status("nx_pickle_state_dict", nx_pickle_state_dict(data, size, "fuzz.pkl", on_tensor, &n));
    fuzz_no_leak("nx_pickle_state_dict", blocks);
    return 0;
}
