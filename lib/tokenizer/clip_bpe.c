/* clip_bpe.c — see clip_bpe.h. A port of transformers 4.29's CLIPTokenizer (slow) on the path it
 * takes without ftfy (tokenization_clip.py, tokenization_utils.py), and of RobertaTokenizer
 * (tokenization_roberta.py: GPT-2's byte-level BPE) on the same machinery; the regexes run on
 * PCRE2, whose allocations go through nx_malloc (so allocation-failure tests reach them). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "clip_bpe.h"

#include "../core/alloc.h"
#include "../core/json.h"

#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

/* ------------------------------------------------------------------ string -> int map */

typedef struct sm_entry {
    const char *k;   /* borrowed (the tokenizer's arenas); NULL = empty slot */
    uint32_t    len;
    int32_t     v;
} sm_entry;

typedef struct strmap {
    sm_entry *e;
    size_t    cap;   /* power of two */
} strmap;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static ngpt_status sm_init(strmap *m, size_t n, const char *what)
{
    size_t cap = 16;
    while (cap < 2 * n + 1) cap *= 2;
    m->e = nx_calloc(cap, sizeof *m->e);
    if (!m->e) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    m->cap = cap;
    return NGPT_OK;
}

/* Insert or overwrite (Python dict semantics: the later value wins). The map never fills:
 * sm_init sized it for every key. */
static void sm_put(strmap *m, const char *k, size_t n, int32_t v)
{
    size_t i = hash(k, n) & (m->cap - 1);
    while (m->e[i].k && !(m->e[i].len == n && memcmp(m->e[i].k, k, n) == 0)) i = (i + 1) & (m->cap - 1);
    m->e[i].k = k;
    m->e[i].len = (uint32_t)n;
    m->e[i].v = v;
}

static bool sm_get(const strmap *m, const char *k, size_t n, int32_t *v)
{
    size_t i = hash(k, n) & (m->cap - 1);
    while (m->e[i].k) {
        if (m->e[i].len == n && memcmp(m->e[i].k, k, n) == 0) {
            *v = m->e[i].v;
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return false;
}

/* ------------------------------------------------------------------ the tokenizer */

#define CLIP_MAX_SPECIAL 16

struct nx_clip_bpe {
    nx_bpe_flavour flavour;
    strmap  vocab;                 /* token string -> id */
    char   *vocab_keys;            /* arena of the vocab strings */
    strmap  ranks;                 /* "first second" -> merge rank */
    char   *merges;                /* merges.txt, rewritten in place into the "a b" keys */
    char   *special[CLIP_MAX_SPECIAL];  /* no-split tokens (nx_strdup'd), matched longest first */
    bool    lstrip[CLIP_MAX_SPECIAL], rstrip[CLIP_MAX_SPECIAL];  /* AddedToken flags: strip the
                                         * whitespace left / right of the token */
    int     n_special;
    int32_t bos, eos, pad, unk, n_vocab, max_len;
    char    byte_enc[256][3];      /* bytes_to_unicode: byte -> UTF-8 of its stand-in character */
    uint8_t byte_enc_len[256];
    pcre2_general_context *gctx;
    pcre2_code *pat;               /* CLIP's pre-tokenizer pattern */
    pcre2_code *cls;               /* one character: (\p{C}) | (whitespace) */
};

static void *pc_malloc(size_t n, void *u)
{
    (void)u;
    return nx_malloc(n);
}

static void pc_free(void *p, void *u)
{
    (void)u;
    nx_free(p);
}

/* bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 map to
 * U+0100.. in byte order. */
static void init_byte_enc(nx_clip_bpe *t)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int cp = keep ? b : 256 + n++;
        if (cp < 0x80) {
            t->byte_enc[b][0] = (char)cp;
            t->byte_enc_len[b] = 1;
        } else {
            t->byte_enc[b][0] = (char)(0xC0 | (cp >> 6));
            t->byte_enc[b][1] = (char)(0x80 | (cp & 0x3F));
            t->byte_enc_len[b] = 2;
        }
    }
}

