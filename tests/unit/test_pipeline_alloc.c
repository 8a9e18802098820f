/* test_pipeline_alloc.c — a whole NExT-GPT turn survives every allocation failure: on the tiny
 * bundle (NGPT_TINY_BUNDLE), create a pipeline and run a turn with an image in and a forced image
 * out (generated media re-entering the history included), then free both; once per allocation of
 * the library's allocator that sequence makes, that allocation is made to fail. Each run must end
 * in NGPT_ERR_OUT_OF_MEMORY with a message — from create, from the turn, from the image output's
 * status or from the history's — and leave no block behind (tests/common/alloc_fail.h). About
 * 2700 allocations, ~30 s. */
#include "nextgpt.h"
#include "test.h"
#include "alloc_fail.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static ngpt_context *g_ctx;
static const char *g_bundle;
static char g_cat[1024];

static ngpt_status one_turn(void *user)
{
    (void)user;
    ngpt_pipeline *p = NULL;
    ngpt_pipeline_result *r = NULL;
    ngpt_pipeline_turn_params tp;
    ngpt_pipeline_turn_params_default(&tp, sizeof tp);
    tp.force = NGPT_PIPELINE_FORCE(NGPT_MODALITY_IMAGE);
    tp.max_new_tokens = 4;
    tp.steps = 1;
    tp.seed = 7;
    ngpt_pipeline_media m = {NGPT_MODALITY_IMAGE, g_cat, NULL, 0, NULL, NULL};
    ngpt_status st = ngpt_pipeline_create(&p, g_ctx, g_bundle, NULL);
    if (st == NGPT_OK) st = ngpt_pipeline_turn(&r, p, "draw this cat", &m, 1, &tp);
    for (int32_t i = 0; st == NGPT_OK && i < ngpt_pipeline_result_n_outputs(r); i++) {
        ngpt_modality mod = NGPT_MODALITY_TEXT;
        ngpt_status o = ngpt_pipeline_result_output(r, i, &mod, NULL, NULL, NULL);
        if (mod == NGPT_MODALITY_IMAGE) st = o;  /* the forced output; the random model's own may fail */
    }
    if (st == NGPT_OK) st = ngpt_pipeline_result_history(r, NULL);
    ngpt_pipeline_result_free(r);
    ngpt_pipeline_free(p);
    return st;
}

int main(void)
{
    static char bundle_abs[PATH_MAX];
    g_bundle = getenv("NGPT_TINY_BUNDLE");
    if (g_bundle && realpath(g_bundle, bundle_abs)) g_bundle = bundle_abs;
    const char *root = getenv("NGPT_SOURCE_ROOT");
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/bundle.json", g_bundle ? g_bundle : ".");
    if (!g_bundle || access(probe, R_OK) != 0) {
        fprintf(stderr, "SKIP: NGPT_TINY_BUNDLE (the tiny bundle) not found\n");
        return TEST_SKIP;
    }
    snprintf(g_cat, sizeof g_cat, "%s/data/tiny/cat.jpg", root ? root : ".");
    if (!(g_ctx = test_cpu_context(1))) return 1;
    /* one turn first: the context keeps caches it fills on first use (they are its, freed with it) */
    CHECK_OK(one_turn(NULL));
    int64_t n = test_alloc_fail_all("pipeline create + turn", one_turn, NULL);
    fprintf(stderr, "pipeline create + turn: %lld allocations, each made to fail once\n", (long long)n);
    ngpt_context_free(g_ctx);
    return test_done();
}
