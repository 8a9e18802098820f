/* test_core.c — lib/core: error messages (thread-local, wrap), status names, the allocator's
 * accounting and failure injection, aligned allocation, the thread pool, nx_shape_str. */
#include "test.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static void test_err_and_wrap(void)
{
    ngpt_clear_error();
    CHECK(ngpt_last_error() != NULL && ngpt_last_error()[0] == 0);
    CHECK(nx_err(NGPT_ERR_IO, "%s: cannot open: %d", "model.safetensors", 2) == NGPT_ERR_IO);
    CHECK(strcmp(ngpt_last_error(), "model.safetensors: cannot open: 2") == 0);
    CHECK(nx_err_wrap(NGPT_ERR_IO, "loading %s: ", "unet") == NGPT_ERR_IO);
    CHECK(strcmp(ngpt_last_error(), "loading unet: model.safetensors: cannot open: 2") == 0);
    /* long messages are truncated, never overflow */
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    nx_err(NGPT_ERR_INTERNAL, "%s", big);
    size_t n = strlen(ngpt_last_error());
    CHECK(n > 1000 && n < sizeof big);
    nx_err_wrap(NGPT_ERR_INTERNAL, "%s", big);
    CHECK(strlen(ngpt_last_error()) == n && strncmp(ngpt_last_error(), "xxxx", 4) == 0);
    ngpt_clear_error();
    CHECK(ngpt_last_error()[0] == 0);
}

static _Atomic int g_phase;
static char g_seen_other[256];

static void *err_thread(void *arg)
{
    (void)arg;
    /* the main thread's message is not visible here */
    snprintf(g_seen_other, sizeof g_seen_other, "%s", ngpt_last_error());
    nx_err(NGPT_ERR_DEVICE, "thread message");
    atomic_store(&g_phase, 1);
    return NULL;
}

static void test_err_thread_local(void)
{
    nx_err(NGPT_ERR_NOT_FOUND, "main message");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, err_thread, NULL) == 0);
    pthread_join(t, NULL);
    CHECK(atomic_load(&g_phase) == 1);
    CHECK_MSG(g_seen_other[0] == 0, "other thread saw \"%s\"", g_seen_other);
    CHECK(strcmp(ngpt_last_error(), "main message") == 0);
}