static ngpt_status read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return nx_err(NGPT_ERR_NOT_FOUND, "%s: cannot open", path);
    ngpt_status s = NGPT_OK;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) s = nx_err(NGPT_ERR_IO, "%s: cannot read", path);
    char *b = NULL;
    if (s == NGPT_OK && !(b = nx_malloc((size_t)n + 1))) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    if (s == NGPT_OK && fread(b, 1, (size_t)n, f) != (size_t)n) s = nx_err(NGPT_ERR_IO, "%s: short read", path);
    fclose(f);
    if (s != NGPT_OK) {
        nx_free(b);
        return s;
    }
    b[n] = 0;
    *buf = b;
    *len = (size_t)n;
    return NGPT_OK;
}

static ngpt_status load_vocab(nx_clip_bpe *t, const char *path)
{
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    ngpt_status s = NGPT_OK;
    if (!json_is_object(j) || json_object_size(j) == 0)
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: expected a non-empty object {token: id}", path);
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) total += strlen(k) + 1;
    if (s == NGPT_OK) s = sm_init(&t->vocab, json_object_size(j), path);
    if (s == NGPT_OK && !(t->vocab_keys = nx_malloc(total ? total : 1)))
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    size_t off = 0;
    json_object_foreach(j, k, v) {
        if (s != NGPT_OK) break;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= INT32_MAX) {
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: token '%s' has no valid id", path, k);
            break;
        }
        size_t n = strlen(k);
        memcpy(t->vocab_keys + off, k, n + 1);
        int32_t id = (int32_t)json_integer_value(v);
        sm_put(&t->vocab, t->vocab_keys + off, n, id);
        if (id + 1 > t->n_vocab) t->n_vocab = id + 1;
        off += n + 1;
    }
    json_decref(j);
    return s;
}

/* merges.txt as tokenization_clip.py reads it: read().strip().split("\n")[1 : 49152 - 256 - 2 + 1];
 * as tokenization_roberta.py does: read().split("\n")[1:-1] (no strip, no limit: the last line
 * is dropped, which is the empty one after a final newline). Each line split on whitespace; a
 * line that is not exactly two symbols keeps its rank but can never match a pair. */
static ngpt_status load_merges(nx_clip_bpe *t, const char *path)
{
    size_t len = 0;
    NX_TRY(read_file(path, &t->merges, &len));
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += t->merges[i] == '\n';
    NX_TRY(sm_init(&t->ranks, lines, path));
    char *p = t->merges, *end = p + len;
    int64_t last = 49152 - 256 - 2;
    if (t->flavour == NX_BPE_CLIP) {
        while (p < end && strchr(" \t\r\n\v\f", *p)) p++;  /* strip() */
        while (end > p && strchr(" \t\r\n\v\f", end[-1])) end--;
    } else {
        last = (int64_t)lines - 2;  /* [1:-1] */
    }
    *end = 0;
    int64_t line = 0;
    while (p <= end && line <= last) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if (line >= 1) {
            char *w[3];
            size_t wl[3];
            int nw = 0;
            for (char *q = p; q < le && nw < 3;) {
                while (q < le && strchr(" \t\r\v\f", *q)) q++;
                if (q >= le) break;
                char *s0 = q;
                while (q < le && !strchr(" \t\r\v\f", *q)) q++;
                w[nw] = s0;
                wl[nw++] = (size_t)(q - s0);
            }
            if (nw == 2) {  /* rewrite as "a b" at the line's start (never longer than the line) */
                memmove(p, w[0], wl[0]);
                p[wl[0]] = ' ';
                memmove(p + wl[0] + 1, w[1], wl[1]);
                sm_put(&t->ranks, p, wl[0] + 1 + wl[1], (int32_t)(line - 1));
            }
        }
        line++;
        if (!nl) break;
        p = nl + 1;
    }
    return NGPT_OK;
}

/* A special token's string from special_tokens_map.json, else tokenizer_config.json, else `def`:
 * a string, or an AddedToken object {"content": ...}. */
static const char *special_str(const json_t *map, const json_t *cfg, const char *key, const char *def)
{
    const json_t *srcs[2] = {map, cfg};
    for (int i = 0; i < 2; i++) {
        json_t *v = srcs[i] ? json_object_get(srcs[i], key) : NULL;
        if (json_is_object(v)) v = json_object_get(v, "content");
        if (json_is_string(v)) return json_string_value(v);
    }
    return def;
}

/* The AddedToken flags of special token `key`: an object's "lstrip"/"rstrip", else the
 * tokenizer's own default for a plain string (RobertaTokenizer: mask_token lstrip=True). */
