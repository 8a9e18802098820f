/* test_clap.c — AudioLDM's text branch: the RoBERTa tokenizer (flavour NX_BPE_ROBERTA of
 * clip_bpe.c) and CLAP's text encoder (lib/models/clap_text.c) behind an AUDIO decoder: load
 * errors on edited copies of tests/golden/models/clap-a (named files, tensors, config keys), the
 * public text API (normalised [B, projection_dim] embeddings, the attention mask), the ""
 * embedding computed at create and used by generate when uncond is NULL (on a pipeline joining
 * clap-a to the shared audioldm-a model), and allocation-failure injection over loading and
 * encoding. (The ids and embeddings themselves are checked by the roberta.tokenize and
 * clap.text_encoder golden cases.) */
#include "test.h"
#include "alloc_fail.h"
#include "fixture.h"
#include "release_text.h"

#include "api/decoder.h"
#include "core/alloc.h"
#include "core/json.h"
#include "core/weights.h"
#include "tokenizer/clip_bpe.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_clap[900], g_clip[900], g_aldm[900], g_tmp[600];
static ngpt_context *g_ctx;

static ngpt_status open_dec(ngpt_decoder **d, const char *dir, ngpt_decoder_kind kind, uint32_t comp)
{
    ngpt_decoder_params p;
    ngpt_decoder_params_default(&p, sizeof p);
    p.kind = kind;
    p.components = comp;
    return ngpt_decoder_create(d, g_ctx, dir, &p);
}



/* ---- tokenizer ---- */

static void ids_of(const nx_clip_bpe *t, const char *text, nx_i32vec *v)
{
    v->n = 0;
    CHECK_OK(nx_clip_bpe_encode(t, text, v));
}

static bool same_ids(const nx_clip_bpe *t, const char *a, const char *b)
{
    nx_i32vec x = {0}, y = {0};
    ids_of(t, a, &x);
    ids_of(t, b, &y);
    bool same = x.n == y.n && (x.n == 0 || memcmp(x.v, y.v, x.n * sizeof *x.v) == 0);
    nx_free(x.v);
    nx_free(y.v);
    return same;
}

static void test_tokenizer(void)
{
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/tokenizer", g_clap);
    nx_clip_bpe *t = NULL;
    CHECK_OK(nx_bpe_load(&t, dir, NX_BPE_ROBERTA));
    if (!t) return;
    CHECK(nx_clip_bpe_bos(t) == 0 && nx_clip_bpe_pad(t) == 1 && nx_clip_bpe_eos(t) == 2);
    CHECK(nx_clip_bpe_model_max_length(t) == 512);
    int32_t ids[8], n = 0;
    CHECK_OK(nx_clip_bpe_tokenize(t, "", ids, 8, &n));
    CHECK(n == 2 && ids[0] == 0 && ids[1] == 2 && ids[2] == 1 && ids[7] == 1);
    /* <mask> takes the whitespace before it (lstrip), not after; the others take none */
    CHECK(same_ids(t, "a \t <mask>", "a<mask>"));
    CHECK(!same_ids(t, "<mask> b", "<mask>b"));
    CHECK(!same_ids(t, "a </s>", "a</s>"));
    /* case-sensitive, no normalisation: unlike CLIP */
    CHECK(!same_ids(t, "Dog", "dog"));
    CHECK(!same_ids(t, "a  dog", "a dog"));
    nx_i32vec v = {0};
    CHECK_ERR(nx_clip_bpe_encode(t, "bad \xc3", &v), NGPT_ERR_INVALID_ARGUMENT, "UTF-8");
    nx_free(v.v);
    nx_clip_bpe_free(t);
    CHECK_ERR(nx_bpe_load(&t, dir, (nx_bpe_flavour)7), NGPT_ERR_INVALID_ARGUMENT, "flavour");
}

/* dst/tokenizer = clap-a's tokenizer files, `skip` left out; dst/text_encoder -> clap-a's. */
static void tok_copy(const char *dst, const char *skip)
{
    char a[1400], b[1400];
    mkdir(dst, 0700);
    snprintf(b, sizeof b, "%s/tokenizer", dst);
    mkdir(b, 0700);
    const char *f[] = {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(a, sizeof a, "%s/tokenizer/%s", g_clap, f[i]);
        snprintf(b, sizeof b, "%s/tokenizer/%s", dst, f[i]);
        unlink(b);
        if (!skip || strcmp(skip, f[i]) != 0) test_copy_file(a, b);
    }
    snprintf(a, sizeof a, "%s/text_encoder", g_clap);
    snprintf(b, sizeof b, "%s/text_encoder", dst);
    unlink(b);
    CHECK(symlink(a, b) == 0);
}

