/* test_fuzz.c — mutation fuzzing of the parsers that read files a user hands us: safetensors
 * (length prefix, header JSON, offsets), torch zip checkpoints and the restricted pickle VM,
 * SentencePiece's protobuf model, scheduler and model config JSON (LLaMA, UNet 2-D/3-D, VAE: a
 * config that parses must still match its weights, or say which tensor does not), and media —
 * JPEG and PNG (every colour type we ship a fixture of), WAV/FLAC/OGG and MP4/WebM made by the
 * library's own encoders — through the public decode + preprocess calls.
 *
 * Each seed (a valid file) is mutated many times — bytes flipped, cut short, lengths and counts
 * overwritten with extreme integers, chunks dropped or repeated — and every mutant must give
 * NGPT_OK (then whatever it loaded is exercised) or an error carrying a message, without leaking
 * a block. Crashes and out-of-bounds reads are what the ASan/UBSan build of CI is there to catch.
 * Deterministic (fixed seeds); NGPT_FUZZ_ITERS=N runs N mutants per seed (default 300). */
#include "test.h"

#include "core/alloc.h"
#include "core/weights.h"
#include "models/llama.h"
#include "models/unet.h"
#include "models/vae.h"
#include "ops/backend.h"
#include "tokenizer/sentencepiece.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static int g_iters = 300;
static char g_tmp[512];
static test_rng g_rng = {0x243f6a8885a308d3ull};

