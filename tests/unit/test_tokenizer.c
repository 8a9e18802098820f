/* test_tokenizer.c — the LLaMA tokenizer (lib/tokenizer, public ngpt_tokenizer_*).
 *
 * Runs every tokenizer.encode / tokenizer.decode golden case found under
 *   $NGPT_GOLDEN_DIR (default $NGPT_SOURCE_ROOT/../shared/golden)  and
 *   $NGPT_SOURCE_ROOT/tests/golden   (the project's own cases, tools/gen_tokenizer_cases.py)
 * with exact equality, plus API contract checks (two-call sizing, errors, invalid UTF-8,
 * corrupt and truncated models, concurrent use). Needs no Python. */
#include "nextgpt.h"
#include "test.h"

#include "core/alloc.h"
#include "tokenizer/sentencepiece.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* Paths here are built in fixed 4 KiB buffers; truncation would only make a case fail. */
#if defined(__GNUC__) && !defined(__clang__)
#ifndef __clang__ /* a gcc-only warning */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#endif

/* ---------------------------------------------------------------------------------------------
 * Tiny safetensors reader (8-byte LE header length, JSON header, data)
 * ------------------------------------------------------------------------------------------- */

/* Load tensor `name`: returns malloc'd data (NULL on failure) and its byte count; checks dtype. */
static void *st_load(const char *path, const char *name, const char *dtype, size_t *nbytes)
{
    size_t n;
    unsigned char *buf = test_read_file(path, &n);
    void *out = NULL;
    if (!buf || n < 8) goto done;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
    if (hl > n - 8) goto done;
    json_error_t e;
    json_t *h = json_loadb((const char *)buf + 8, (size_t)hl, 0, &e);
    if (!h) goto done;
    json_t *t = json_object_get(h, name);
    json_t *off = json_object_get(t, "data_offsets");
    const char *dt = json_string_value(json_object_get(t, "dtype"));
    if (t && dt && strcmp(dt, dtype) == 0 && json_array_size(off) == 2) {
        size_t a = (size_t)json_integer_value(json_array_get(off, 0));
        size_t b = (size_t)json_integer_value(json_array_get(off, 1));
        if (a <= b && b <= n - 8 - hl) {
            *nbytes = b - a;
            out = malloc(b - a + 1);
            if (out) memcpy(out, buf + 8 + hl + a, b - a);
        }
    }
    json_decref(h);
done:
    free(buf);
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * Golden cases
 * ------------------------------------------------------------------------------------------- */

static int g_cases, g_passed;

static void hexdump_diff(const char *what, const char *got, size_t ng, const char *want, size_t nw)
{
    fprintf(stderr, "  %s: got %zu bytes \"%.*s\"\n  want %zu bytes \"%.*s\"\n", what, ng, (int)ng, got, nw,
            (int)nw, want);
}

static void run_case(const char *case_dir, int is_encode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/case.json", case_dir);
    json_error_t e;
    json_t *c = json_load_file(path, 0, &e);
    g_cases++;
    CHECK_MSG(c != NULL, "%s: %s", path, e.text);
    if (!c) return;
    const char *model = json_string_value(json_object_get(c, "model"));
    json_t *params = json_object_get(c, "params");
    char model_dir[4096];
    snprintf(model_dir, sizeof model_dir, "%s/%s", case_dir, model ? model : "");
    ngpt_tokenizer *tok = NULL;
    ngpt_status s = ngpt_tokenizer_create(&tok, model_dir);
    CHECK_MSG(s == NGPT_OK, "%s: %s", case_dir, ngpt_last_error());
    int ok = 0;
    if (tok && is_encode) {
        const char *text = json_string_value(json_object_get(params, "text"));
        size_t text_len = json_string_length(json_object_get(params, "text"));
        int add_bos = json_is_true(json_object_get(params, "add_bos"));
        snprintf(path, sizeof path, "%s/expected.safetensors", case_dir);
        size_t nb = 0;
        int32_t *want = st_load(path, "ids", "I32", &nb);
        size_t nw = nb / 4, n = 0;
        CHECK_MSG(want && text, "%s: bad case files", case_dir);
        if (want && text) {
            s = ngpt_tokenizer_encode(tok, text, text_len, add_bos, NULL, 0, &n);
            CHECK_MSG(s == (nw ? NGPT_ERR_BUFFER_TOO_SMALL : NGPT_OK) || (nw == 0 && n == 0 && s == NGPT_ERR_BUFFER_TOO_SMALL),
                      "%s: sizing call -> %s", case_dir, ngpt_status_string(s));
            int32_t *got = malloc((n + 1) * sizeof *got);
            s = ngpt_tokenizer_encode(tok, text, text_len, add_bos, got, n, &n);
            ok = s == NGPT_OK && n == nw && (n == 0 || memcmp(got, want, n * 4) == 0);
            if (!ok) {
                fprintf(stderr, "%s: %s\n  got ", case_dir, ngpt_status_string(s));
                for (size_t i = 0; i < n; i++) fprintf(stderr, "%d ", got[i]);
                fprintf(stderr, "\n  want ");
                for (size_t i = 0; i < nw; i++) fprintf(stderr, "%d ", want[i]);
                fprintf(stderr, "\n");
            }
            free(got);
        }
        free(want);
    } else if (tok) {
        int skip = json_is_true(json_object_get(params, "skip_special_tokens"));
        size_t nb = 0, nt = 0;
        snprintf(path, sizeof path, "%s/inputs.safetensors", case_dir);
        int32_t *ids = st_load(path, "ids", "I32", &nb);
        snprintf(path, sizeof path, "%s/expected.safetensors", case_dir);
        char *want = st_load(path, "text_utf8", "U8", &nt);
        CHECK_MSG(ids && want, "%s: bad case files", case_dir);
        if (ids && want) {
            size_t len = 0;
            s = ngpt_tokenizer_decode(tok, ids, nb / 4, skip, NULL, 0, &len);
            char *got = malloc(len + 1);
            s = ngpt_tokenizer_decode(tok, ids, nb / 4, skip, got, len + 1, &len);
            ok = s == NGPT_OK && len == nt && memcmp(got, want, nt) == 0 && got[len] == '\0';
            if (!ok) {
                fprintf(stderr, "%s: %s %s\n", case_dir, ngpt_status_string(s), ngpt_last_error());
                hexdump_diff("text", got, len, want, nt);
            }
            free(got);
        }
        free(ids);
        free(want);
    }
    CHECK_MSG(ok, "golden case %s", case_dir);
    g_passed += ok;
    ngpt_tokenizer_free(tok);
    json_decref(c);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Run every case in <root>/llm/<stage>/; returns how many. */
static int run_stage_dir(const char *root, const char *stage, int is_encode)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/llm/%s", root, stage);
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *names[1024];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 1024)
        if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char cd[4096], cj[4200];
        snprintf(cd, sizeof cd, "%s/%s", dir, names[i]);
        snprintf(cj, sizeof cj, "%s/case.json", cd);
        if (access(cj, R_OK) == 0) run_case(cd, is_encode);
        free(names[i]);
    }
    return n;
}

