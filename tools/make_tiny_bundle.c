/* make_tiny_bundle.c — writes libnextgpt's embedded default model: a tiny NExT-GPT bundle with the
 * real layouts and tensor names of every stage and random weights.
 *
 *     make_tiny_bundle OUT_DIR SRC_DIR
 *
 * SRC_DIR is data/tiny: bundle/ (every config.json, model_index.json, scheduler config and the
 * tokenizer files, copied as they are) and tensors.txt (the safetensors files to write: a line
 * "file <path>" starts one, then one "<name> <dtype> <d0> <d1> ..." line per tensor, in file
 * order). OUT_DIR receives the copy, the weights, audio_uncond.safetensors and bundle.json.
 * Deterministic: each tensor's values come from a generator seeded by a hash of its file and
 * name, so the bundle is byte-identical on every machine. Takes well under a second.
 *
 *     make_tiny_bundle --cat FILE.jpg
 *
 * draws the 64x64 test picture committed as data/tiny/cat.jpg (a developer convenience).
 *
 * Values: I64 tensors (CLIP's position_ids) count 0, 1, ... along their last dimension; rank-1 "*.weight" tensors are normalisation scales (1), "*.bias" and a vocoder's
 * "mean" are 0, its "scale" 1; every other tensor is uniform in +-1/sqrt(fan_in) (fan_in = the
 * product of all but the first dimension), the usual default init, which keeps the random
 * network's activations finite through every stage.
 */
#include "nextgpt.h"

#include "core/dtype.h"
#include "core/weights.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "make_tiny_bundle: %s: %s%s%s\n", what, path, errno ? ": " : "", errno ? strerror(errno) : "");
    return 1;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return fail("mkdir", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return fail("mkdir", buf);
    errno = 0;
    return 0;
}

static int copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in) return fail("open", src);
    FILE *out = fopen(dst, "wb");
    if (!out) { fclose(in); return fail("create", dst); }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) { fclose(in); fclose(out); return fail("write", dst); }
    fclose(in);
    return fclose(out) == 0 ? 0 : fail("write", dst);
}

/* Copy the tree src into dst (regular files and folders). */
static int copy_tree(const char *src, const char *dst)
{
    if (mkdirs(dst)) return 1;
    DIR *d = opendir(src);
    if (!d) return fail("opendir", src);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char s[4096], t[4096];
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        struct stat st;
        if (stat(s, &st) != 0) { rc = fail("stat", s); break; }
        rc = S_ISDIR(st.st_mode) ? copy_tree(s, t) : copy_file(s, t);
    }
    closedir(d);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Deterministic values
 * ------------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = a; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *p = b; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Fill v[n] for tensor `name` of `file` (see the file comment for the rules). */
static void fill(float *v, int64_t n, const char *file, const char *name, int rank, const int64_t *shape)
{
    const char *leaf = strrchr(name, '.');
    leaf = leaf ? leaf + 1 : name;
    float c = NAN;
    if (ends_with(name, ".bias") || strcmp(leaf, "mean") == 0) c = 0.0f;
    else if (strcmp(leaf, "scale") == 0 || (rank == 1 && ends_with(name, ".weight"))) c = 1.0f;
    else if (rank == 0) c = 0.0f;
    if (!isnan(c)) {
        for (int64_t i = 0; i < n; i++) v[i] = c;
        return;
    }
    int64_t fan_in = 1;
    for (int i = 1; i < rank; i++) fan_in *= shape[i];
    if (rank <= 1) fan_in = 50;  /* embeddings-like vectors (cls tokens, biases of odd names): +-0.14 */
    float a = 1.0f / sqrtf((float)fan_in);
    uint64_t s = fnv1a(file, name);
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(splitmix64(&s) >> 11) * (1.0 / 9007199254740992.0);
        v[i] = (float)((2.0 * u - 1.0) * a);
    }
}

/* ---------------------------------------------------------------------------------------------
 * tensors.txt -> safetensors files
 * ------------------------------------------------------------------------------------------- */

typedef struct tensor_spec {
    char    name[256];
    ngpt_dtype dtype;
    int     rank;
    int64_t shape[NGPT_MAX_DIMS];
    void   *data;
} tensor_spec;