static void special_flags(const json_t *map, const json_t *cfg, const char *key, bool def_lstrip, bool *ls, bool *rs)
{
    const json_t *srcs[2] = {map, cfg};
    *ls = def_lstrip;
    *rs = false;
    for (int i = 0; i < 2; i++) {
        json_t *v = srcs[i] ? json_object_get(srcs[i], key) : NULL;
        if (json_is_object(v)) {
            *ls = json_is_true(json_object_get(v, "lstrip"));
            *rs = json_is_true(json_object_get(v, "rstrip"));
            return;
        }
        if (json_is_string(v)) return;
    }
}

/* A later definition of the same string overrides the flags (the last one in
 * all_special_tokens_extended wins). */
static ngpt_status add_special(nx_clip_bpe *t, const char *s, bool ls, bool rs, const char *dir)
{
    if (!s[0]) return NGPT_OK;
    int i = 0;
    while (i < t->n_special && strcmp(t->special[i], s) != 0) i++;
    if (i == t->n_special) {
        if (t->n_special == CLIP_MAX_SPECIAL)
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: more than %d special tokens", dir, CLIP_MAX_SPECIAL);
        if (!(t->special[i] = nx_strdup(s))) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
        t->n_special++;
    }
    t->lstrip[i] = ls;
    t->rstrip[i] = rs;
    return NGPT_OK;
}

static ngpt_status special_id(const nx_clip_bpe *t, const char *s, const char *what, const char *dir, int32_t *id)
{
    if (!sm_get(&t->vocab, s, strlen(s), id))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: the %s '%s' is not in vocab.json", dir, what, s);
    return NGPT_OK;
}

static ngpt_status load_specials(nx_clip_bpe *t, const char *dir, char *path, size_t cap)
{
    json_t *map = NULL, *cfg = NULL;
    ngpt_status s = NGPT_OK;
    snprintf(path, cap, "%s/special_tokens_map.json", dir);
    ngpt_status r = nx_json_load_file(&map, path);
    if (r == NGPT_ERR_NOT_FOUND) ngpt_clear_error();
    else if (r != NGPT_OK) s = r;
    snprintf(path, cap, "%s/tokenizer_config.json", dir);
    if (s == NGPT_OK) {
        r = nx_json_load_file(&cfg, path);
        if (r == NGPT_ERR_NOT_FOUND) ngpt_clear_error();
        else if (r != NGPT_OK) s = r;
    }
    bool rob = t->flavour == NX_BPE_ROBERTA;
    /* SPECIAL_TOKENS_ATTRIBUTES order: bos, eos, unk, sep, pad, cls, mask */
    static const char *const keys[7] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                        "pad_token", "cls_token", "mask_token"};
    static const char *const clip_def[7] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "",
                                            "<|endoftext|>", "", ""};
    static const char *const rob_def[7] = {"<s>", "</s>", "<unk>", "</s>", "<pad>", "<s>", "<mask>"};
    const char *sp[7];
    for (int i = 0; i < 7; i++) sp[i] = special_str(map, cfg, keys[i], rob ? rob_def[i] : clip_def[i]);
    if (s == NGPT_OK) s = special_id(t, sp[rob ? 5 : 0], rob ? "cls_token" : "bos_token", dir, &t->bos);
    if (s == NGPT_OK) s = special_id(t, sp[rob ? 3 : 1], rob ? "sep_token" : "eos_token", dir, &t->eos);
    if (s == NGPT_OK) s = special_id(t, sp[2], "unk_token", dir, &t->unk);
    if (s == NGPT_OK) s = special_id(t, sp[4], "pad_token", dir, &t->pad);
    for (int i = 0; s == NGPT_OK && i < 7; i++) {
        if (!sp[i][0]) continue;
        int32_t id;
        if (rob && i == 6) s = special_id(t, sp[i], keys[i], dir, &id);
        bool ls, rs;
        special_flags(map, cfg, keys[i], rob && i == 6, &ls, &rs);
        if (s == NGPT_OK) s = add_special(t, sp[i], ls, rs, dir);
    }
    json_t *extra = map ? json_object_get(map, "additional_special_tokens") : NULL;
    if (!extra && cfg) extra = json_object_get(cfg, "additional_special_tokens");
    for (size_t i = 0; s == NGPT_OK && i < json_array_size(extra); i++) {
        json_t *v = json_array_get(extra, i);
        bool ls = json_is_object(v) && json_is_true(json_object_get(v, "lstrip"));
        bool rs = json_is_object(v) && json_is_true(json_object_get(v, "rstrip"));
        if (json_is_object(v)) v = json_object_get(v, "content");
        if (json_is_string(v)) s = add_special(t, json_string_value(v), ls, rs, dir);
    }
    json_t *ml = cfg ? json_object_get(cfg, "model_max_length") : NULL;
    if (json_is_integer(ml) && json_integer_value(ml) >= 2 && json_integer_value(ml) <= 1 << 20)
        t->max_len = (int32_t)json_integer_value(ml);
    json_decref(map);
    json_decref(cfg);
    return s;
}

