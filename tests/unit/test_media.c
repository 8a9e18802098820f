/* test_media.c — media decoding and ImageBind preprocessing through the public API:
 * the golden image.preprocess / audio.fbank / video.preprocess / image.postprocess cases (../shared/golden and
 * tests/golden), decoded pixels of our own fixtures (tests/data/media, made by
 * tools/make_media_fixtures.py) against Pillow's, and bad inputs (each must fail with the
 * right status and a message naming the file, never crash or print). */
#include "nextgpt.h"
#include "test.h"
#include "core/alloc.h"
#include "media/media.h"

#include <dirent.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

/* Paths are built in fixed buffers far larger than any test path. */
#ifndef __clang__ /* a gcc-only warning */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char g_src[1024], g_shared[1024];

/* ---- a tiny safetensors reader (the test must not depend on lib/core/weights.c) ---- */

typedef struct st_file {
    unsigned char *buf;
    size_t len;
    json_t *hdr;
    size_t base;
} st_file;

static int st_open(st_file *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->buf = test_read_file(path, &s->len);
    if (!s->buf || s->len < 8) return 0;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | s->buf[i];
    if (hl > s->len - 8) return 0;
    s->hdr = json_loadb((const char *)s->buf + 8, (size_t)hl, 0, NULL);
    s->base = 8 + (size_t)hl;
    return s->hdr != NULL;
}

static void st_close(st_file *s)
{
    json_decref(s->hdr);
    free(s->buf);
}

/* Pointer to tensor `name` with dtype `dt`; shape into shape[] (returns rank, -1 if absent). */
static int st_get(const st_file *s, const char *name, const char *dt, int64_t *shape, const void **data)
{
    json_t *t = json_object_get(s->hdr, name);
    if (!t || strcmp(json_string_value(json_object_get(t, "dtype")), dt) != 0) return -1;
    json_t *sh = json_object_get(t, "shape");
    int rank = (int)json_array_size(sh);
    for (int i = 0; i < rank; i++) shape[i] = json_integer_value(json_array_get(sh, (size_t)i));
    *data = s->buf + s->base + json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
    return rank;
}

/* ---- golden cases ---- */

typedef void (*case_fn)(const char *dir, json_t *cj);

static int run_cases(const char *root, const char *stage, case_fn fn)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/vision/%s", root, stage);
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char dir[2300], cjp[2400];
        snprintf(dir, sizeof dir, "%s/%s", path, e->d_name);
        snprintf(cjp, sizeof cjp, "%s/case.json", dir);
        json_t *cj = json_load_file(cjp, 0, NULL);
        if (!cj) continue;
        fprintf(stderr, "  case %s/%s\n", stage, e->d_name);
        fn(dir, cj);
        json_decref(cj);
        n++;
    }
    closedir(d);
    return n;
}

static const char *param_str(json_t *cj, const char *key)
{
    return json_string_value(json_object_get(json_object_get(cj, "params"), key));
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), (int)e - 25);
    return sign ? -v : v;
}

static void check_expected_f32(const char *dir, json_t *cj, const char *name, const ngpt_tensor *t)
{
    char p[2400];
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    st_file s;
    CHECK_MSG(st_open(&s, p), "%s", p);
    int64_t shape[8];
    const void *data = NULL;
    int rank = st_get(&s, name, "F32", shape, &data), f16 = 0;
    if (rank < 0) {
        rank = st_get(&s, name, "F16", shape, &data);
        f16 = 1;
    }
    CHECK_MSG(rank == t->rank, "%s: rank %d vs %d", dir, rank, t->rank);
    if (rank == t->rank) {
        int same = 1;
        for (int i = 0; i < rank; i++) same &= shape[i] == t->shape[i];
        CHECK_MSG(same, "%s: shape", dir);
        if (same) {
            size_t n = (size_t)ngpt_tensor_numel(t);
            float *exp = malloc(n * sizeof *exp);
            if (f16) {
                for (size_t i = 0; i < n; i++) {
                    uint16_t h;
                    memcpy(&h, (const unsigned char *)data + 2 * i, 2);
                    exp[i] = f16_to_f32(h);
                }
            } else {
                memcpy(exp, data, n * sizeof *exp);
            }
            test_close(dir, t->data, exp, n, (float)json_number_value(json_object_get(cj, "atol")),
                       (float)json_number_value(json_object_get(cj, "rtol")));
            free(exp);
        }
    }
    st_close(&s);
}

static void image_case(const char *dir, json_t *cj)
{
    char p[2400];
    snprintf(p, sizeof p, "%s/%s", dir, param_str(cj, "file"));
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_load(&img, p));
    if (!img) return;
    ngpt_tensor t;
    CHECK_OK(ngpt_image_preprocess(&t, img));
    check_expected_f32(dir, cj, "pixels", &t);
    ngpt_tensor_free(&t);
    ngpt_image_free(img);
}

static void audio_case(const char *dir, json_t *cj)
{
    char p[2400];
    snprintf(p, sizeof p, "%s/%s", dir, param_str(cj, "file"));
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_load(&a, p));
    if (!a) return;
    ngpt_audio_preprocess_params ap;
    CHECK_OK(ngpt_audio_preprocess_params_default(&ap, sizeof ap));
    const char *rule = param_str(cj, "clip_rule");
    if (rule && strcmp(rule, "pytorchvideo-fixed") == 0) ap.clip_rule = NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED;
    ngpt_tensor t;
    CHECK_OK(ngpt_audio_preprocess(&t, a, &ap));
    check_expected_f32(dir, cj, "fbank", &t);
    ngpt_tensor_free(&t);
    ngpt_audio_free(a);
}

static void video_case(const char *dir, json_t *cj)
{
    char p[2400];
    snprintf(p, sizeof p, "%s/%s", dir, param_str(cj, "file"));
    ngpt_video_preprocess_params vp;
    CHECK_OK(ngpt_video_preprocess_params_default(&vp, sizeof vp));
    const char *rule = param_str(cj, "clip_rule");
    if (rule && strcmp(rule, "pytorchvideo-fixed") == 0) vp.clip_rule = NGPT_CLIP_RULE_PYTORCHVIDEO_FIXED;
    ngpt_tensor t;
    CHECK_OK(ngpt_video_preprocess(&t, p, &vp));
    if (t.data) check_expected_f32(dir, cj, "pixels", &t);
    ngpt_tensor_free(&t);
}

static void postprocess_case(const char *dir, json_t *cj)
{
    (void)cj;
    char p[2400];
    snprintf(p, sizeof p, "%s/inputs.safetensors", dir);
    st_file in, ex;
    CHECK(st_open(&in, p));
    snprintf(p, sizeof p, "%s/expected.safetensors", dir);
    CHECK(st_open(&ex, p));
    ngpt_tensor img = {0}, out;
    const void *d = NULL;
    img.dtype = NGPT_DTYPE_F32;
    img.rank = st_get(&in, "image", "F32", img.shape, &d);
    size_t n = (size_t)ngpt_tensor_numel(&img);
    img.data = malloc(n * 4);
    memcpy(img.data, d, n * 4);
    CHECK_OK(ngpt_image_postprocess(&out, &img));
    int64_t es[8];
    int er = st_get(&ex, "image_u8", "U8", es, &d);
    CHECK(er == 4 && out.rank == 4 && es[0] == out.shape[0] && es[1] == out.shape[1] && es[2] == out.shape[2] &&
          es[3] == out.shape[3]);
    if (er == 4) CHECK_MSG(memcmp(out.data, d, ngpt_tensor_nbytes(&out)) == 0, "%s: u8 differs", dir);
    ngpt_tensor_free(&out);
    free(img.data);
    st_close(&in);
    st_close(&ex);
}

static void test_golden(void)
{
    struct stat sb;
    int have_shared = stat(g_shared, &sb) == 0;
    int n = 0;
    char ours[1100];
    snprintf(ours, sizeof ours, "%s/tests/golden", g_src);
    const char *roots[2] = {have_shared ? g_shared : NULL, ours};
    for (int r = 0; r < 2; r++) {
        if (!roots[r]) continue;
        n += run_cases(roots[r], "image.preprocess", image_case);
        n += run_cases(roots[r], "audio.fbank", audio_case);
        n += run_cases(roots[r], "image.postprocess", postprocess_case);
        n += run_cases(roots[r], "video.preprocess", video_case);
    }
    if (!have_shared) fprintf(stderr, "  (shared golden cases not found at %s: only ours run)\n", g_shared);
    CHECK(n > 0);
}

/* ---- our fixtures: decoded pixels vs Pillow's ---- */

