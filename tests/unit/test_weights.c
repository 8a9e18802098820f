/* test_weights.c — nx_weights: safetensors (single, sharded, written by nx_safetensors_write),
 * torch zip checkpoints through the restricted pickle reader, zero copy, checked fetches,
 * unused-tensor reports, and every corrupt/malicious fixture in tests/data/bad/. */
#include "test.h"

#include "core/alloc.h"
#include "core/json.h"
#include "core/weights.h"
#include "core/weights_impl.h"

#include <unistd.h>

static char g_golden[900], g_bad[900], g_tmp[600];

static const char *golden(const char *rel)
{
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_golden, rel);
    return buf[k];
}

static const char *bad(const char *rel)
{
    static char buf[1200];
    snprintf(buf, sizeof buf, "%s/%s", g_bad, rel);
    return buf;
}

/* data pointer of every tensor inside one of the file mappings */
static int zero_copy(const nx_weights *w)
{
    for (size_t i = 0; i < nx_weights_count(w); i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        int in = 0;
        for (size_t m = 0; m < w->n_maps; m++) {
            const char *a = w->maps[m].addr;
            if ((const char *)t->data >= a && (const char *)t->data + t->nbytes <= a + w->maps[m].len) in = 1;
        }
        if (!in) return 0;
    }
    return 1;
}

static void test_llama(void)
{
    json_t *cfg = NULL;
    CHECK_OK(nx_json_load_file(&cfg, golden("models/llama-a/config.json")));
    if (!cfg) return;
    int64_t h = 0, inter = 0, layers = 0, vocab = 0;
    CHECK_OK(nx_json_int(cfg, "hidden_size", "config.json", &h));
    CHECK_OK(nx_json_int(cfg, "intermediate_size", "config.json", &inter));
    CHECK_OK(nx_json_int(cfg, "num_hidden_layers", "config.json", &layers));
    CHECK_OK(nx_json_int(cfg, "vocab_size", "config.json", &vocab));
    json_decref(cfg);
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, golden("models/llama-a/model.safetensors")));
    if (!w) return;
    CHECK(nx_weights_count(w) == (size_t)(3 + 9 * layers));
    const nx_wtensor *t;
    unsigned fl = NX_FLOAT_DTYPES;
    CHECK_OK(nx_weights_get(w, "model.embed_tokens.weight", fl, 2, (int64_t[]){vocab, h}, &t));
    CHECK_OK(nx_weights_get(w, "lm_head.weight", fl, 2, (int64_t[]){vocab, h}, &t));
    CHECK_OK(nx_weights_get(w, "model.norm.weight", fl, 1, (int64_t[]){h}, &t));
    char name[128];
    for (int64_t l = 0; l < layers; l++) {
        const char *sq[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)l, sq[k]);
            CHECK_OK(nx_weights_get(w, name, fl, 2, (int64_t[]){h, h}, &t));
        }
        snprintf(name, sizeof name, "model.layers.%lld.mlp.gate_proj.weight", (long long)l);
        CHECK_OK(nx_weights_get(w, name, fl, 2, (int64_t[]){inter, h}, &t));
        snprintf(name, sizeof name, "model.layers.%lld.mlp.up_proj.weight", (long long)l);
        CHECK_OK(nx_weights_get(w, name, fl, 2, (int64_t[]){inter, h}, &t));
        snprintf(name, sizeof name, "model.layers.%lld.mlp.down_proj.weight", (long long)l);
        CHECK_OK(nx_weights_get(w, name, fl, 2, (int64_t[]){h, inter}, &t));
        snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)l);
        CHECK_OK(nx_weights_get(w, name, fl, 1, (int64_t[]){h}, &t));
        snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        CHECK_OK(nx_weights_get(w, name, fl, 1, (int64_t[]){h}, &t));
    }
    CHECK_OK(nx_weights_check_unused(w));
    CHECK(zero_copy(w));
    nx_weights_close(w);
}