/* Remove dst: a symlinked component is unlinked (never followed: it points into clap-a). */
static void rm_tree(const char *dst)
{
    char p[1400];
    const char *sub[2] = {"tokenizer", "text_encoder"};
    const char *files[2][4] = {{"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"},
                               {"model.safetensors", "config.json", "", ""}};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dst, sub[i]);
        struct stat sb;
        if (lstat(p, &sb) != 0) continue;
        if (S_ISLNK(sb.st_mode)) {
            unlink(p);
            continue;
        }
        for (int j = 0; j < 4 && files[i][j][0]; j++) {
            snprintf(p, sizeof p, "%s/%s/%s", dst, sub[i], files[i][j]);
            unlink(p);
        }
        snprintf(p, sizeof p, "%s/%s", dst, sub[i]);
        rmdir(p);
    }
    rmdir(dst);
}

static void test_tokenizer_load_errors(void)
{
    char dst[800], p[1000];
    snprintf(dst, sizeof dst, "%s/tok", g_tmp);
    ngpt_decoder *d = NULL;
    const uint32_t TE = NGPT_DECODER_TEXT_ENCODER;
    tok_copy(dst, "vocab.json");
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE), NGPT_ERR_NOT_FOUND, "vocab.json");
    tok_copy(dst, "merges.txt");
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE), NGPT_ERR_NOT_FOUND, "merges.txt");
    tok_copy(dst, NULL);
    snprintf(p, sizeof p, "%s/tokenizer/vocab.json", dst);
    test_write_text(p, "[1, 2");
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE), NGPT_ERR_BAD_FORMAT, "vocab.json");
    test_write_text(p, "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3}");  /* no <mask> */
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE), NGPT_ERR_BAD_FORMAT, "<mask>");
    tok_copy(dst, NULL);
    snprintf(p, sizeof p, "%s/tokenizer/special_tokens_map.json", dst);
    test_write_text(p, "{\"pad_token\": \"<nothere>\"}");
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE), NGPT_ERR_BAD_FORMAT, "<nothere>");
    CHECK(d == NULL);
    rm_tree(dst);
}

/* ---- text encoder ---- */


/* dst/text_encoder = clap-a's with the edits; dst/tokenizer -> clap-a's (symlink). */
static void te_copy(const char *dst, const test_edit *e)
{
    char a[1400], b[1400];
    mkdir(dst, 0700);
    snprintf(a, sizeof a, "%s/tokenizer", g_clap);
    snprintf(b, sizeof b, "%s/tokenizer", dst);
    unlink(b);
    CHECK(symlink(a, b) == 0);
    snprintf(a, sizeof a, "%s/text_encoder", g_clap);
    snprintf(b, sizeof b, "%s/text_encoder", dst);
    mkdir(b, 0700);
    test_copy_edited(a, b, "model.safetensors", e);
}

