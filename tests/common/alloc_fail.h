/* alloc_fail.h — prove that a load frees everything on every error path: run `load` once to
 * count its nx_* allocations, then once per allocation n with the nth made to fail, checking
 * the status is an error with a message and that nx_alloc_blocks()/nx_alloc_bytes() return
 * to their values before the call. `load` must clean up after itself on success too (so the
 * first, counting run must also leave no blocks). Include after test.h. Returns the count. */
#ifndef NX_TEST_ALLOC_FAIL_H
#define NX_TEST_ALLOC_FAIL_H

#include "core/alloc.h"
#include "nextgpt.h"

/* Every `stride`-th allocation only (1, 1 + stride, ...; the last one always): for loads whose
 * thousands of allocations repeat a few sites many times over (a forward through many blocks). */
static inline int64_t test_alloc_fail_stride(const char *what, ngpt_status (*load)(void *), void *user,
                                             int64_t stride)
{
    int64_t blocks0 = nx_alloc_blocks();
    uint64_t bytes0 = nx_alloc_bytes();
    nx_alloc_fail_at(0);
    ngpt_status st = load(user);
    int64_t count = nx_alloc_fail_at(0);
    CHECK_MSG(st == NGPT_OK, "%s: load without injected failures -> %s: %s", what, ngpt_status_string(st),
              ngpt_last_error());
    CHECK_MSG(nx_alloc_blocks() == blocks0 && nx_alloc_bytes() == bytes0, "%s: leaked %lld blocks after a clean load",
              what, (long long)(nx_alloc_blocks() - blocks0));
    int bad = 0;
    for (int64_t n = 1; n <= count && bad < 5; n = n < count && n + stride > count ? count : n + stride) {
        ngpt_clear_error();
        nx_alloc_fail_at(n);
        st = load(user);
        int fired = nx_alloc_fail_fired();
        nx_alloc_fail_at(0);
        int ok = fired ? (st == NGPT_ERR_OUT_OF_MEMORY && ngpt_last_error()[0] != 0) : st == NGPT_OK;
        int leak = nx_alloc_blocks() != blocks0 || nx_alloc_bytes() != bytes0;
        t_checks++;
        if (!ok || leak) {
            t_failed++;
            bad++;
            fprintf(stderr, "%s: failing allocation %lld of %lld -> %s \"%s\"%s (blocks %+lld)\n", what, (long long)n,
                    (long long)count, ngpt_status_string(st), ngpt_last_error(), leak ? ", LEAK" : "",
                    (long long)(nx_alloc_blocks() - blocks0));
        }
    }
    return count;
}

static inline int64_t test_alloc_fail_all(const char *what, ngpt_status (*load)(void *), void *user)
{
    return test_alloc_fail_stride(what, load, user, 1);
}

#endif
