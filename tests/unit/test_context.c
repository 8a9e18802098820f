/* test_context.c — ngpt_context through the public API: defaults, struct_size handling for
 * older/newer callers, backend choice and fallback, logging, memory accounting, tensor helpers. */
#include "nextgpt.h"
#include "api/context.h"
#include "ops/ops.h"
#include "test.h"

static int log_calls;
static void count_log(ngpt_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)msg;
    (*(int *)user)++;
}

static void test_version(void)
{
    CHECK(strcmp(ngpt_version(), NGPT_VERSION_STRING) == 0);
    CHECK(ngpt_version_number() == NGPT_VERSION_NUMBER);
    CHECK(ngpt_abi_version() == NGPT_ABI_VERSION);
}

static void test_params_default(void)
{
    ngpt_context_params p;
    memset(&p, 0xab, sizeof p);
    CHECK_OK(ngpt_context_params_default(&p, sizeof p));
    CHECK(p.struct_size == sizeof p);
    CHECK(p.device == NGPT_DEVICE_AUTO);
    CHECK(p.n_threads == 0);
    CHECK(p.log_level == NGPT_LOG_WARN);
    CHECK(p.log_callback == NULL);
    CHECK(p.memory_limit == 0);
    CHECK_ERR(ngpt_context_params_default(NULL, sizeof p), NGPT_ERR_INVALID_ARGUMENT, "NULL");
    CHECK_ERR(ngpt_context_params_default(&p, 2), NGPT_ERR_INVALID_ARGUMENT, "struct_size");

    /* An older caller whose struct ends after n_threads: nothing past it is written. */
    size_t old_size = offsetof(ngpt_context_params, log_level);
    unsigned char buf[sizeof(ngpt_context_params) + 16];
    memset(buf, 0xcd, sizeof buf);
    CHECK_OK(ngpt_context_params_default((ngpt_context_params *)buf, old_size));
    int untouched = 1;
    for (size_t i = old_size; i < sizeof buf; i++) untouched &= buf[i] == 0xcd;
    CHECK(untouched);
    ngpt_context_params *op = (ngpt_context_params *)buf;
    CHECK(op->struct_size == old_size);
    /* ... and such a struct creates a context with defaults for the missing fields. */
    op->device = NGPT_DEVICE_CPU;
    op->n_threads = 1;
    ngpt_context *ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, op));
    CHECK(ctx && ngpt_context_n_threads(ctx) == 1);
    ngpt_context_free(ctx);
}

static void test_create_cpu(void)
{
    ngpt_context_params p;
    ngpt_context_params_default(&p, sizeof p);
    p.device = NGPT_DEVICE_CPU;
    p.n_threads = 2;
    ngpt_context *ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, &p));
    CHECK(ctx != NULL);
    CHECK(ngpt_context_backend(ctx) == NGPT_BACKEND_CPU);
    CHECK(strcmp(ngpt_backend_name(ngpt_context_backend(ctx)), "cpu") == 0);
    CHECK(strlen(ngpt_context_device_name(ctx)) > 0);
    CHECK(ngpt_context_backend_note(ctx)[0] == 0); /* CPU was asked for: nothing to explain */
    CHECK(ngpt_context_n_threads(ctx) == 2);
    CHECK(ngpt_context_memory_used(ctx) == 0);
    ngpt_context_free(ctx);
    ngpt_context_free(NULL); /* no-op */

    /* NULL params = all defaults */
    ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, NULL));
    CHECK(ngpt_context_n_threads(ctx) >= 1);
    ngpt_context_free(ctx);
}

static void test_auto_fallback(void)
{
    ngpt_context_params p;
    ngpt_context_params_default(&p, sizeof p);
    p.device = NGPT_DEVICE_AUTO;
    p.log_level = NGPT_LOG_DEBUG;
    p.log_callback = count_log;
    p.log_user_data = &log_calls;
    ngpt_context *ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, &p));
    if (ngpt_context_backend(ctx) == NGPT_BACKEND_CPU) {
        /* no usable GPU: AUTO is never an error, and the context says why */
        CHECK(strlen(ngpt_context_backend_note(ctx)) > 0);
        CHECK(log_calls >= 1); /* the fallback was logged through our callback */
    }
    ngpt_context_free(ctx);

    /* CUDA required: an error without a usable GPU */
    p.device = NGPT_DEVICE_CUDA;
    p.log_callback = NULL;
    ctx = NULL;
    ngpt_status s = ngpt_context_create(&ctx, &p);
    if (s != NGPT_OK) {
        CHECK(ctx == NULL);
        CHECK(s == NGPT_ERR_DEVICE || s == NGPT_ERR_UNSUPPORTED);
        CHECK(strstr(ngpt_last_error(), "CUDA") != NULL);
    } else {
        CHECK(ngpt_context_backend(ctx) == NGPT_BACKEND_CUDA);
        ngpt_context_free(ctx);
    }
}