static void test_encoder_load_errors(void)
{
    char dst[800];
    snprintf(dst, sizeof dst, "%s/te", g_tmp);
    ngpt_decoder *d = NULL;
    const uint32_t TE = NGPT_DECODER_TEXT_ENCODER;
    static const struct {
        test_edit e;
        ngpt_status st;
        const char *needle;
    } cases[] = {
        {{.drop = "text_model.encoder.layer.1.output.LayerNorm.bias"}, NGPT_ERR_NOT_FOUND, "layer.1.output.LayerNorm.bias"},
        {{.drop = "text_model.pooler.dense.weight"}, NGPT_ERR_NOT_FOUND, "pooler.dense.weight"},
        {{.drop = "text_projection.linear2.bias"}, NGPT_ERR_NOT_FOUND, "text_projection.linear2.bias"},
        {{.reshape = "text_projection.linear1.weight"}, NGPT_ERR_SHAPE_MISMATCH, "text_projection.linear1.weight"},
        {{.reshape = "text_model.encoder.layer.0.intermediate.dense.weight"}, NGPT_ERR_SHAPE_MISMATCH, "intermediate"},
        {{.extra_like = "text_model.pooler.dense.bias", .extra = "text_model.encoder.layer.2.output.dense.bias"}, NGPT_ERR_UNEXPECTED_TENSOR, "layer.2.output"},
        {{.cfg_key = "hidden_act", .cfg_val = "\"mish\""}, NGPT_ERR_UNSUPPORTED, "mish"},
        {{.cfg_key = "projection_hidden_act", .cfg_val = "\"elu\""}, NGPT_ERR_UNSUPPORTED, "projection_hidden_act"},
        {{.cfg_key = "model_type", .cfg_val = "\"clip_text_model\""}, NGPT_ERR_UNSUPPORTED, "clip_text_model"},
        {{.cfg_key = "position_embedding_type", .cfg_val = "\"relative_key\""}, NGPT_ERR_UNSUPPORTED, "relative_key"},
        {{.cfg_key = "num_attention_heads", .cfg_val = "5"}, NGPT_ERR_BAD_FORMAT, "num_attention_heads"},
        {{.cfg_key = "num_hidden_layers", .cfg_val = "3"}, NGPT_ERR_NOT_FOUND, "layer.2."},
        {{.cfg_key = "projection_dim", .cfg_val = "512"}, NGPT_ERR_SHAPE_MISMATCH, "text_projection.linear1"},
        {{.cfg_key = "max_position_embeddings", .cfg_val = "2"}, NGPT_ERR_BAD_FORMAT, "pad_token_id"},
        {{.cfg_key = "vocab_size", .cfg_val = "\"many\""}, NGPT_ERR_BAD_FORMAT, "vocab_size"},
        {{.truncate = true}, NGPT_ERR_BAD_FORMAT, "model.safetensors"},
        {{.no_model = true}, NGPT_ERR_NOT_FOUND, "model.safetensors"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        te_copy(dst, &cases[i].e);
        CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE), cases[i].st, cases[i].needle);
        CHECK(d == NULL);
        rm_tree(dst);
    }
    /* config.json that is not JSON */
    test_edit none = {0};
    te_copy(dst, &none);
    char p[1000];
    snprintf(p, sizeof p, "%s/text_encoder/config.json", dst);
    test_write_text(p, "{\"hidden_size\": ");
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE), NGPT_ERR_BAD_FORMAT, "config.json");
    rm_tree(dst);
    /* the unedited copy loads */
    te_copy(dst, &none);
    CHECK_OK(open_dec(&d, dst, NGPT_DECODER_AUDIO, TE));
    CHECK(ngpt_decoder_text_hidden_size(d) == 24 && ngpt_decoder_text_max_length(d) == 512);
    ngpt_decoder_free(d);
    d = NULL;
    rm_tree(dst);
    /* a CLIP text encoder in an AUDIO decoder, and the other way round */
    CHECK_ERR(open_dec(&d, g_clip, NGPT_DECODER_AUDIO, TE), NGPT_ERR_UNSUPPORTED, "clap_text_model");
    CHECK_ERR(open_dec(&d, g_clap, NGPT_DECODER_IMAGE, TE), NGPT_ERR_BAD_FORMAT,
              "model_index.json describes the audio decoder, not the image one");
    /* without a model_index.json the named kind is taken, and the text encoder's config refuses */
    tok_copy(dst, NULL);
    CHECK_ERR(open_dec(&d, dst, NGPT_DECODER_IMAGE, TE), NGPT_ERR_UNSUPPORTED, "clip_text_model");
    rm_tree(dst);
}

static float norm2(const float *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return (float)sqrt(s);
}