static void test_delta_pt_vs_safetensors(void)
{
    nx_weights *a = NULL, *b = NULL;
    CHECK_OK(nx_weights_open(&a, golden("models/nextgpt-delta-a/pytorch_model.pt")));
    CHECK_OK(nx_weights_open(&b, golden("models/nextgpt-delta-a/delta.safetensors")));
    if (!a || !b) goto out;
    CHECK(nx_weights_count(a) == nx_weights_count(b));
    CHECK(nx_weights_count(a) > 100);
    CHECK(zero_copy(a));
    CHECK(zero_copy(b));
    size_t same = 0;
    for (size_t i = 0; i < nx_weights_count(a); i++) {
        const nx_wtensor *x = nx_weights_at(a, i), *y = nx_weights_find(b, x->name);
        CHECK_MSG(y != NULL, "%s missing from delta.safetensors", x->name);
        if (!y) continue;
        int ok = x->dtype == NGPT_DTYPE_F16 && y->dtype == x->dtype && x->rank == y->rank &&
                 x->nbytes == y->nbytes && memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->rank) == 0 &&
                 memcmp(x->data, y->data, x->nbytes) == 0;
        CHECK_MSG(ok, "%s differs", x->name);
        same += ok;
    }
    CHECK(same == nx_weights_count(a));
    const nx_wtensor *t = nx_weights_find(a, "llama_model.base_model.model.model.embed_tokens.weight");
    CHECK(t && t->rank == 2 && t->shape[1] == 64);
    if (t) {  /* F16 decode agrees with a scalar reference */
        size_t n = t->nbytes / 2;
        float *f = malloc(n * sizeof *f);
        nx_wtensor_to_f32(t, f);
        const uint16_t *h = t->data;
        int okf = 1;
        for (size_t i = 0; i < n; i++) okf &= f[i] == nx_f16_to_f32(h[i]) || (f[i] != f[i]);
        CHECK(okf);
        free(f);
    }
out:
    nx_weights_close(a);
    nx_weights_close(b);
}

static void test_write_roundtrip_and_get_errors(void)
{
    char path[800];
    snprintf(path, sizeof path, "%s/rt.safetensors", g_tmp);
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t hb[4] = {0x3c00, 0xc000, 0x7c00, 0x0001};
    int64_t sa[2] = {2, 3}, sh[1] = {4}, si[1] = {2}, s0[2] = {0, 5};
    int64_t iv[2] = {-3, 1ll << 40};
    uint8_t bl[1] = {0};
    nx_st_entry e[] = {{"a \"quoted\" name", NGPT_DTYPE_F32, 2, sa, a},
                       {"half", NGPT_DTYPE_F16, 1, sh, hb},
                       {"bf", NGPT_DTYPE_BF16, 1, sh, hb},
                       {"ids", NGPT_DTYPE_I64, 1, si, iv},
                       {"empty", NGPT_DTYPE_U8, 2, s0, bl},
                       {"scalar", NGPT_DTYPE_F32, 0, NULL, a}};
    const char *meta[] = {"format", "pt", "note", "x\ny"};
    CHECK_OK(nx_safetensors_write(path, e, 6, meta, 2));
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, path));
    if (!w) return;
    CHECK(nx_weights_count(w) == 6);
    CHECK(strcmp(nx_weights_at(w, 0)->name, "a \"quoted\" name") == 0);  /* file order kept */
    CHECK(strcmp(nx_weights_at(w, 5)->name, "scalar") == 0);
    const nx_wtensor *t = NULL;
    CHECK_OK(nx_weights_get(w, "a \"quoted\" name", NX_DTYPE_BIT(NGPT_DTYPE_F32), 2, (int64_t[]){-1, 3}, &t));
    CHECK(t && memcmp(t->data, a, sizeof a) == 0);
    CHECK(zero_copy(w));
    float f[6];
    CHECK_OK(nx_weights_get(w, "half", 0, 1, sh, &t));
    nx_wtensor_to_f32(t, f);
    CHECK(f[0] == 1.0f && f[1] == -2.0f && f[2] > 1e30f && f[3] > 0 && f[3] < 1e-7f);
    CHECK_OK(nx_weights_get(w, "bf", 0, 1, sh, &t));
    nx_wtensor_to_f32(t, f);
    CHECK(f[0] == nx_bf16_to_f32(0x3c00));
    CHECK_OK(nx_weights_get(w, "ids", NX_DTYPE_BIT(NGPT_DTYPE_I64), 1, si, &t));
    nx_wtensor_to_f32(t, f);
    CHECK(f[0] == -3.0f && f[1] == (float)(1ll << 40));
    CHECK_OK(nx_weights_get(w, "empty", 0, 2, s0, &t));
    CHECK(t && t->nbytes == 0);
    /* errors */
    CHECK_ERR(nx_weights_get(w, "half", 0, 2, (int64_t[]){2, 2}, &t), NGPT_ERR_SHAPE_MISMATCH,
              "tensor 'half': expected [2, 2], got [4]");
    CHECK_ERR(nx_weights_get(w, "a \"quoted\" name", 0, 2, (int64_t[]){3, 2}, &t), NGPT_ERR_SHAPE_MISMATCH,
              "expected [3, 2], got [2, 3]");
    CHECK_ERR(nx_weights_get(w, "half", NX_DTYPE_BIT(NGPT_DTYPE_F32), 1, sh, &t), NGPT_ERR_DTYPE_MISMATCH,
              "tensor 'half': expected dtype F32, got F16");
    CHECK_ERR(nx_weights_get(w, "nope.weight", 0, 1, sh, &t), NGPT_ERR_NOT_FOUND, "tensor 'nope.weight' not found");
    CHECK(t == NULL);
    CHECK_ERR(nx_weights_check_unused(w), NGPT_ERR_UNEXPECTED_TENSOR, "1 tensor not used by the model: 'scalar'");
    nx_weights_mark_used(w, "scalar");
    CHECK_OK(nx_weights_check_unused(w));
    nx_weights_close(w);
    /* the header is 8-byte aligned and padded with spaces */
    FILE *fp = fopen(path, "rb");
    unsigned char len8[8] = {0};
    if (fp) {
        CHECK(fread(len8, 1, 8, fp) == 8);
        fclose(fp);
    }
    CHECK(len8[0] % 8 == 0);
    remove(path);
}

