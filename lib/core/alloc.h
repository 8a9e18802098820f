/* alloc.h — the library's heap: every allocation goes through here so that the total is tracked
 * and tests can make the Nth allocation fail (to prove every error path frees what it holds). */
#ifndef NX_ALLOC_H
#define NX_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Like malloc/calloc/realloc/free/strdup; failure (real or injected) returns NULL and leaves
 * the error message untouched: the caller reports NGPT_ERR_OUT_OF_MEMORY with context. */
void *nx_malloc(size_t size);
void *nx_calloc(size_t n, size_t size);
void *nx_realloc(void *p, size_t size);
void  nx_free(void *p);
char *nx_strdup(const char *s);
char *nx_strndup(const char *s, size_t n);
/* 64-byte aligned (for SIMD and oneDNN); free with nx_free_aligned. */
void *nx_malloc_aligned(size_t size);
void  nx_free_aligned(void *p);
/* The usable bytes at p (from nx_malloc_aligned): at least the size asked. */
size_t nx_aligned_size(const void *p);

/* Bytes currently allocated through nx_* and the number of live blocks (tests check both
 * return to their starting values after an error path). */
uint64_t nx_alloc_bytes(void);
int64_t  nx_alloc_blocks(void);

/* Test hook: make the nth allocation from now fail (1 = the next one); 0 disables.
 * Counts across all threads. Returns how many allocations were made since the last call. */
int64_t nx_alloc_fail_at(int64_t nth);
/* True if an injected failure has fired since the last nx_alloc_fail_at(). */
int nx_alloc_fail_fired(void);

#endif
