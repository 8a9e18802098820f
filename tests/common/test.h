/* test.h — the tiny test harness every C test uses: CHECK macros that count, a seeded RNG,
 * float comparison with tolerances, and the skip convention (exit 77, which meson reports as
 * SKIP). A test file defines its cases as functions and lists them in main with RUN(). */
#ifndef NX_TEST_H
#define NX_TEST_H

#include "nextgpt.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_checks, t_failed;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        t_checks++;                                                                 \
        if (!(cond)) {                                                              \
            t_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

#define CHECK_MSG(cond, ...)                                                        \
    do {                                                                            \
        t_checks++;                                                                 \
        if (!(cond)) {                                                              \
            t_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                           \
            fprintf(stderr, "\n");                                                  \
        }                                                                           \
    } while (0)

/* Status check that prints ngpt_last_error() on failure. */
#define CHECK_OK(expr)                                                                       \
    do {                                                                                     \
        ngpt_status t_s_ = (expr);                                                           \
        t_checks++;                                                                          \
        if (t_s_ != NGPT_OK) {                                                               \
            t_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,              \
                    ngpt_status_string(t_s_), ngpt_last_error());                            \
        }                                                                                    \
    } while (0)

/* needle == NULL matches any message (a function, so -Wnonnull sees no literal NULL in strstr) */
static inline int t_contains(const char *hay, const char *needle)
{
    return !needle || strstr(hay, needle) != NULL;
}
static inline const char *t_str(const char *s) { return s ? s : ""; }

/* Expect a specific failure status and a message containing `needle` (NULL: any message). */
#define CHECK_ERR(expr, status, needle)                                                      \
    do {                                                                                     \
        ngpt_status t_s_ = (expr);                                                           \
        t_checks++;                                                                          \
        const char *t_m_ = ngpt_last_error();                                                \
        if (t_s_ != (status) || !t_contains(t_m_, (needle))) {                     \
            t_failed++;                                                                      \
            fprintf(stderr, "%s:%d: %s -> %s \"%s\", expected %s with \"%s\"\n", __FILE__,   \
                    __LINE__, #expr, ngpt_status_string(t_s_), t_m_, ngpt_status_string(status), \
                    t_str(needle));                                               \
        }                                                                                    \
    } while (0)

/* The statements after it run once at each SIMD level narrower than this CPU's widest (AVX2,
 * then portable, on an AVX-512 machine), with the kernels capped there (nx_isa_limit); the cap
 * is lifted after the last (needs core/cpu_isa.h). Use as: FOR_NARROWER_ISAS { RUN(a); RUN(b); } */
#define FOR_NARROWER_ISAS                                                                            \
    for (int isa_ = (int)nx_cpu_isa() - 1; isa_ >= (int)NX_ISA_PORTABLE || (nx_isa_limit(NX_ISA_AVX512), 0); \
         isa_--)                                                                                     \
        if (nx_isa_limit((nx_isa)isa_), fprintf(stderr, "-- %s kernels:\n", nx_isa_name((nx_isa)isa_)), 1)

#define RUN(fn)                                                   \
    do {                                                          \
        int t_before_ = t_failed;                                 \
        fn();                                                     \
        fprintf(stderr, "%s %s\n", t_failed == t_before_ ? "ok  " : "FAIL", #fn); \
    } while (0)

/* End of main: prints a summary and returns the process status. */
static inline int test_done(void)
{
    fprintf(stderr, "%d checks, %d failed\n", t_checks, t_failed);
    return t_failed ? 1 : 0;
}

/* Exit code meson treats as "skipped". */
#define TEST_SKIP 77

/* xorshift64* — deterministic test data. */
typedef struct { uint64_t s; } test_rng;
static inline uint64_t test_rng_u64(test_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}
/* uniform in [lo, hi) */
/* A media file held in memory through the public calls a user makes: decode, then ImageBind's
 * transform; *t receives the tensor (free it with ngpt_tensor_free, also after an error). */
typedef enum { TEST_MEDIA_IMAGE, TEST_MEDIA_AUDIO, TEST_MEDIA_VIDEO } test_media_kind;
static inline ngpt_status test_media_preprocess(test_media_kind kind, const void *buf, size_t n, const char *name,
                                                ngpt_tensor *t)
{
    ngpt_status st;
    if (kind == TEST_MEDIA_IMAGE) {
        ngpt_image *img = NULL;
        st = ngpt_image_load_memory(&img, buf, n, name);
        if (st == NGPT_OK) st = ngpt_image_preprocess(t, img);
        ngpt_image_free(img);
    } else if (kind == TEST_MEDIA_AUDIO) {
        ngpt_audio *a = NULL;
        st = ngpt_audio_load_memory(&a, buf, n, name);
        if (st == NGPT_OK) st = ngpt_audio_preprocess(t, a, NULL);
        ngpt_audio_free(a);
    } else {
        st = ngpt_video_preprocess_memory(t, buf, n, name, NULL);
    }
    return st;
}

/* The bytes of the file at path (malloc'd; free() them) and their count in *len; NULL when it
 * cannot be read. An empty file gives a 1-byte buffer and *len = 0. */
static inline unsigned char *test_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) *len = n > 0 ? (size_t)n : 0;
    return b;
}

/* CRC-32 (IEEE, reflected: zlib's and PNG's), for tests that build or repair PNG chunks. */
static inline uint32_t test_crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

