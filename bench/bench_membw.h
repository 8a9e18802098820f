/* bench_membw.h — the memory-read bandwidth the decode benchmarks state their ceiling against
 * (bench_llama, llamacpp/bench_vs_llamacpp): `threads` threads each summing its share of a
 * `bytes` buffer, best of 10. AVX-512 (else AVX2) loads where the CPU has them (the GEMV's own paths), so the
 * reader is not compute-bound and the ceiling is the memory's, not this loop's. */
#ifndef NX_BENCH_MEMBW_H
#define NX_BENCH_MEMBW_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_rd_arg {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} bench_rd_arg;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx512f"))) static inline uint64_t bench_sum512(const uint64_t *p, size_t n)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
        a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 8));
        a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 16));
        a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 24));
    }
    a0 = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
    return (uint64_t)_mm512_reduce_add_epi64(a0);
}

__attribute__((target("avx2"))) static inline uint64_t bench_sum256(const uint64_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 16 <= n; i += 16) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t l[4];
    _mm256_storeu_si256((__m256i *)l, a0);
    return l[0] + l[1] + l[2] + l[3];
}
#endif

static inline void *bench_rd(void *a)
{
    bench_rd_arg *r = a;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        r->sum = bench_sum512(r->p, r->n);
        return NULL;
    }
    if (__builtin_cpu_supports("avx2")) {
        r->sum = bench_sum256(r->p, r->n);
        return NULL;
    }
#endif
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= r->n; i += 4) {
        s0 += r->p[i];
        s1 += r->p[i + 1];
        s2 += r->p[i + 2];
        s3 += r->p[i + 3];
    }
    r->sum = s0 ^ s1 ^ s2 ^ s3;
    return NULL;
}

/* GB/s reading `bytes` with `threads` (1..64) threads, best of 10; 0 if the buffer cannot be had. */
static inline double bench_read_bw(size_t bytes, int threads)
{
    size_t n = bytes / 8;
    uint64_t *buf = malloc(n * 8);
    if (!buf) return 0;
    memset(buf, 1, n * 8);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    double best = 1e30;
    uint64_t sink = 0;
    for (int rep = 0; rep < 10; rep++) {
        pthread_t th[64];
        bench_rd_arg ar[64];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int t = 0; t < threads; t++) {
            ar[t] = (bench_rd_arg){buf + n / threads * t, n / threads, 0};
            pthread_create(&th[t], NULL, bench_rd, &ar[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            sink ^= ar[t].sum;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (dt < best) best = dt;
    }
    free(buf);
    if (sink == 42) fprintf(stderr, " "); /* keeps the sums, so the loads are not optimised away */
    return (double)bytes / best / 1e9;
}

#endif