static int write_file(const char *out_dir, const char *rel, tensor_spec *t, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, rel);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) { *slash = 0; if (mkdirs(dir)) return 1; }
    nx_st_entry *e = calloc(n ? n : 1, sizeof *e);
    if (!e) return fail("out of memory", rel);
    for (size_t i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int k = 0; k < t[i].rank; k++) numel *= t[i].shape[k];
        if (t[i].dtype == NGPT_DTYPE_I64) {  /* position_ids: arange along the last dimension */
            int64_t *ids = malloc((size_t)(numel ? numel : 1) * sizeof *ids);
            if (!ids) { free(e); return fail("out of memory", t[i].name); }
            int64_t last = t[i].rank ? t[i].shape[t[i].rank - 1] : 1;
            for (int64_t k = 0; k < numel; k++) ids[k] = k % last;
            t[i].data = ids;
            e[i] = (nx_st_entry){t[i].name, t[i].dtype, t[i].rank, t[i].shape, t[i].data};
            continue;
        }
        float *v = malloc((size_t)(numel ? numel : 1) * sizeof *v);
        if (!v) { free(e); return fail("out of memory", t[i].name); }
        fill(v, numel, rel, t[i].name, t[i].rank, t[i].shape);
        if (t[i].dtype == NGPT_DTYPE_F16) {
            uint16_t *h = malloc((size_t)(numel ? numel : 1) * sizeof *h);
            if (!h) { free(v); free(e); return fail("out of memory", t[i].name); }
            nx_f32_to_f16_n(v, h, (size_t)numel);
            free(v);
            t[i].data = h;
        } else {
            t[i].data = v;
        }
        e[i] = (nx_st_entry){t[i].name, t[i].dtype, t[i].rank, t[i].shape, t[i].data};
    }
    const char *meta[] = {"format", "pt"};
    ngpt_status st = nx_safetensors_write(path, e, n, meta, 1);
    for (size_t i = 0; i < n; i++) { free(t[i].data); t[i].data = NULL; }
    free(e);
    if (st != NGPT_OK) { fprintf(stderr, "make_tiny_bundle: %s\n", ngpt_last_error()); return 1; }
    return 0;
}

static int write_tensors(const char *out_dir, const char *list)
{
    FILE *f = fopen(list, "r");
    if (!f) return fail("open", list);
    size_t cap = 4096, n = 0;
    tensor_spec *t = calloc(cap, sizeof *t);
    char cur[2048] = "", line[2048];
    int rc = 0, lineno = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "file ", 5) == 0) {
            if (cur[0]) rc = write_file(out_dir, cur, t, n);
            n = 0;
            snprintf(cur, sizeof cur, "%s", line + 5);
            continue;
        }
        if (!cur[0] || n == cap) { fprintf(stderr, "make_tiny_bundle: %s:%d: no file, or too many tensors\n", list, lineno); rc = 1; break; }
        tensor_spec *s = &t[n];
        char dt[16];
        int used = 0;
        if (sscanf(line, "%255s %15s%n", s->name, dt, &used) != 2) { fprintf(stderr, "make_tiny_bundle: %s:%d: bad line\n", list, lineno); rc = 1; break; }
        s->dtype = strcmp(dt, "F16") == 0 ? NGPT_DTYPE_F16 : strcmp(dt, "I64") == 0 ? NGPT_DTYPE_I64 : NGPT_DTYPE_F32;
        if (strcmp(dt, "F16") != 0 && strcmp(dt, "F32") != 0 && strcmp(dt, "I64") != 0) { fprintf(stderr, "make_tiny_bundle: %s:%d: dtype %s\n", list, lineno, dt); rc = 1; break; }
        s->rank = 0;
        char *p = line + used;
        for (;;) {
            char *end;
            long long d = strtoll(p, &end, 10);
            if (end == p) break;
            if (s->rank == NGPT_MAX_DIMS) { rc = 1; break; }
            s->shape[s->rank++] = d;
            p = end;
        }
        n++;
    }
    if (!rc && cur[0]) rc = write_file(out_dir, cur, t, n);
    fclose(f);
    free(t);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * bundle.json, the audio decoder's unconditional embedding, the test picture
 * ------------------------------------------------------------------------------------------- */