static const char *source_root(void)
{
    const char *r = getenv("NGPT_SOURCE_ROOT");
    return r ? r : ".";
}

static void test_golden_shared(void)
{
    char root[4096];
    const char *g = getenv("NGPT_GOLDEN_DIR");
    if (g) snprintf(root, sizeof root, "%s", g);
    else snprintf(root, sizeof root, "%s/../shared/golden", source_root());
    int before = g_cases, pb = g_passed;
    int n = run_stage_dir(root, "tokenizer.encode", 1) + run_stage_dir(root, "tokenizer.decode", 0);
    fprintf(stderr, "shared golden (%s): %d/%d cases pass\n", root, g_passed - pb, g_cases - before);
    if (n == 0) fprintf(stderr, "note: no shared golden tokenizer cases under %s\n", root);
}

static void test_golden_project(void)
{
    char root[4096];
    snprintf(root, sizeof root, "%s/tests/golden", source_root());
    int before = g_cases, pb = g_passed;
    int n = run_stage_dir(root, "tokenizer.encode", 1) + run_stage_dir(root, "tokenizer.decode", 0);
    fprintf(stderr, "project golden (%s): %d/%d cases pass\n", root, g_passed - pb, g_cases - before);
    CHECK_MSG(n > 0, "no project golden cases under %s", root);
}

/* ---------------------------------------------------------------------------------------------
 * API contract
 * ------------------------------------------------------------------------------------------- */