static void test_unused_many(void)
{
    char path[800];
    snprintf(path, sizeof path, "%s/many.safetensors", g_tmp);
    enum { N = 45 };
    nx_st_entry e[N];
    char names[N][16];
    float v = 1;
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "t%02d", i);
        e[i] = (nx_st_entry){names[i], NGPT_DTYPE_F32, 0, NULL, &v};
    }
    CHECK_OK(nx_safetensors_write(path, e, N, NULL, 0));
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, path));
    if (!w) return;
    const nx_wtensor *t;
    CHECK_OK(nx_weights_get(w, "t00", 0, 0, NULL, &t));
    CHECK_ERR(nx_weights_check_unused(w), NGPT_ERR_UNEXPECTED_TENSOR, "44 tensors not used by the model: 't01', 't02'");
    CHECK_ERR(nx_weights_check_unused(w), NGPT_ERR_UNEXPECTED_TENSOR, "... and 14 more");
    nx_weights_close(w);
    remove(path);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_sharded(void)
{
    char p1[800], p2[800], idx[800], bad_idx[800], bad_idx2[800];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", g_tmp);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", g_tmp);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", g_tmp);
    snprintf(bad_idx, sizeof bad_idx, "%s/bad.safetensors.index.json", g_tmp);
    snprintf(bad_idx2, sizeof bad_idx2, "%s/bad2.safetensors.index.json", g_tmp);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    int64_t s4[1] = {4}, s2[1] = {2};
    nx_st_entry e1[] = {{"x.weight", NGPT_DTYPE_F32, 1, s4, a}, {"x.bias", NGPT_DTYPE_F32, 1, s4, a}};
    nx_st_entry e2[] = {{"y.weight", NGPT_DTYPE_F32, 1, s2, b}};
    CHECK_OK(nx_safetensors_write(p1, e1, 2, NULL, 0));
    CHECK_OK(nx_safetensors_write(p2, e2, 1, NULL, 0));
    write_text(idx, "{\"metadata\": {\"total_size\": 40}, \"weight_map\": {"
                    "\"x.weight\": \"model-00001-of-00002.safetensors\","
                    "\"y.weight\": \"model-00002-of-00002.safetensors\","
                    "\"x.bias\": \"model-00001-of-00002.safetensors\"}}");
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, idx));
    if (w) {
        CHECK(nx_weights_count(w) == 3);
        CHECK(w->n_maps == 2);  /* each shard opened once */
        const nx_wtensor *t;
        CHECK_OK(nx_weights_get(w, "y.weight", 0, 1, s2, &t));
        CHECK(t && ((const float *)t->data)[1] == 6.0f && strstr(t->file, "00002"));
        CHECK(zero_copy(w));
        nx_weights_close(w);
    }
    write_text(bad_idx, "{\"weight_map\": {\"x.weight\": \"model-00001-of-00002.safetensors\","
                        "\"z.weight\": \"model-00002-of-00002.safetensors\"}}");
    CHECK_ERR(nx_weights_open(&w, bad_idx), NGPT_ERR_BAD_FORMAT, "tensor 'z.weight' is listed in shard");
    write_text(bad_idx2, "{\"weight_map\": {\"x.weight\": \"model-00003-of-00002.safetensors\"}}");
    CHECK_ERR(nx_weights_open(&w, bad_idx2), NGPT_ERR_NOT_FOUND, "model-00003-of-00002.safetensors");
    CHECK(w == NULL);
    remove(p1);
    remove(p2);
    remove(idx);
    remove(bad_idx);
    remove(bad_idx2);
}