static bool write_all(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint64_t rnd(uint64_t n) { return n ? test_rng_u64(&g_rng) % n : 0; }

/* A mutant of seed[0, n) in out (capacity 2n + 64); returns its length. `hot` bytes at the start
 * (a header) draw half of the point mutations. */
static size_t mutate(const unsigned char *seed, size_t n, unsigned char *out, size_t hot)
{
    memcpy(out, seed, n);
    size_t m = n;
    static const uint64_t extremes[] = {0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffffull, 0xffffffffull,
                                        0x7fffffffffffffffull, 0xffffffffffffffffull, 0x100000000ull, 4096};
    const int rounds = 1 + (int)rnd(3);
    for (int r = 0; r < rounds && m > 0; r++) {
        size_t at = (hot && hot < m && rnd(2)) ? rnd(hot) : rnd(m);
        switch (rnd(6)) {
        case 0: /* flip bits */
            out[at] ^= (unsigned char)(1u << rnd(8));
            break;
        case 1: /* a random byte */
            out[at] = (unsigned char)rnd(256);
            break;
        case 2: /* cut short */
            m = at;
            break;
        case 3: { /* an extreme integer over 1, 2, 4 or 8 bytes, little endian */
            uint64_t v = extremes[rnd(sizeof extremes / sizeof extremes[0])];
            size_t w = (size_t)1 << rnd(4);
            for (size_t k = 0; k < w && at + k < m; k++) out[at + k] = (unsigned char)(v >> (8 * k));
            break;
        }
        case 4: { /* drop a chunk */
            size_t len = 1 + rnd(m - at < 64 ? m - at : 64);
            memmove(out + at, out + at + len, m - at - len);
            m -= len;
            break;
        }
        default: { /* repeat a chunk (the buffer holds 2n + 64) */
            size_t len = 1 + rnd(m - at < 64 ? m - at : 64);
            if (m + len > 2 * n + 64) break;
            memmove(out + at + len, out + at, m - at);
            m += len;
            break;
        }
        }
    }
    return m;
}

/* An error must say what went wrong. */
static void check_status(const char *what, int iter, ngpt_status st)
{
    if (st == NGPT_OK) return;
    const char *msg = ngpt_last_error();
    CHECK_MSG(msg && msg[0], "%s mutant %d: %s without a message", what, iter, ngpt_status_string(st));
}

/* ---- checkpoints: safetensors and torch zip ---- */

static void use_weights(nx_weights *w)
{
    for (size_t i = 0; i < nx_weights_count(w); i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        int64_t numel = 1;
        for (int d = 0; d < t->rank; d++) numel *= t->shape[d];
        if (numel < 0 || numel > (1 << 20)) continue;
        float *dst = malloc((size_t)(numel ? numel : 1) * sizeof(float));
        if (dst) nx_wtensor_to_f32(t, dst);
        free(dst);
        const nx_wtensor *got = NULL;
        const int64_t shape[2] = {-1, 3};
        (void)nx_weights_get(w, t->name, 0, 2, shape, &got); /* shape errors are expected */
    }
    (void)nx_weights_check_unused(w);
}

static void fuzz_checkpoint(const char *what, const unsigned char *seed, size_t n, size_t hot, const char *ext)
{
    char path[600];
    snprintf(path, sizeof path, "%s/mutant%s", g_tmp, ext);
    unsigned char *buf = malloc(2 * n + 64);
    int ok = 0;
    for (int it = 0; buf && it < g_iters; it++) {
        size_t m = mutate(seed, n, buf, hot);
        if (!write_all(path, buf, m)) { CHECK_MSG(0, "cannot write %s", path); break; }
        const int64_t blocks = nx_alloc_blocks();
        nx_weights *w = NULL;
        ngpt_status st = nx_weights_open(&w, path);
        check_status(what, it, st);
        if (st == NGPT_OK) {
            ok++;
            use_weights(w);
            nx_weights_close(w);
        }
        CHECK_MSG(nx_alloc_blocks() == blocks, "%s mutant %d: leaked %lld blocks", what, it,
                  (long long)(nx_alloc_blocks() - blocks));
    }
    fprintf(stderr, "  %s: %d mutants, %d opened\n", what, g_iters, ok);
    free(buf);
    unlink(path);
}

static void test_safetensors(void)
{
    /* a seed with every dtype the reader knows, odd sizes and metadata */
    float f32[12];
    for (int i = 0; i < 12; i++) f32[i] = (float)i - 5.5f;
    uint16_t f16[5] = {0x3c00, 0xbc00, 0x7bff, 0x0001, 0x7e00}, bf16[8] = {0x3f80, 0xc000, 0, 1, 2, 3, 4, 5};
    int64_t i64[2] = {-1, 1LL << 40};
    uint8_t u8[7] = {0, 1, 2, 3, 254, 255, 7};
    const int64_t s0[2] = {3, 4}, s1[1] = {5}, s2[3] = {2, 2, 2}, s3[1] = {2}, s4[1] = {7};
    const nx_st_entry e[5] = {
        {"model.layers.0.self_attn.q_proj.weight", NGPT_DTYPE_F32, 2, s0, f32},
        {"h", NGPT_DTYPE_F16, 1, s1, f16},
        {"b.bf", NGPT_DTYPE_BF16, 3, s2, bf16},
        {"ids", NGPT_DTYPE_I64, 1, s3, i64},
        {"mask", NGPT_DTYPE_U8, 1, s4, u8},
    };
    const char *meta[4] = {"format", "pt", "note", "seed"};
    char path[600];
    snprintf(path, sizeof path, "%s/seed.safetensors", g_tmp);
    CHECK_OK(nx_safetensors_write(path, e, 5, meta, 2));
    size_t n = 0;
    unsigned char *seed = test_read_file(path, &n);
    CHECK(seed != NULL);
    if (seed) {
        /* the 8-byte length and the header JSON are where the parsing is */
        uint64_t hdr = 0;
        for (int k = 0; k < 8; k++) hdr |= (uint64_t)seed[k] << (8 * k);
        fuzz_checkpoint("safetensors", seed, n, (size_t)(8 + hdr), ".safetensors");
    }
    free(seed);
    unlink(path);
}

static void test_torch_zip(void)
{
    const char *root = getenv("NGPT_SOURCE_ROOT");
    const char *files[2] = {"tests/data/torch_nested.pt", "tests/data/bad/pkl_ok_tiny.pt"};
    for (int f = 0; f < 2; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", root ? root : ".", files[f]);
        size_t n = 0;
        unsigned char *seed = test_read_file(path, &n);
        CHECK_MSG(seed != NULL, "cannot read %s", path);
        if (seed) fuzz_checkpoint(files[f], seed, n, 0, ".pt");
        free(seed);
    }
}

/* ---- SentencePiece model (our protobuf reader) ---- */

static void test_sentencepiece(void)
{
    const char *root = getenv("NGPT_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/../shared/golden/models/llama-a/tokenizer.model", root ? root : ".");
    size_t n = 0;
    unsigned char *seed = test_read_file(path, &n);
    if (!seed) {
        fprintf(stderr, "  %s not found: SentencePiece fuzzing skipped\n", path);
        return;
    }
    static const char *texts[] = {"Hello world", "  leading\tand\n\nnewlines  ", "数字 123 and emoji 🙂",
                                  "\xff\xfe broken \xc3 utf-8", ""};
    unsigned char *buf = malloc(2 * n + 64);
    int ok = 0;
    for (int it = 0; buf && it < g_iters; it++) {
        size_t m = mutate(seed, n, buf, 0);
        const int64_t blocks = nx_alloc_blocks();
        nx_sp_model *sp = NULL;
        ngpt_status st = nx_sp_load_buf(&sp, buf, m, "mutant tokenizer.model");
        check_status("tokenizer.model", it, st);
        if (st == NGPT_OK) {
            ok++;
            for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
                nx_i32vec ids = {0};
                ngpt_status se = nx_sp_encode(sp, texts[k], strlen(texts[k]), &ids);
                check_status("encode", it, se);
                nx_strbuf out = {0};
                if (se == NGPT_OK) check_status("decode", it, nx_sp_decode(sp, ids.v, ids.n, &out));
                const int32_t bad[2] = {-1, nx_sp_size(sp)};
                CHECK(nx_sp_decode(sp, bad, 2, &out) == NGPT_ERR_INVALID_ARGUMENT);
                nx_free(ids.v);
                nx_free(out.s);
            }
            nx_sp_free(sp);
        }
        CHECK_MSG(nx_alloc_blocks() == blocks, "tokenizer.model mutant %d: leaked", it);
    }
    fprintf(stderr, "  tokenizer.model: %d mutants, %d loaded\n", g_iters, ok);
    free(buf);
    free(seed);
}