static void test_text_api(void)
{
    ngpt_decoder *d = NULL;
    CHECK_OK(open_dec(&d, g_clap, NGPT_DECODER_AUTO, 0));  /* model_index.json: AudioLDMPipeline */
    if (!d) return;
    CHECK(ngpt_decoder_get_kind(d) == NGPT_DECODER_AUDIO);
    CHECK(d->uncond && d->uncond_len == 1);  /* computed at create */
    ngpt_tensor a = {0}, b = {0};
    CHECK_OK(ngpt_decoder_encode_text(d, &a, ""));
    CHECK(a.dtype == NGPT_DTYPE_F32 && a.rank == 2 && a.shape[0] == 1 && a.shape[1] == 24);
    CHECK(a.data && fabsf(norm2(a.data, 24) - 1.0f) < 1e-5f);
    /* "" padded to 512 under the mask == the unpadded "" computed at create */
    const float *e = NULL;
    CHECK_OK(nx_decoder_uncond(d, 512, &e));
    CHECK(e == d->uncond);
    CHECK(a.data && e && test_close("uncond", e, a.data, 24, 1e-6f, 1e-5f));
    ngpt_tensor_free(&a);
    /* masked ids: the padding does not change the result */
    int32_t ids[2][6] = {{0, 40, 50, 2, 1, 1}, {0, 40, 50, 2, 1, 1}}, mask[2][6] = {{1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 0, 0}};
    ngpt_tensor ti = {.dtype = NGPT_DTYPE_I32, .rank = 2, .shape = {2, 6}, .data = ids};
    ngpt_tensor tm = {.dtype = NGPT_DTYPE_I32, .rank = 2, .shape = {2, 6}, .data = mask};
    CHECK_OK(ngpt_decoder_encode_text_masked(d, &a, &ti, &tm));
    CHECK(a.rank == 2 && a.shape[0] == 2 && a.shape[1] == 24);
    int32_t ids4[4] = {0, 40, 50, 2};
    ngpt_tensor t4 = {.dtype = NGPT_DTYPE_I32, .rank = 2, .shape = {1, 4}, .data = ids4};
    CHECK_OK(ngpt_decoder_encode_text_ids(d, &b, &t4));
    CHECK(a.data && b.data && test_close("masked", a.data, b.data, 24, 1e-6f, 1e-5f) &&
          test_close("batch", (float *)a.data + 24, b.data, 24, 1e-6f, 1e-5f));
    ngpt_tensor_free(&a);
    ngpt_tensor_free(&b);
    /* errors */
    tm.shape[1] = 5;
    CHECK_ERR(ngpt_decoder_encode_text_masked(d, &a, &ti, &tm), NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_encode_text_masked: attention_mask");
    tm.shape[1] = 6;
    mask[1][2] = 2;
    CHECK_ERR(ngpt_decoder_encode_text_masked(d, &a, &ti, &tm), NGPT_ERR_INVALID_ARGUMENT, "attention_mask");
    float fm[12] = {0};
    ngpt_tensor tf = {.dtype = NGPT_DTYPE_F32, .rank = 2, .shape = {2, 6}, .data = fm};
    CHECK_ERR(ngpt_decoder_encode_text_masked(d, &a, &ti, &tf), NGPT_ERR_DTYPE_MISMATCH, "attention_mask");
    ids4[2] = 100000;
    CHECK_ERR(ngpt_decoder_encode_text_ids(d, &b, &t4), NGPT_ERR_INVALID_ARGUMENT, "100000");
    int64_t many[513] = {0};
    ngpt_tensor tmany = {.dtype = NGPT_DTYPE_I64, .rank = 2, .shape = {1, 513}, .data = many};
    CHECK_ERR(ngpt_decoder_encode_text_ids(d, &b, &tmany), NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_encode_text_ids: input_ids [1, 513]");
    int32_t big[513];
    CHECK_ERR(ngpt_decoder_tokenize_text(d, big, 513, "a", NULL), NGPT_ERR_INVALID_ARGUMENT, "n_ids");
    CHECK_ERR(ngpt_decoder_encode_text(d, &b, "\xff"), NGPT_ERR_INVALID_ARGUMENT, "UTF-8");
    ngpt_decoder_free(d);
    /* a mask on a CLIP text encoder */
    d = NULL;
    CHECK_OK(open_dec(&d, g_clip, NGPT_DECODER_IMAGE, NGPT_DECODER_TEXT_ENCODER));
    if (d) CHECK_ERR(ngpt_decoder_encode_text_masked(d, &a, &t4, &t4), NGPT_ERR_UNSUPPORTED, "mask");
    ngpt_decoder_free(d);
}

/* ---- generate without uncond: audioldm-a's UNet/VAE/vocoder + clap-a's text branch ---- */

static const char *const k_parts[] = {"model_index.json", "unet", "vae", "vocoder", "scheduler", "text_encoder",
                                      "tokenizer"};

static void pipeline(const char *dst)
{
    char a[1400], b[1400];
    mkdir(dst, 0700);
    for (int i = 0; i < 7; i++) {
        snprintf(a, sizeof a, "%s/%s", i < 5 ? g_aldm : g_clap, k_parts[i]);
        snprintf(b, sizeof b, "%s/%s", dst, k_parts[i]);
        CHECK(symlink(a, b) == 0);
    }
}

static void pipeline_rm(const char *dst)
{
    char p[1400];
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", dst, k_parts[i]);
        unlink(p);
    }
    rmdir(dst);
}

static void test_generate_without_uncond(void)
{
    char dst[800];
    snprintf(dst, sizeof dst, "%s/pipe", g_tmp);
    pipeline(dst);
    ngpt_decoder *d = NULL;
    CHECK_OK(open_dec(&d, dst, NGPT_DECODER_AUTO, 0));
    if (!d) {
        pipeline_rm(dst);
        return;
    }
    CHECK(ngpt_decoder_get_kind(d) == NGPT_DECODER_AUDIO && ngpt_decoder_text_hidden_size(d) == 24);
    ngpt_decode_params p;
    ngpt_decode_params_default(&p, sizeof p);
    p.num_inference_steps = 2;
    p.guidance_scale = 7.5f;
    p.audio_length_s = 0.08;
    p.seed = 7;
    ngpt_tensor cond = {0}, empty = {0}, x = {0}, y = {0};
    CHECK_OK(ngpt_decoder_encode_text(d, &cond, "A dog barking in the distance"));
    CHECK_OK(ngpt_decoder_encode_text(d, &empty, ""));
    memcpy(empty.data, d->uncond, 24 * sizeof(float));  /* bit-identical to what generate uses */
    CHECK_OK(ngpt_decoder_generate(d, &x, NULL, &cond, NULL, &p));  /* uncond = CLAP("") */
    CHECK_OK(ngpt_decoder_generate(d, &y, NULL, &cond, &empty, &p));
    CHECK(x.rank == 2 && x.shape[0] == 1 && x.shape[1] == 1280);
    CHECK(x.data && y.data && ngpt_tensor_nbytes(&x) == ngpt_tensor_nbytes(&y) &&
          memcmp(x.data, y.data, ngpt_tensor_nbytes(&x)) == 0);
    ngpt_tensor_free(&x);
    ngpt_tensor_free(&y);
    /* batch 2: repeated over the batch */
    float c2[48], u2[48];
    for (int b = 0; b < 2; b++) {
        memcpy(c2 + 24 * b, cond.data, 24 * sizeof(float));
        memcpy(u2 + 24 * b, empty.data, 24 * sizeof(float));
    }
    ngpt_tensor tc = {.dtype = NGPT_DTYPE_F32, .rank = 2, .shape = {2, 24}, .data = c2};
    ngpt_tensor tu = {.dtype = NGPT_DTYPE_F32, .rank = 2, .shape = {2, 24}, .data = u2};
    CHECK_OK(ngpt_decoder_generate(d, &x, NULL, &tc, NULL, &p));
    CHECK_OK(ngpt_decoder_generate(d, &y, NULL, &tc, &tu, &p));
    CHECK(x.data && y.data && x.shape[0] == 2 && memcmp(x.data, y.data, ngpt_tensor_nbytes(&x)) == 0);
    ngpt_tensor_free(&y);
    /* the audio output projector's [B, 1, D] (cond and uncond) is taken as [B, D]; [B, 2, D] is not */
    ngpt_tensor tc3 = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {2, 1, 24}, .data = c2};
    ngpt_tensor tu3 = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {2, 1, 24}, .data = u2};
    CHECK_OK(ngpt_decoder_generate(d, &y, NULL, &tc3, &tu3, &p));
    CHECK(x.data && y.data && y.rank == 2 && y.shape[0] == 2 && memcmp(x.data, y.data, ngpt_tensor_nbytes(&x)) == 0);
    ngpt_tensor_free(&y);
    ngpt_tensor tc_bad = {.dtype = NGPT_DTYPE_F32, .rank = 3, .shape = {1, 2, 24}, .data = c2};
    CHECK_ERR(ngpt_decoder_generate(d, &y, NULL, &tc_bad, NULL, &p), NGPT_ERR_SHAPE_MISMATCH, "cond");
    ngpt_tensor_free(&x);
    ngpt_decoder_free(d);
    d = NULL;
    /* NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER: the "" embedding is kept, the text encoder freed */
    test_release_text_encoder(g_ctx, dst, 24, 512, &cond, &empty, &p);
    /* without the text encoder, uncond stays required */
    CHECK_OK(open_dec(&d, dst, NGPT_DECODER_AUTO, NGPT_DECODER_UNET | NGPT_DECODER_VAE | NGPT_DECODER_VOCODER));
    if (d) CHECK_ERR(ngpt_decoder_generate(d, &x, NULL, &cond, NULL, &p), NGPT_ERR_UNSUPPORTED, "pass uncond");
    ngpt_decoder_free(d);
    ngpt_tensor_free(&cond);
    ngpt_tensor_free(&empty);
    pipeline_rm(dst);
}