static void test_decode_fixtures(void)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/tests/data/media/pixels.safetensors", g_src);
    st_file s;
    CHECK_MSG(st_open(&s, p), "%s missing", p);
    if (!s.hdr) return;
    const char *key;
    json_t *v;
    int n = 0;
    json_object_foreach(s.hdr, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        int64_t sh[8];
        const void *d;
        int rank = st_get(&s, key, "U8", sh, &d);
        CHECK(rank == 3);
        snprintf(p, sizeof p, "%s/tests/data/media/%s", g_src, key);
        ngpt_image *img = NULL;
        CHECK_OK(ngpt_image_load(&img, p));
        if (!img) continue;
        CHECK_MSG(ngpt_image_height(img) == sh[0] && ngpt_image_width(img) == sh[1], "%s size", key);
        if (ngpt_image_height(img) == sh[0] && ngpt_image_width(img) == sh[1]) {
            const uint8_t *px = ngpt_image_pixels(img), *ex = d;
            size_t nb = (size_t)(sh[0] * sh[1] * 3), bad = 0;
            int maxd = 0;
            for (size_t i = 0; i < nb; i++)
                if (px[i] != ex[i]) {
                    bad++;
                    int dd = abs((int)px[i] - (int)ex[i]);
                    if (dd > maxd) maxd = dd;
                }
            CHECK_MSG(bad == 0, "%s: %zu bytes differ from Pillow (max %d)", key, bad, maxd);
        }
        /* the same bytes from memory */
        size_t len;
        unsigned char *buf = test_read_file(p, &len);
        ngpt_image *m = NULL;
        CHECK_OK(ngpt_image_load_memory(&m, buf, len, key));
        CHECK(m && memcmp(ngpt_image_pixels(m), ngpt_image_pixels(img), (size_t)(sh[0] * sh[1] * 3)) == 0);
        ngpt_image_free(m);
        free(buf);
        ngpt_image_free(img);
        n++;
    }
    CHECK(n >= 5);
    st_close(&s);
}

/* nx_resize_lanczos_rgb8 against Pillow's resize(LANCZOS) of one scene to several sizes
 * (tests/data/media/lanczos.safetensors, tools/make_media_fixtures.py --lanczos), byte for byte:
 * the resize image-to-image's VaeImageProcessor does before the VAE encoder. */
static void test_lanczos_fixture(void)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/tests/data/media/lanczos.safetensors", g_src);
    st_file s;
    CHECK_MSG(st_open(&s, p), "%s missing", p);
    if (!s.hdr) return;
    int64_t ish[8];
    const void *src;
    CHECK(st_get(&s, "input", "U8", ish, &src) == 3);
    const char *key;
    json_t *v;
    int n = 0;
    json_object_foreach(s.hdr, key, v) {
        if (strcmp(key, "__metadata__") == 0 || strcmp(key, "input") == 0) continue;
        int64_t sh[8];
        const void *ex;
        CHECK(st_get(&s, key, "U8", sh, &ex) == 3);
        uint8_t *got = malloc((size_t)(sh[0] * sh[1] * 3));
        CHECK_OK(nx_resize_lanczos_rgb8(src, (int32_t)ish[1], (int32_t)ish[0], got, (int32_t)sh[1], (int32_t)sh[0]));
        size_t bad = 0;
        for (size_t i = 0; i < (size_t)(sh[0] * sh[1] * 3); i++) bad += got[i] != ((const uint8_t *)ex)[i];
        CHECK_MSG(bad == 0, "lanczos %s: %zu bytes differ from Pillow", key, bad);
        free(got);
        n++;
    }
    CHECK(n >= 5);
    CHECK_ERR(nx_resize_lanczos_rgb8(src, 0, 1, NULL, 1, 1), NGPT_ERR_INVALID_ARGUMENT, "bad size");
    st_close(&s);
}

/* ---- bad inputs ---- */

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Remove the files a test wrote into its mkdtemp folder, then the folder. */
static void rm_tmpdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        CHECK_MSG(unlink(p) == 0, "cannot remove %s", p);
    }
    if (d) closedir(d);
    CHECK_MSG(rmdir(dir) == 0, "cannot remove %s", dir);
}