/* ---- JSON configs ---- */

static void test_configs(void)
{
    static const char sched[] =
        "{\"_class_name\": \"PNDMScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012, \"beta_schedule\": "
        "\"scaled_linear\", \"num_train_timesteps\": 1000, \"skip_prk_steps\": true, \"steps_offset\": 1, "
        "\"set_alpha_to_one\": false, \"clip_sample\": false, \"prediction_type\": \"epsilon\", "
        "\"solver_order\": 2, \"lambda_min_clipped\": -Infinity}";
    static const char llama[] =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 172, "
        "\"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"num_key_value_heads\": 4, \"rms_norm_eps\": 1e-06, "
        "\"rope_theta\": 10000.0, \"vocab_size\": 32000, \"max_position_embeddings\": 2048, \"bos_token_id\": 1, "
        "\"eos_token_id\": 2, \"torch_dtype\": \"float16\", \"model_type\": \"llama\"}";
    const size_t ns = sizeof sched - 1, nl = sizeof llama - 1;
    unsigned char *buf = malloc(2 * (ns > nl ? ns : nl) + 64);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/llama", g_tmp);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK(mkdir(dir, 0700) == 0);
    const ngpt_scheduler_kind kinds[13] = {NGPT_SCHEDULER_AUTO, NGPT_SCHEDULER_DDIM, NGPT_SCHEDULER_DPMSOLVER_MULTISTEP,
                                           NGPT_SCHEDULER_EULER, NGPT_SCHEDULER_EULER_ANCESTRAL, NGPT_SCHEDULER_HEUN,
                                           NGPT_SCHEDULER_UNIPC_MULTISTEP, NGPT_SCHEDULER_LMS, NGPT_SCHEDULER_KDPM2,
                                           NGPT_SCHEDULER_KDPM2_ANCESTRAL, NGPT_SCHEDULER_DEIS_MULTISTEP,
                                           NGPT_SCHEDULER_DDPM, NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP};
    int ok_s = 0, ok_l = 0;
    for (int it = 0; buf && it < g_iters; it++) {
        const int64_t blocks = nx_alloc_blocks();
        size_t m = mutate((const unsigned char *)sched, ns, buf, 0);
        ngpt_scheduler_params p;
        ngpt_scheduler_params_default(&p, sizeof p);
        p.kind = kinds[it % 13];
        ngpt_scheduler *s = NULL;
        ngpt_status st = ngpt_scheduler_create_from_json(&s, (const char *)buf, m, &p);
        check_status("scheduler_config.json", it, st);
        if (st == NGPT_OK) {
            ok_s++;
            float x[8] = {0}, e[8] = {1, -1, 2, -2, 0.5f, 0, 3, 1};
            const double *ts = NULL;
            size_t nts = 0;
            if (ngpt_scheduler_set_timesteps(s, 7) == NGPT_OK && ngpt_scheduler_timesteps_f64(s, &ts, &nts) == NGPT_OK)
                for (size_t k = 0; k < nts; k++)
                    check_status("scheduler step", it, ngpt_scheduler_step_f64(s, e, ts[k], x, 8, e));
            ngpt_scheduler_free(s);
        }
        m = mutate((const unsigned char *)llama, nl, buf, 0);
        if (write_all(path, buf, m)) {
            nx_llama_config c;
            st = nx_llama_read_config(&c, dir);
            check_status("llama config.json", it, st);
            ok_l += st == NGPT_OK;
        }
        CHECK_MSG(nx_alloc_blocks() == blocks, "config mutant %d: leaked", it);
    }
    fprintf(stderr, "  scheduler_config.json: %d mutants, %d accepted; llama config.json: %d accepted\n", g_iters,
            ok_s, ok_l);
    unlink(path);
    rmdir(dir);
    free(buf);
}