static char g_model_dir[4096], g_plain_dir[4096];

static int find_models(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    char root[4096];
    if (g) snprintf(root, sizeof root, "%s", g);
    else snprintf(root, sizeof root, "%s/../shared/golden", source_root());
    snprintf(g_model_dir, sizeof g_model_dir, "%s/models/tok-a-nextgpt", root);
    snprintf(g_plain_dir, sizeof g_plain_dir, "%s/models/tok-a", root);
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.model", g_model_dir);
    return access(p, R_OK) == 0;
}

static void test_api(void)
{
    ngpt_tokenizer *tok = NULL;
    ngpt_tokenizer_free(NULL);
    CHECK_ERR(ngpt_tokenizer_create(NULL, g_model_dir), NGPT_ERR_INVALID_ARGUMENT, "");
    CHECK_ERR(ngpt_tokenizer_create(&tok, "/nonexistent/dir"), NGPT_ERR_NOT_FOUND, "/nonexistent/dir/tokenizer.model");
    CHECK(tok == NULL);
    CHECK_OK(ngpt_tokenizer_create(&tok, g_model_dir));
    if (!tok) return;
    CHECK(ngpt_tokenizer_vocab_size(tok) == 1038);
    CHECK(ngpt_tokenizer_bos_id(tok) == 1);
    CHECK(ngpt_tokenizer_eos_id(tok) == 2);
    CHECK(ngpt_tokenizer_piece_to_id(tok, "[IMG0]") == 1002);
    CHECK(ngpt_tokenizer_piece_to_id(tok, "[AUD7]") == 1037);
    CHECK(ngpt_tokenizer_piece_to_id(tok, "<0x0A>") == 13);
    CHECK(ngpt_tokenizer_piece_to_id(tok, "no such piece") == -1);
    CHECK(strcmp(ngpt_tokenizer_token_to_piece(tok, 1), "<s>") == 0);
    CHECK(strcmp(ngpt_tokenizer_token_to_piece(tok, 1029), "[VID23]") == 0);
    CHECK(ngpt_tokenizer_token_to_piece(tok, 1038) == NULL);
    CHECK(ngpt_tokenizer_token_to_piece(tok, -1) == NULL);

    /* two-call sizing */
    const char *text = "hello [IMG0]";
    size_t n = 99;
    CHECK_ERR(ngpt_tokenizer_encode(tok, text, strlen(text), 1, NULL, 0, &n), NGPT_ERR_BUFFER_TOO_SMALL, "");
    CHECK(n > 2);
    int32_t ids[64];
    size_t need = n;
    CHECK_ERR(ngpt_tokenizer_encode(tok, text, strlen(text), 1, ids, need - 1, &n), NGPT_ERR_BUFFER_TOO_SMALL, "");
    CHECK(n == need);
    CHECK_OK(ngpt_tokenizer_encode(tok, text, strlen(text), 1, ids, 64, &n));
    CHECK(n == need && ids[0] == 1 && ids[n - 1] == 1002);
    CHECK_OK(ngpt_tokenizer_encode(tok, NULL, 0, 0, ids, 64, &n));
    CHECK(n == 0);
    CHECK_OK(ngpt_tokenizer_encode(tok, "", 0, 1, ids, 64, &n));
    CHECK(n == 1 && ids[0] == 1);
    CHECK_ERR(ngpt_tokenizer_encode(tok, NULL, 3, 0, ids, 64, &n), NGPT_ERR_INVALID_ARGUMENT, "");

    /* decode sizing: exact cap (no NUL), cap+1 (NUL), short */
    int32_t d[] = {1, 1002, 1003};
    size_t len = 0;
    CHECK_ERR(ngpt_tokenizer_decode(tok, d, 3, 0, NULL, 0, &len), NGPT_ERR_BUFFER_TOO_SMALL, "");
    CHECK(len == strlen("<s> [IMG0] [IMG1]"));
    char buf[64];
    memset(buf, 'x', sizeof buf);
    CHECK_ERR(ngpt_tokenizer_decode(tok, d, 3, 0, buf, len - 1, &len), NGPT_ERR_BUFFER_TOO_SMALL, "");
    CHECK(buf[0] == 'x');
    CHECK_OK(ngpt_tokenizer_decode(tok, d, 3, 0, buf, len, &len));
    CHECK(buf[len] == 'x' && memcmp(buf, "<s> [IMG0] [IMG1]", len) == 0);
    CHECK_OK(ngpt_tokenizer_decode(tok, d, 3, 0, buf, sizeof buf, &len));
    CHECK(strcmp(buf, "<s> [IMG0] [IMG1]") == 0);
    CHECK_OK(ngpt_tokenizer_decode(tok, d, 3, 1, buf, sizeof buf, &len));
    CHECK(strcmp(buf, "[IMG0] [IMG1]") == 0);
    CHECK_OK(ngpt_tokenizer_decode(tok, NULL, 0, 1, buf, sizeof buf, &len));
    CHECK(len == 0 && buf[0] == '\0');
    int32_t bad[] = {5, 1038};
    CHECK_ERR(ngpt_tokenizer_decode(tok, bad, 2, 0, buf, sizeof buf, &len), NGPT_ERR_INVALID_ARGUMENT, "1038");
    int32_t neg[] = {-1};
    CHECK_ERR(ngpt_tokenizer_decode(tok, neg, 1, 0, buf, sizeof buf, &len), NGPT_ERR_INVALID_ARGUMENT, "-1");
    /* <0x00> decodes to a NUL byte inside the text */
    int32_t z[] = {3 + 0x41, 3, 3 + 0x42};
    CHECK_OK(ngpt_tokenizer_decode(tok, z, 3, 0, buf, sizeof buf, &len));
    CHECK(len == 3 && memcmp(buf, "A\0B", 4) == 0);
    ngpt_tokenizer_free(tok);
}