static void test_bad_images(void)
{
    char dir[] = "/tmp/ngpt_media_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p[256], src[1400];
    ngpt_image *img = (ngpt_image *)&img;

    snprintf(p, sizeof p, "%s/missing.jpg", dir);
    CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_NOT_FOUND, "missing.jpg");
    CHECK(img == NULL);

    /* a TIFF cut inside the values of a layout tag (its tile offsets, its bits per sample, the
     * JPEG tables): Pillow skips the tag and cannot identify the file; refused by name here too.
     * Cut before its first IFD (written after the pixels), inside the IFD's entries, inside a
     * strip: each is named, not left to FFmpeg's "Invalid data found when processing input". */
    static const struct { const char *file; size_t keep; const char *what, *also; } cut[] = {
        {"tiled_lzw.tif", 6546, "tag 324", "run past the end of the file"},
        {"cmyk.tif", 1776, "tag 258", "run past the end of the file"},
        {"jpeg.tif", 1039, "tag 347", "run past the end of the file"},
        {"cmyk.tif", 1000, "its first IFD is at offset 1646", "past the end of the file (1000 bytes)"},
        {"g4.tif", 200, "the 9 entries of its first IFD (at offset 148)", "(200 bytes)"},
        {"gray16.tif", 300, "strip 0 (782 bytes at offset 122)", "past the end of the file (300 bytes)"}};
    for (size_t k = 0; k < sizeof cut / sizeof cut[0]; k++) {
        size_t n = 0;
        snprintf(src, sizeof src, "%s/tests/data/media/%s", g_src, cut[k].file);
        unsigned char *t = test_read_file(src, &n);
        CHECK_MSG(t && n > cut[k].keep, "%s", src);
        if (!t || n <= cut[k].keep) continue;
        CHECK_ERR(ngpt_image_load_memory(&img, t, cut[k].keep, cut[k].file), NGPT_ERR_BAD_FORMAT, cut[k].what);
        CHECK_MSG(t_contains(ngpt_last_error(), cut[k].also), "%s", ngpt_last_error());
        free(t);
    }

    snprintf(p, sizeof p, "%s/empty.png", dir);
    write_file(p, "", 0);
    CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_BAD_FORMAT, "empty.png");

    snprintf(p, sizeof p, "%s/garbage.jpg", dir);
    write_file(p, "this is not an image at all, just text", 38);
    CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_BAD_FORMAT, "garbage.jpg");

    snprintf(p, sizeof p, "%s/a.gif", dir);
    write_file(p, "GIF89a\1\0\1\0", 10);
    CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_BAD_FORMAT, "a.gif"); /* cut in its screen descriptor */
    snprintf(p, sizeof p, "%s/a.bmp", dir);
    write_file(p, "BM\x36\0\0\0\0\0\0\0\x36\0\0\0", 14);
    CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_BAD_FORMAT, "a.bmp"); /* file header only */

    /* truncated JPEG / PNG / BMP / TIFF / Netpbm, and garbage in their middle, at several lengths
     * (a BMP cut inside its pixels must not come back as the sheared image FFmpeg would make) */
    const char *names[] = {"rgb_q90.jpg", "progressive.jpg", "rgb.png", "interlaced.png", "rgb.bmp", "rle8.bmp",
                           "rgb_lzw.tif", "rgb_planar.tif", "tiled_lzw.tif", "jpeg_ycbcr21.tif", "rgb.ppm",
                           "maxval1000.ppm", "bmp.ico", "png.ico"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++) {
        snprintf(src, sizeof src, "%s/tests/data/media/%s", g_src, names[i]);
        size_t len;
        unsigned char *buf = test_read_file(src, &len);
        CHECK_MSG(buf != NULL, "%s", src);
        if (!buf) continue;
        size_t cuts[] = {2, 9, 30, len / 3, len / 2, len - 30};
        for (int c = 0; c < 6; c++) {
            snprintf(p, sizeof p, "%s/trunc_%d_%s", dir, c, names[i]);
            write_file(p, buf, cuts[c]);
            ngpt_status st = ngpt_image_load(&img, p);
            CHECK_MSG(st == NGPT_ERR_BAD_FORMAT && strstr(ngpt_last_error(), p), "%s cut at %zu: %s %s", names[i],
                      cuts[c], ngpt_status_string(st), ngpt_last_error());
            ngpt_image_free(st == NGPT_OK ? img : NULL);
        }
        /* corrupt the middle: must not crash (may decode with garbage, or fail cleanly) */
        for (size_t k = len / 4; k < len / 2; k++) buf[k] ^= 0x5a;
        snprintf(p, sizeof p, "%s/corrupt_%s", dir, names[i]);
        write_file(p, buf, len);
        img = NULL;
        ngpt_status st = ngpt_image_load(&img, p);
        CHECK(st == NGPT_OK || (st == NGPT_ERR_BAD_FORMAT && strstr(ngpt_last_error(), p)));
        ngpt_image_free(img);
        free(buf);
    }

    /* WebP (still and animated) and GIF, cut short: refused, naming the file */
    const char *webps[] = {"webp_lossy_q80/input.webp", "webp_animated/input.webp", "webp_lossless_rgba/input.webp",
                           "gif_interlaced/input.gif", "gif_offset_frame/input.gif"};
    for (int i = 0; i < 5; i++) {
        snprintf(src, sizeof src, "%s/tests/golden/vision/image.preprocess/%s", g_src, webps[i]);
        size_t len;
        unsigned char *buf = test_read_file(src, &len);
        CHECK_MSG(buf != NULL, "%s", src);
        if (!buf) continue;
        CHECK_OK(ngpt_image_load_memory(&img, buf, len, webps[i]));
        ngpt_image_free(img);
        img = NULL;
        size_t cuts[] = {2, 9, 30, len / 3, len / 2, len - 30};
        for (int c = 0; c < 6; c++) {
            /* a GIF cut after its image data (in the trailer) is whole: Pillow reads it too */
            if (strstr(webps[i], ".gif") && cuts[c] >= len - 2) continue;
            ngpt_status st = ngpt_image_load_memory(&img, buf, cuts[c], webps[i]);
            CHECK_MSG(st == NGPT_ERR_BAD_FORMAT && strstr(ngpt_last_error(), webps[i]), "%s cut at %zu: %s %s",
                      webps[i], cuts[c], ngpt_status_string(st), ngpt_last_error());
            ngpt_image_free(st == NGPT_OK ? img : NULL);
            img = NULL;
        }
        if (strstr(webps[i], ".gif") && len > 2 && buf[len - 1] == 0x3b && buf[len - 2] == 0) {
            /* without the image data's terminating block and the trailer, as Pillow opens it */
            ngpt_image *whole = NULL;
            CHECK_OK(ngpt_image_load_memory(&whole, buf, len, webps[i]));
            CHECK_OK(ngpt_image_load_memory(&img, buf, len - 2, webps[i]));
            CHECK_MSG(img && whole && ngpt_image_width(img) == ngpt_image_width(whole) &&
                          ngpt_image_height(img) == ngpt_image_height(whole) &&
                          !memcmp(ngpt_image_pixels(img), ngpt_image_pixels(whole),
                                  (size_t)ngpt_image_width(img) * (size_t)ngpt_image_height(img) * 3),
                      "%s without its last 2 bytes differs", webps[i]);
            ngpt_image_free(whole);
            ngpt_image_free(img);
            img = NULL;
            /* one data byte less: refused (a short block) */
            CHECK_ERR(ngpt_image_load_memory(&img, buf, len - 3, webps[i]), NGPT_ERR_BAD_FORMAT, webps[i]);
        }
        free(buf);
    }
    /* a VP8X header claiming a 20000 x 20000 canvas (and no image): refused before any allocation */
    static const unsigned char vp8x[30] = {'R', 'I', 'F', 'F', 22, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X',
                                           10, 0, 0, 0, 0, 0, 0, 0, 0x1f, 0x4e, 0, 0x1f, 0x4e, 0};
    CHECK_ERR(ngpt_image_load_memory(&img, vp8x, sizeof vp8x, "huge.webp"), NGPT_ERR_UNSUPPORTED, "huge.webp");

    /* libjpeg warns ("Corrupt JPEG data"), then fails ("Bogus Huffman table definition"): an
     * error, as Pillow's "broken data stream" (TurboJPEG reported it as a warning and the
     * library returned the never-written pixel buffer) */
    snprintf(src, sizeof src, "%s/tests/data/media/bad_progressive.jpg", g_src);
    CHECK_ERR(ngpt_image_load(&img, src), NGPT_ERR_BAD_FORMAT, "bad_progressive.jpg");
    CHECK(img == NULL);
    /* known formats and layouts we do not decode: UNSUPPORTED, saying which */
    CHECK_ERR(ngpt_image_load_memory(&img, "II+\0\x08\0\0\0", 8, "a.tif"), NGPT_ERR_UNSUPPORTED, "BigTIFF");
    {
        /* a TIFF whose one IFD says w x h, compression c, photometric p (300, an unknown tag,
         * when p < 0) and one more tag (and nothing else) */
        unsigned char tif[8 + 2 + 5 * 12 + 4] = {'I', 'I', 42, 0, 8, 0, 0, 0, 5, 0};
        const struct { uint32_t w, h; int comp, ph, tag, value; ngpt_status want; const char *msg; } tc[] = {
            {64, 64, 6, 2, 339, 1, NGPT_ERR_UNSUPPORTED, "old-style JPEG"},
            {64, 64, 34712, 2, 339, 1, NGPT_ERR_UNSUPPORTED, "compression 34712"},
            {20000, 20000, 1, 2, 339, 1, NGPT_ERR_UNSUPPORTED, "20000x20000"},
            {64, 64, 1, 8, 339, 1, NGPT_ERR_UNSUPPORTED, "photometric interpretation 8"}, /* CIELab */
            {64, 64, 1, 2, 339, 3, NGPT_ERR_UNSUPPORTED, "SampleFormat 3"},                /* float */
            {64, 64, 7, 5, 339, 1, NGPT_ERR_UNSUPPORTED, "photometric interpretation 5"},
            {64, 64, 7, 2, 339, 1, NGPT_ERR_BAD_FORMAT, "fewer strips"},                    /* JPEG, no strips */
            {64, 64, 1, 2, 322, 16, NGPT_ERR_BAD_FORMAT, "16x0"},  /* tiled, no TileLength */
            {64, 64, 1, -1, 339, 1, NGPT_ERR_BAD_FORMAT, "PhotometricInterpretation"},
            {64, 64, 1, 2, 339, 1, NGPT_ERR_BAD_FORMAT, "a.tif"},                           /* no strips */
        };
        for (int i = 0; i < (int)(sizeof tc / sizeof *tc); i++) {
            const uint32_t tags[5][2] = {{256, tc[i].w}, {257, tc[i].h}, {259, (uint32_t)tc[i].comp},
                                         {tc[i].ph < 0 ? 300 : 262, (uint32_t)(tc[i].ph < 0 ? 0 : tc[i].ph)},
                                         {(uint32_t)tc[i].tag, (uint32_t)tc[i].value}};
            for (int t = 0; t < 5; t++) {
                unsigned char *e = tif + 10 + 12 * t;
                memset(e, 0, 12);
                e[0] = (unsigned char)tags[t][0], e[1] = (unsigned char)(tags[t][0] >> 8), e[2] = 4, e[4] = 1;
                for (int k = 0; k < 4; k++) e[8 + k] = (unsigned char)(tags[t][1] >> (8 * k));
            }
            CHECK_ERR(ngpt_image_load_memory(&img, tif, sizeof tif, "a.tif"), tc[i].want, tc[i].msg);
        }
    }
    /* BMP and PGM headers claiming 20000 x 20000: refused before any allocation */
    unsigned char bmp[54] = {'B', 'M', 54, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0,
                             0x20, 0x4e, 0, 0, 0x20, 0x4e, 0, 0, 1, 0, 24, 0};
    CHECK_ERR(ngpt_image_load_memory(&img, bmp, sizeof bmp, "huge.bmp"), NGPT_ERR_UNSUPPORTED, "20000x20000");
    CHECK_ERR(ngpt_image_load_memory(&img, "P5\n20000 20000\n255\n\0\0", 22, "huge.pgm"), NGPT_ERR_UNSUPPORTED,
              "20000x20000");
    CHECK_ERR(ngpt_image_load_memory(&img, "P5\n2 2\n0\n\0\0\0\0", 14, "a.pgm"), NGPT_ERR_BAD_FORMAT, "maxval 0");
    CHECK_ERR(ngpt_image_load_memory(&img, "P6\n2 2\n", 8, "a.ppm"), NGPT_ERR_BAD_FORMAT, "header");
    /* ICO: no entries, a directory cut short, an entry past the end, an entry that is neither */
    CHECK_ERR(ngpt_image_load_memory(&img, "\0\0\1\0\0\0", 6, "a.ico"), NGPT_ERR_BAD_FORMAT, "no image");
    CHECK_ERR(ngpt_image_load_memory(&img, "\0\0\1\0\2\0\x10\x10", 8, "a.ico"), NGPT_ERR_BAD_FORMAT, "directory");
    {
        unsigned char ico[6 + 16 + 40] = {0, 0, 1, 0, 1, 0, 16, 16, 0, 0, 1, 0, 32, 0, 40, 0, 0, 0, 200, 0, 0, 0};
        CHECK_ERR(ngpt_image_load_memory(&img, ico, sizeof ico, "a.ico"), NGPT_ERR_BAD_FORMAT, "offset 200");
        ico[18] = 22; /* at the DIB: a header size of 0 */
        CHECK_ERR(ngpt_image_load_memory(&img, ico, sizeof ico, "a.ico"), NGPT_ERR_BAD_FORMAT, "DIB header");
        ico[22] = 40, ico[26] = 16, ico[30] = 32, ico[32] = 1, ico[34] = 32; /* 16 x 16 x 32 bits, no pixels */
        CHECK_ERR(ngpt_image_load_memory(&img, ico, sizeof ico, "a.ico"), NGPT_ERR_BAD_FORMAT, "truncated");
    }
    CHECK_ERR(ngpt_image_load_memory(&img, "\0\0\0\x18" "ftypheic\0\0\0\0", 16, "a.heic"), NGPT_ERR_UNSUPPORTED, "HEIF");

    /* absurd dimensions: a PNG header claiming 100000 x 100000 */
    snprintf(src, sizeof src, "%s/tests/data/media/huge_header.png", g_src);
    CHECK_ERR(ngpt_image_load(&img, src), NGPT_ERR_UNSUPPORTED, "huge_header.png");

    CHECK_ERR(ngpt_image_load_memory(&img, "\xff\xd8\xff", 3, "mem.jpg"), NGPT_ERR_BAD_FORMAT, "mem.jpg");
    CHECK_ERR(ngpt_image_load(NULL, p), NGPT_ERR_INVALID_ARGUMENT, "");
    CHECK_ERR(ngpt_image_load(&img, NULL), NGPT_ERR_INVALID_ARGUMENT, "");
    ngpt_tensor t;
    CHECK_ERR(ngpt_image_preprocess(&t, NULL), NGPT_ERR_INVALID_ARGUMENT, "");
    ngpt_image_free(NULL);
    rm_tmpdir(dir);
}