/* A model folder's config.json mutated next to its real weights (linked), then loaded. */
typedef enum { MODEL_UNET, MODEL_VAE } model_kind;

static void fuzz_model_config(nx_backend *be, const char *src_dir, const char *weights, model_kind kind, int iters)
{
    char cfg[1100], dir[700], link_path[800], path[800];
    snprintf(cfg, sizeof cfg, "%s/config.json", src_dir);
    size_t n = 0;
    unsigned char *seed = test_read_file(cfg, &n);
    if (!seed) {
        fprintf(stderr, "  %s not found: skipped\n", cfg);
        return;
    }
    snprintf(dir, sizeof dir, "%s/model", g_tmp);
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(link_path, sizeof link_path, "%s/%s", dir, weights);
    char target[1200];
    snprintf(target, sizeof target, "%s/%s", src_dir, weights);
    CHECK(mkdir(dir, 0700) == 0);
    CHECK(symlink(target, link_path) == 0);
    unsigned char *buf = malloc(2 * n + 64);
    int ok = 0;
    for (int it = 0; buf && it < iters; it++) {
        size_t m = mutate(seed, n, buf, 0);
        if (!write_all(path, buf, m)) break;
        const int64_t blocks = nx_alloc_blocks();
        ngpt_status st;
        if (kind == MODEL_UNET) {
            nx_unet *u = NULL;
            st = nx_unet_load(&u, be, dir, NGPT_DTYPE_F32, false);
            nx_unet_free(u);
        } else {
            nx_vae *v = NULL;
            st = nx_vae_load(&v, be, dir, true, NGPT_DTYPE_F32, false);
            nx_vae_free(v);
        }
        check_status(src_dir, it, st);
        ok += st == NGPT_OK;
        CHECK_MSG(nx_alloc_blocks() == blocks, "%s config mutant %d: leaked", src_dir, it);
    }
    fprintf(stderr, "  %s/config.json: %d mutants, %d loaded\n", src_dir, iters, ok);
    unlink(path);
    unlink(link_path);
    rmdir(dir);
    free(buf);
    free(seed);
}