/* Invalid UTF-8 and arbitrary bytes: never crash, every byte accounted for, decode round trip
 * of valid text. */
static void test_bytes(void)
{
    ngpt_tokenizer *tok = NULL;
    CHECK_OK(ngpt_tokenizer_create(&tok, g_model_dir));
    if (!tok) return;
    int32_t ids[4096];
    size_t n, len;
    char out[16384];
    /* a lone 0xFF reads as U+FFFD -> bytes EF BF BD */
    CHECK_OK(ngpt_tokenizer_encode(tok, "\xff", 1, 0, ids, 4096, &n));
    CHECK(n == 4 && ids[1] == 3 + 0xEF && ids[2] == 3 + 0xBF && ids[3] == 3 + 0xBD);
    CHECK_OK(ngpt_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len));
    CHECK(len == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0);  /* the dummy-prefix ▁ is dropped */
    /* expected ids from python sentencepiece 0.1.97, sp.encode(bytes), tok-a's model: every
     * invalid byte (truncated, overlong, surrogate, > U+10FFFF) is one U+FFFD -> <0xEF><0xBF><0xBD> */
    static const struct {
        const char *bytes;
        size_t      n;
        int32_t     ids[40];
        size_t      nids;
    } inv[] = {
        {"\xff abc", 5, {784, 242, 194, 192, 654, 794}, 6},
        {"\xe4\xbd", 2, {784, 242, 194, 192, 242, 194, 192}, 7},
        {"a\0b", 3, {262, 3, 802}, 3},
        {"caf\xc3 \xed\xa0\x80x \xc0\x80 \xf4\x90\x80\x80", 17,
         {272, 791, 798, 242, 194, 192, 784, 242, 194, 192, 242, 194, 192, 242, 194, 192, 825, 784, 242,
          194, 192, 242, 194, 192, 784, 242, 194, 192, 242, 194, 192, 242, 194, 192, 242, 194, 192}, 37},
        {"\xef\xbf\xbd", 3, {784, 242, 194, 192}, 4},
    };
    for (size_t k = 0; k < sizeof inv / sizeof inv[0]; k++) {
        CHECK_OK(ngpt_tokenizer_encode(tok, inv[k].bytes, inv[k].n, 0, ids, 4096, &n));
        CHECK_MSG(n == inv[k].nids && memcmp(ids, inv[k].ids, n * 4) == 0, "invalid UTF-8 case %zu", k);
    }
    test_rng r = {0x1234567};
    for (int iter = 0; iter < 300; iter++) {
        char text[512];
        size_t tl = (size_t)(test_rng_u64(&r) % sizeof text);
        for (size_t i = 0; i < tl; i++) {
            uint64_t x = test_rng_u64(&r);
            static const char pool[] = " a[IMG0]<s></s>\n\t";
            text[i] = (x & 1) ? pool[(x >> 8) % (sizeof pool - 1)] : (char)(x >> 16);
        }
        ngpt_status s = ngpt_tokenizer_encode(tok, text, tl, iter & 1, ids, 4096, &n);
        CHECK(s == NGPT_OK);
        if (s != NGPT_OK) continue;
        s = ngpt_tokenizer_decode(tok, ids, n, iter & 2, out, sizeof out, &len);
        CHECK(s == NGPT_OK);
    }
    /* ASCII without specials or whitespace runs round-trips after the dummy prefix */
    const char *t = "The quick brown fox, 1234 jumps!";
    CHECK_OK(ngpt_tokenizer_encode(tok, t, strlen(t), 0, ids, 4096, &n));
    CHECK_OK(ngpt_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len));
    CHECK(len == strlen(t) && memcmp(out, t, len) == 0);
    ngpt_tokenizer_free(tok);
}

