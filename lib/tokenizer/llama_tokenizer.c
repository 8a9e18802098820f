/* llama_tokenizer.c — transformers 4.29 slow LlamaTokenizer semantics over nx_sp_model
 * (see llama_tokenizer.h): loading the tokenizer folder, the no-split-token split with
 * whitespace stripping next to added tokens, and the grouped decode. */
#include "tokenizer/llama_tokenizer.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SP_BOS, SP_EOS, SP_UNK, SP_PAD, N_SPECIAL };
static const char *const special_key[N_SPECIAL] = {"bos_token", "eos_token", "unk_token", "pad_token"};
static const char *const special_def[N_SPECIAL] = {"<s>", "</s>", "<unk>", NULL};

typedef struct nosplit {
    const char *s;      /* borrowed from added[] / special_str[] */
    size_t      len;
    int32_t     id;
    bool        strip;  /* added (non-special) token: strip whitespace around it */
} nosplit;

struct nx_llama_tok {
    nx_sp_model *sp;
    int32_t      n_sp;
    int32_t      n_added;     /* ids n_sp .. n_sp + n_added - 1 */
    char       **added;
    char        *special_str[N_SPECIAL];  /* NULL = not set */
    int32_t      special_id[N_SPECIAL];   /* -1 = not set */
    bool         add_bos_token, add_eos_token;
    nosplit     *ns;          /* sorted by first byte, then longest first */
    int32_t      n_ns;
    int32_t      ns_first[257];  /* bucket start per first byte */
};

/* ---------------------------------------------------------------------------------------------
 * Load
 * ------------------------------------------------------------------------------------------- */

void nx_llama_tok_free(nx_llama_tok *t)
{
    if (!t) return;
    nx_sp_free(t->sp);
    if (t->added)
        for (int32_t i = 0; i < t->n_added; i++) nx_free(t->added[i]);
    nx_free(t->added);
    for (int i = 0; i < N_SPECIAL; i++) nx_free(t->special_str[i]);
    nx_free(t->ns);
    nx_free(t);
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = nx_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

/* Load an optional JSON file: *out = NULL when it does not exist. */
static ngpt_status load_json_opt(json_t **out, const char *dir, const char *name)
{
    *out = NULL;
    char *path = join_path(dir, name);
    if (!path) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    ngpt_status s = NGPT_OK;
    if (access(path, F_OK) == 0) {
        json_error_t e;
        *out = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &e);
        if (!*out) {
            if (access(path, R_OK) != 0)
                s = nx_err(NGPT_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
            else
                s = nx_err(NGPT_ERR_BAD_FORMAT, "%s:%d:%d: %s", path, e.line, e.column, e.text);
        } else if (!json_is_object(*out)) {
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a JSON object", path);
            json_decref(*out);
            *out = NULL;
        }
    }
    nx_free(path);
    return s;
}

/* A special token entry: "<s>", {"content": "<s>", ...} or null. Sets *str (new copy or NULL)
 * when the key is present; leaves it alone when absent. */
static ngpt_status read_special(nx_llama_tok *t, const json_t *obj, int which, const char *file)
{
    const json_t *v = json_object_get(obj, special_key[which]);
    if (!v) return NGPT_OK;
    const char *s = NULL;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_object(v)) {
        const json_t *c = json_object_get(v, "content");
        if (!json_is_string(c))
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' has no string \"content\"", file, special_key[which]);
        s = json_string_value(c);
    } else if (!json_is_null(v)) {
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is neither a string, an object nor null", file,
                      special_key[which]);
    }
    nx_free(t->special_str[which]);
    t->special_str[which] = NULL;
    if (s && *s) {
        t->special_str[which] = nx_strdup(s);
        if (!t->special_str[which]) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    return NGPT_OK;
}

static ngpt_status read_bool(const json_t *obj, const char *key, const char *file, bool *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return NGPT_OK;
    if (!json_is_boolean(v)) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is not a boolean", file, key);
    *out = json_is_true(v);
    return NGPT_OK;
}