static void test_bad_audio(void)
{
    char dir[] = "/tmp/ngpt_media_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p[256], src[1400];
    ngpt_audio *a = NULL;
    snprintf(p, sizeof p, "%s/missing.wav", dir);
    CHECK_ERR(ngpt_audio_load(&a, p), NGPT_ERR_NOT_FOUND, "missing.wav");
    snprintf(p, sizeof p, "%s/empty.wav", dir);
    write_file(p, "", 0);
    CHECK_ERR(ngpt_audio_load(&a, p), NGPT_ERR_BAD_FORMAT, "empty.wav");
    snprintf(p, sizeof p, "%s/garbage.wav", dir);
    write_file(p, "this is not audio, it is plain text and long enough", 52);
    CHECK_ERR(ngpt_audio_load(&a, p), NGPT_ERR_BAD_FORMAT, "garbage.wav");

    snprintf(src, sizeof src, "%s/tests/data/media/stereo44k.wav", g_src);
    size_t len;
    unsigned char *buf = test_read_file(src, &len);
    CHECK_MSG(buf != NULL, "%s", src);
    if (buf) {
        /* a broken header: "fmt " chunk renamed, then a header cut in the middle */
        unsigned char *b2 = malloc(len);
        memcpy(b2, buf, len);
        memcpy(b2 + 12, "xxxx", 4);
        snprintf(p, sizeof p, "%s/broken_header.wav", dir);
        write_file(p, b2, len);
        CHECK_ERR(ngpt_audio_load(&a, p), NGPT_ERR_BAD_FORMAT, "broken_header.wav");
        snprintf(p, sizeof p, "%s/cut_header.wav", dir);
        write_file(p, buf, 30);
        CHECK_ERR(ngpt_audio_load(&a, p), NGPT_ERR_BAD_FORMAT, "cut_header.wav");
        free(b2);
        free(buf);
    }
    CHECK_ERR(ngpt_audio_load_memory(&a, "RIFF", 4, "mem.wav"), NGPT_ERR_BAD_FORMAT, "mem.wav");

    /* from PCM: round trip of the getters, and an empty clip region pads to 0.467 */
    float pcm[2 * 300];
    for (int i = 0; i < 600; i++) pcm[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 300, 2, 8000));
    CHECK(ngpt_audio_channels(a) == 2 && ngpt_audio_frames(a) == 300 && ngpt_audio_sample_rate(a) == 8000);
    ngpt_tensor t;
    CHECK_OK(ngpt_audio_preprocess(&t, a, NULL));
    CHECK(t.rank == 4 && t.shape[0] == 3 && t.shape[1] == 1 && t.shape[2] == 128 && t.shape[3] == 204);
    if (t.data) CHECK(fabsf(((float *)t.data)[203] - 4.268f / 9.138f) < 1e-6f); /* frame 203: padding */
    ngpt_tensor_free(&t);
    ngpt_audio_free(a);
    CHECK_ERR(ngpt_audio_from_pcm(&a, pcm, 0, 2, 8000), NGPT_ERR_INVALID_ARGUMENT, "");
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 300, 2, 8000));
    ngpt_audio_preprocess_params apf;
    ngpt_audio_preprocess_params_default(&apf, sizeof apf);
    apf.flags = 1;  /* reserved */
    CHECK_ERR(ngpt_audio_preprocess(&t, a, &apf), NGPT_ERR_INVALID_ARGUMENT, "flags 0x1 (reserved, 0)");
    ngpt_audio_free(a);
    ngpt_video_preprocess_params vpf;
    ngpt_video_preprocess_params_default(&vpf, sizeof vpf);
    vpf.flags = 2;
    char vp[1400];
    snprintf(vp, sizeof vp, "%s/tests/data/media/uniform_322_full.mp4", g_src);
    CHECK_ERR(ngpt_video_preprocess(&t, vp, &vpf), NGPT_ERR_INVALID_ARGUMENT, "flags 0x2 (reserved, 0)");
    /* shorter than one 25 ms fbank window at 16 kHz (400 samples; 8 kHz doubles): upstream's Kaldi
     * fbank raises, so do we; one window is enough */
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 199, 2, 8000));
    CHECK_ERR(ngpt_audio_preprocess(&t, a, NULL), NGPT_ERR_INVALID_ARGUMENT, "too short");
    ngpt_audio_free(a);
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 200, 2, 8000));
    CHECK_OK(ngpt_audio_preprocess(&t, a, NULL));
    if (t.data) { /* frame 0 computed, frame 1 padding */
        const float *f = t.data, pad = 4.268f / 9.138f;
        CHECK(fabsf(f[0] - pad) > 1e-3f && fabsf(f[1] - pad) < 1e-6f);
    }
    ngpt_tensor_free(&t);
    ngpt_audio_free(a);
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 24 * 16 / 2, 2, 16000)); /* 24 ms */
    CHECK_ERR(ngpt_audio_preprocess(&t, a, NULL), NGPT_ERR_INVALID_ARGUMENT, "400 samples");
    ngpt_audio_free(a);
    /* a sample rate whose ratio to 16 kHz would need a gigabyte kernel: refused, not attempted */
    float *pcm2 = calloc(2 * 2000, sizeof *pcm2);
    CHECK(pcm2 != NULL);
    if (pcm2) {
        CHECK_OK(ngpt_audio_from_pcm(&a, pcm2, 2000, 2, 44101));
        CHECK_ERR(ngpt_audio_preprocess(&t, a, NULL), NGPT_ERR_UNSUPPORTED, "44101");
        ngpt_audio_free(a);
        free(pcm2);
    }
    ngpt_audio_free(NULL);
    rm_tmpdir(dir);
}

static void test_bad_video(void)
{
    char dir[] = "/tmp/ngpt_media_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p[256];
    ngpt_tensor t;
    snprintf(p, sizeof p, "%s/missing.mp4", dir);
    CHECK_ERR(ngpt_video_preprocess(&t, p, NULL), NGPT_ERR_NOT_FOUND, "missing.mp4");
    snprintf(p, sizeof p, "%s/empty.mp4", dir);
    write_file(p, "", 0);
    CHECK_ERR(ngpt_video_preprocess(&t, p, NULL), NGPT_ERR_BAD_FORMAT, "empty.mp4");
    snprintf(p, sizeof p, "%s/garbage.mp4", dir);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 131 + 7);
    write_file(p, junk, sizeof junk);
    CHECK_ERR(ngpt_video_preprocess(&t, p, NULL), NGPT_ERR_BAD_FORMAT, "garbage.mp4");
    /* an audio file is not a video */
    char src[1400];
    snprintf(src, sizeof src, "%s/tests/data/media/stereo44k.wav", g_src);
    CHECK_ERR(ngpt_video_preprocess(&t, src, NULL), NGPT_ERR_BAD_FORMAT, "stereo44k.wav");
    /* the shared golden video, truncated at several lengths: an error naming it, never a crash */
    snprintf(src, sizeof src, "%s/vision/video.preprocess/mandelbrot_h264_24fps_4_5s/input.mp4", g_shared);
    size_t len;
    unsigned char *buf = test_read_file(src, &len);
    if (!buf) return;
    size_t cuts[] = {100, len / 3, len - 5000};
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/cut%d.mp4", dir, c);
        write_file(p, buf, cuts[c]);
        ngpt_status st = ngpt_video_preprocess(&t, p, NULL);
        CHECK_MSG(st == NGPT_OK || (st == NGPT_ERR_BAD_FORMAT && strstr(ngpt_last_error(), p)), "cut at %zu: %s %s",
                  cuts[c], ngpt_status_string(st), ngpt_last_error());
        ngpt_tensor_free(&t);
    }
    free(buf);
    rm_tmpdir(dir);
}