static ngpt_status compile(nx_clip_bpe *t, pcre2_code **out, const char *pattern, uint32_t opts, const char *dir)
{
    pcre2_compile_context *cc = pcre2_compile_context_create(t->gctx);
    if (!cc) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    int err = 0;
    PCRE2_SIZE off = 0;
    *out = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts | PCRE2_UTF | PCRE2_UCP, &err, &off, cc);
    pcre2_compile_context_free(cc);
    if (*out) return NGPT_OK;
    if (err == 121) /* ERR21 "failed to allocate memory" */
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory compiling the tokenizer's regex", dir);
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(err, msg, sizeof msg);
    return nx_err(NGPT_ERR_INTERNAL, "%s: PCRE2 cannot compile the tokenizer regex: %s", dir, (const char *)msg);
}

ngpt_status nx_clip_bpe_load(nx_clip_bpe **out, const char *dir)
{
    return nx_bpe_load(out, dir, NX_BPE_CLIP);
}

ngpt_status nx_bpe_load(nx_clip_bpe **out, const char *dir, nx_bpe_flavour flavour)
{
    if (!out || !dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_bpe_load: NULL argument");
    *out = NULL;
    if (flavour != NX_BPE_CLIP && flavour != NX_BPE_ROBERTA)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_bpe_load: unknown flavour %d", (int)flavour);
    nx_clip_bpe *t = nx_calloc(1, sizeof *t);
    if (!t) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    t->flavour = flavour;
    init_byte_enc(t);
    size_t cap = strlen(dir) + 64;
    char *path = nx_malloc(cap);
    ngpt_status s = path ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    if (s == NGPT_OK) {
        snprintf(path, cap, "%s/vocab.json", dir);
        s = load_vocab(t, path);
    }
    if (s == NGPT_OK) {
        snprintf(path, cap, "%s/merges.txt", dir);
        s = load_merges(t, path);
    }
    if (s == NGPT_OK) s = load_specials(t, dir, path, cap);
    nx_free(path);
    if (s == NGPT_OK && !(t->gctx = pcre2_general_context_create(pc_malloc, pc_free, NULL)))
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    if (s == NGPT_OK && flavour == NX_BPE_CLIP)
        s = compile(t, &t->pat,
                    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
                    PCRE2_CASELESS, dir);
    if (s == NGPT_OK && flavour == NX_BPE_ROBERTA)  /* GPT-2's pattern, case-sensitive */
        s = compile(t, &t->pat, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", 0,
                    dir);
    /* tokenization_utils' _is_control (category C*, but \t \n \r) and _is_whitespace (Zs), plus
     * the separators that str.split() splits on after BasicTokenizer._clean_text (Zl, Zp). */
    if (s == NGPT_OK) s = compile(t, &t->cls, "(?:([\\t\\n\\r\\p{Zs}\\p{Zl}\\p{Zp}])|(\\p{C}))", PCRE2_ANCHORED, dir);
    if (s != NGPT_OK) {
        nx_clip_bpe_free(t);
        return s;
    }
    *out = t;
    return NGPT_OK;
}

void nx_clip_bpe_free(nx_clip_bpe *t)
{
    if (!t) return;
    nx_free(t->vocab.e);
    nx_free(t->vocab_keys);
    nx_free(t->ranks.e);
    nx_free(t->merges);
    for (int i = 0; i < t->n_special; i++) nx_free(t->special[i]);
    pcre2_code_free(t->pat);
    pcre2_code_free(t->cls);
    pcre2_general_context_free(t->gctx);
    nx_free(t);
}

int32_t nx_clip_bpe_vocab_size(const nx_clip_bpe *t) { return t ? t->n_vocab : 0; }
int32_t nx_clip_bpe_bos(const nx_clip_bpe *t) { return t ? t->bos : -1; }
int32_t nx_clip_bpe_eos(const nx_clip_bpe *t) { return t ? t->eos : -1; }
int32_t nx_clip_bpe_pad(const nx_clip_bpe *t) { return t ? t->pad : -1; }
int32_t nx_clip_bpe_model_max_length(const nx_clip_bpe *t) { return t ? t->max_len : 0; }

/* ------------------------------------------------------------------ UTF-8 */

/* Decode one code point at s[0..n); returns its length, 0 if invalid (overlong, surrogate,
 * > U+10FFFF, truncated). */
static int utf8_dec(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint32_t c = s[0];
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    if (len == 1) {
        *cp = c;
        return 1;
    }
    c &= 0x3F >> (len - 1);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

static ngpt_status put_cp(nx_strbuf *b, uint32_t c)
{
    char u[4];
    int n;
    if (c < 0x80) u[0] = (char)c, n = 1;
    else if (c < 0x800) u[0] = (char)(0xC0 | (c >> 6)), u[1] = (char)(0x80 | (c & 0x3F)), n = 2;
    else if (c < 0x10000)
        u[0] = (char)(0xE0 | (c >> 12)), u[1] = (char)(0x80 | ((c >> 6) & 0x3F)), u[2] = (char)(0x80 | (c & 0x3F)), n = 3;
    else
        u[0] = (char)(0xF0 | (c >> 18)), u[1] = (char)(0x80 | ((c >> 12) & 0x3F)), u[2] = (char)(0x80 | ((c >> 6) & 0x3F)),
        u[3] = (char)(0x80 | (c & 0x3F)), n = 4;
    return nx_strbuf_append(b, u, (size_t)n);
}

static bool is_cjk(uint32_t cp)  /* BasicTokenizer._is_chinese_char */
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

/* unicodedata.normalize("NFC", text) then str.lower() (full mapping: U+0130 -> "i\u0307",
 * final sigma) through ICU, on `in` (UTF-8, n bytes) -> *out. ICU's lower-casing of the whole
 * string equals Python's per-token lower(): spaces are not case-ignorable. */
static ngpt_status nfc_lower(const char *in, size_t n, nx_strbuf *out)
{
    if (n > INT32_MAX / 4) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tokenizer: text too long");
    int32_t cap = (int32_t)n + 16;  /* UTF-16 units: never more than UTF-8 bytes */
    UChar *a = nx_malloc((size_t)cap * sizeof *a), *b = NULL;
    ngpt_status s = a ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    UErrorCode e = U_ZERO_ERROR;
    int32_t la = 0, lb = 0;
    if (s == NGPT_OK) u_strFromUTF8(a, cap, &la, in, (int32_t)n, &e);
    const UNormalizer2 *nfc = s == NGPT_OK && U_SUCCESS(e) ? unorm2_getNFCInstance(&e) : NULL;
    for (int pass = 0; s == NGPT_OK && U_SUCCESS(e) && pass < 2; pass++) {
        /* NFC (pass 0: a -> b) then lower (pass 1: b -> a), each sized by preflighting */
        const UChar *src = pass ? b : a;
        int32_t ls = pass ? lb : la;
        int32_t need = pass ? u_strToLower(NULL, 0, src, ls, "", &e) : unorm2_normalize(nfc, src, ls, NULL, 0, &e);
        if (e == U_BUFFER_OVERFLOW_ERROR) e = U_ZERO_ERROR;
        UChar *dst = U_SUCCESS(e) ? nx_malloc((size_t)(need + 1) * sizeof *dst) : NULL;
        if (U_SUCCESS(e) && !dst) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        if (s != NGPT_OK || U_FAILURE(e)) break;
        int32_t got = pass ? u_strToLower(dst, need + 1, src, ls, "", &e) : unorm2_normalize(nfc, src, ls, dst, need + 1, &e);
        if (pass) {
            nx_free(a);
            a = dst;
            la = got;
        } else {
            b = dst;
            lb = got;
        }
    }
    int32_t n8 = 0;
    if (s == NGPT_OK && U_SUCCESS(e)) {
        u_strToUTF8(NULL, 0, &n8, a, la, &e);
        if (e == U_BUFFER_OVERFLOW_ERROR) e = U_ZERO_ERROR;
    }
    out->n = 0;
    char *u8 = NULL;
    if (s == NGPT_OK && U_SUCCESS(e) && !(u8 = nx_malloc((size_t)n8 + 1)))
        s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    if (s == NGPT_OK && U_SUCCESS(e)) u_strToUTF8(u8, n8 + 1, &n8, a, la, &e);
    if (s == NGPT_OK && U_SUCCESS(e)) s = nx_strbuf_append(out, u8, (size_t)n8);
    nx_free(u8);
    if (s == NGPT_OK && U_FAILURE(e))
        s = nx_err(e == U_MEMORY_ALLOCATION_ERROR ? NGPT_ERR_OUT_OF_MEMORY : NGPT_ERR_INTERNAL,
                   "tokenizer: ICU: %s", u_errorName(e));
    nx_free(a);
    nx_free(b);
    return s;
}

typedef enum { CH_TEXT, CH_SPACE, CH_DROP } ch_class;

static ngpt_status classify(const nx_clip_bpe *t, pcre2_match_data *md, const uint8_t *s, int len, uint32_t cp,
                            ch_class *out)
{
    if (cp == 0 || cp == 0xFFFD) {
        *out = CH_DROP;
        return NGPT_OK;
    }
    if (cp < 0x80) {
        *out = cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ? CH_SPACE : cp < 0x20 || cp == 0x7F ? CH_DROP : CH_TEXT;
        return NGPT_OK;
    }
    int rc = pcre2_match(t->cls, s, (PCRE2_SIZE)len, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) {
        *out = CH_TEXT;
        return NGPT_OK;
    }
    if (rc == PCRE2_ERROR_NOMEMORY) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    if (rc < 0) return nx_err(NGPT_ERR_INTERNAL, "tokenizer: PCRE2 error %d", rc);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *out = ov[2] != PCRE2_UNSET ? CH_SPACE : CH_DROP;
    return NGPT_OK;
}

/* BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize joined by " ": the text
 * cleaned, CJK ideographs spaced, NFC, lower-cased, whitespace runs -> one space, trimmed.
 * `tmp` is scratch. */
static ngpt_status normalize(const nx_clip_bpe *t, pcre2_match_data *md, const char *text, size_t n, nx_strbuf *out,
                             nx_strbuf *tmp)
{
    const uint8_t *s = (const uint8_t *)text;
    bool pending = false, ascii = true;  /* pending: a space to write before the next character */
    tmp->n = 0;
    NX_TRY(nx_strbuf_append(tmp, "", 0));
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        int len = utf8_dec(s + i, n - i, &cp);  /* validated by the caller */
        ch_class k;
        NX_TRY(classify(t, md, s + i, len, cp, &k));
        i += (size_t)len;
        if (k == CH_DROP) continue;
        if (k == CH_SPACE) {
            pending = tmp->n > 0;
            continue;
        }
        bool cjk = is_cjk(cp);
        if ((pending || cjk) && tmp->n > 0) NX_TRY(nx_strbuf_append(tmp, " ", 1));
        pending = cjk;
        ascii = ascii && cp < 0x80;
        NX_TRY(put_cp(tmp, cp));
    }
    if (!ascii) return nfc_lower(tmp->s, tmp->n, out);
    out->n = 0;
    NX_TRY(nx_strbuf_append(out, tmp->s, tmp->n));
    for (size_t i = 0; i < out->n; i++)
        if (out->s[i] >= 'A' && out->s[i] <= 'Z') out->s[i] = (char)(out->s[i] + 32);
    return NGPT_OK;
}

/* ------------------------------------------------------------------ BPE */

typedef struct sym {
    uint32_t off, len;  /* into the piece's byte-encoded buffer */
} sym;

typedef struct scratch {
    char   *buf;   /* the byte-encoded piece + "</w>" */
    size_t  buf_cap;
    sym    *a, *b;
    size_t  cap_a, cap_b;
    char   *key;   /* "first second" */
    size_t  key_cap;
} scratch;

static ngpt_status grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return NGPT_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = nx_realloc(*p, c * elem);
    if (!q) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    *p = q;
    *cap = c;
    return NGPT_OK;
}

