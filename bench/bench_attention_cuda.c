/* bench_attention_cuda.c — attention forward TFLOP/s on CUDA (run by bench/gpu.sh and
 * bench/gpu_remote.sh; bench/attention_torch.py prints the same table for PyTorch's SDPA).
 *
 * Two sets of shapes, F16 and BF16 each:
 *  - the FlashAttention papers' setup (reference/performance-anchors.md §1.1): 16k tokens in
 *    total (batch = 16384 / seqlen), hidden 2048 (head dim 64 -> 32 heads, 128 -> 16 heads),
 *    seqlen 512..8192, causal and not;
 *  - Stable Diffusion 1.5's UNet attention at 512x512 with classifier-free guidance (batch 2,
 *    8 heads): self-attention over 4096/1024/256 latent positions with head dim 40/80/160, and
 *    cross-attention of the same queries over 77 text tokens.
 * FLOPs = 4 * seqlen_q * seqlen_kv * head_dim * heads * batch, halved when causal. One warm-up
 * call, then the mean of `reps` timed calls (host clock around a stream sync), more calls (up to
 * 1000) when `reps` would take under 20 ms. Prints one line per configuration, tab separated, to
 * stdout.
 * Usage: bench_attention_cuda [reps]   (exits 77 without a usable GPU) */
#include "core/dtype.h"
#include "ops/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fill(nx_tensor *t, unsigned seed)
{
    size_t n = (size_t)nx_numel(t);
    uint16_t *h = malloc(n * sizeof(uint16_t));
    if (!h) return -1;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float v = (float)(seed >> 8) / 16777216.0f * 2.0f - 1.0f;
        h[i] = t->dtype == NGPT_DTYPE_BF16 ? nx_f32_to_bf16(v) : nx_f32_to_f16(v);
    }
    ngpt_status st = nx_tensor_upload(t, h, n * sizeof(uint16_t));
    free(h);
    return st == NGPT_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1) reps = 1;
    nx_backend *be = NULL;
    if (nx_cuda_backend_create(&be, 0, NULL, NULL) != NGPT_OK) {
        fprintf(stderr, "SKIP: %s\n", ngpt_last_error());
        return 77;
    }
    printf("# device: %s\n", be->device_name);
    printf("# kernel: libnextgpt nxk_attention (F16/BF16: tensor cores mma.sync m16n8k16, f32 online softmax)\n");
    printf("dtype\thead_dim\tcausal\tseqlen\tseqlen_kv\tbatch\theads\tms\tTFLOP/s\n");
    typedef struct { int D, causal, S, Skv, B, H; } shape;
    shape shapes[64];
    int ns = 0;
    const int seqs[] = {512, 1024, 2048, 4096, 8192};
    for (int hi = 0; hi < 2; hi++)
        for (int causal = 0; causal < 2; causal++)
            for (int si = 0; si < 5; si++) {
                int D = hi ? 128 : 64, S = seqs[si];
                shapes[ns++] = (shape){D, causal, S, S, 16384 / S, 2048 / D};
            }
    const int sd_d[] = {40, 80, 160}, sd_s[] = {4096, 1024, 256};
    for (int i = 0; i < 3; i++) {
        shapes[ns++] = (shape){sd_d[i], 0, sd_s[i], sd_s[i], 2, 8};  /* self */
        shapes[ns++] = (shape){sd_d[i], 0, sd_s[i], 77, 2, 8};       /* cross, 77 text tokens */
    }
    const ngpt_dtype dts[] = {NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    int rc = 0;
    for (int di = 0; di < 2; di++)
        for (int si = 0; si < ns; si++) {
            const shape *c = &shapes[si];
            int64_t nq[4] = {c->B, c->S, c->H, c->D}, nk[4] = {c->B, c->Skv, c->H, c->D};
            nx_tensor q, k, v, o;
            memset(&q, 0, sizeof q), memset(&k, 0, sizeof k), memset(&v, 0, sizeof v), memset(&o, 0, sizeof o);
            ngpt_status st = nx_tensor_alloc(&q, be, dts[di], 4, nq);
            if (st == NGPT_OK) st = nx_tensor_alloc(&k, be, dts[di], 4, nk);
            if (st == NGPT_OK) st = nx_tensor_alloc(&v, be, dts[di], 4, nk);
            if (st == NGPT_OK) st = nx_tensor_alloc(&o, be, dts[di], 4, nq);
            if (st == NGPT_OK && (fill(&q, 1) || fill(&k, 2) || fill(&v, 3))) st = NGPT_ERR_DEVICE;
            float scale = 1.0f / sqrtf((float)c->D);
            if (st == NGPT_OK) st = be->v->attention(be, &o, &q, &k, &v, NULL, scale, c->causal);
            if (st == NGPT_OK) st = be->v->sync(be);
            /* small shapes (tens of microseconds) get more calls: at least ~20 ms timed */
            double t0 = now_s();
            if (st == NGPT_OK) st = be->v->attention(be, &o, &q, &k, &v, NULL, scale, c->causal);
            if (st == NGPT_OK) st = be->v->sync(be);
            double t1 = now_s() - t0;
            int n = reps;
            if (t1 > 0 && 0.02 / t1 > n) n = 0.02 / t1 > 1000 ? 1000 : (int)(0.02 / t1);
            t0 = now_s();
            for (int r = 0; r < n && st == NGPT_OK; r++) st = be->v->attention(be, &o, &q, &k, &v, NULL, scale, c->causal);
            if (st == NGPT_OK) st = be->v->sync(be);
            double dt = (now_s() - t0) / n;
            if (st != NGPT_OK) {
                fprintf(stderr, "attention %s hd %d S %d Skv %d: %s\n", nx_dtype_name(dts[di]), c->D, c->S, c->Skv,
                        ngpt_last_error());
                rc = 1;
            } else {
                double flops = 4.0 * c->S * (double)c->Skv * c->D * c->H * c->B / (c->causal ? 2.0 : 1.0);
                printf("%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.1f\n", nx_dtype_name(dts[di]), c->D, c->causal, c->S, c->Skv,
                       c->B, c->H, dt * 1e3, flops / dt * 1e-12);
                fflush(stdout);
            }
            nx_tensor_free(&q), nx_tensor_free(&k), nx_tensor_free(&v), nx_tensor_free(&o);
        }
    nx_backend_free(be);
    return rc;
}