/* ---- issue 5's remaining bad inputs, built here (no fixture needed) ---- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static void put_le(unsigned char *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A PCM WAV: 16-bit, `channels` x `frames` of data, the data chunk declaring `declared` bytes. */
static void write_wav(const char *path, int channels, int rate, uint32_t frames, uint32_t declared)
{
    size_t data = (size_t)frames * (size_t)(channels > 0 ? channels : 1) * 2;
    unsigned char *b = calloc(1, 44 + data);
    memcpy(b, "RIFF", 4);
    put_le(b + 4, (uint32_t)(36 + data), 4);
    memcpy(b + 8, "WAVEfmt ", 8);
    put_le(b + 16, 16, 4);
    put_le(b + 20, 1, 2);  /* PCM */
    put_le(b + 22, (uint32_t)channels, 2);
    put_le(b + 24, (uint32_t)rate, 4);
    put_le(b + 28, (uint32_t)(rate * channels * 2), 4);
    put_le(b + 32, (uint32_t)(channels * 2), 2);
    put_le(b + 34, 16, 2);
    memcpy(b + 36, "data", 4);
    put_le(b + 40, declared, 4);
    for (size_t i = 0; i < data / 2; i++) put_le(b + 44 + 2 * i, (uint32_t)(uint16_t)(int16_t)(i * 977 % 20000 - 10000), 2);
    write_file(path, b, 44 + data);
    free(b);
}

static void test_bad_edge_cases(void)
{
    char dir[] = "/tmp/ngpt_media_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p[256], src[1400];
    ngpt_image *img = NULL;
    ngpt_tensor t = {0};

    /* PNG with a bad CRC: in IHDR, and in the first IDAT (a data byte flipped, CRC left as is) */
    snprintf(src, sizeof src, "%s/tests/data/media/rgb.png", g_src);
    size_t len;
    unsigned char *png = test_read_file(src, &len);
    CHECK_MSG(png != NULL && len > 64, "%s", src);
    if (png && len > 64) {
        unsigned char *b = malloc(len);
        memcpy(b, png, len);
        b[29] ^= 0x01;  /* IHDR's CRC: 8 signature + 8 length/type + 13 data */
        snprintf(p, sizeof p, "%s/bad_crc_ihdr.png", dir);
        write_file(p, b, len);
        CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_BAD_FORMAT, "bad_crc_ihdr.png");
        memcpy(b, png, len);
        size_t off = 8;
        while (off + 12 <= len && memcmp(b + off + 4, "IDAT", 4) != 0)
            off += 12 + ((size_t)b[off] << 24 | (size_t)b[off + 1] << 16 | (size_t)b[off + 2] << 8 | b[off + 3]);
        CHECK(off + 12 < len);
        if (off + 12 < len) b[off + 8 + 2] ^= 0x10;
        snprintf(p, sizeof p, "%s/bad_crc_idat.png", dir);
        write_file(p, b, len);
        CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_BAD_FORMAT, "bad_crc_idat.png");
        free(b);
        /* a tEXt chunk after IHDR: fine with its CRC, an error with a wrong one (Pillow checks
         * every chunk before IDAT; libpng only warned and dropped an ancillary chunk) */
        static const unsigned char text[] = "tEXtComment\0hi";
        size_t tl = sizeof text - 1; /* type + data */
        b = malloc(len + tl + 8);
        memcpy(b, png, 33);
        put_be32(b + 33, (uint32_t)(tl - 4));
        memcpy(b + 37, text, tl);
        put_be32(b + 37 + tl, test_crc32(text, tl));
        memcpy(b + 41 + tl, png + 33, len - 33);
        snprintf(p, sizeof p, "%s/text_chunk.png", dir);
        write_file(p, b, len + tl + 8);
        CHECK_OK(ngpt_image_load(&img, p));
        ngpt_image_free(img);
        img = NULL;
        b[37 + tl] ^= 0x40;
        snprintf(p, sizeof p, "%s/bad_crc_text.png", dir);
        write_file(p, b, len + tl + 8);
        CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_BAD_FORMAT, "bad_crc_text.png");
        CHECK(t_contains(ngpt_last_error(), "CRC"));
        free(b);
    }
    free(png);

    /* 1x1 image: works; preprocess resizes it to [3,224,224] of one colour */
    {
        uint8_t px[3] = {200, 100, 50};
        ngpt_image *one = NULL;
        CHECK_OK(ngpt_image_from_rgb8(&one, px, 1, 1, 3));
        ngpt_blob *blob = NULL;
        CHECK_OK(ngpt_image_encode(&blob, one, NGPT_IMAGE_FORMAT_PNG, 0, 0));
        ngpt_image_free(one);
        snprintf(p, sizeof p, "%s/one.png", dir);
        if (blob) write_file(p, ngpt_blob_data(blob), ngpt_blob_size(blob));
        ngpt_blob_free(blob);
        CHECK_OK(ngpt_image_load(&img, p));
        CHECK(ngpt_image_width(img) == 1 && ngpt_image_height(img) == 1);
        CHECK_OK(ngpt_image_preprocess(&t, img));
        CHECK(t.rank == 3 && t.shape[0] == 3 && t.shape[1] == 224 && t.shape[2] == 224);
        if (t.data && t.rank == 3) {
            const float *f = t.data;
            /* CLIP normalisation of 200/255 in the red channel, everywhere */
            float r = (200.0f / 255.0f - 0.48145466f) / 0.26862954f;
            CHECK(fabsf(f[0] - r) < 1e-4f && fabsf(f[224 * 224 - 1] - r) < 1e-4f);
        }
        ngpt_tensor_free(&t);
        ngpt_image_free(img);
        img = NULL;
    }

    /* 20000 x 20000: a PNG IHDR (valid CRC) and a JPEG SOF claiming it: refused from the header,
     * before any pixel buffer is allocated (an allocation that size would be 1.2 GB). So are
     * 13378 x 13378, one pixel count over Pillow's DecompressionBombError, and 70000 x 2. */
    static const struct { uint32_t w, h; const char *needle; } big[] = {
        {20000, 20000, "20000x20000"}, {13378, 13378, "178956970 pixels"}, {70000, 2, "65535 per side"}};
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
        unsigned char b[8 + 25 + 12 + 12];  /* signature, IHDR, an empty IDAT, IEND */
        memcpy(b, "\x89PNG\r\n\x1a\n", 8);
        put_be32(b + 8, 13);
        memcpy(b + 12, "IHDR", 4);
        put_be32(b + 16, big[k].w);
        put_be32(b + 20, big[k].h);
        memcpy(b + 24, "\x08\x02\x00\x00\x00", 5);
        put_be32(b + 29, test_crc32(b + 12, 17));
        for (int j = 0; j < 2; j++) {
            unsigned char *c = b + 33 + 12 * j;
            put_be32(c, 0);
            memcpy(c + 4, j ? "IEND" : "IDAT", 4);
            put_be32(c + 8, test_crc32(c + 4, 4));
        }
        snprintf(p, sizeof p, "%s/big20000.png", dir);
        write_file(p, b, sizeof b);
        CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_UNSUPPORTED, "big20000.png");
        CHECK_MSG(t_contains(ngpt_last_error(), big[k].needle), "%s", ngpt_last_error());
    }
    snprintf(src, sizeof src, "%s/tests/data/media/rgb_q90.jpg", g_src);
    unsigned char *jpg = test_read_file(src, &len);
    CHECK_MSG(jpg != NULL, "%s", src);
    if (jpg) {
        size_t sof = 0;
        for (size_t i = 2; i + 9 < len; i++)
            if (jpg[i] == 0xff && (jpg[i + 1] == 0xc0 || jpg[i + 1] == 0xc1 || jpg[i + 1] == 0xc2)) { sof = i; break; }
        CHECK(sof != 0);
        if (sof) {
            jpg[sof + 5] = 20000 >> 8; jpg[sof + 6] = 20000 & 0xff;  /* height */
            jpg[sof + 7] = 20000 >> 8; jpg[sof + 8] = 20000 & 0xff;  /* width */
            snprintf(p, sizeof p, "%s/big20000.jpg", dir);
            write_file(p, jpg, len);
            CHECK_ERR(ngpt_image_load(&img, p), NGPT_ERR_UNSUPPORTED, "big20000.jpg");
        }
        free(jpg);
    }

    /* WAVs: no samples, one sample, 0 channels, a data chunk declaring ~4 GB over 10 real frames */
    ngpt_audio *a = NULL;
    snprintf(p, sizeof p, "%s/zero_len.wav", dir);
    write_wav(p, 1, 16000, 0, 0);
    CHECK_ERR(ngpt_audio_load(&a, p), NGPT_ERR_BAD_FORMAT, "zero_len.wav");
    CHECK(a == NULL);
    snprintf(p, sizeof p, "%s/one_sample.wav", dir);
    write_wav(p, 1, 16000, 1, 2);
    CHECK_OK(ngpt_audio_load(&a, p));  /* a valid file of one frame, too short for ImageBind's fbank */
    CHECK(ngpt_audio_frames(a) == 1 && ngpt_audio_channels(a) == 1);
    CHECK_ERR(ngpt_audio_preprocess(&t, a, NULL), NGPT_ERR_INVALID_ARGUMENT, "one_sample.wav");
    ngpt_audio_free(a);
    a = NULL;
    snprintf(p, sizeof p, "%s/zero_channels.wav", dir);
    write_wav(p, 0, 16000, 100, 200);
    CHECK_ERR(ngpt_audio_load(&a, p), NGPT_ERR_BAD_FORMAT, "zero_channels.wav");
    CHECK(a == NULL);
    snprintf(p, sizeof p, "%s/huge_size.wav", dir);
    write_wav(p, 1, 16000, 10, 0xfffffff0u);
    /* libsndfile clamps the declared size to what the file holds: the 10 real frames, nothing
     * allocated for the declared 2^31 */
    CHECK_OK(ngpt_audio_load(&a, p));
    CHECK_MSG(ngpt_audio_frames(a) == 10, "frames %lld", (long long)ngpt_audio_frames(a));
    ngpt_audio_free(a);
    a = NULL;

    /* a "video" with no video stream: OGG/Vorbis made by our own encoder */
    {
        float pcm[8000];
        for (int i = 0; i < 8000; i++) pcm[i] = 0.3f * sinf((float)i * 0.2f);
        CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 8000, 1, 16000));
        snprintf(p, sizeof p, "%s/audio_only.ogg", dir);
        CHECK_OK(ngpt_audio_save(a, p, NGPT_AUDIO_FORMAT_OGG));
        ngpt_audio_free(a);
        CHECK_ERR(ngpt_video_preprocess(&t, p, NULL), NGPT_ERR_BAD_FORMAT, "audio_only.ogg");
        CHECK(t_contains(ngpt_last_error(), "no decodable video stream"));
        CHECK(t.data == NULL);
    }
    rm_tmpdir(dir);
}

