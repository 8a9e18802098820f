/* alloc.c — tracked allocations. A 16-byte header in front of each block records its size so
 * that frees can be subtracted from the total; aligned blocks keep the raw pointer too. */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16  /* keeps malloc's 16-byte alignment for the user pointer */

static _Atomic uint64_t g_bytes;
static _Atomic int64_t  g_blocks;
static _Atomic int64_t  g_count;    /* allocations since nx_alloc_fail_at */
static _Atomic int64_t  g_fail_at;  /* 0 = off */
static _Atomic int      g_fired;

static int should_fail(void)
{
    int64_t n = atomic_fetch_add(&g_count, 1) + 1;
    int64_t f = atomic_load(&g_fail_at);
    if (f > 0 && n == f) {
        atomic_store(&g_fired, 1);
        return 1;
    }
    return 0;
}

void *nx_malloc(size_t size)
{
    if (should_fail() || size > SIZE_MAX - HDR) return NULL;
    unsigned char *p = malloc(size + HDR);
    if (!p) return NULL;
    memcpy(p, &size, sizeof size);
    atomic_fetch_add(&g_bytes, size);
    atomic_fetch_add(&g_blocks, 1);
    return p + HDR;
}

void *nx_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = nx_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void nx_free(void *p)
{
    if (!p) return;
    unsigned char *b = (unsigned char *)p - HDR;
    size_t size;
    memcpy(&size, b, sizeof size);
    atomic_fetch_sub(&g_bytes, size);
    atomic_fetch_sub(&g_blocks, 1);
    free(b);
}

void *nx_realloc(void *p, size_t size)
{
    if (!p) return nx_malloc(size);
    if (should_fail() || size > SIZE_MAX - HDR) return NULL;
    unsigned char *b = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, b, sizeof old);
    unsigned char *nb = realloc(b, size + HDR);
    if (!nb) return NULL;
    memcpy(nb, &size, sizeof size);
    atomic_fetch_add(&g_bytes, size);
    atomic_fetch_sub(&g_bytes, old);
    return nb + HDR;
}

char *nx_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = nx_malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

char *nx_strdup(const char *s) { return nx_strndup(s, SIZE_MAX); }

void *nx_malloc_aligned(size_t size)
{
    if (size > SIZE_MAX - 64 - sizeof(void *)) return NULL;
    unsigned char *raw = nx_malloc(size + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t u = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)u)[-1] = raw;
    return (void *)u;
}

void nx_free_aligned(void *p)
{
    if (p) nx_free(((void **)p)[-1]);
}

size_t nx_aligned_size(const void *p)
{
    const unsigned char *raw = ((void *const *)p)[-1];
    size_t size;
    memcpy(&size, raw - HDR, sizeof size);
    return size - (size_t)((const unsigned char *)p - raw); /* raw holds size + 64 + 8 */
}

uint64_t nx_alloc_bytes(void) { return atomic_load(&g_bytes); }
int64_t nx_alloc_blocks(void) { return atomic_load(&g_blocks); }

int64_t nx_alloc_fail_at(int64_t nth)
{
    int64_t n = atomic_exchange(&g_count, 0);
    atomic_store(&g_fired, 0);
    atomic_store(&g_fail_at, nth);
    return n;
}

int nx_alloc_fail_fired(void) { return atomic_load(&g_fired); }