static inline float test_rng_f(test_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((test_rng_u64(r) >> 40) * (1.0 / 16777216.0));
}
static inline void test_fill(test_rng *r, float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) p[i] = test_rng_f(r, lo, hi);
}

/* Compare: |a-b| <= atol + rtol*|b| everywhere; prints the worst element on failure. */
/* max |a - b| / max |a| over two F32 API tensors of one size (a's scale; the difference itself
 * when a is all zeros): how far apart two paths' outputs are, relative to the output. */
/* max(worst, e) where a NaN e is the worst of all (fmax would drop it, and a NaN output would
 * pass a "difference <= tol" check). */
static inline double test_worst(double worst, double e)
{
    return e <= worst ? worst : isnan(e) ? INFINITY : e;
}

/* The largest |a[i] - b[i]|, infinite where a difference is NaN (see test_worst). */
static inline double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) d = test_worst(d, fabs((double)a[i] - (double)b[i]));
    return d;
}

static inline double test_max_rel_diff(const ngpt_tensor *a, const ngpt_tensor *b)
{
    const float *x = a->data, *y = b->data;
    double m = 0, d = 0;
    for (int64_t i = 0; i < ngpt_tensor_numel(a); i++) {
        const double e = fabs((double)x[i] - (double)y[i]);
        if (!isfinite(e)) return INFINITY; /* fmax would drop a NaN: a NaN output would pass */
        m = fmax(m, fabs((double)x[i]));
        d = fmax(d, e);
    }
    return m > 0 ? d / m : d;
}

static inline int test_close(const char *what, const float *a, const float *b, size_t n, float atol, float rtol)
{
    size_t bad = 0, worst = 0;
    double wd = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        int ok = d <= atol + rtol * fabs((double)b[i]);
        if (!ok) bad++;
        if (!(d <= wd)) {  /* NaN counts as worst */
            wd = d;
            worst = i;
        }
    }
    t_checks++;
    if (bad) {
        t_failed++;
        fprintf(stderr, "%s: %zu/%zu elements off; worst at %zu: got %g want %g (atol %g rtol %g)\n", what, bad, n,
                worst, (double)a[worst], (double)b[worst], (double)atol, (double)rtol);
        return 0;
    }
    return 1;
}

/* The context most tests run on: the CPU backend with n_threads threads; NULL (message on
 * stderr) if it cannot be created. */
static inline ngpt_context *test_cpu_context(int n_threads)
{
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = n_threads;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) fprintf(stderr, "context: %s\n", ngpt_last_error());
    return ctx;
}

/* A CUDA context for the GPU tests; NULL after printing why on stderr ("SKIP: no usable CUDA
 * device: ..."), and the test then exits TEST_SKIP. */
/* Whether a failed CUDA start-up means "no GPU here" (a skip): a build without CUDA, no device,
 * no driver, too old a device. Anything else (a stream, cuBLAS or memory failing on a machine
 * that has a GPU) is a broken library, which must fail the test, not skip it. */
static inline bool test_no_gpu(const char *why)
{
    static const char *const absent[] = {"built without CUDA", "cudaGetDeviceCount", "found no device",
                                         "compute capability", "only 0 CUDA"};
    for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
        if (strstr(why, absent[i])) return true;
    return false;
}

static inline ngpt_context *test_cuda_context(void)
{
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CUDA;
    cp.log_level = NGPT_LOG_NONE;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) {
        const char *why = ngpt_last_error();
        if (!test_no_gpu(why)) {
            fprintf(stderr, "FAIL: CUDA start-up failed with a GPU present: %s\n", why);
            exit(1);
        }
        fprintf(stderr, "SKIP: no usable CUDA device: %s\n", why);
        return NULL;
    }
    fprintf(stderr, "GPU: %s\n", ngpt_context_device_name(ctx));
    return ctx;
}

/* The CUDA-graph flags' tests: "not captured" messages (a recording that fell back to op-by-op
 * launches) seen by a context made with test_cuda_logging_context, which logs at INFO to stderr. */
static inline int *test_graph_fallbacks(void)
{
    static int n;
    return &n;
}

static inline void test_graph_log(ngpt_log_level level, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "  [log %d] %s\n", (int)level, message);
    if (strstr(message, "not captured")) ++*test_graph_fallbacks();
}

static inline ngpt_context *test_cuda_logging_context(void)
{
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CUDA;
    cp.log_level = NGPT_LOG_INFO;
    cp.log_callback = test_graph_log;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) fprintf(stderr, "context: %s\n", ngpt_last_error());
    return ctx;
}

/* The shared golden folder (NGPT_GOLDEN_DIR, else $NGPT_SOURCE_ROOT/../shared/golden) into buf;
 * 0 after printing "SKIP: ..." when `probe` (a path under it) is not readable. */
static inline int test_golden_dir(char *buf, size_t cap, const char *probe)
{
    const char *g = getenv("NGPT_GOLDEN_DIR"), *root = getenv("NGPT_SOURCE_ROOT");
    if (g) snprintf(buf, cap, "%s", g);
    else snprintf(buf, cap, "%s/../shared/golden", root ? root : ".");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", buf, probe);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "SKIP: %s not found (set NGPT_GOLDEN_DIR)\n", path);
        return 0;
    }
    return 1;
}

#endif