/* ---- samples as torchaudio.load (sox_io) gives them ---- */

static void test_audio_like_sox(void)
{
    char dir[] = "/tmp/ngpt_media_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p[256];
    /* a float WAV with samples past full scale and a NaN: sox clips to [-1, 1], NaN to -1 */
    static const float in[6] = {0.25f, 40.0f, -3.0f, NAN, INFINITY, -0.5f};
    unsigned char b[58 + sizeof in];
    memcpy(b, "RIFF", 4);
    put_le(b + 4, (uint32_t)(50 + sizeof in), 4);
    memcpy(b + 8, "WAVEfmt ", 8);
    put_le(b + 16, 16, 4);
    put_le(b + 20, 3, 2); /* IEEE float */
    put_le(b + 22, 1, 2);
    put_le(b + 24, 16000, 4);
    put_le(b + 28, 64000, 4);
    put_le(b + 32, 4, 2);
    put_le(b + 34, 32, 2);
    memcpy(b + 36, "fact", 4);
    put_le(b + 40, 4, 4);
    put_le(b + 44, 6, 4);
    memcpy(b + 48, "data", 4);
    put_le(b + 52, sizeof in, 4);
    memcpy(b + 56, in, sizeof in);
    snprintf(p, sizeof p, "%s/loud.wav", dir);
    write_file(p, b, 56 + sizeof in);
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_load(&a, p));
    if (a && ngpt_audio_frames(a) == 6) {
        const float *x = ngpt_audio_samples(a);
        static const float want[6] = {0.25f, 1.0f, -1.0f, -1.0f, 1.0f, -0.5f};
        for (int i = 0; i < 6; i++) CHECK_MSG(x[i] == want[i], "sample %d: %g, expected %g", i, x[i], want[i]);
    } else {
        CHECK_MSG(0, "loud.wav: %lld frames", (long long)ngpt_audio_frames(a));
    }
    ngpt_audio_free(a);
    a = NULL;
    /* Vorbis: sox decodes to 16-bit PCM (vorbisfile's ov_read), so every sample is k / 32768 */
    float pcm[16000];
    for (int i = 0; i < 16000; i++) pcm[i] = 0.6f * sinf((float)i * 0.031f) + 0.3f * sinf((float)i * 0.4f);
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 16000, 1, 16000));
    snprintf(p, sizeof p, "%s/tone.ogg", dir);
    CHECK_OK(ngpt_audio_save(a, p, NGPT_AUDIO_FORMAT_OGG));
    ngpt_audio_free(a);
    a = NULL;
    CHECK_OK(ngpt_audio_load(&a, p));
    if (a) {
        const float *x = ngpt_audio_samples(a);
        int64_t n = ngpt_audio_frames(a) * ngpt_audio_channels(a), off = 0, nonzero = 0;
        for (int64_t i = 0; i < n; i++) {
            off += x[i] * 32768.0f != rintf(x[i] * 32768.0f);
            nonzero += x[i] != 0.0f;
        }
        CHECK_MSG(off == 0 && nonzero > 1000, "%lld of %lld Vorbis samples are not 16-bit values", (long long)off,
                  (long long)n);
    }
    ngpt_audio_free(a);
    rm_tmpdir(dir);
}

/* ---- extreme aspect ratios: only the centre crop is resampled ---- */

/* preprocess of (w x h) against the full resize (nx_resize_bicubic_rgb8 to the whole
 * short-side-224 size) then cropped, value for value. A 1-pixel-wide or -tall image (whose full
 * resize would take gigabytes) is checked against the resize of its single column or row,
 * which the other pass replicates exactly (one tap of weight 1). */
static void check_crop_window(int32_t w, int32_t h)
{
    const int32_t S = 224;
    uint8_t *px = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) px[i] = (uint8_t)((i * 2654435761u) >> 13);
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_from_rgb8(&img, px, w, h, 0));
    ngpt_tensor t = {0};
    CHECK_OK(ngpt_image_preprocess(&t, img));
    int32_t nw = w <= h ? S : (int32_t)((double)S * w / h), nh = w <= h ? (int32_t)((double)S * h / w) : S;
    int32_t top = (nh - S) / 2, left = (nw - S) / 2;
    if ((nh - S) % 2 && top % 2) top++; /* Python round: half to even */
    if ((nw - S) % 2 && left % 2) left++;
    /* the reference: a thin image resizes along its one long axis only, then is replicated */
    int thin = w == 1 || h == 1;
    int32_t rw = thin ? (w == 1 ? 1 : nw) : nw, rh = thin ? (h == 1 ? 1 : nh) : nh;
    uint8_t *full = malloc((size_t)rw * rh * 3);
    if (thin && w == 1 && h == 1) {
        memcpy(full, px, 3);
    } else if (thin) {
        CHECK_OK(nx_resize_bicubic_rgb8(px, w, h, full, rw, rh));
    } else {
        CHECK_OK(nx_resize_bicubic_rgb8(px, w, h, full, nw, nh));
    }
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    size_t bad = 0;
    for (int c = 0; c < 3 && t.data; c++)
        for (int32_t y = 0; y < S; y++)
            for (int32_t x = 0; x < S; x++) {
                int32_t sy = rh == 1 ? 0 : y + top, sx = rw == 1 ? 0 : x + left;
                float v = (float)full[((size_t)sy * rw + sx) * 3 + c] / 255.0f;
                bad += ((const float *)t.data)[((size_t)c * S + y) * S + x] != (v - mean[c]) / stdv[c];
            }
    CHECK_MSG(bad == 0, "%dx%d: %zu values differ from the full resize", w, h, bad);
    free(full);
    ngpt_tensor_free(&t);
    ngpt_image_free(img);
    free(px);
}

/* What libsndfile cannot open goes to FFmpeg, as torchaudio.load falls back to it: AAC in MP4
 * (the golden case's file), the same cut short, a video without sound, junk (both decoders'
 * reasons in the message). */