static ngpt_status push_token(const nx_clip_bpe *t, const char *s, size_t n, nx_i32vec *out)
{
    int32_t id;
    if (!sm_get(&t->vocab, s, n, &id)) id = t->unk;
    return nx_i32vec_push(out, id);
}

static bool sym_eq(const char *buf, sym x, sym y)
{
    return x.len == y.len && memcmp(buf + x.off, buf + y.off, x.len) == 0;
}

/* CLIPTokenizer.bpe() on one regex match, then _convert_token_to_id on each symbol. */
static ngpt_status bpe_piece(const nx_clip_bpe *t, const char *p, size_t n, scratch *sc, nx_i32vec *out)
{
    bool clip = t->flavour == NX_BPE_CLIP;
    if (clip &&
        ((n == 15 && memcmp(p, "<|startoftext|>", 15) == 0) || (n == 13 && memcmp(p, "<|endoftext|>", 13) == 0)))
        return push_token(t, p, n, out);  /* the cache's two entries: never split */
    NX_TRY(grow((void **)&sc->buf, &sc->buf_cap, 2 * n + 5, 1));
    NX_TRY(grow((void **)&sc->a, &sc->cap_a, n, sizeof(sym)));
    NX_TRY(grow((void **)&sc->b, &sc->cap_b, n, sizeof(sym)));
    size_t ns = 0, off = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        memcpy(sc->buf + off, t->byte_enc[c], t->byte_enc_len[c]);
        sc->a[ns++] = (sym){(uint32_t)off, t->byte_enc_len[c]};
        off += t->byte_enc_len[c];
    }
    if (clip) {  /* CLIP marks the word's end; GPT-2/RoBERTa do not */
        memcpy(sc->buf + off, "</w>", 4);
        sc->a[ns - 1].len += 4;
    }
    sym *w = sc->a, *b = sc->b;
    ngpt_status s = NGPT_OK;
    while (ns > 1) {
        int32_t best = INT32_MAX;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < ns && s == NGPT_OK; i++) {
            size_t kl = (size_t)w[i].len + 1 + w[i + 1].len;
            s = grow((void **)&sc->key, &sc->key_cap, kl, 1);
            if (s != NGPT_OK) break;
            memcpy(sc->key, sc->buf + w[i].off, w[i].len);
            sc->key[w[i].len] = ' ';
            memcpy(sc->key + w[i].len + 1, sc->buf + w[i + 1].off, w[i + 1].len);
            int32_t r;
            if (sm_get(&t->ranks, sc->key, kl, &r) && r < best) {
                best = r;
                bi = i;
            }
        }
        if (s != NGPT_OK || best == INT32_MAX) break;
        sym first = w[bi], second = w[bi + 1];
        size_t nn = 0;
        for (size_t i = 0; i < ns;) {
            if (i + 1 < ns && sym_eq(sc->buf, w[i], first) && sym_eq(sc->buf, w[i + 1], second)) {
                b[nn++] = (sym){w[i].off, w[i].len + w[i + 1].len};  /* adjacent in buf */
                i += 2;
            } else {
                b[nn++] = w[i++];
            }
        }
        memcpy(w, b, nn * sizeof *w);
        ns = nn;
    }
    for (size_t i = 0; s == NGPT_OK && i < ns; i++) s = push_token(t, sc->buf + w[i].off, w[i].len, out);
    return s;
}