/* ---- allocation failures ---- */

static ngpt_status load_tok(void *u)
{
    (void)u;
    char dir[1000];
    snprintf(dir, sizeof dir, "%s/tokenizer", g_clap);
    nx_clip_bpe *t = NULL;
    ngpt_status s = nx_bpe_load(&t, dir, NX_BPE_ROBERTA);
    int32_t ids[64];
    if (s == NGPT_OK) s = nx_clip_bpe_tokenize(t, "It's a DOG barking!! \u732b \U0001f431 <mask> </s>  ", ids, 64, NULL);
    nx_clip_bpe_free(t);
    return s;
}

static ngpt_status load_encode(void *u)
{
    (void)u;
    ngpt_decoder *d = NULL;
    ngpt_status s = open_dec(&d, g_clap, NGPT_DECODER_AUDIO, NGPT_DECODER_TEXT_ENCODER);
    ngpt_tensor y = {0};
    int32_t ids[6] = {0, 40, 50, 2, 1, 1}, mask[6] = {1, 1, 1, 1, 0, 0};  /* short: the masked path */
    ngpt_tensor ti = {.dtype = NGPT_DTYPE_I32, .rank = 2, .shape = {1, 6}, .data = ids};
    ngpt_tensor tm = {.dtype = NGPT_DTYPE_I32, .rank = 2, .shape = {1, 6}, .data = mask};
    if (s == NGPT_OK) s = ngpt_decoder_encode_text_masked(d, &y, &ti, &tm);
    ngpt_tensor_free(&y);
    ngpt_decoder_free(d);
    return s;
}

