/* test_context_cuda.c — device selection in a CUDA build (suite 'unit'; runs with or without a
 * GPU). Without a usable GPU (this project's build machines: the driver is too old for CUDA 13),
 * AUTO falls back to the CPU with a note naming the CUDA error and device=CUDA fails with
 * NGPT_ERR_DEVICE and that message. With a GPU, AUTO and CUDA both pick CUDA. */
#include "test.h"

#include "nextgpt.h"
#include "ops/backend.h"

static char g_why[512];
static int g_have_gpu;

static void probe(void)
{
    nx_backend *be = NULL;
    ngpt_status st = nx_cuda_backend_create(&be, 0, NULL, NULL);
    if (st == NGPT_OK) {
        g_have_gpu = 1;
        CHECK(be->kind == NGPT_BACKEND_CUDA);
        CHECK(be->device_name[0] != 0);
        nx_backend_free(be);
        return;
    }
    CHECK(be == NULL);
    CHECK_MSG(st == NGPT_ERR_DEVICE, "%s", ngpt_status_string(st));
    snprintf(g_why, sizeof g_why, "%s", ngpt_last_error());
    CHECK_MSG(strstr(g_why, "no usable CUDA device: ") == g_why, "message: %s", g_why);
    /* names the failing CUDA call, e.g. "cudaGetDeviceCount: CUDA driver version is insufficient ..." */
    CHECK_MSG(strstr(g_why, ": cuda") != NULL || strstr(g_why, "compute capability") != NULL, "message: %s", g_why);
    fprintf(stderr, "no GPU here: %s\n", g_why);
}

static void test_has_cuda_build(void) { CHECK(ngpt_has_cuda_build() == 1); }

static void test_auto(void)
{
    ngpt_context_params p;
    CHECK_OK(ngpt_context_params_default(&p, sizeof p));
    p.device = NGPT_DEVICE_AUTO;
    p.log_level = NGPT_LOG_NONE;
    ngpt_context *ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, &p));
    if (!ctx) return;
    const char *note = ngpt_context_backend_note(ctx);
    if (g_have_gpu) {
        CHECK(ngpt_context_backend(ctx) == NGPT_BACKEND_CUDA);
        CHECK(note[0] == 0);
    } else {
        CHECK(ngpt_context_backend(ctx) == NGPT_BACKEND_CPU);
        CHECK_MSG(note[0] != 0, "empty backend note");
        CHECK_MSG(strstr(note, g_why) != NULL, "note \"%s\" does not carry \"%s\"", note, g_why);
        CHECK_MSG(strstr(note, "cuda") != NULL || strstr(note, "CUDA") != NULL, "note: %s", note);
        /* the fallback left no error behind */
        CHECK(ngpt_last_error()[0] == 0);
    }
    ngpt_context_free(ctx);
}

static void test_cuda_required(void)
{
    ngpt_context_params p;
    CHECK_OK(ngpt_context_params_default(&p, sizeof p));
    p.device = NGPT_DEVICE_CUDA;
    p.log_level = NGPT_LOG_NONE;
    ngpt_context *ctx = NULL;
    if (g_have_gpu) {
        CHECK_OK(ngpt_context_create(&ctx, &p));
        if (ctx) CHECK(ngpt_context_backend(ctx) == NGPT_BACKEND_CUDA);
        ngpt_context_free(ctx);
        return;
    }
    CHECK_ERR(ngpt_context_create(&ctx, &p), NGPT_ERR_DEVICE, "no usable CUDA device");
    CHECK(ctx == NULL);
    CHECK_MSG(strstr(ngpt_last_error(), g_why) != NULL, "message \"%s\"", ngpt_last_error());
    /* an index past the devices fails the same way, never crashes */
    p.device_index = 7;
    CHECK_ERR(ngpt_context_create(&ctx, &p), NGPT_ERR_DEVICE, "no usable CUDA device");
    CHECK(ctx == NULL);
}

static void test_cpu_explicit(void)
{
    ngpt_context_params p;
    CHECK_OK(ngpt_context_params_default(&p, sizeof p));
    p.device = NGPT_DEVICE_CPU;
    ngpt_context *ctx = NULL;
    CHECK_OK(ngpt_context_create(&ctx, &p));
    if (ctx) {
        CHECK(ngpt_context_backend(ctx) == NGPT_BACKEND_CPU);
        CHECK(ngpt_context_backend_note(ctx)[0] == 0);
    }
    ngpt_context_free(ctx);
}

int main(void)
{
    RUN(probe);
    RUN(test_has_cuda_build);
    RUN(test_auto);
    RUN(test_cuda_required);
    RUN(test_cpu_explicit);
    return test_done();
}