static void test_torch_views(void)
{
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, bad("pkl_ok_tiny.pt")));
    const nx_wtensor *t;
    if (w) {
        CHECK_OK(nx_weights_get(w, "w", NX_DTYPE_BIT(NGPT_DTYPE_F32), 2, (int64_t[]){4, 4}, &t));
        CHECK(t && (uintptr_t)t->data % 4 == 0);  /* Python's zipfile does not align: copied */
        CHECK(t && ((const float *)t->data)[5] == 5.0f);
        nx_weights_close(w);
    }
    w = NULL;
    CHECK_OK(nx_weights_open(&w, bad("pkl_transposed.pt")));
    if (w) {
        CHECK_OK(nx_weights_get(w, "w", NX_DTYPE_BIT(NGPT_DTYPE_F32), 2, (int64_t[]){4, 4}, &t));
        CHECK(t && ((const float *)t->data)[1] == 4.0f && ((const float *)t->data)[4] == 1.0f);  /* materialised */
        CHECK(!zero_copy(w));
        nx_weights_close(w);
    }
}

/* a real torch.save of {"model": {...views...}, "epoch": 3, "name": "x", "opt": {0: {"step": t}}} */
static void test_torch_nested(void)
{
    char path[1000];
    snprintf(path, sizeof path, "%s/../torch_nested.pt", g_bad);
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, path));
    if (!w) return;
    CHECK(nx_weights_count(w) == 8);
    const nx_wtensor *t;
    float f[24];
    CHECK_OK(nx_weights_get(w, "model.lin.weight", NX_DTYPE_BIT(NGPT_DTYPE_F32), 2, (int64_t[]){4, 6}, &t));
    CHECK(t && ((const float *)t->data)[7] == 7.0f);
    CHECK_OK(nx_weights_get(w, "model.lin.weight_t", NX_DTYPE_BIT(NGPT_DTYPE_F32), 2, (int64_t[]){6, 4}, &t));
    CHECK(t && ((const float *)t->data)[1] == 6.0f && ((const float *)t->data)[4] == 1.0f);
    CHECK_OK(nx_weights_get(w, "model.row", 0, 1, (int64_t[]){6}, &t));
    CHECK(t && ((const float *)t->data)[0] == 12.0f);  /* storage offset 12, zero copy */
    CHECK_OK(nx_weights_get(w, "model.bf", NX_DTYPE_BIT(NGPT_DTYPE_BF16), 2, (int64_t[]){3, 5}, &t));
    CHECK_OK(nx_weights_get(w, "model.ids", NX_DTYPE_BIT(NGPT_DTYPE_I64), 1, (int64_t[]){3}, &t));
    nx_wtensor_to_f32(t, f);
    CHECK(f[0] == 1.0f && f[1] == -2.0f && f[2] == 3.0f);
    CHECK_OK(nx_weights_get(w, "model.mask", NX_DTYPE_BIT(NGPT_DTYPE_BOOL), 1, (int64_t[]){2}, &t));
    nx_wtensor_to_f32(t, f);
    CHECK(f[0] == 1.0f && f[1] == 0.0f);
    CHECK_OK(nx_weights_get(w, "model.scalar", NX_DTYPE_BIT(NGPT_DTYPE_F64), 0, NULL, &t));
    nx_wtensor_to_f32(t, f);
    CHECK(f[0] == 2.5f);
    CHECK_OK(nx_weights_get(w, "opt.0.step", NX_DTYPE_BIT(NGPT_DTYPE_I64), 0, NULL, &t));
    CHECK_OK(nx_weights_check_unused(w));
    nx_weights_close(w);
}

