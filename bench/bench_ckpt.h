/* bench_ckpt.h — full-size random checkpoints for the decoder benchmarks (bench_unet,
 * bench_unet3d, bench_decoders): a tensor list built from names and shapes — the loaders' own
 * lists (nx_unet_list_tensors with bench_ckpt_record as the callback) or the tables below — then
 * random values written as one safetensors file. The values do not matter for speed; they are
 * scaled like a trained network's (uniform with variance 1/fan_in, biases 0.02 U(-1, 1), norm
 * weights and "scale" 1) so activations stay finite through dozens of blocks. */
#ifndef NX_BENCH_CKPT_H
#define NX_BENCH_CKPT_H

#include "core/dtype.h"
#include "core/weights.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64, U(-1, 1): the benchmarks' inputs and weights (one stream per program) */
static uint64_t bench_rng = 0x2545f4914f6cdd1dull;
static inline float urand(void)
{
    bench_rng ^= bench_rng << 13, bench_rng ^= bench_rng >> 7, bench_rng ^= bench_rng << 17;
    return (float)((bench_rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

typedef struct bench_ckpt {
    nx_st_entry *e;
    int64_t (*shape)[NGPT_MAX_DIMS];
    char **names;
    size_t n, cap;
    uint64_t params;
} bench_ckpt;

/* Append a tensor (the signature of the loaders' list callbacks; user = bench_ckpt *). */
static inline ngpt_status bench_ckpt_record(void *user, const char *name, int rank, const int64_t *shape)
{
    bench_ckpt *g = user;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 512;
        nx_st_entry *e = realloc(g->e, cap * sizeof *g->e);
        if (e) g->e = e;
        int64_t (*s)[NGPT_MAX_DIMS] = realloc(g->shape, cap * sizeof *g->shape);
        if (s) g->shape = s;
        char **nm = realloc(g->names, cap * sizeof *g->names);
        if (nm) g->names = nm;
        if (!e || !s || !nm) return NGPT_ERR_OUT_OF_MEMORY;
        g->cap = cap;
    }
    size_t k = g->n++;
    g->names[k] = strdup(name);
    memcpy(g->shape[k], shape, (size_t)rank * sizeof *shape);
    g->e[k] = (nx_st_entry){g->names[k], NGPT_DTYPE_F32, rank, NULL, NULL};
    uint64_t numel = 1;
    for (int i = 0; i < rank; i++) numel *= (uint64_t)shape[i];
    g->params += numel;
    return NGPT_OK;
}

static inline void bench_ckpt_add(bench_ckpt *g, const char *name, int rank, int64_t d0, int64_t d1, int64_t d2,
                                  int64_t d3)
{
    int64_t sh[4] = {d0, d1, d2, d3};
    bench_ckpt_record(g, name, rank, sh);
}

/* Empty g (the list only: nothing written). */
static inline void bench_ckpt_clear(bench_ckpt *g)
{
    for (size_t k = 0; k < g->n; k++) free((void *)g->e[k].data), free(g->names[k]);
    free(g->e), free(g->shape), free(g->names);
    memset(g, 0, sizeof *g);
}

/* Fill the listed tensors with random values in dtype dt, write them to path, and empty g. */
static inline bool bench_ckpt_write(bench_ckpt *g, const char *path, ngpt_dtype dt)
{
    for (size_t k = 0; k < g->n; k++) g->e[k].shape = g->shape[k];  /* after the last realloc */
    bool ok = true;
    const size_t es = nx_dtype_size(dt);
    for (size_t k = 0; k < g->n && ok; k++) {
        nx_st_entry *e = &g->e[k];
        size_t numel = 1;
        for (int i = 0; i < e->rank; i++) numel *= (size_t)e->shape[i];
        bool one = (e->rank == 1 && strstr(e->name, "norm") && strstr(e->name, ".weight")) || !strcmp(e->name, "scale");
        float sc = e->rank > 1 ? sqrtf(3.0f * (float)e->shape[0] / (float)numel) : 0.0f;
        void *d = malloc(numel * es);
        if (!d) {
            ok = false;
            break;
        }
        for (size_t i = 0; i < numel; i++) {
            float v = one ? 1.0f : e->rank == 1 ? 0.02f * urand() : sc * urand();
            if (dt == NGPT_DTYPE_F16) ((uint16_t *)d)[i] = nx_f32_to_f16(v);
            else if (dt == NGPT_DTYPE_BF16) ((uint16_t *)d)[i] = nx_f32_to_bf16(v);
            else ((float *)d)[i] = v;
        }
        e->data = d;
        e->dtype = dt;
    }
    ok = ok && nx_safetensors_write(path, g->e, g->n, NULL, 0) == NGPT_OK;
    bench_ckpt_clear(g);
    return ok;
}

static inline void bench_ckpt_vae_resnet(bench_ckpt *g, const char *p, int64_t cin, int64_t cout)
{
    char n[256]; /* p is at most 199 characters (the callers' buffers) plus a suffix */
#define T(suf, ...) (snprintf(n, sizeof n, "%s.%s", p, suf), bench_ckpt_add(g, n, __VA_ARGS__))
    T("norm1.weight", 1, cin, 0, 0, 0); T("norm1.bias", 1, cin, 0, 0, 0);
    T("conv1.weight", 4, cout, cin, 3, 3); T("conv1.bias", 1, cout, 0, 0, 0);
    T("norm2.weight", 1, cout, 0, 0, 0); T("norm2.bias", 1, cout, 0, 0, 0);
    T("conv2.weight", 4, cout, cout, 3, 3); T("conv2.bias", 1, cout, 0, 0, 0);
    if (cin != cout) { T("conv_shortcut.weight", 4, cout, cin, 1, 1); T("conv_shortcut.bias", 1, cout, 0, 0, 0); }
#undef T
}

/* AutoencoderKL's decoder (+ post_quant_conv) tensors, mid-block attention in the to_q/to_k/to_v/
 * to_out.0 names: block_out ch[0..nb-1], layers_per_block `layers` (layers + 1 resnets per up
 * block), `lat` latent and `out` image channels. SD 1.5: {128, 256, 512, 512}, 4, 2, 4, 3. */
static inline void bench_ckpt_vae_decoder(bench_ckpt *g, const int64_t *ch, int nb, int layers, int64_t lat, int64_t out)
{
    char n[200];
    int64_t top = ch[nb - 1];
    bench_ckpt_add(g, "post_quant_conv.weight", 4, lat, lat, 1, 1);
    bench_ckpt_add(g, "post_quant_conv.bias", 1, lat, 0, 0, 0);
    bench_ckpt_add(g, "decoder.conv_in.weight", 4, top, lat, 3, 3);
    bench_ckpt_add(g, "decoder.conv_in.bias", 1, top, 0, 0, 0);
    bench_ckpt_vae_resnet(g, "decoder.mid_block.resnets.0", top, top);
    static const char *const an[] = {"group_norm", "to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 5; i++) {
        snprintf(n, sizeof n, "decoder.mid_block.attentions.0.%s.weight", an[i]);
        bench_ckpt_add(g, n, i ? 2 : 1, top, top, 0, 0);
        snprintf(n, sizeof n, "decoder.mid_block.attentions.0.%s.bias", an[i]);
        bench_ckpt_add(g, n, 1, top, 0, 0, 0);
    }
    bench_ckpt_vae_resnet(g, "decoder.mid_block.resnets.1", top, top);
    int64_t cout = top;
    for (int i = 0; i < nb; i++) {
        int64_t cin = cout;
        cout = ch[nb - 1 - i];
        for (int r = 0; r <= layers; r++) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, r);
            bench_ckpt_vae_resnet(g, n, r ? cout : cin, cout);
        }
        if (i != nb - 1) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv.weight", i);
            bench_ckpt_add(g, n, 4, cout, cout, 3, 3);
            snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv.bias", i);
            bench_ckpt_add(g, n, 1, cout, 0, 0, 0);
        }
    }
    bench_ckpt_add(g, "decoder.conv_norm_out.weight", 1, ch[0], 0, 0, 0);
    bench_ckpt_add(g, "decoder.conv_norm_out.bias", 1, ch[0], 0, 0, 0);
    bench_ckpt_add(g, "decoder.conv_out.weight", 4, out, ch[0], 3, 3);
    bench_ckpt_add(g, "decoder.conv_out.bias", 1, out, 0, 0, 0);
}

/* SD 1.5's VAE decoder. */
static inline void bench_ckpt_sd_vae_decoder(bench_ckpt *g)
{
    static const int64_t ch[4] = {128, 256, 512, 512};
    bench_ckpt_vae_decoder(g, ch, 4, 2, 4, 3);
}

/* SD 1.5's unet/config.json (runwayml/stable-diffusion-v1-5), for bench_unet and bench_decoders */
static const char bench_sd15_unet_config[] =
    "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.17.0\", \"act_fn\": \"silu\","
    " \"attention_head_dim\": 8, \"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false,"
    " \"cross_attention_dim\": 768, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true,"
    " \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1,"
    " \"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64,"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";

#endif