static void test_model_configs(void)
{
    const char *root = getenv("NGPT_SOURCE_ROOT");
    nx_pool *pool = NULL;
    nx_backend *be = NULL;
    CHECK_OK(nx_pool_create(&pool, 1));
    CHECK_OK(nx_cpu_backend_create(&be, pool, NULL));
    static const struct { const char *dir; model_kind kind; } m[] = {
        {"sd-a/unet", MODEL_UNET}, {"audioldm-a/unet", MODEL_UNET}, {"zeroscope-a/unet", MODEL_UNET},
        {"sd-a/vae", MODEL_VAE}, {"audioldm-a/vae", MODEL_VAE},
    };
    for (size_t i = 0; be && i < sizeof m / sizeof m[0]; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/../shared/golden/models/%s", root ? root : ".", m[i].dir);
        /* each load maps and checks the whole model: a third of the mutants */
        fuzz_model_config(be, dir, "diffusion_pytorch_model.safetensors", m[i].kind, g_iters / 3 + 1);
    }
    nx_backend_free(be);
    nx_pool_free(pool);
}

/* ---- media through the public API ---- */

static bool finite_all(const ngpt_tensor *t)
{
    const float *x = t->data;
    for (int64_t i = 0; i < ngpt_tensor_numel(t); i++)
        if (!isfinite(x[i])) return false;
    return true;
}


/* Give every whole chunk of a PNG mutant a correct CRC again, so that the mutation reaches the
 * parser and the pixel conversion instead of stopping at the checksum. */
static void png_fix_crcs(unsigned char *b, size_t n)
{
    size_t i = 8;
    while (i + 12 <= n) {
        const size_t len = (size_t)b[i] << 24 | (size_t)b[i + 1] << 16 | (size_t)b[i + 2] << 8 | b[i + 3];
        if (len > n - i - 12) break;
        const uint32_t c = test_crc32(b + i + 4, len + 4);
        b[i + 8 + len] = (unsigned char)(c >> 24), b[i + 9 + len] = (unsigned char)(c >> 16);
        b[i + 10 + len] = (unsigned char)(c >> 8), b[i + 11 + len] = (unsigned char)c;
        i += len + 12;
    }
}

static void fuzz_media(const char *what, test_media_kind kind, const unsigned char *seed, size_t n, size_t hot, int iters)
{
    unsigned char *buf = malloc(2 * n + 64);
    int ok = 0;
    for (int it = 0; buf && it < iters; it++) {
        size_t m = mutate(seed, n, buf, hot);
        if (kind == TEST_MEDIA_IMAGE && n > 8 && memcmp(seed, "\x89PNG", 4) == 0 && (it & 1)) png_fix_crcs(buf, m);
        const int64_t blocks = nx_alloc_blocks();
        ngpt_tensor t = {0};
        ngpt_status st = test_media_preprocess(kind, buf, m, what, &t);
        check_status(what, it, st);
        if (st == NGPT_OK) {
            ok++;
            CHECK_MSG(finite_all(&t), "%s mutant %d: non-finite preprocessed values", what, it);
        }
        ngpt_tensor_free(&t);
        CHECK_MSG(nx_alloc_blocks() == blocks, "%s mutant %d: leaked", what, it);
    }
    fprintf(stderr, "  %s: %d mutants, %d decoded\n", what, iters, ok);
    free(buf);
}