static void test_bad_fixtures(void)
{
    static const struct { const char *file; ngpt_status st; const char *needle; } cases[] = {
        {"st_header_cut.safetensors", NGPT_ERR_BAD_FORMAT, "larger than the file"},
        {"st_data_cut.safetensors", NGPT_ERR_BAD_FORMAT, "tensor 'b': data_offsets [16, 24] outside the data region"},
        {"st_len_past_eof.safetensors", NGPT_ERR_BAD_FORMAT, "header length 4096 is larger than the file"},
        {"st_len_huge.safetensors", NGPT_ERR_BAD_FORMAT, "exceeds the 104857600-byte limit"},
        {"st_not_json.safetensors", NGPT_ERR_BAD_FORMAT, "st_not_json.safetensors (header):1:"},
        {"st_not_object.safetensors", NGPT_ERR_BAD_FORMAT, "header is JSON but not an object"},
        {"st_offsets_past_end.safetensors", NGPT_ERR_BAD_FORMAT, "tensor 'big': data_offsets [16, 272] outside"},
        {"st_overlap.safetensors", NGPT_ERR_BAD_FORMAT, "tensors 'a' and 'b' overlap"},
        {"st_size_mismatch.safetensors", NGPT_ERR_BAD_FORMAT, "tensor 'w': F32 [3, 3] needs 36 bytes, data_offsets give 16"},
        {"st_unknown_dtype.safetensors", NGPT_ERR_BAD_FORMAT, "tensor 'w': unknown dtype 'F8_E9M9'"},
        {"st_negative_shape.safetensors", NGPT_ERR_BAD_FORMAT, "tensor 'w': shape[0] is not a non-negative integer"},
        {"pkl_system.pt", NGPT_ERR_BAD_FORMAT, "pickle global 'posix.system' is not allowed (only state-dict globals are read)"},
        {"pkl_eval.pt", NGPT_ERR_BAD_FORMAT, "pickle global 'builtins.eval' is not allowed"},
        {"pkl_deep.pt", NGPT_ERR_BAD_FORMAT, "stack too deep"},
        {"pkl_marks.pt", NGPT_ERR_BAD_FORMAT, "too many nested MARKs"},
        {"pkl_cycle.pt", NGPT_ERR_BAD_FORMAT, "a dict reached twice (at 'a'; shared or a cycle)"},
        {"pkl_shared_dict.pt", NGPT_ERR_BAD_FORMAT, "a dict reached twice (at 'b'; shared or a cycle)"},
        {"pkl_expanded.pt", NGPT_ERR_UNSUPPORTED, "tensor 'w' [4, 4] has 16 elements over a storage of 1 (an expanded view)"},
        {"pkl_short_storage.pt", NGPT_ERR_BAD_FORMAT, "tensor 'w': storage of 16 F32 elements but its entry has 32 bytes"},
        {"zip_truncated.pt", NGPT_ERR_BAD_FORMAT, "no end-of-central-directory record"},
        {"zip_bad_local.pt", NGPT_ERR_BAD_FORMAT, "zip entry 'archive/data.pkl': its local header names another file"},
        {"zip_dup_entries.pt", NGPT_ERR_BAD_FORMAT, "zip: entry 'archive/data/0' appears twice"},
        {"zip_deflated.pt", NGPT_ERR_UNSUPPORTED, "zip entry 'archive/data.pkl' is compressed (method 8)"},
        {"legacy.pt", NGPT_ERR_UNSUPPORTED, "re-save it with torch>=1.6"},
        {"does_not_exist.safetensors", NGPT_ERR_NOT_FOUND, "does_not_exist.safetensors"},
    };
    remove("/tmp/ngpt_pwned");
    int64_t blocks0 = nx_alloc_blocks();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nx_weights *w = (nx_weights *)&w;
        ngpt_clear_error();
        CHECK_ERR(nx_weights_open(&w, bad(cases[i].file)), cases[i].st, cases[i].needle);
        CHECK_MSG(w == NULL, "%s: *out not NULL after an error", cases[i].file);
        CHECK_MSG(strstr(ngpt_last_error(), cases[i].file) != NULL, "%s: message does not name the file: %s",
                  cases[i].file, ngpt_last_error());
    }
    CHECK(nx_alloc_blocks() == blocks0);
    CHECK(access("/tmp/ngpt_pwned", F_OK) != 0);
}

int main(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    const char *root = getenv("NGPT_SOURCE_ROOT");
    if (!root) root = ".";
    if (g) snprintf(g_golden, sizeof g_golden, "%s", g);
    else snprintf(g_golden, sizeof g_golden, "%s/../shared/golden", root);
    snprintf(g_bad, sizeof g_bad, "%s/tests/data/bad", root);
    snprintf(g_tmp, sizeof g_tmp, "%s/ngpt_test_weights_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    RUN(test_write_roundtrip_and_get_errors);
    RUN(test_unused_many);
    RUN(test_sharded);
    RUN(test_torch_views);
    RUN(test_torch_nested);
    RUN(test_bad_fixtures);
    if (access(golden("models/llama-a/model.safetensors"), R_OK) == 0) {
        RUN(test_llama);
        RUN(test_delta_pt_vs_safetensors);
    } else {
        fprintf(stderr, "golden models not found under %s: skipping those tests\n", g_golden);
    }
    rmdir(g_tmp);
    return test_done();
}
