/* fuzz_configs.c — the JSON configs of a bundle, one mutated at a time beside the tiny bundle's
 * others: the language model's config.json and generation_config.json, ImageBind's and the
 * projectors' config.json, bundle.json, and each decoder's model_index.json, unet/, vae/,
 * text_encoder/, vocoder/ configs and scheduler_config.json. The part that reads the file is
 * created from the folder (backbone, encoder, projector or decoder: a config that disagrees with
 * the weights must be refused by name), and the memory estimate, which reads every config with
 * parsers of its own, runs over the whole bundle each time.
 * Input: one byte choosing the file (its index in k_files, modulo), then the file's bytes. */
#include "fuzz.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>

enum { K_LLM, K_ENC, K_PROJ, K_DEC, K_BUNDLE };

static const struct {
    const char *file; /* under the bundle */
    int kind;
    const char *dir;  /* the part's folder (K_DEC: the decoder's) */
} k_files[] = {
    {"llm/config.json", K_LLM, "llm"},
    {"llm/generation_config.json", K_LLM, "llm"},
    {"imagebind/config.json", K_ENC, "imagebind"},
    {"projectors/config.json", K_PROJ, "projectors"},
    {"bundle.json", K_BUNDLE, ""},
    {"decoders/image/model_index.json", K_DEC, "decoders/image"},
    {"decoders/image/unet/config.json", K_DEC, "decoders/image"},
    {"decoders/image/vae/config.json", K_DEC, "decoders/image"},
    {"decoders/image/text_encoder/config.json", K_DEC, "decoders/image"},
    {"decoders/image/scheduler/scheduler_config.json", K_DEC, "decoders/image"},
    {"decoders/audio/model_index.json", K_DEC, "decoders/audio"},
    {"decoders/audio/unet/config.json", K_DEC, "decoders/audio"},
    {"decoders/audio/vae/config.json", K_DEC, "decoders/audio"},
    {"decoders/audio/vocoder/config.json", K_DEC, "decoders/audio"},
    {"decoders/audio/text_encoder/config.json", K_DEC, "decoders/audio"},
    {"decoders/audio/scheduler/scheduler_config.json", K_DEC, "decoders/audio"},
    {"decoders/video/model_index.json", K_DEC, "decoders/video"},
    {"decoders/video/unet/config.json", K_DEC, "decoders/video"},
    {"decoders/video/vae/config.json", K_DEC, "decoders/video"},
    {"decoders/video/text_encoder/config.json", K_DEC, "decoders/video"},
    {"decoders/video/scheduler/scheduler_config.json", K_DEC, "decoders/video"},
};
enum { N_FILES = sizeof k_files / sizeof k_files[0] };

static char g_root[PATH_MAX], g_work[PATH_MAX]; /* the tiny bundle, and a copy of it made of links */
static ngpt_context *g_ctx;

static void cleanup(void)
{
    ngpt_context_free(g_ctx);
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_work);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_configs: could not remove %s\n", g_work);
}

static void setup_once(void)
{
    static int done;
    if (done++) return;
    const char *root = fuzz_tiny_bundle();
    FUZZ_REQUIRE(root && realpath(root, g_root), "no tiny bundle: set NGPT_TINY_BUNDLE");
    const char *tmp = getenv("TMPDIR");
    snprintf(g_work, sizeof g_work, "%s/ngpt_fuzz_cfg_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    FUZZ_REQUIRE(mkdtemp(g_work), "mkdtemp %s failed", g_work);
    /* every file a link to the bundle's (the weights stay where they are); a mutated config
     * replaces its link for one input */
    char cmd[2 * PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "cp -rs '%s/.' '%s/'", g_root, g_work);
    FUZZ_REQUIRE(system(cmd) == 0, "cannot link %s into %s", g_root, g_work);
    atexit(cleanup);
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = 1;
    cp.log_level = NGPT_LOG_ERROR;
    FUZZ_REQUIRE(ngpt_context_create(&g_ctx, &cp) == NGPT_OK, "context: %s", ngpt_last_error());
}

static bool write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return (fclose(f) == 0) & ok;
}

/* Create the part from its folder and free it; a refusal must say why. */
static void load_part(int kind, const char *dir)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", g_work, dir);
    ngpt_status st = NGPT_OK;
    if (kind == K_LLM) {
        ngpt_backbone *b = NULL;
        st = ngpt_backbone_create(&b, g_ctx, path, NULL);
        FUZZ_REQUIRE((st == NGPT_OK) == (b != NULL), "backbone: status %d with handle %p", (int)st, (void *)b);
        ngpt_backbone_free(b);
    } else if (kind == K_ENC) {
        ngpt_encoder *e = NULL;
        st = ngpt_encoder_create(&e, g_ctx, path, NULL);
        FUZZ_REQUIRE((st == NGPT_OK) == (e != NULL), "encoder: status %d with handle %p", (int)st, (void *)e);
        ngpt_encoder_free(e);
    } else if (kind == K_PROJ) {
        ngpt_projector *p = NULL;
        st = ngpt_projector_create(&p, g_ctx, path, NULL);
        FUZZ_REQUIRE((st == NGPT_OK) == (p != NULL), "projector: status %d with handle %p", (int)st, (void *)p);
        ngpt_projector_free(p);
    } else if (kind == K_DEC) {
        ngpt_decoder *d = NULL;
        st = ngpt_decoder_create(&d, g_ctx, path, NULL);
        FUZZ_REQUIRE((st == NGPT_OK) == (d != NULL), "decoder: status %d with handle %p", (int)st, (void *)d);
        ngpt_decoder_free(d);
    }
    fuzz_status(dir, st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    const size_t which = fuzz_take(&data, &size, 1) % N_FILES;
    char path[PATH_MAX + 64], orig[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", g_work, k_files[which].file);
    snprintf(orig, sizeof orig, "%s/%s", g_root, k_files[which].file);
    FUZZ_REQUIRE(unlink(path) == 0, "cannot replace %s", path);
    const bool written = write_file(path, data, size);

    const int64_t blocks = nx_alloc_blocks();
    if (written) {
        load_part(k_files[which].kind, k_files[which].dir);
        ngpt_memory_estimate *e = NULL;
        const ngpt_status st = ngpt_pipeline_estimate_memory(&e, g_work, NULL);
        fuzz_status("ngpt_pipeline_estimate_memory", st);
        FUZZ_REQUIRE((st == NGPT_OK) == (e != NULL), "estimate: status %d with %p", (int)st, (void *)e);
        ngpt_memory_estimate_free(e);
    }
    fuzz_no_leak(k_files[which].file, blocks);
    /* the next input starts from the bundle as it was */
    FUZZ_REQUIRE((unlink(path) == 0 || errno == ENOENT) && symlink(orig, path) == 0, "cannot restore %s", path);
    return 0;
}