static ngpt_status read_added(nx_llama_tok *t, const json_t *obj, const char *file)
{
    size_t n = json_object_size(obj);
    if (n == 0) return NGPT_OK;
    if (n > 1000000) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: %zu added tokens", file, n);
    t->added = nx_calloc(n, sizeof *t->added);
    if (!t->added) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    t->n_added = (int32_t)n;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        /* files are parsed with JSON_DECODE_INT_AS_REAL (tokenizer_config.json's model_max_length
         * is 1e30 written as an integer), so ids arrive as reals */
        double d = json_number_value(v);
        if (!json_is_number(v) || !(d >= 0 && d <= 2e9) || d != (double)(int64_t)d) /* range before the cast */
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s': the id is not a non-negative integer", file, key);
        json_int_t id = (json_int_t)d;
        if (id < t->n_sp || id >= (json_int_t)t->n_sp + (json_int_t)n)
            return nx_err(NGPT_ERR_BAD_FORMAT,
                          "%s: '%s' has id %lld: added tokens must take the ids %d..%d after the %d pieces of "
                          "tokenizer.model, consecutively",
                          file, key, (long long)id, (int)t->n_sp, (int)(t->n_sp + (int32_t)n - 1), (int)t->n_sp);
        int32_t k = (int32_t)(id - t->n_sp);
        if (t->added[k]) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: id %lld is used twice", file, (long long)id);
        if (!*key) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: an added token is empty", file);
        if (nx_sp_find(t->sp, key, strlen(key)) >= 0)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: added token '%s' is already a piece of tokenizer.model", file,
                          key);
        t->added[k] = nx_strdup(key);
        if (!t->added[k]) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    return NGPT_OK;
}

int32_t nx_llama_tok_piece_to_id(const nx_llama_tok *t, const char *s, size_t len)
{
    for (int32_t i = 0; i < t->n_added; i++)
        if (strlen(t->added[i]) == len && memcmp(t->added[i], s, len) == 0) return t->n_sp + i;
    return nx_sp_find(t->sp, s, len);
}