/* _tokenize on one chunk without special tokens. */
static ngpt_status tokenize_chunk(const nx_clip_bpe *t, pcre2_match_data *md, const char *text, size_t n,
                                  nx_strbuf *norm, nx_strbuf *tmp, scratch *sc, nx_i32vec *out)
{
    if (t->flavour == NX_BPE_CLIP) {
        NX_TRY(normalize(t, md, text, n, norm, tmp));
    } else {  /* RobertaTokenizer: no normalisation (add_prefix_space false) */
        norm->n = 0;
        NX_TRY(nx_strbuf_append(norm, text, n));
    }
    PCRE2_SIZE pos = 0, len = norm->n;
    while (pos < len) {
        int rc = pcre2_match(t->pat, (PCRE2_SPTR)norm->s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_NOMEMORY) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        if (rc < 0) return nx_err(NGPT_ERR_INTERNAL, "tokenizer: PCRE2 error %d", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] <= ov[0]) return nx_err(NGPT_ERR_INTERNAL, "tokenizer: empty regex match");
        NX_TRY(bpe_piece(t, norm->s + ov[0], ov[1] - ov[0], sc, out));
        pos = ov[1];
    }
    return NGPT_OK;
}

/* Python's str.isspace() for one code point. */
static bool py_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* str.lstrip() / str.rstrip() on the valid UTF-8 text[a, e): the new start / end. */
static size_t skip_space(const char *text, size_t a, size_t e)
{
    while (a < e) {
        uint32_t cp;
        int l = utf8_dec((const uint8_t *)text + a, e - a, &cp);
        if (!l || !py_isspace(cp)) break;
        a += (size_t)l;
    }
    return a;
}

