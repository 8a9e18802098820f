/* test_alloc_fail.c — a model load (open llama-a/model.safetensors and the NExT-GPT delta .pt,
 * create a CPU backend, allocate and upload every tensor) survives a failure of each of its
 * allocations with NGPT_ERR_OUT_OF_MEMORY and no leak. */
#include "test.h"
#include "alloc_fail.h"

#include "core/weights.h"
#include "ops/backend.h"

typedef struct { char base[1024], delta[1024]; } paths;

static ngpt_status upload_all(nx_backend *be, nx_weights *w)
{
    ngpt_status st = NGPT_OK;
    for (size_t i = 0; i < nx_weights_count(w) && st == NGPT_OK; i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        nx_tensor x;
        st = nx_tensor_alloc(&x, be, t->dtype, t->rank, t->shape);
        if (st != NGPT_OK) break;
        st = nx_tensor_upload(&x, t->data, t->nbytes);
        nx_tensor_free(&x);
    }
    return st;
}

static ngpt_status load(void *user)
{
    const paths *p = user;
    nx_weights *a = NULL, *b = NULL;
    nx_pool *pool = NULL;
    nx_backend *be = NULL;
    ngpt_status st = nx_weights_open(&a, p->base);
    if (st == NGPT_OK) st = nx_weights_open(&b, p->delta);
    if (st == NGPT_OK) st = nx_pool_create(&pool, 1);
    if (st == NGPT_OK) st = nx_cpu_backend_create(&be, pool, NULL);
    if (st == NGPT_OK) st = upload_all(be, a);
    if (st == NGPT_OK) st = upload_all(be, b);
    nx_backend_free(be);
    nx_pool_free(pool);
    nx_weights_close(b);
    nx_weights_close(a);
    return st;
}

int main(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    const char *root = getenv("NGPT_SOURCE_ROOT");
    char dir[900];
    if (g) snprintf(dir, sizeof dir, "%s", g);
    else snprintf(dir, sizeof dir, "%s/../shared/golden", root ? root : ".");
    paths p;
    snprintf(p.base, sizeof p.base, "%s/models/llama-a/model.safetensors", dir);
    snprintf(p.delta, sizeof p.delta, "%s/models/nextgpt-delta-a/pytorch_model.pt", dir);
    FILE *f = fopen(p.base, "rb");
    if (!f) {
        fprintf(stderr, "golden models not found under %s: skipping\n", dir);
        return TEST_SKIP;
    }
    fclose(f);
    int64_t n = test_alloc_fail_all("model load", load, &p);
    fprintf(stderr, "model load: %lld allocations, each made to fail once\n", (long long)n);
    CHECK(n > 10);
    return test_done();
}
