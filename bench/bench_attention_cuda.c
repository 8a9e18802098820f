/* bench_attention_cuda.c — attention forward TFLOP/s on CUDA (run by bench/gpu.sh).
 *
 * Setup of the FlashAttention papers (reference/performance-anchors.md §1.1): 16k tokens in
 * total (batch = 16384 / seqlen), hidden 2048 (head dim 64 -> 32 heads, 128 -> 16 heads),
 * seqlen 512..8192, causal and not, F16 and BF16. FLOPs = 4 * seqlen^2 * head_dim * heads *
 * batch, halved when causal. One warm-up call, then the mean of `reps` timed calls (host clock
 * around a stream sync). Prints one line per configuration, tab separated, to stdout.
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
    printf("# kernel: libnextgpt nxk_attention (CUDA cores, f32 online softmax)\n");
    printf("dtype\thead_dim\tcausal\tseqlen\tbatch\theads\tms\tTFLOP/s\n");
    const int hds[] = {64, 128};
    const int seqs[] = {512, 1024, 2048, 4096, 8192};
    const ngpt_dtype dts[] = {NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    int rc = 0;
    for (int di = 0; di < 2; di++)
        for (int hi = 0; hi < 2; hi++)
            for (int causal = 0; causal < 2; causal++)
                for (int si = 0; si < 5; si++) {
                    int D = hds[hi], H = 2048 / D, S = seqs[si], B = 16384 / S;
                    int64_t ne[4] = {B, S, H, D};
                    nx_tensor q, k, v, o;
                    memset(&q, 0, sizeof q), memset(&k, 0, sizeof k), memset(&v, 0, sizeof v), memset(&o, 0, sizeof o);
                    ngpt_status st = nx_tensor_alloc(&q, be, dts[di], 4, ne);
                    if (st == NGPT_OK) st = nx_tensor_alloc(&k, be, dts[di], 4, ne);
                    if (st == NGPT_OK) st = nx_tensor_alloc(&v, be, dts[di], 4, ne);
                    if (st == NGPT_OK) st = nx_tensor_alloc(&o, be, dts[di], 4, ne);
                    if (st == NGPT_OK && (fill(&q, 1) || fill(&k, 2) || fill(&v, 3))) st = NGPT_ERR_DEVICE;
                    float scale = 1.0f / sqrtf((float)D);
                    if (st == NGPT_OK) st = be->v->attention(be, &o, &q, &k, &v, NULL, scale, causal);
                    if (st == NGPT_OK) st = be->v->sync(be);
                    double t0 = now_s();
                    for (int r = 0; r < reps && st == NGPT_OK; r++) st = be->v->attention(be, &o, &q, &k, &v, NULL, scale, causal);
                    if (st == NGPT_OK) st = be->v->sync(be);
                    double dt = (now_s() - t0) / reps;
                    if (st != NGPT_OK) {
                        fprintf(stderr, "attention %s hd %d S %d: %s\n", nx_dtype_name(dts[di]), D, S, ngpt_last_error());
                        rc = 1;
                    } else {
                        double flops = 4.0 * S * (double)S * D * H * B / (causal ? 2.0 : 1.0);
                        printf("%s\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.1f\n", nx_dtype_name(dts[di]), D, causal, S, B, H, dt * 1e3,
                               flops / dt * 1e-12);
                        fflush(stdout);
                    }
                    nx_tensor_free(&q), nx_tensor_free(&k), nx_tensor_free(&v), nx_tensor_free(&o);
                }
    nx_backend_free(be);
    return rc;
}