/* Corrupt models: every truncation and many byte flips of a real tokenizer.model either load or
 * fail with a message; never crash, never read past the buffer (run under ASan). */
static void test_corrupt_model(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.model", g_plain_dir);
    size_t n;
    unsigned char *buf = test_read_file(p, &n);
    CHECK(buf != NULL);
    if (!buf) return;
    nx_sp_model *m = NULL;
    CHECK_OK(nx_sp_load_buf(&m, buf, n, "tok-a/tokenizer.model"));
    CHECK(m && nx_sp_size(m) == 1000);
    nx_sp_free(m);
    int64_t blocks = nx_alloc_blocks();
    int failed = 0;
    for (size_t cut = 0; cut < n; cut += (cut < 200 ? 1 : 37)) {
        unsigned char *copy = malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        m = NULL;
        ngpt_status s = nx_sp_load_buf(&m, copy, cut, "tok-a/tokenizer.model");
        if (s != NGPT_OK) {
            failed++;
            CHECK(m == NULL && strstr(ngpt_last_error(), "tok-a/tokenizer.model: ") != NULL);
        }
        nx_sp_free(m);
        free(copy);
    }
    CHECK(failed > 100);
    /* a piece cut in the middle says which */
    m = NULL;
    CHECK_ERR(nx_sp_load_buf(&m, buf, 40, "tok-a/tokenizer.model"), NGPT_ERR_BAD_FORMAT, "tok-a/tokenizer.model: ");
    test_rng r = {99};
    unsigned char *copy = malloc(n);
    for (int iter = 0; iter < 400; iter++) {
        memcpy(copy, buf, n);
        for (int k = 0; k < 4; k++) copy[test_rng_u64(&r) % n] = (unsigned char)test_rng_u64(&r);
        m = NULL;
        if (nx_sp_load_buf(&m, copy, n, "x") == NGPT_OK) {
            nx_i32vec v = {0};
            (void)nx_sp_encode(m, "hello w\xc3\xb6rld 123", 16, &v);
            nx_strbuf sb = {0};
            if (v.n) (void)nx_sp_decode(m, v.v, v.n, &sb);
            nx_free(v.v);
            nx_free(sb.s);
        }
        nx_sp_free(m);
    }
    free(copy);
    CHECK(nx_alloc_blocks() == blocks);
    /* a UNIGRAM model (trainer_spec.model_type = 1) is refused */
    unsigned char uni[] = {0x0a, 0x07, 0x0a, 0x05, '<', 'u', 'n', 'k', '>', 0x12, 0x02, 0x18, 0x01};
    uni[8 + 1 - 1] = '>';
    m = NULL;
    CHECK_ERR(nx_sp_load_buf(&m, uni, sizeof uni, "u.model"), NGPT_ERR_UNSUPPORTED, "UNIGRAM");
    free(buf);
}