static void test_alloc_fail(void)
{
    CHECK(test_alloc_fail_all("roberta tokenizer load + tokenize", load_tok, NULL) > 5);
    CHECK_OK(load_encode(NULL));  /* warm the backend's per-shape GEMM primitive cache (owned by ctx) */
    CHECK(test_alloc_fail_all("clap text encoder load + uncond + encode", load_encode, NULL) > 10);
}

int main(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    const char *root = getenv("NGPT_SOURCE_ROOT");
    if (!root) root = ".";
    snprintf(g_clap, sizeof g_clap, "%s/tests/golden/models/clap-a", root);
    snprintf(g_clip, sizeof g_clip, "%s/tests/golden/models/clip-a", root);
    if (g) snprintf(g_aldm, sizeof g_aldm, "%s/models/audioldm-a", g);
    else snprintf(g_aldm, sizeof g_aldm, "%s/../shared/golden/models/audioldm-a", root);
    if (access(g_clap, R_OK) != 0) {
        fprintf(stderr, "tests/golden/models/clap-a not found under %s: skipping\n", root);
        return TEST_SKIP;
    }
    char *r1 = realpath(g_clap, NULL), *r2 = realpath(g_clip, NULL), *r3 = realpath(g_aldm, NULL);
    if (r1) snprintf(g_clap, sizeof g_clap, "%s", r1);
    if (r2) snprintf(g_clip, sizeof g_clip, "%s", r2);
    if (r3) snprintf(g_aldm, sizeof g_aldm, "%s", r3);
    free(r1);
    free(r2);
    free(r3);
    snprintf(g_tmp, sizeof g_tmp, "%s/ngpt_test_clap_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    if (!(g_ctx = test_cpu_context(2))) return 1;
    RUN(test_tokenizer);
    RUN(test_tokenizer_load_errors);
    RUN(test_encoder_load_errors);
    RUN(test_text_api);
    if (access(g_aldm, R_OK) == 0) RUN(test_generate_without_uncond);
    else fprintf(stderr, "the shared audioldm-a model is not at %s: generate test skipped\n", g_aldm);
    RUN(test_alloc_fail);
    ngpt_context_free(g_ctx);
    rmdir(g_tmp);
    return test_done();
}