static void test_bad_params(void)
{
    ngpt_context_params p;
    ngpt_context *ctx = (ngpt_context *)&p;
    ngpt_context_params_default(&p, sizeof p);
    p.device = (ngpt_device_kind)42;
    CHECK_ERR(ngpt_context_create(&ctx, &p), NGPT_ERR_INVALID_ARGUMENT, "device");
    CHECK(ctx == NULL);
    ngpt_context_params_default(&p, sizeof p);
    p.n_threads = -3;
    CHECK_ERR(ngpt_context_create(&ctx, &p), NGPT_ERR_INVALID_ARGUMENT, "n_threads");
    ngpt_context_params_default(&p, sizeof p);
    p.struct_size = 0;
    CHECK_ERR(ngpt_context_create(&ctx, &p), NGPT_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK_ERR(ngpt_context_create(NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, "out");
}

static void test_tensor_helpers(void)
{
    int64_t shape[3] = {2, 3, 4};
    ngpt_tensor t;
    CHECK_OK(ngpt_tensor_create(&t, NGPT_DTYPE_F16, 3, shape));
    CHECK(ngpt_tensor_numel(&t) == 24);
    CHECK(ngpt_tensor_nbytes(&t) == 48);
    /* shapes that are no size: numel -1, nbytes 0, and a view of one is refused by name */
    ngpt_tensor big = {NGPT_DTYPE_F32, 2, {INT64_MAX, 4}, NULL, NULL};
    CHECK(ngpt_tensor_numel(&big) == -1 && ngpt_tensor_nbytes(&big) == 0);
    big.shape[0] = (int64_t)1 << 62, big.shape[1] = 1;
    CHECK(ngpt_tensor_numel(&big) == (int64_t)1 << 62 && ngpt_tensor_nbytes(&big) == 0);
    big.shape[0] = -2;
    CHECK(ngpt_tensor_numel(&big) == -1);
    CHECK(t.owner != NULL);
    int zero = 1;
    for (int i = 0; i < 48; i++) zero &= ((unsigned char *)t.data)[i] == 0;
    CHECK(zero);
    ngpt_tensor_free(&t);
    CHECK(t.data == NULL && t.rank == 0);
    ngpt_tensor_free(NULL);
    CHECK(ngpt_dtype_size(NGPT_DTYPE_BF16) == 2);
    CHECK(ngpt_dtype_size(NGPT_DTYPE_I64) == 8);
    CHECK(strcmp(ngpt_dtype_name(NGPT_DTYPE_BOOL), "BOOL") == 0);
    CHECK(ngpt_dtype_size((ngpt_dtype)99) == 0);
    int64_t neg[1] = {-1};
    CHECK_ERR(ngpt_tensor_create(&t, NGPT_DTYPE_F32, 1, neg), NGPT_ERR_INVALID_ARGUMENT, "negative");
    CHECK_ERR(ngpt_tensor_create(&t, NGPT_DTYPE_F32, 9, shape), NGPT_ERR_INVALID_ARGUMENT, "rank");
    CHECK_ERR(ngpt_tensor_create(&t, (ngpt_dtype)99, 1, shape), NGPT_ERR_INVALID_ARGUMENT, "dtype");
}

static void test_status_strings(void)
{
    CHECK(strcmp(ngpt_status_string(NGPT_OK), "NGPT_OK") == 0);
    CHECK(strcmp(ngpt_status_string(NGPT_ERR_SHAPE_MISMATCH), "NGPT_ERR_SHAPE_MISMATCH") == 0);
    CHECK(strcmp(ngpt_status_string((ngpt_status)-999), "NGPT_UNKNOWN_STATUS") == 0);
    for (int s = 0; s >= NGPT_ERR_INTERNAL; s--) CHECK(strncmp(ngpt_status_string((ngpt_status)s), "NGPT_", 5) == 0);
    ngpt_clear_error();
    CHECK(ngpt_last_error()[0] == 0);
}

/* memory_limit bounds the tensor memory a context's backend holds; used/peak follow it. */
static void test_memory_limit(void)
{
    ngpt_context_params p;
    ngpt_context_params_default(&p, sizeof p);
    p.device = NGPT_DEVICE_CPU;
    p.memory_limit = 4096;
    ngpt_context *ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, &p));
    if (!ctx) return;
    nx_tensor a, b;
    int64_t ne_a[1] = {512}, ne_b[1] = {600};
    CHECK_OK(nx_tensor_alloc(&a, ctx->be, NGPT_DTYPE_F32, 1, ne_a)); /* 2048 bytes */
    CHECK(ngpt_context_memory_used(ctx) == 2048);
    CHECK_ERR(nx_tensor_alloc(&b, ctx->be, NGPT_DTYPE_F32, 1, ne_b), NGPT_ERR_OUT_OF_MEMORY, "memory limit");
    CHECK(ngpt_context_memory_used(ctx) == 2048);
    nx_tensor_free(&a);
    CHECK(ngpt_context_memory_used(ctx) == 0);
    CHECK(ngpt_context_memory_peak(ctx) == 2048);
    CHECK_OK(nx_tensor_alloc(&b, ctx->be, NGPT_DTYPE_F32, 1, ne_b)); /* fits once a is freed */
    nx_tensor_free(&b);
    ngpt_context_free(ctx);
}

int main(void)
{
    RUN(test_version);
    RUN(test_params_default);
    RUN(test_create_cpu);
    RUN(test_auto_fallback);
    RUN(test_bad_params);
    RUN(test_tensor_helpers);
    RUN(test_status_strings);
    RUN(test_memory_limit);
    return test_done();
}