/* Allocation failures during load/encode/decode: clean error, nothing leaked. */
static void test_alloc_failures(void)
{
    int64_t blocks = nx_alloc_blocks();
    for (int64_t k = 1; k < 400; k++) {
        nx_alloc_fail_at(k);
        ngpt_tokenizer *tok = NULL;
        ngpt_status s = ngpt_tokenizer_create(&tok, g_model_dir);
        if (s == NGPT_OK) {
            int32_t ids[256];
            size_t n = 0, len;
            char out[1024];
            s = ngpt_tokenizer_encode(tok, "hi [IMG0] there \xf0\x9f\x98\x80", 20, 1, ids, 256, &n);
            if (s == NGPT_OK) s = ngpt_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len);
        }
        int fired = nx_alloc_fail_fired();
        nx_alloc_fail_at(0);
        if (fired) CHECK(s == NGPT_ERR_OUT_OF_MEMORY);
        ngpt_tokenizer_free(tok);
        if (!fired) break;
    }
    CHECK(nx_alloc_blocks() == blocks);
}

/* Concurrent encode/decode on one tokenizer. */
typedef struct thr_arg {
    ngpt_tokenizer *tok;
    int             ok;
} thr_arg;

static void *thr_main(void *p)
{
    thr_arg *a = p;
    const char *t = "### Human: <Img>photo.jpg</Img> what is this?\n### Assistant: a cat [IMG0] [IMG1]";
    int32_t first[256], ids[256];
    size_t n0 = 0, n = 0, len;
    char out[2048];
    a->ok = ngpt_tokenizer_encode(a->tok, t, strlen(t), 1, first, 256, &n0) == NGPT_OK;
    for (int i = 0; i < 300 && a->ok; i++) {
        a->ok &= ngpt_tokenizer_encode(a->tok, t, strlen(t), 1, ids, 256, &n) == NGPT_OK;
        a->ok &= n == n0 && memcmp(ids, first, n * 4) == 0;
        a->ok &= ngpt_tokenizer_decode(a->tok, ids, n, 1, out, sizeof out, &len) == NGPT_OK;
    }
    return NULL;
}

static void test_threads(void)
{
    ngpt_tokenizer *tok = NULL;
    CHECK_OK(ngpt_tokenizer_create(&tok, g_model_dir));
    if (!tok) return;
    pthread_t th[4];
    thr_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (thr_arg){tok, 0};
        pthread_create(&th[i], NULL, thr_main, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(a[i].ok);
    }
    ngpt_tokenizer_free(tok);
}

/* Bad tokenizer folders: errors name the file. */
static void test_bad_folder(void)
{
    char dir[] = "/tmp/ngpt_tok_XXXXXX";
    if (!mkdtemp(dir)) return;
    char p[256], src[4200];
    snprintf(src, sizeof src, "%s/tokenizer.model", g_plain_dir);
    size_t n;
    unsigned char *buf = test_read_file(src, &n);
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    FILE *f = fopen(p, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    free(buf);
    snprintf(p, sizeof p, "%s/added_tokens.json", dir);
    f = fopen(p, "w");
    fputs("{\"[IMG0]\": 1000, \"[IMG1]\": 1005}", f);
    fclose(f);
    ngpt_tokenizer *tok = NULL;
    CHECK_ERR(ngpt_tokenizer_create(&tok, dir), NGPT_ERR_BAD_FORMAT, "added_tokens.json");
    f = fopen(p, "w");
    fputs("{\"[IMG0]\": 1000,", f);
    fclose(f);
    CHECK_ERR(ngpt_tokenizer_create(&tok, dir), NGPT_ERR_BAD_FORMAT, "added_tokens.json:1:");
    f = fopen(p, "w");
    fputs("{\"[IMG0]\": 1000, \"[IMG1]\": 1001}", f);
    fclose(f);
    CHECK_OK(ngpt_tokenizer_create(&tok, dir));
    CHECK(ngpt_tokenizer_vocab_size(tok) == 1002);
    ngpt_tokenizer_free(tok);
    tok = NULL;
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer.model", dir);
    unlink(p);
    rmdir(dir);
}

int main(void)
{
    if (!find_models()) {
        fprintf(stderr, "SKIP: no tokenizer models under NGPT_GOLDEN_DIR / $NGPT_SOURCE_ROOT/../shared/golden\n");
        return TEST_SKIP;
    }
    RUN(test_golden_shared);
    RUN(test_golden_project);
    RUN(test_api);
    RUN(test_bytes);
    RUN(test_corrupt_model);
    RUN(test_alloc_failures);
    RUN(test_threads);
    RUN(test_bad_folder);
    fprintf(stderr, "golden: %d/%d cases pass\n", g_passed, g_cases);
    return test_done();
}