static void test_images(void)
{
    const char *root = getenv("NGPT_SOURCE_ROOT");
    static const char *files[] = {"progressive.jpg", "rgb_q90.jpg", "cmyk.jpg", "samp_3x1.jpg", "rgb.png",
                                  "palette4.png", "interlaced.png", "gray16.png", "rgba16.png"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/data/media/%s", root ? root : ".", files[f]);
        size_t n = 0;
        unsigned char *seed = test_read_file(path, &n);
        CHECK_MSG(seed != NULL, "cannot read %s", path);
        /* headers (JPEG markers and tables, PNG IHDR/PLTE) take half of the point mutations */
        if (seed) fuzz_media(files[f], TEST_MEDIA_IMAGE, seed, n, n < 600 ? n : 600, g_iters / 3 + 1);
        free(seed);
    }
}

static void test_audio_video(void)
{
    /* seeds made by the library's encoders: 0.3 s of a stereo chirp at 22050 Hz, 8 frames of 64x48 */
    enum { FR = 6615 };
    float *pcm = malloc(sizeof(float) * 2 * FR);
    for (int i = 0; pcm && i < FR; i++) {
        pcm[2 * i] = 0.5f * sinf(0.05f * (float)i + 1e-5f * (float)i * (float)i);
        pcm[2 * i + 1] = 0.25f * sinf(0.11f * (float)i);
    }
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, FR, 2, 22050));
    static const struct { ngpt_audio_format f; const char *name; } af[] = {
        {NGPT_AUDIO_FORMAT_WAV16, "wav16"}, {NGPT_AUDIO_FORMAT_WAV_FLOAT, "wav-float"},
        {NGPT_AUDIO_FORMAT_FLAC, "flac"}, {NGPT_AUDIO_FORMAT_OGG, "ogg"}};
    for (size_t i = 0; a && i < sizeof af / sizeof af[0]; i++) {
        ngpt_blob *b = NULL;
        CHECK_OK(ngpt_audio_encode(&b, a, af[i].f));
        if (b) fuzz_media(af[i].name, TEST_MEDIA_AUDIO, ngpt_blob_data(b), ngpt_blob_size(b), 200, g_iters / 3 + 1);
        ngpt_blob_free(b);
    }
    ngpt_audio_free(a);
    free(pcm);

    ngpt_tensor frames = {0};
    const int64_t fs[4] = {8, 48, 64, 3};
    CHECK_OK(ngpt_tensor_create(&frames, NGPT_DTYPE_U8, 4, fs));
    uint8_t *px = frames.data;
    for (int64_t i = 0; px && i < ngpt_tensor_numel(&frames); i++) px[i] = (uint8_t)((i * 7 + (i / 9216) * 31) & 0xff);
    static const struct { ngpt_video_format f; const char *name; } vf[] = {
        {NGPT_VIDEO_FORMAT_MP4, "mp4"}, {NGPT_VIDEO_FORMAT_WEBM, "webm"}};
    for (size_t i = 0; px && i < sizeof vf / sizeof vf[0]; i++) {
        if (!ngpt_media_video_codec(vf[i].f)) continue; /* no encoder in this FFmpeg build */
        ngpt_blob *b = NULL;
        CHECK_OK(ngpt_video_encode(&b, &frames, 8.0f, vf[i].f));
        /* each decode scales 30 frames to 224: a sixth of the mutants */
        if (b) fuzz_media(vf[i].name, TEST_MEDIA_VIDEO, ngpt_blob_data(b), ngpt_blob_size(b), 400, g_iters / 6 + 1);
        ngpt_blob_free(b);
    }
    ngpt_tensor_free(&frames);
}

int main(void)
{
    const char *it = getenv("NGPT_FUZZ_ITERS");
    if (it && atoi(it) > 0) g_iters = atoi(it);
    snprintf(g_tmp, sizeof g_tmp, "%s/ngpt_fuzz_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_safetensors);
    RUN(test_torch_zip);
    RUN(test_sentencepiece);
    RUN(test_configs);
    RUN(test_model_configs);
    RUN(test_images);
    RUN(test_audio_video);
    rmdir(g_tmp);
    return test_done();
}