static void test_status_strings(void)
{
    static const struct { ngpt_status s; const char *name; } k[] = {
        {NGPT_OK, "NGPT_OK"},
        {NGPT_ERR_INVALID_ARGUMENT, "NGPT_ERR_INVALID_ARGUMENT"},
        {NGPT_ERR_NOT_FOUND, "NGPT_ERR_NOT_FOUND"},
        {NGPT_ERR_IO, "NGPT_ERR_IO"},
        {NGPT_ERR_BAD_FORMAT, "NGPT_ERR_BAD_FORMAT"},
        {NGPT_ERR_SHAPE_MISMATCH, "NGPT_ERR_SHAPE_MISMATCH"},
        {NGPT_ERR_DTYPE_MISMATCH, "NGPT_ERR_DTYPE_MISMATCH"},
        {NGPT_ERR_UNSUPPORTED, "NGPT_ERR_UNSUPPORTED"},
        {NGPT_ERR_OUT_OF_MEMORY, "NGPT_ERR_OUT_OF_MEMORY"},
        {NGPT_ERR_DEVICE, "NGPT_ERR_DEVICE"},
        {NGPT_ERR_CANCELLED, "NGPT_ERR_CANCELLED"},
        {NGPT_ERR_UNEXPECTED_TENSOR, "NGPT_ERR_UNEXPECTED_TENSOR"},
        {NGPT_ERR_BUFFER_TOO_SMALL, "NGPT_ERR_BUFFER_TOO_SMALL"},
        {NGPT_ERR_UNIMPLEMENTED, "NGPT_ERR_UNIMPLEMENTED"},
        {NGPT_ERR_INTERNAL, "NGPT_ERR_INTERNAL"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        CHECK_MSG(strcmp(ngpt_status_string(k[i].s), k[i].name) == 0, "%d -> %s", (int)k[i].s, ngpt_status_string(k[i].s));
    /* the codes are consecutive from 0 to -14, so the table above is every code */
    CHECK((int)NGPT_ERR_INTERNAL == -(int)(sizeof k / sizeof k[0]) + 1);
    CHECK(strcmp(ngpt_status_string((ngpt_status)-99), "NGPT_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(ngpt_status_string((ngpt_status)1), "NGPT_UNKNOWN_STATUS") == 0);
}

static void test_alloc_accounting(void)
{
    uint64_t b0 = nx_alloc_bytes();
    int64_t k0 = nx_alloc_blocks();
    void *a = nx_malloc(100), *b = nx_calloc(10, 8), *c = nx_malloc_aligned(1000);
    char *s = nx_strdup("hello"), *s2 = nx_strndup("hello world", 5);
    CHECK(a && b && c && s && s2);
    CHECK(nx_alloc_bytes() >= b0 + 100 + 80 + 1000 + 6 + 6 && nx_alloc_blocks() == k0 + 5);
    CHECK(strcmp(s, "hello") == 0 && strcmp(s2, "hello") == 0);
    const unsigned char *bb = b;
    int zero = 1;
    for (int i = 0; i < 80; i++) zero &= bb[i] == 0;
    CHECK(zero);
    a = nx_realloc(a, 5000);
    CHECK(a != NULL && nx_alloc_blocks() == k0 + 5);
    memset(a, 1, 5000);
    nx_free(a);
    nx_free(b);
    nx_free_aligned(c);
    nx_free(s);
    nx_free(s2);
    nx_free(NULL);
    nx_free_aligned(NULL);
    CHECK(nx_alloc_bytes() == b0 && nx_alloc_blocks() == k0);
    /* overflowing requests fail cleanly */
    CHECK(nx_calloc(SIZE_MAX / 2, 4) == NULL);
    CHECK(nx_malloc(SIZE_MAX) == NULL);
    CHECK(nx_alloc_bytes() == b0 && nx_alloc_blocks() == k0);
}

static void test_alloc_fail_injection(void)
{
    uint64_t b0 = nx_alloc_bytes();
    int64_t k0 = nx_alloc_blocks();
    for (int nth = 1; nth <= 5; nth++) {
        nx_alloc_fail_at(nth);
        void *p[6];
        for (int i = 0; i < 6; i++) p[i] = nx_malloc(16);
        for (int i = 0; i < 6; i++) CHECK_MSG((p[i] == NULL) == (i + 1 == nth), "fail_at %d: allocation %d", nth, i + 1);
        CHECK(nx_alloc_fail_fired());
        for (int i = 0; i < 6; i++) nx_free(p[i]);
    }
    /* counts allocations since the last call; 0 disables */
    nx_alloc_fail_at(0);
    CHECK(!nx_alloc_fail_fired());
    void *q = nx_malloc(1), *r = nx_calloc(1, 1);
    CHECK(q && r && !nx_alloc_fail_fired());
    CHECK(nx_alloc_fail_at(0) == 2);
    nx_free(q);
    nx_free(r);
    /* the failing allocation may be any kind */
    nx_alloc_fail_at(1);
    CHECK(nx_malloc_aligned(64) == NULL);
    nx_alloc_fail_at(1);
    CHECK(nx_strdup("x") == NULL);
    void *g = nx_malloc(8);
    nx_alloc_fail_at(1);
    CHECK(nx_realloc(g, 1000) == NULL);  /* g untouched and still owned */
    nx_alloc_fail_at(0);
    nx_free(g);
    CHECK(nx_alloc_bytes() == b0 && nx_alloc_blocks() == k0);
}

static void test_aligned(void)
{
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = nx_malloc_aligned((size_t)i * 13 + 1);
        CHECK(p[i] != NULL && ((uintptr_t)p[i] & 63) == 0);
        if (p[i]) memset(p[i], 0xab, (size_t)i * 13 + 1);
    }
    for (int i = 0; i < 64; i++) nx_free_aligned(p[i]);
    void *z = nx_malloc_aligned(0);
    CHECK(z != NULL && ((uintptr_t)z & 63) == 0);
    nx_free_aligned(z);
}

typedef struct {
    _Atomic int *hits;
    _Atomic int64_t total;
    int64_t n_expected;
    _Atomic int bad_n;
} pool_arg;

static void pool_fn(int64_t task, int64_t n_tasks, void *vp)
{
    pool_arg *a = vp;
    if (n_tasks != a->n_expected) atomic_store(&a->bad_n, 1);
    atomic_fetch_add(&a->hits[task], 1);
    atomic_fetch_add(&a->total, task);
}

static void test_pool(void)
{
    enum { MAX = 1000 };
    _Atomic int *hits = calloc(MAX, sizeof *hits);
    nx_pool *bad = NULL;
    CHECK_ERR(nx_pool_create(&bad, 0), NGPT_ERR_INVALID_ARGUMENT, "thread pool");
    CHECK(bad == NULL);
    for (int threads = 1; threads <= 16; threads++) {
        const bool omp = threads <= 8; /* jobs on the OpenMP team and the workers, then the workers only */
        nx_pool *p = NULL;
        CHECK_OK(nx_pool_create(&p, (threads - 1) % 8 + 1));
        CHECK(nx_pool_threads(p) == (threads - 1) % 8 + 1);
        CHECK(nx_pool_set_omp(p, omp) == true);
        int ok = 1;
        for (int job = 0; job < 200; job++) {
            int64_t n = job == 0 ? 0 : (job * 37) % MAX + 1;
            for (int64_t i = 0; i < MAX; i++) atomic_store(&hits[i], 0);
            pool_arg a = {hits, 0, n, 0};
            if (omp && job % 3) nx_pool_park(p); /* the OpenMP team (within 20 ms of a park), else the workers */
            nx_pool_run(p, n, pool_fn, &a);
            for (int64_t i = 0; i < MAX; i++) ok &= atomic_load(&hits[i]) == (i < n ? 1 : 0);
            ok &= atomic_load(&a.total) == n * (n - 1) / 2 && !atomic_load(&a.bad_n);
        }
        CHECK_MSG(ok, "pool with %d threads: a task ran other than exactly once", threads);
        nx_pool_free(p);
    }
    /* NULL pool runs on the caller */
    for (int64_t i = 0; i < MAX; i++) atomic_store(&hits[i], 0);
    pool_arg a = {hits, 0, 10, 0};
    nx_pool_run(NULL, 10, pool_fn, &a);
    CHECK(atomic_load(&a.total) == 45 && atomic_load(&hits[9]) == 1);
    CHECK(nx_pool_threads(NULL) == 1);
    nx_pool_free(NULL);
    nx_pool_park(NULL);
    CHECK(nx_pool_set_spin(NULL, 0) == 0);
    CHECK(nx_pool_set_omp(NULL, true) == false);
    CHECK(nx_cpu_count() >= 1);
    /* creation under allocation failure leaks nothing */
    uint64_t b0 = nx_alloc_bytes();
    int64_t k0 = nx_alloc_blocks();
    for (int nth = 1; nth <= 2; nth++) {
        nx_pool *p = NULL;
        nx_alloc_fail_at(nth);
        CHECK_ERR(nx_pool_create(&p, 4), NGPT_ERR_OUT_OF_MEMORY, "thread pool");
        CHECK(p == NULL);
    }
    nx_alloc_fail_at(0);
    CHECK(nx_alloc_bytes() == b0 && nx_alloc_blocks() == k0);
    free(hits);
}

typedef struct {
    nx_pool *pool;
    int jobs;
    int ok;
} pool_caller;

/* Jobs back to back (workers still polling), after gaps longer than the pool's spin and after
 * nx_pool_park (workers asleep on the condition variable), and from a second caller thread on
 * the same pool. */
static void *pool_caller_run(void *vp)
{
    pool_caller *c = vp;
    _Atomic int hits[16];
    c->ok = 1;
    for (int job = 0; job < c->jobs; job++) {
        for (int i = 0; i < 16; i++) atomic_store(&hits[i], 0);
        pool_arg a = {hits, 0, 16, 0};
        nx_pool_run(c->pool, 16, pool_fn, &a);
        for (int i = 0; i < 16; i++) c->ok &= atomic_load(&hits[i]) == 1;
        c->ok &= atomic_load(&a.total) == 120;
        if (job % 50 == 49) usleep(2000);
        if (job % 7 == 3) nx_pool_park(c->pool);
    }
    return NULL;
}

static void test_pool_wake(void)
{
    for (int threads = 2; threads <= 7; threads++) {
        nx_pool *p = NULL;
        CHECK_OK(nx_pool_create(&p, threads <= 4 ? threads : threads - 3));
        nx_pool_set_omp(p, threads > 4); /* the pthread workers; then OpenMP teams, two callers */
        if (threads == 3) { /* every job a condition-variable round trip */
            CHECK(nx_pool_set_spin(p, 0) > 0);
            CHECK(nx_pool_set_spin(p, 0) == 0);
        }
        pool_caller c0 = {p, 400, 0}, c1 = {p, 400, 0};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, pool_caller_run, &c1) == 0);
        pool_caller_run(&c0);
        pthread_join(t, NULL);
        CHECK_MSG(c0.ok && c1.ok, "pool with %d threads: a task ran other than exactly once", threads);
        usleep(2000);   /* free with every worker asleep */
        nx_pool_free(p);
    }
    for (int i = 0; i < 50; i++) {   /* free with the workers starting up or polling */
        nx_pool *p = NULL;
        CHECK_OK(nx_pool_create(&p, 3));
        nx_pool_set_omp(p, false);
        if (i & 1) pool_caller_run(&(pool_caller){p, 1, 0});
        nx_pool_free(p);
    }
}

/* A job posted from inside an OpenMP parallel region (an application's) would get one thread
 * from a nested region: it runs on the pool's pthread workers instead, every task once. */
static void test_pool_in_parallel(void)
{
    nx_pool *p = NULL;
    CHECK_OK(nx_pool_create(&p, 3));
    _Atomic int ok = 1;
    nx_pool_park(p); /* what would send the next job to the OpenMP team outside a region */
#pragma omp parallel num_threads(2)
    {
        _Atomic int hits[40];
        for (int job = 0; job < 20; job++) {
            for (int i = 0; i < 40; i++) atomic_store(&hits[i], 0);
            pool_arg a = {hits, 0, 40, 0};
            nx_pool_run(p, 40, pool_fn, &a);
            int good = atomic_load(&a.total) == 780 && !atomic_load(&a.bad_n);
            for (int i = 0; i < 40; i++) good &= atomic_load(&hits[i]) == 1;
            if (!good) atomic_store(&ok, 0);
        }
    }
    CHECK(atomic_load(&ok));
    nx_pool_free(p);
}

static void test_shape_str(void)
{
    char buf[64];
    const int64_t s[] = {2, 3, 40000000000LL};
    CHECK(strcmp(nx_shape_str(buf, sizeof buf, 3, s), "[2, 3, 40000000000]") == 0);
    CHECK(strcmp(nx_shape_str(buf, sizeof buf, 0, s), "[]") == 0);
    CHECK(strcmp(nx_shape_str(buf, sizeof buf, 1, s), "[2]") == 0);
    char small[6];
    nx_shape_str(small, sizeof small, 3, s);
    CHECK(strlen(small) == 5 && strncmp(small, "[2, 3", 5) == 0);
    char one[1] = {'z'};
    nx_shape_str(one, 1, 3, s);
    CHECK(one[0] == 0);
}

int main(void)
{
    RUN(test_err_and_wrap);
    RUN(test_err_thread_local);
    RUN(test_status_strings);
    RUN(test_alloc_accounting);
    RUN(test_alloc_fail_injection);
    RUN(test_aligned);
    RUN(test_pool);
    RUN(test_pool_wake);
    RUN(test_pool_in_parallel);
    RUN(test_shape_str);
    return test_done();
}