static const char *k_manifest =
    "{\n"
    "  \"format\": \"nextgpt-bundle\",\n"
    "  \"version\": 1,\n"
    "  \"name\": \"libnextgpt tiny test model\",\n"
    "  \"random_weights\": true,\n"
    "  \"note\": \"The real NExT-GPT architecture at tiny sizes with random weights: its answers and media are noise. For tests and for trying the library without downloads.\",\n"
    "  \"llm\": \"llm\",\n"
    "  \"delta\": null,\n"
    "  \"imagebind\": \"imagebind\",\n"
    "  \"projectors\": \"projectors\",\n"
    "  \"decoders\": {\n"
    "    \"image\": \"decoders/image\",\n"
    "    \"audio\": \"decoders/audio\",\n"
    "    \"video\": \"decoders/video\"\n"
    "  },\n"
    "  \"audio_uncond\": \"audio_uncond.safetensors\"\n"
    "}\n";

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) return fail("create", path);
    fputs(text, f);
    return fclose(f) == 0 ? 0 : fail("write", path);
}

/* The audio decoder's negative conditioning (NExT-GPT: CLAP's L2-normalised embedding of ""): a
 * fixed unit vector of the tiny AudioLDM's class-embedding width (24). */
static int write_audio_uncond(const char *out_dir)
{
    enum { D = 24 };
    float v[D];
    double norm = 0;
    uint64_t s = 7;
    for (int i = 0; i < D; i++) {
        v[i] = (float)((double)(splitmix64(&s) >> 11) / 9007199254740992.0 - 0.5);
        norm += (double)v[i] * v[i];
    }
    for (int i = 0; i < D; i++) v[i] = (float)(v[i] / sqrt(norm));
    int64_t shape[2] = {1, D};
    nx_st_entry e = {"uncond", NGPT_DTYPE_F32, 2, shape, v};
    char path[4096];
    snprintf(path, sizeof path, "%s/audio_uncond.safetensors", out_dir);
    if (nx_safetensors_write(path, &e, 1, NULL, 0) != NGPT_OK) {
        fprintf(stderr, "make_tiny_bundle: %s\n", ngpt_last_error());
        return 1;
    }
    return 0;
}

static int draw_cat(const char *path)
{
    enum { W = 64, H = 64 };
    static uint8_t px[H][W][3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = px[y][x];
            p[0] = 200; p[1] = 170; p[2] = 120;                                 /* background */
            float dx = (x - 32) / 20.0f, dy = (y - 36) / 20.0f;
            int head = dx * dx + dy * dy <= 1.0f;
            int ear = (y >= 6 && y < 22) && ((abs(x - 20) <= (y - 6) / 2) || (abs(x - 44) <= (y - 6) / 2));
            if (head || ear) { p[0] = 90; p[1] = 70; p[2] = 50; }
            float ex1 = (x - 25) * (x - 25) + (y - 31) * (y - 31), ex2 = (x - 39) * (x - 39) + (y - 31) * (y - 31);
            if (ex1 <= 9 || ex2 <= 9) { p[0] = 30; p[1] = 160; p[2] = 60; }   /* eyes */
            if ((x - 32) * (x - 32) + (y - 40) * (y - 40) <= 4) { p[0] = 220; p[1] = 120; p[2] = 140; }
        }
    ngpt_image *img = NULL;
    if (ngpt_image_from_rgb8(&img, &px[0][0][0], W, H, 0) != NGPT_OK ||
        ngpt_image_save(img, path, NGPT_IMAGE_FORMAT_JPEG, 90, 0) != NGPT_OK) {
        fprintf(stderr, "make_tiny_bundle: %s\n", ngpt_last_error());
        ngpt_image_free(img);
        return 1;
    }
    ngpt_image_free(img);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--cat") == 0) return draw_cat(argv[2]);
    if (argc != 3) {
        fprintf(stderr, "usage: make_tiny_bundle OUT_DIR SRC_DIR   (SRC_DIR = data/tiny)\n"
                        "       make_tiny_bundle --cat FILE.jpg\n");
        return 2;
    }
    const char *out = argv[1], *src = argv[2];
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s/bundle", src);
    if (copy_tree(p, out)) return 1;
    snprintf(p, sizeof p, "%s/tensors.txt", src);
    if (write_tensors(out, p)) return 1;
    if (write_audio_uncond(out)) return 1;
    snprintf(q, sizeof q, "%s/bundle.json", out);
    return write_text(q, k_manifest);
}