static size_t trim_space(const char *text, size_t a, size_t e)
{
    while (e > a) {
        size_t b = e - 1;
        while (b > a && ((uint8_t)text[b] & 0xC0) == 0x80) b--;
        uint32_t cp;
        int l = utf8_dec((const uint8_t *)text + b, e - b, &cp);
        if (!l || !py_isspace(cp)) break;
        e = b;
    }
    return e;
}

ngpt_status nx_clip_bpe_encode(const nx_clip_bpe *t, const char *text, nx_i32vec *out)
{
    if (!t || !text || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_clip_bpe_encode: NULL argument");
    size_t n = strlen(text);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_dec((const uint8_t *)text + i, n - i, &cp);
        if (!l) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tokenizer: the text is not valid UTF-8 (byte %zu)", i);
        i += (size_t)l;
    }
    pcre2_match_data *md = pcre2_match_data_create(8, t->gctx);
    if (!md) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    nx_strbuf norm = {0}, tmp = {0};
    scratch sc = {0};
    ngpt_status s = NGPT_OK;
    /* PreTrainedTokenizer.tokenize: split on the no-split (special) tokens, earliest match first,
     * the longest one at that position; they map to their ids directly. A token with lstrip /
     * rstrip takes the (Python) whitespace off the end / start of its neighbouring chunk. */
    size_t start = 0;
    bool skip_ws = false;  /* the previous special token has rstrip */
    for (size_t i = 0; i < n && s == NGPT_OK;) {
        int best = -1;
        size_t bl = 0;
        for (int k = 0; k < t->n_special; k++) {
            size_t l = strlen(t->special[k]);
            if (l > bl && l <= n - i && memcmp(text + i, t->special[k], l) == 0) {
                best = k;
                bl = l;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        size_t a = start, e = i;
        if (skip_ws) a = skip_space(text, a, e);
        if (t->lstrip[best]) e = trim_space(text, a, e);
        if (e > a) s = tokenize_chunk(t, md, text + a, e - a, &norm, &tmp, &sc, out);
        if (s == NGPT_OK) s = push_token(t, t->special[best], bl, out);
        skip_ws = t->rstrip[best];
        i += bl;
        start = i;
    }
    if (s == NGPT_OK && skip_ws) start = skip_space(text, start, n);
    if (s == NGPT_OK && start < n) s = tokenize_chunk(t, md, text + start, n - start, &norm, &tmp, &sc, out);
    pcre2_match_data_free(md);
    nx_free(norm.s);
    nx_free(tmp.s);
    nx_free(sc.buf);
    nx_free(sc.a);
    nx_free(sc.b);
    nx_free(sc.key);
    return s;
}

ngpt_status nx_clip_bpe_tokenize(const nx_clip_bpe *t, const char *text, int32_t *ids, int32_t n, int32_t *n_tokens)
{
    if (!t || !text || !ids) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_clip_bpe_tokenize: NULL argument");
    if (n < 2) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tokenizer: max_length %d is below 2 (bos + eos)", (int)n);
    nx_i32vec v = {0};
    ngpt_status s = nx_clip_bpe_encode(t, text, &v);
    if (s == NGPT_OK) {
        size_t keep = v.n < (size_t)(n - 2) ? v.n : (size_t)(n - 2);  /* truncation=True keeps bos/eos */
        ids[0] = t->bos;
        if (keep) memcpy(ids + 1, v.v, keep * sizeof *ids);
        ids[keep + 1] = t->eos;
        for (size_t i = keep + 2; i < (size_t)n; i++) ids[i] = t->pad;
        if (n_tokens) *n_tokens = (int32_t)(keep + 2);
    }
    nx_free(v.v);
    return s;
}