static void test_audio_through_ffmpeg(void)
{
    char src[1400];
    snprintf(src, sizeof src, "%s/tests/golden/vision/audio.fbank/m4a_aac_22k_2_3s/input.m4a", g_src);
    size_t len = 0;
    unsigned char *m4a = test_read_file(src, &len);
    CHECK_MSG(m4a != NULL, "%s", src);
    if (!m4a) return;
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_load_memory(&a, m4a, len, "song.m4a"));
    /* 2.3 s at 22050 Hz, stereo; AAC adds up to one 1024-sample frame of padding at the end */
    CHECK(ngpt_audio_channels(a) == 2 && ngpt_audio_sample_rate(a) == 22050);
    CHECK(ngpt_audio_frames(a) >= 50715 && ngpt_audio_frames(a) <= 50715 + 1024);
    float peak = 0;
    for (int64_t i = 0; a && i < 2 * ngpt_audio_frames(a); i++) peak = fmaxf(peak, fabsf(ngpt_audio_samples(a)[i]));
    CHECK_MSG(peak > 0.1f && peak < 1.0f, "peak %g", (double)peak);
    ngpt_audio_free(a);
    a = NULL;
    /* cut in the middle of its data: an error that names the file, or the samples before the cut */
    ngpt_status st = ngpt_audio_load_memory(&a, m4a, len / 2, "cut.m4a");
    if (st == NGPT_OK) CHECK(ngpt_audio_frames(a) > 0 && ngpt_audio_frames(a) < 50715);
    else CHECK(strstr(ngpt_last_error(), "cut.m4a") != NULL);
    ngpt_audio_free(a);
    a = NULL;
    CHECK_ERR(ngpt_audio_load_memory(&a, m4a, 200, "head.m4a"), NGPT_ERR_BAD_FORMAT, "head.m4a");
    free(m4a);
    /* an MP3 cut inside its first frame header: no demuxer recognises it, and FFmpeg's EINVAL
     * alone ("Invalid argument") would read like a bad call */
    snprintf(src, sizeof src, "%s/tests/data/media/loud.mp3", g_src);
    unsigned char *mp3 = test_read_file(src, &len);
    CHECK(mp3 && len > 100);
    if (mp3 && len > 100)
        CHECK_ERR(ngpt_audio_load_memory(&a, mp3, 100, "head.mp3"), NGPT_ERR_BAD_FORMAT,
                  "head.mp3: not a readable audio file (unknown format, or cut short)");
    free(mp3);

    /* a video file with no sound track */
    ngpt_tensor frames = {0};
    const int64_t fs[4] = {4, 16, 16, 3};
    CHECK_OK(ngpt_tensor_create(&frames, NGPT_DTYPE_U8, 4, fs));
    if (frames.data) memset(frames.data, 90, (size_t)ngpt_tensor_numel(&frames));
    ngpt_blob *b = NULL;
    if (ngpt_media_video_codec(NGPT_VIDEO_FORMAT_MP4) && ngpt_video_encode(&b, &frames, 4.0f, NGPT_VIDEO_FORMAT_MP4) == NGPT_OK) {
        CHECK_ERR(ngpt_audio_load_memory(&a, ngpt_blob_data(b), ngpt_blob_size(b), "silent.mp4"), NGPT_ERR_BAD_FORMAT,
                  "no decodable audio stream");
        ngpt_blob_free(b);
    }
    ngpt_tensor_free(&frames);
    CHECK_ERR(ngpt_audio_load_memory(&a, "plain text, no audio in here at all", 35, "notes.txt"), NGPT_ERR_BAD_FORMAT,
              "libsndfile:");
}

/* Frames converted as decord's scale filter does, over the whole width: a BT.709-tagged and a
 * full-range H.264 file of one colour, at widths (854, 322) where swscale's block converters
 * leave the last columns of a packed row unwritten. The RGB each must give is the reference's
 * (tools/make_media_fixtures.py --streams prints it); BT.601 limited would be 17 levels off. A
 * loud MP3 keeps its peaks above 1, as torchaudio.load (FFmpeg) returns them. */
static void test_stream_fixtures(void)
{
    static const struct { const char *file; float rgb[3]; } cases[] = {
        {"uniform_854_bt709.mp4", {213, 57, 88}},
        {"uniform_322_full.mp4", {189, 48, 92}},
    };
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    char p[1400];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(p, sizeof p, "%s/tests/data/media/%s", g_src, cases[k].file);
        for (int run = 0; run < 2; run++) {  /* twice: unwritten memory would differ between runs */
            ngpt_tensor t = {0};
            CHECK_OK(ngpt_video_preprocess(&t, p, NULL));
            if (!t.data) continue;
            CHECK(t.rank == 5 && t.shape[0] == 15 && t.shape[1] == 3 && t.shape[2] == 2);
            const float *x = t.data;
            int64_t n = ngpt_tensor_numel(&t), plane = t.shape[2] * t.shape[3] * t.shape[4], bad = 0;
            double worst = 0;
            for (int64_t i = 0; i < n; i++) {
                int c = (int)(i / plane % 3);
                double d = fabs((x[i] * stdv[c] + mean[c]) * 255.0 - cases[k].rgb[c]);
                if (d > worst) worst = d;
                bad += d > 0.01;
            }
            CHECK_MSG(bad == 0, "%s (run %d): %lld values off the reference's RGB, worst by %.3f levels",
                      cases[k].file, run, (long long)bad, worst);
            ngpt_tensor_free(&t);
        }
    }
    snprintf(p, sizeof p, "%s/tests/data/media/loud.mp3", g_src);
    ngpt_audio *a = NULL;
    CHECK_OK(ngpt_audio_load(&a, p));
    if (!a) return;
    CHECK(ngpt_audio_channels(a) == 2 && ngpt_audio_sample_rate(a) == 44100 && ngpt_audio_frames(a) == 22050);
    float peak = 0;
    for (int64_t i = 0; i < 2 * ngpt_audio_frames(a); i++) peak = fmaxf(peak, fabsf(ngpt_audio_samples(a)[i]));
    CHECK_MSG(fabsf(peak - 1.2051306f) < 1e-6f, "loud.mp3 peak %.7f, torchaudio's 1.2051306", (double)peak);
    ngpt_audio_free(a);
}

/* The decoders never print: FFmpeg's log is quieted, libjpeg's and libpng's messages go to our
 * handlers, and MP3 avoids libsndfile's libmpg123 ("Note: Skipped 1024 bytes in input." on
 * stderr). Every damaged file of every format here decodes or fails with stdout and stderr
 * (the file descriptors, so C libraries writing directly are caught too) left empty. */
static void test_decoders_silent(void)
{
    static const char *files[] = {"tests/fuzz/corpus/audio/mp3.mp3", "tests/fuzz/corpus/audio/aac.m4a",
                                  "tests/fuzz/corpus/audio/opus16k.opus", "tests/fuzz/corpus/audio/ogg.ogg",
                                  "tests/fuzz/corpus/audio/flac.flac", "tests/fuzz/corpus/audio/wav16.wav",
                                  "tests/fuzz/corpus/image/lossy.webp", "tests/fuzz/corpus/video/clip.mp4",
                                  "tests/data/media/progressive.jpg", "tests/data/media/rgb.png"};
    char dir[] = "/tmp/ngpt_media_XXXXXX", out[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(out, sizeof out, "%s/output", dir);
    fflush(stdout);
    fflush(stderr);
    const int saved_out = dup(1), saved_err = dup(2);
    FILE *sink = fopen(out, "w+");
    CHECK(sink && saved_out >= 0 && saved_err >= 0);
    if (!sink || saved_out < 0 || saved_err < 0) return;
    dup2(fileno(sink), 1);
    dup2(fileno(sink), 2);
    int tried = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", g_src, files[f]);
        size_t len = 0;
        unsigned char *buf = test_read_file(path, &len);
        if (!buf || len < 64) {
            free(buf);
            continue;
        }
        /* the file, then damaged: 2000 bytes of junk inserted at a third, cut at two thirds, bytes
         * flipped through the middle */
        unsigned char *bad = malloc(len + 2000);
        for (int v = 0; bad && v < 4; v++) {
            size_t n = len;
            memcpy(bad, buf, len);
            if (v == 1) {
                memmove(bad + len / 3 + 2000, bad + len / 3, len - len / 3);
                for (size_t k = 0; k < 2000; k++) bad[len / 3 + k] = (unsigned char)(k * 131 + 7);
                n = len + 2000;
            } else if (v == 2) {
                n = 2 * len / 3;
            } else if (v == 3) {
                for (size_t k = len / 3; k < 2 * len / 3; k += 7) bad[k] ^= 0xA5;
            }
            ngpt_tensor t = {0};
            const test_media_kind kind = strstr(files[f], "/audio/")   ? TEST_MEDIA_AUDIO
                                         : strstr(files[f], "/video/") ? TEST_MEDIA_VIDEO
                                                                       : TEST_MEDIA_IMAGE;
            (void)test_media_preprocess(kind, bad, n, files[f], &t);
            ngpt_tensor_free(&t);
            tried++;
        }
        free(bad);
        free(buf);
    }
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    fseek(sink, 0, SEEK_END);
    const long printed = ftell(sink);
    CHECK_MSG(tried >= 30, "only %d inputs tried", tried);
    if (printed > 0) {
        char text[512] = {0};
        fseek(sink, 0, SEEK_SET);
        size_t got = fread(text, 1, sizeof text - 1, sink);
        text[got] = 0;
        CHECK_MSG(0, "the decoders printed %ld bytes: %s", printed, text);
    }
    fclose(sink);
    unlink(out);
    rmdir(dir);
}