static int cmp_nosplit(const void *a, const void *b)
{
    const nosplit *x = a, *y = b;
    uint8_t fx = (uint8_t)x->s[0], fy = (uint8_t)y->s[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return 0;
}

static ngpt_status build_nosplit(nx_llama_tok *t)
{
    t->ns = nx_calloc((size_t)t->n_added + N_SPECIAL, sizeof *t->ns);
    if (!t->ns) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    for (int i = 0; i < N_SPECIAL; i++) {
        const char *s = t->special_str[i];
        if (!s) continue;
        bool dup = false;
        for (int32_t j = 0; j < t->n_ns; j++) dup |= strcmp(t->ns[j].s, s) == 0;
        if (!dup) t->ns[t->n_ns++] = (nosplit){s, strlen(s), t->special_id[i], false};
    }
    for (int32_t i = 0; i < t->n_added; i++) {
        bool dup = false;
        for (int32_t j = 0; j < t->n_ns; j++) dup |= strcmp(t->ns[j].s, t->added[i]) == 0;
        if (!dup) t->ns[t->n_ns++] = (nosplit){t->added[i], strlen(t->added[i]), t->n_sp + i, true};
    }
    qsort(t->ns, (size_t)t->n_ns, sizeof *t->ns, cmp_nosplit);
    int32_t j = 0;
    for (int c = 0; c <= 256; c++) {
        while (j < t->n_ns && (uint8_t)t->ns[j].s[0] < c) j++;
        t->ns_first[c] = j;
    }
    return NGPT_OK;
}

static ngpt_status load_impl(nx_llama_tok *t, const char *dir)
{
    char *path = join_path(dir, "tokenizer.model");
    if (!path) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    ngpt_status s = nx_sp_load_file(&t->sp, path);
    nx_free(path);
    NX_TRY(s);
    t->n_sp = nx_sp_size(t->sp);

    json_t *cfg = NULL, *map = NULL, *added = NULL;
    t->add_bos_token = true;
    t->add_eos_token = false;
    for (int i = 0; i < N_SPECIAL; i++) {
        if (special_def[i] && !(t->special_str[i] = nx_strdup(special_def[i])))
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    /* HF order: tokenizer_config.json gives the init kwargs, special_tokens_map.json overrides. */
    if ((s = load_json_opt(&cfg, dir, "tokenizer_config.json")) != NGPT_OK) goto done;
    if ((s = load_json_opt(&map, dir, "special_tokens_map.json")) != NGPT_OK) goto done;
    if ((s = load_json_opt(&added, dir, "added_tokens.json")) != NGPT_OK) goto done;
    if (cfg) {
        for (int i = 0; i < N_SPECIAL && s == NGPT_OK; i++) s = read_special(t, cfg, i, "tokenizer_config.json");
        if (s == NGPT_OK) s = read_bool(cfg, "add_bos_token", "tokenizer_config.json", &t->add_bos_token);
        if (s == NGPT_OK) s = read_bool(cfg, "add_eos_token", "tokenizer_config.json", &t->add_eos_token);
    }
    if (map)
        for (int i = 0; i < N_SPECIAL && s == NGPT_OK; i++) s = read_special(t, map, i, "special_tokens_map.json");
    if (s == NGPT_OK && added) s = read_added(t, added, "added_tokens.json");
    if (s != NGPT_OK) {
        nx_err_wrap(s, "%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/");
        goto done;
    }
    /* convert_tokens_to_ids: added tokens, then pieces, else unk */
    for (int i = 0; i < N_SPECIAL; i++) {
        t->special_id[i] = -1;
        if (!t->special_str[i]) continue;
        int32_t id = nx_llama_tok_piece_to_id(t, t->special_str[i], strlen(t->special_str[i]));
        t->special_id[i] = id >= 0 ? id : nx_sp_unk_id(t->sp);
    }
    s = build_nosplit(t);
done:
    json_decref(cfg);
    json_decref(map);
    json_decref(added);
    return s;
}

ngpt_status nx_llama_tok_load(nx_llama_tok **out, const char *dir)
{
    if (!out || !dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_llama_tok_load: NULL argument");
    *out = NULL;
    nx_llama_tok *t = nx_calloc(1, sizeof *t);
    if (!t) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    ngpt_status s = load_impl(t, dir);
    if (s != NGPT_OK) {
        nx_llama_tok_free(t);
        return s;
    }
    *out = t;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Getters
 * ------------------------------------------------------------------------------------------- */

int32_t nx_llama_tok_vocab_size(const nx_llama_tok *t) { return t->n_sp + t->n_added; }
int32_t nx_llama_tok_bos_id(const nx_llama_tok *t) { return t->special_id[SP_BOS]; }
int32_t nx_llama_tok_eos_id(const nx_llama_tok *t) { return t->special_id[SP_EOS]; }
int32_t nx_llama_tok_unk_id(const nx_llama_tok *t) { return t->special_id[SP_UNK]; }
int32_t nx_llama_tok_n_added(const nx_llama_tok *t) { return t->n_added; }
const nx_sp_model *nx_llama_tok_sp(const nx_llama_tok *t) { return t->sp; }

const char *nx_llama_tok_id_to_piece(const nx_llama_tok *t, int32_t id)
{
    if (id >= t->n_sp && id < t->n_sp + t->n_added) return t->added[id - t->n_sp];
    return nx_sp_id_to_piece(t->sp, id, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Encode
 * ------------------------------------------------------------------------------------------- */

/* Byte length of the Python whitespace character (str.isspace) at s, or 0. */
static size_t py_space_len(const uint8_t *s, size_t n)
{
    if (n < 1) return 0;
    uint8_t c = s[0];
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
    if (n >= 2 && c == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n < 3) return 0;
    if (c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3;                       /* U+1680 */
    if (c == 0xE2 && s[1] == 0x80 && ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 ||
                                      s[2] == 0xAF))
        return 3;                                                                  /* U+2000-200A, 2028, 2029, 202F */
    if (c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3;                       /* U+205F */
    if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3;                       /* U+3000 */
    return 0;
}

static void py_lstrip(const uint8_t **s, size_t *n)
{
    size_t k;
    while (*n && (k = py_space_len(*s, *n)) > 0) {
        *s += k;
        *n -= k;
    }
}

static void py_rstrip(const uint8_t *s, size_t *n)
{
    for (;;) {
        size_t k = 0;
        for (size_t l = 1; l <= 3 && !k; l++)
            if (*n >= l && py_space_len(s + *n - l, l) == l) k = l;
        if (!k) return;
        *n -= k;
    }
}

/* The leftmost, longest no-split token at or after pos: its index, and *at its position. */
static int32_t find_nosplit(const nx_llama_tok *t, const char *text, size_t len, size_t pos, size_t *at)
{
    for (size_t i = pos; i < len; i++) {
        uint8_t c = (uint8_t)text[i];
        for (int32_t j = t->ns_first[c]; j < t->ns_first[c + 1]; j++) {
            if (t->ns[j].len <= len - i && memcmp(t->ns[j].s, text + i, t->ns[j].len) == 0) {
                *at = i;
                return j;
            }
        }
    }
    return -1;
}

ngpt_status nx_llama_tok_encode(const nx_llama_tok *t, const char *text, size_t len, bool add_special,
                                nx_i32vec *out)
{
    if (!t || (!text && len) || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_llama_tok_encode: NULL argument");
    if (add_special && t->add_bos_token && t->special_id[SP_BOS] >= 0)
        NX_TRY(nx_i32vec_push(out, t->special_id[SP_BOS]));
    size_t pos = 0;
    int32_t prev = -1;  /* the no-split token before the current text piece */
    while (pos <= len) {
        size_t at = len;
        int32_t j = pos < len ? find_nosplit(t, text, len, pos, &at) : -1;
        const uint8_t *piece = (const uint8_t *)text + pos;
        size_t n = at - pos;
        if (prev >= 0 && t->ns[prev].strip) py_lstrip(&piece, &n);
        if (j >= 0 && t->ns[j].strip) py_rstrip(piece, &n);
        if (n) NX_TRY(nx_sp_encode(t->sp, (const char *)piece, n, out));
        if (j < 0) break;
        NX_TRY(nx_i32vec_push(out, t->ns[j].id));
        pos = at + t->ns[j].len;
        prev = j;
    }
    if (add_special && t->add_eos_token && t->special_id[SP_EOS] >= 0)
        NX_TRY(nx_i32vec_push(out, t->special_id[SP_EOS]));
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Decode
 * ------------------------------------------------------------------------------------------- */

static bool is_special_id(const nx_llama_tok *t, int32_t id)
{
    for (int i = 0; i < N_SPECIAL; i++)
        if (t->special_str[i] && t->special_id[i] == id) return true;
    return false;
}

/* `token in self.all_special_tokens` for a sentencepiece piece: compares the strings. */
static bool is_special_piece(const nx_llama_tok *t, const char *piece)
{
    for (int i = 0; i < N_SPECIAL; i++)
        if (t->special_str[i] && strcmp(t->special_str[i], piece) == 0) return true;
    return false;
}

/* LlamaTokenizer.convert_tokens_to_string over ids (all < n_sp). */
static ngpt_status run_to_string(const nx_llama_tok *t, const int32_t *ids, size_t n, nx_strbuf *out)
{
    size_t pending = 0;  /* ids[i - pending .. i) */
    bool prev_special = false;
    for (size_t i = 0; i < n; i++) {
        const char *piece = nx_sp_id_to_piece(t->sp, ids[i], NULL);
        if (is_special_piece(t, piece)) {
            if (!prev_special && i != 0) NX_TRY(nx_strbuf_append(out, " ", 1));
            NX_TRY(nx_sp_decode(t->sp, ids + i - pending, pending, out));
            NX_TRY(nx_strbuf_append(out, piece, strlen(piece)));
            prev_special = true;
            pending = 0;
        } else {
            pending++;
            prev_special = false;
        }
    }
    return nx_sp_decode(t->sp, ids + n - pending, pending, out);
}

ngpt_status nx_llama_tok_decode(const nx_llama_tok *t, const int32_t *ids, size_t n, bool skip_special,
                                nx_strbuf *out)
{
    if (!t || (!ids && n) || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_llama_tok_decode: NULL argument");
    int32_t vocab = nx_llama_tok_vocab_size(t);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tokenizer: id %d (at %zu) is out of range [0, %d)",
                          (int)ids[i], i, (int)vocab);
    int32_t *run = n ? nx_malloc(n * sizeof *run) : NULL;
    if (n && !run) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    ngpt_status s = NGPT_OK;
    size_t nr = 0;
    bool first = true;
    for (size_t i = 0; i <= n && s == NGPT_OK; i++) {
        bool end = i == n;
        int32_t id = end ? -1 : ids[i];
        if (!end && skip_special && is_special_id(t, id)) continue;
        bool added = !end && id >= t->n_sp;
        if (!end && !added) {
            run[nr++] = id;
            continue;
        }
        if (nr) {
            if (!first) s = nx_strbuf_append(out, " ", 1);
            if (s == NGPT_OK) s = run_to_string(t, run, nr, out);
            first = false;
            nr = 0;
        }
        if (added && s == NGPT_OK) {
            if (!first) s = nx_strbuf_append(out, " ", 1);
            const char *a = t->added[id - t->n_sp];
            if (s == NGPT_OK) s = nx_strbuf_append(out, a, strlen(a));
            first = false;
        }
    }
    if (s == NGPT_OK && !out->s) s = nx_strbuf_append(out, "", 0);
    nx_free(run);
    return s;
}