static void test_extreme_aspect(void)
{
    /* 1 x 16384 resizes to 224 x 3670016 (2.4 GB before this was cropped first) */
    check_crop_window(1, 16384);
    check_crop_window(16384, 1);
    check_crop_window(65535, 2);  /* the widest image accepted (Pillow opens it too) */
    check_crop_window(5, 900);    /* full resize 224 x 40320: compared directly */
    check_crop_window(3000, 17);
    check_crop_window(223, 225);
    check_crop_window(1, 1);
}

/* ---- video rotation (decord applies the display matrix) ---- */

/* Set the first track header's matrix (the display matrix) to `deg` degrees clockwise. */
static int set_tkhd_rotation(unsigned char *b, size_t len, int deg)
{
    for (size_t i = 4; i + 84 <= len; i++) {
        if (memcmp(b + i, "tkhd", 4) != 0) continue;
        size_t m = i + 4 + (b[i + 4] == 1 ? 4 + 8 + 8 + 4 + 4 + 8 : 4 + 4 + 4 + 4 + 4 + 4) + 8 + 8;
        if (m + 36 > len) return 0;
        int32_t a = 0, bb = 0, c = 0, d = 0, one = 0x10000;
        if (deg == 90) { bb = one; c = -one; }
        if (deg == 180) { a = -one; d = -one; }
        if (deg == 270) { bb = -one; c = one; }
        int32_t mat[9] = {a, bb, 0, c, d, 0, 0, 0, 0x40000000};
        for (int k = 0; k < 9; k++) put_be32(b + m + 4 * k, (uint32_t)mat[k]);
        return 1;
    }
    return 0;
}

static void test_video_rotation(void)
{
    /* 25 frames of 96 x 64, an asymmetric pattern, as MP4 (our own encoder) */
    const int F = 25, H = 64, W = 96, S = 224;
    int64_t shape[4] = {F, H, W, 3};
    ngpt_tensor frames;
    CHECK_OK(ngpt_tensor_create(&frames, NGPT_DTYPE_U8, 4, shape));
    if (!frames.data) return;
    uint8_t *px = frames.data;
    for (int f = 0; f < F; f++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t *p = px + (((size_t)f * H + y) * W + x) * 3;
                p[0] = (uint8_t)(x * 255 / (W - 1));
                p[1] = (uint8_t)(y * 255 / (H - 1));
                p[2] = (uint8_t)((x < W / 3 && y < H / 2) ? 230 : 20 + 4 * f);
            }
    ngpt_blob *blob = NULL;
    CHECK_OK(ngpt_video_encode(&blob, &frames, 25.0f, NGPT_VIDEO_FORMAT_MP4));
    ngpt_tensor_free(&frames);
    if (!blob) return;
    size_t len = ngpt_blob_size(blob);
    unsigned char *b = malloc(len);
    memcpy(b, ngpt_blob_data(blob), len);
    ngpt_blob_free(blob);
    ngpt_tensor a = {0}, r = {0};
    CHECK_OK(ngpt_video_preprocess_memory(&a, b, len, "upright.mp4", NULL));
    static const int degs[3] = {90, 180, 270};
    for (int di = 0; di < 3 && a.data; di++) {
        int deg = degs[di];
        CHECK(set_tkhd_rotation(b, len, deg));
        CHECK_OK(ngpt_video_preprocess_memory(&r, b, len, "rotated.mp4", NULL));
        if (!r.data) continue;
        /* short side 224 either way (336 x 224 or 224 x 336); crops along the long side: the
         * original's left crop becomes the top one (90), the right one (180), the bottom (270) */
        const float *A = a.data, *R = r.data;
        float maxd = 0.0f;
        for (int clip = 0; clip < 5; clip++)
            for (int crop = 0; crop < 3; crop++) {
                int src_crop = deg == 90 ? crop : 2 - crop;
                for (int ct = 0; ct < 6; ct++) /* channel x frame */
                    for (int y = 0; y < S; y++)
                        for (int x = 0; x < S; x++) {
                            int sy, sx;
                            if (deg == 90) { sy = S - 1 - x; sx = y; }
                            else if (deg == 180) { sy = S - 1 - y; sx = S - 1 - x; }
                            else { sy = x; sx = S - 1 - y; }
                            float u = R[(((size_t)(3 * clip + crop) * 6 + ct) * S + y) * S + x];
                            float v = A[(((size_t)(3 * clip + src_crop) * 6 + ct) * S + sy) * S + sx];
                            float dd = fabsf(u - v);
                            if (dd > maxd) maxd = dd;
                        }
            }
        CHECK_MSG(maxd < 1e-4f, "rotation %d: max difference %g from the rotated upright result", deg, maxd);
        ngpt_tensor_free(&r);
    }
    ngpt_tensor_free(&a);
    free(b);
}

/* Every allocation of ours failing in turn: NGPT_ERR_OUT_OF_MEMORY, nothing leaked. */
static ngpt_status alloc_case(int which)
{
    char p[1400];
    ngpt_status st;
    ngpt_tensor t = {0};
    if (which < 9) {
        static const char *files[] = {"interlaced.png", "cmyk.jpg", "palette4.png", "cmyk.tif", "rle8.bmp",
                                      "maxval1000.ppm", "tiled_planar.tif", "jpeg_ycbcr_tiled.tif", "dib4.ico"};
        snprintf(p, sizeof p, "%s/tests/data/media/%s", g_src, files[which]);
        ngpt_image *img = NULL;
        st = ngpt_image_load(&img, p);
        if (st == NGPT_OK) st = ngpt_image_preprocess(&t, img);
        ngpt_image_free(img);
    } else {
        if (which == 9) snprintf(p, sizeof p, "%s/tests/data/media/stereo44k.wav", g_src);
        else snprintf(p, sizeof p, "%s/tests/golden/vision/audio.fbank/m4a_aac_22k_2_3s/input.m4a", g_src);
        ngpt_audio *a = NULL;
        st = ngpt_audio_load(&a, p);
        if (st == NGPT_OK) st = ngpt_audio_preprocess(&t, a, NULL);
        ngpt_audio_free(a);
    }
    ngpt_tensor_free(&t);
    return st;
}

static void test_alloc_failures(void)
{
    for (int which = 0; which < 11; which++) {  /* 9 images, a WAV, an M4A (the FFmpeg path) */
        int64_t blocks = nx_alloc_blocks();
        int ok = 0;
        for (int64_t nth = 1; nth < 200 && !ok; nth++) {
            nx_alloc_fail_at(nth);
            ngpt_status st = alloc_case(which);
            int fired = nx_alloc_fail_fired();
            nx_alloc_fail_at(0);
            if (!fired) {
                CHECK_OK(st);
                ok = 1;
            } else {
                CHECK_MSG(st == NGPT_ERR_OUT_OF_MEMORY, "case %d, allocation %lld: %s %s", which, (long long)nth,
                          ngpt_status_string(st), ngpt_last_error());
            }
            CHECK_MSG(nx_alloc_blocks() == blocks, "case %d, allocation %lld: leaked %lld blocks", which,
                      (long long)nth, (long long)(nx_alloc_blocks() - blocks));
        }
        CHECK(ok);
    }
}

int main(void)
{
    const char *src = getenv("NGPT_SOURCE_ROOT");
    snprintf(g_src, sizeof g_src, "%s", src ? src : ".");
    const char *gd = getenv("NGPT_GOLDEN_DIR");
    if (gd) snprintf(g_shared, sizeof g_shared, "%s", gd);
    else snprintf(g_shared, sizeof g_shared, "%s/../shared/golden", g_src);
    RUN(test_golden);
    RUN(test_decode_fixtures);
    RUN(test_lanczos_fixture);
    RUN(test_bad_images);
    RUN(test_bad_audio);
    RUN(test_bad_video);
    RUN(test_bad_edge_cases);
    RUN(test_audio_like_sox);
    RUN(test_audio_through_ffmpeg);
    RUN(test_decoders_silent);
    RUN(test_extreme_aspect);
    RUN(test_video_rotation);
    RUN(test_stream_fixtures);
    RUN(test_alloc_failures);
    return test_done();
}
