/* sentencepiece.c — SentencePiece BPE (see sentencepiece.h): tokenizer.model reader, encoder,
 * decoder. File layout: growable buffers, protobuf reader, model load, piece lookup, UTF-8,
 * normalization, BPE encode, decode. */
#include "tokenizer/sentencepiece.h"

#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Growable buffers
 * ------------------------------------------------------------------------------------------- */

ngpt_status nx_i32vec_push(nx_i32vec *v, int32_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = nx_realloc(v->v, cap * sizeof *p);
        if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (%zu ids)", cap);
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return NGPT_OK;
}

ngpt_status nx_strbuf_append(nx_strbuf *b, const char *s, size_t n)
{
    if (b->cap - b->n <= n || !b->s) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n <= n) {
            if (cap > SIZE_MAX / 2) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: text too long");
            cap *= 2;
        }
        char *p = nx_realloc(b->s, cap);
        if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (%zu bytes of text)", cap);
        b->s = p;
        b->cap = cap;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Model
 * ------------------------------------------------------------------------------------------- */

typedef struct sp_piece {
    uint32_t off, len;  /* into m->blob */
    float    score;
    int32_t  type;      /* nx_sp_type */
    int32_t  byte;      /* BYTE pieces: the byte value; else -1 */
} sp_piece;

struct nx_sp_model {
    int32_t   n;
    sp_piece *pieces;
    char     *blob;        /* piece strings, each NUL-terminated */
    int32_t  *table;       /* open addressing: piece string -> id, -1 = empty */
    size_t    table_mask;
    /* trainer_spec */
    bool      byte_fallback;
    int32_t   unk_id, bos_id, eos_id, pad_id;
    char     *unk_surface;
    /* normalizer_spec */
    bool      add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    /* derived */
    int32_t   byte_ids[256];
    int32_t  *user_ids;    /* USER_DEFINED piece ids, longest first */
    int32_t   n_user;
    bool      has_unused;
};

/* ---------------------------------------------------------------------------------------------
 * Protobuf reader: bounded, never reads past `end`.
 * ------------------------------------------------------------------------------------------- */

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static bool pb_varint(pb *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return false;
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;  /* more than 10 bytes */
}

/* One field: number, wire type and payload (varint value / bytes). */
typedef struct pb_field {
    uint32_t       num, wire;
    uint64_t       u;      /* wire 0: value; wire 5: the 32 bits; wire 1: the 64 bits */
    const uint8_t *data;   /* wire 2 */
    size_t         len;
} pb_field;

/* 1 = a field was read, 0 = end of message, -1 = corrupt (*why says what). */
static int pb_next(pb *r, pb_field *f, const char **why)
{
    if (r->p >= r->end) return 0;
    uint64_t key;
    if (!pb_varint(r, &key)) return *why = "truncated field key", -1;
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    if (f->num == 0 || key >> 32) return *why = "bad field number", -1;
    switch (f->wire) {
    case 0:
        if (!pb_varint(r, &f->u)) return *why = "truncated field", -1;
        return 1;
    case 1:
        if (r->end - r->p < 8) return *why = "truncated field", -1;
        f->u = 0;
        for (int i = 7; i >= 0; i--) f->u = f->u << 8 | r->p[i];
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4) return *why = "truncated field", -1;
        f->u = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 | (uint64_t)r->p[3] << 24;
        r->p += 4;
        return 1;
    case 2: {
        uint64_t len;
        if (!pb_varint(r, &len)) return *why = "truncated field", -1;
        if (len > (uint64_t)(r->end - r->p)) return *why = "truncated field", -1;
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        return *why = "unsupported wire type (group)", -1;
    }
}

static float pb_float(uint64_t u)
{
    uint32_t b = (uint32_t)u;
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* ---------------------------------------------------------------------------------------------
 * Piece lookup
 * ------------------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static const char *piece_str(const nx_sp_model *m, int32_t id) { return m->blob + m->pieces[id].off; }

int32_t nx_sp_find(const nx_sp_model *m, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & m->table_mask;; i = (i + 1) & m->table_mask) {
        int32_t id = m->table[i];
        if (id < 0) return -1;
        if (m->pieces[id].len == n && memcmp(piece_str(m, id), s, n) == 0) return id;
    }
}

/* sentencepiece's PieceToId: unknown strings map to unk. */
static int32_t piece_to_id(const nx_sp_model *m, const char *s, size_t n)
{
    int32_t id = nx_sp_find(m, s, n);
    return id < 0 ? m->unk_id : id;
}

/* Candidates for merging (sentencepiece's pieces_ map): NORMAL, USER_DEFINED, UNUSED. */
static int32_t find_mergeable(const nx_sp_model *m, const char *s, size_t n)
{
    int32_t id = nx_sp_find(m, s, n);
    if (id < 0) return -1;
    int32_t t = m->pieces[id].type;
    return (t == NX_SP_NORMAL || t == NX_SP_USER_DEFINED || t == NX_SP_UNUSED) ? id : -1;
}

int32_t nx_sp_size(const nx_sp_model *m) { return m->n; }
int32_t nx_sp_unk_id(const nx_sp_model *m) { return m->unk_id; }
int32_t nx_sp_bos_id(const nx_sp_model *m) { return m->bos_id; }
int32_t nx_sp_eos_id(const nx_sp_model *m) { return m->eos_id; }
int32_t nx_sp_pad_id(const nx_sp_model *m) { return m->pad_id; }

const char *nx_sp_id_to_piece(const nx_sp_model *m, int32_t id, size_t *len)
{
    if (id < 0 || id >= m->n) return NULL;
    if (len) *len = m->pieces[id].len;
    return piece_str(m, id);
}

nx_sp_type nx_sp_id_type(const nx_sp_model *m, int32_t id)
{
    return (id < 0 || id >= m->n) ? (nx_sp_type)0 : (nx_sp_type)m->pieces[id].type;
}

float nx_sp_id_score(const nx_sp_model *m, int32_t id)
{
    return (id < 0 || id >= m->n) ? 0.0f : m->pieces[id].score;
}

/* ---------------------------------------------------------------------------------------------
 * Load
 * ------------------------------------------------------------------------------------------- */

void nx_sp_free(nx_sp_model *m)
{
    if (!m) return;
    nx_free(m->pieces);
    nx_free(m->blob);
    nx_free(m->table);
    nx_free(m->unk_surface);
    nx_free(m->user_ids);
    nx_free(m);
}

/* "<0x41>" -> 0x41; -1 when not of that form. */
static int parse_byte_piece(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static ngpt_status parse_piece(nx_sp_model *m, const uint8_t *data, size_t len, int32_t id, size_t *blob_n,
                               const char *label)
{
    pb r = {data, data + len};
    pb_field f;
    const char *why = NULL;
    int k;
    sp_piece *p = &m->pieces[id];
    p->type = NX_SP_NORMAL;
    p->score = 0.0f;
    p->byte = -1;
    const uint8_t *str = NULL;
    size_t str_len = 0;
    bool have_str = false;
    while ((k = pb_next(&r, &f, &why)) > 0) {
        if (f.num == 1 && f.wire == 2) {
            str = f.data;
            str_len = f.len;
            have_str = true;
        } else if (f.num == 2 && f.wire == 5) {
            p->score = pb_float(f.u);
        } else if (f.num == 3 && f.wire == 0) {
            if (f.u < 1 || f.u > 6)
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: unknown type %llu", label, (int)id,
                              (unsigned long long)f.u);
            p->type = (int32_t)f.u;
        } else if (f.num <= 3) {
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: field %u has wire type %u", label, (int)id,
                          f.num, f.wire);
        }
    }
    if (k < 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: %s", label, (int)id, why);
    if (!have_str || str_len == 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: empty piece", label, (int)id);
    if (memchr(str, 0, str_len))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: contains a NUL byte", label, (int)id);
    p->off = (uint32_t)*blob_n;
    p->len = (uint32_t)str_len;
    memcpy(m->blob + *blob_n, str, str_len);
    m->blob[*blob_n + str_len] = '\0';
    *blob_n += str_len + 1;
    if (p->type == NX_SP_BYTE) {
        p->byte = parse_byte_piece((const char *)str, str_len);
        if (p->byte < 0)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: BYTE piece '%.*s' is not of the form <0xNN>", label,
                          (int)id, (int)str_len, (const char *)str);
    }
    return NGPT_OK;
}

static ngpt_status parse_trainer_spec(nx_sp_model *m, const uint8_t *data, size_t len, int32_t *model_type,
                                      bool *ws_suffix, const char *label)
{
    pb r = {data, data + len};
    pb_field f;
    const char *why = NULL;
    int k;
    while ((k = pb_next(&r, &f, &why)) > 0) {
        if (f.wire == 0) {
            switch (f.num) {
            case 3: *model_type = (int32_t)f.u; break;
            case 24: *ws_suffix = f.u != 0; break;
            case 35: m->byte_fallback = f.u != 0; break;
            case 40: m->unk_id = (int32_t)f.u; break;  /* int32 negatives are 10-byte varints */
            case 41: m->bos_id = (int32_t)f.u; break;
            case 42: m->eos_id = (int32_t)f.u; break;
            case 43: m->pad_id = (int32_t)f.u; break;
            default: break;
            }
        } else if (f.wire == 2 && f.num == 44) {
            nx_free(m->unk_surface);
            m->unk_surface = nx_strndup((const char *)f.data, f.len);
            if (!m->unk_surface) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
        }
    }
    if (k < 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: trainer_spec: %s", label, why);
    return NGPT_OK;
}

static ngpt_status parse_normalizer_spec(nx_sp_model *m, const uint8_t *data, size_t len, bool denorm,
                                         const char *label)
{
    const char *what = denorm ? "denormalizer_spec" : "normalizer_spec";
    pb r = {data, data + len};
    pb_field f = {0};
    const char *why = NULL;
    int k;
    while ((k = pb_next(&r, &f, &why)) > 0) {
        if (f.num == 2 && f.wire == 2 && f.len > 0)
            return nx_err(NGPT_ERR_UNSUPPORTED,
                          "%s: %s has a precompiled_charsmap (%zu bytes): only identity normalization "
                          "(as in LLaMA's tokenizer) is supported",
                          label, what, f.len);
        if (denorm || f.wire != 0) continue;
        if (f.num == 3) m->add_dummy_prefix = f.u != 0;
        if (f.num == 4) m->remove_extra_whitespaces = f.u != 0;
        if (f.num == 5) m->escape_whitespaces = f.u != 0;
    }
    if (k < 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: %s: %s", label, what, why);
    return NGPT_OK;
}

static ngpt_status load_impl(nx_sp_model *m, const uint8_t *buf, size_t len, const char *label)
{
    /* pass 1: count pieces and string bytes */
    pb r = {buf, buf + len};
    pb_field f;
    const char *why = NULL;
    int k;
    size_t n = 0, blob_cap = 0;
    while ((k = pb_next(&r, &f, &why)) > 0) {
        if (f.num == 1 && f.wire == 2) {
            n++;
            blob_cap += f.len + 1;
        }
    }
    if (k < 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: %s (not a sentencepiece model?)", label, why);
    if (n == 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: no pieces (not a sentencepiece model?)", label);
    if (n > INT32_MAX / 4) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: too many pieces (%zu)", label, n);
    m->n = (int32_t)n;
    m->pieces = nx_calloc(n, sizeof *m->pieces);
    m->blob = nx_malloc(blob_cap);
    size_t tcap = 16;
    while (tcap < 2 * n) tcap *= 2;
    m->table = nx_malloc(tcap * sizeof *m->table);
    if (!m->pieces || !m->blob || !m->table) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    m->table_mask = tcap - 1;
    for (size_t i = 0; i < tcap; i++) m->table[i] = -1;

    /* pass 2 */
    int32_t model_type = 1; /* UNIGRAM is the proto default */
    bool ws_suffix = false;
    size_t blob_n = 0;
    int32_t id = 0;
    r = (pb){buf, buf + len};
    while ((k = pb_next(&r, &f, &why)) > 0) {
        if (f.wire != 2) continue;
        if (f.num == 1) {
            NX_TRY(parse_piece(m, f.data, f.len, id, &blob_n, label));
            id++;
        } else if (f.num == 2) {
            NX_TRY(parse_trainer_spec(m, f.data, f.len, &model_type, &ws_suffix, label));
        } else if (f.num == 3) {
            NX_TRY(parse_normalizer_spec(m, f.data, f.len, false, label));
        } else if (f.num == 5) {
            NX_TRY(parse_normalizer_spec(m, f.data, f.len, true, label));
        }
    }
    if (model_type != 2) {
        static const char *mt[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: model_type is %s: only BPE models (LLaMA) are supported", label,
                      (model_type >= 1 && model_type <= 4) ? mt[model_type] : "unknown");
    }
    if (ws_suffix)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: treat_whitespace_as_suffix is not supported", label);

    /* index, validate */
    int32_t unk = -1, n_bytes = 0, n_user = 0;
    for (int32_t i = 0; i < m->n; i++) {
        sp_piece *p = &m->pieces[i];
        const char *s = piece_str(m, i);
        if (nx_sp_find(m, s, p->len) >= 0)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: '%s' is already defined", label, (int)i, s);
        size_t h = hash_bytes(s, p->len) & m->table_mask;
        while (m->table[h] >= 0) h = (h + 1) & m->table_mask;
        m->table[h] = i;
        if (p->type == NX_SP_UNKNOWN) {
            if (unk >= 0)
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: a second UNKNOWN piece", label, (int)i);
            unk = i;
        }
        if (p->type == NX_SP_BYTE) {
            if (!m->byte_fallback)
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: piece %d: BYTE piece '%s' although byte_fallback is off",
                              label, (int)i, s);
            if (m->byte_ids[p->byte] < 0) n_bytes++;
            m->byte_ids[p->byte] = i;
        }
        if (p->type == NX_SP_USER_DEFINED) n_user++;
        if (p->type == NX_SP_UNUSED) m->has_unused = true;
    }
    if (unk < 0) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: no UNKNOWN (<unk>) piece", label);
    if (m->unk_id != unk)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: trainer_spec unk_id %d is not the UNKNOWN piece %d", label,
                      (int)m->unk_id, (int)unk);
    if (m->byte_fallback && n_bytes != 256)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: byte_fallback is on but there are %d of the 256 byte pieces", label,
                      (int)n_bytes);
    if (n_user) {
        m->user_ids = nx_malloc((size_t)n_user * sizeof *m->user_ids);
        if (!m->user_ids) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
        for (int32_t i = 0; i < m->n; i++)
            if (m->pieces[i].type == NX_SP_USER_DEFINED) m->user_ids[m->n_user++] = i;
    }
    if (!m->unk_surface) {
        m->unk_surface = nx_strdup(" \xE2\x81\x87 ");  /* kDefaultUnknownSymbol: " ⁇ " */
        if (!m->unk_surface) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    }
    return NGPT_OK;
}

ngpt_status nx_sp_load_buf(nx_sp_model **out, const uint8_t *buf, size_t len, const char *label)
{
    if (!out || (!buf && len)) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_sp_load_buf: NULL argument");
    *out = NULL;
    if (!label) label = "tokenizer.model";
    nx_sp_model *m = nx_calloc(1, sizeof *m);
    if (!m) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", label);
    m->add_dummy_prefix = m->remove_extra_whitespaces = m->escape_whitespaces = true; /* proto defaults */
    m->unk_id = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    for (int i = 0; i < 256; i++) m->byte_ids[i] = -1;
    ngpt_status s = load_impl(m, buf, len, label);
    if (s != NGPT_OK) {
        nx_sp_free(m);
        return s;
    }
    *out = m;
    return NGPT_OK;
}

ngpt_status nx_sp_load_file(nx_sp_model **out, const char *path)
{
    if (!out || !path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_sp_load_file: NULL argument");
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return nx_err(errno == ENOENT ? NGPT_ERR_NOT_FOUND : NGPT_ERR_IO, "%s: cannot open: %s", path,
                      strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= ((size_t)1 << 31)) {
                fclose(fp);
                nx_free(buf);
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: larger than 2 GiB: not a tokenizer model", path);
            }
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *p = nx_realloc(buf, cap);
            if (!p) {
                fclose(fp);
                nx_free(buf);
                return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    bool err = ferror(fp) != 0;
    fclose(fp);
    if (err) {
        nx_free(buf);
        return nx_err(NGPT_ERR_IO, "%s: read error", path);
    }
    ngpt_status s = nx_sp_load_buf(out, buf, n, path);
    nx_free(buf);
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * UTF-8 as sentencepiece's string_util::DecodeUTF8 sees it
 * ------------------------------------------------------------------------------------------- */

static bool is_trail(uint8_t c) { return (c & 0xC0) == 0x80; }
static bool valid_cp(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

/* Length of the valid UTF-8 character at s (1..4), or 0 if the first byte starts no valid
 * character (sentencepiece then consumes one byte as U+FFFD). n >= 1. */
static size_t utf8_valid_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
        if (is_trail(s[1]) && cp >= 0x80 && valid_cp(cp)) return 2;
    } else if (n >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && cp >= 0x800 && valid_cp(cp)) return 3;
    } else if (n >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
                      (s[3] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && is_trail(s[3]) && cp >= 0x10000 && valid_cp(cp)) return 4;
    }
    return 0;
}

/* PrefixMatcher::PrefixMatch's fallback: the character length from the first byte only. */
static size_t one_char_len(uint8_t c)
{
    static const uint8_t t[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return t[c >> 4];
}

/* Longest USER_DEFINED piece that prefixes s, or 0. */
static size_t user_match(const nx_sp_model *m, const char *s, size_t n)
{
    size_t best = 0;
    for (int32_t i = 0; i < m->n_user; i++) {
        const sp_piece *p = &m->pieces[m->user_ids[i]];
        if (p->len > best && p->len <= n && memcmp(piece_str(m, m->user_ids[i]), s, p->len) == 0) best = p->len;
    }
    return best;
}

/* ---------------------------------------------------------------------------------------------
 * Normalization (normalizer.cc, identity rules): optional removal of extra whitespace, dummy
 * prefix, ' ' -> U+2581, invalid bytes -> U+FFFD. `dst` holds at least 3 * n + 3 bytes.
 * ------------------------------------------------------------------------------------------- */

static const char kSpace[] = "\xE2\x96\x81";  /* ▁ */
static const char kReplacement[] = "\xEF\xBF\xBD";

/* normalize_prefix: the next unit of input (bytes consumed) and its normalized text. */
static size_t norm_prefix(const nx_sp_model *m, const uint8_t *s, size_t n, const char **text, size_t *text_len)
{
    size_t u = user_match(m, (const char *)s, n);
    if (u) {
        *text = (const char *)s;
        *text_len = u;
        return u;
    }
    size_t l = utf8_valid_len(s, n);
    if (l == 0) {
        *text = kReplacement;
        *text_len = 3;
        return 1;
    }
    *text = (const char *)s;
    *text_len = l;
    return l;
}

static size_t normalize(const nx_sp_model *m, const uint8_t *in, size_t n, char *dst)
{
    size_t o = 0;
    const char *t;
    size_t tl, c;
    if (m->remove_extra_whitespaces) {
        while (n && (c = norm_prefix(m, in, n, &t, &tl)) && tl == 1 && t[0] == ' ') {
            in += c;
            n -= c;
        }
    }
    if (n == 0) return 0;
    if (m->add_dummy_prefix) {
        if (m->escape_whitespaces) {
            memcpy(dst, kSpace, 3);
            o = 3;
        } else {
            dst[o++] = ' ';
        }
    }
    bool prev_space = m->remove_extra_whitespaces;
    while (n) {
        c = norm_prefix(m, in, n, &t, &tl);
        while (prev_space && tl && t[0] == ' ') {
            t++;
            tl--;
        }
        if (tl) {
            for (size_t i = 0; i < tl; i++) {
                if (m->escape_whitespaces && t[i] == ' ') {
                    memcpy(dst + o, kSpace, 3);
                    o += 3;
                } else {
                    dst[o++] = t[i];
                }
            }
            prev_space = t[tl - 1] == ' ';
        }
        in += c;
        n -= c;
        if (!m->remove_extra_whitespaces) prev_space = false;
    }
    if (m->remove_extra_whitespaces) {
        const char *sp = m->escape_whitespaces ? kSpace : " ";
        size_t sl = m->escape_whitespaces ? 3 : 1;
        while (o >= sl && memcmp(dst + o - sl, sp, sl) == 0) o -= sl;
    }
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * BPE encode (bpe_model.cc Model::SampleEncode with alpha = 0)
 * ------------------------------------------------------------------------------------------- */

typedef struct sym {
    int32_t off, len;   /* into the normalized text; len 0 = merged away */
    int32_t prev, next;
    bool    freeze;
} sym;

typedef struct pair {
    float   score;
    int32_t left, right;
    int32_t size;
} pair;

/* std::priority_queue order: top = highest score, then smallest left. */
static bool pair_before(const pair *a, const pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct heap {
    pair  *v;
    size_t n, cap;
} heap;

static bool heap_push(heap *h, pair p)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        pair *v = nx_realloc(h->v, cap * sizeof *v);
        if (!v) return false;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &h->v[up])) break;
        h->v[i] = h->v[up];
        i = up;
    }
    h->v[i] = p;
    return true;
}

static pair heap_pop(heap *h)
{
    pair top = h->v[0];
    pair last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const pair *bp = &last;
        if (l < h->n && pair_before(&h->v[l], bp)) best = l, bp = &h->v[l];
        if (r < h->n && pair_before(&h->v[r], bp)) best = r, bp = &h->v[r];
        if (best == i) break;
        h->v[i] = h->v[best];
        i = best;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct rev_entry {
    int32_t loff, llen, roff, rlen;  /* llen 0 = none */
} rev_entry;

typedef struct enc_state {
    const nx_sp_model *m;
    const char        *text;
    sym               *syms;
    heap               agenda;
    rev_entry         *rev;  /* per piece id; only when the model has UNUSED pieces */
} enc_state;

static bool maybe_add_pair(enc_state *st, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || st->syms[left].freeze || st->syms[right].freeze) return true;
    const sym *l = &st->syms[left], *r = &st->syms[right];
    int32_t size = l->len + r->len;
    int32_t id = find_mergeable(st->m, st->text + l->off, (size_t)size);
    if (id < 0) return true;
    if (!heap_push(&st->agenda, (pair){st->m->pieces[id].score, left, right, size})) return false;
    if (st->rev && st->m->pieces[id].type == NX_SP_UNUSED)
        st->rev[id] = (rev_entry){l->off, l->len, r->off, r->len};
    return true;
}

/* Emit a final symbol: UNUSED pieces are split back along their recorded merge (resegment),
 * unknown ones fall back to bytes. */
static ngpt_status emit(enc_state *st, int32_t off, int32_t len, nx_i32vec *out, int depth)
{
    const nx_sp_model *m = st->m;
    int32_t id = piece_to_id(m, st->text + off, (size_t)len);
    if (st->rev && m->pieces[id].type == NX_SP_UNUSED && st->rev[id].llen > 0 && depth < 256) {
        rev_entry e = st->rev[id];
        NX_TRY(emit(st, e.loff, e.llen, out, depth + 1));
        return emit(st, e.roff, e.rlen, out, depth + 1);
    }
    if (m->pieces[id].type == NX_SP_UNKNOWN && m->byte_fallback) {
        for (int32_t i = 0; i < len; i++) NX_TRY(nx_i32vec_push(out, m->byte_ids[(uint8_t)st->text[off + i]]));
        return NGPT_OK;
    }
    return nx_i32vec_push(out, id);
}

ngpt_status nx_sp_encode(const nx_sp_model *m, const char *text, size_t len, nx_i32vec *out)
{
    if (!m || (!text && len) || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_sp_encode: NULL argument");
    if (len == 0) return NGPT_OK;
    if (len > (INT32_MAX - 3) / 3) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tokenizer: text too long (%zu bytes)", len);
    ngpt_status s = NGPT_OK;
    enc_state st = {m, NULL, NULL, {NULL, 0, 0}, NULL};
    char *norm = nx_malloc(3 * len + 3);
    if (!norm) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (%zu bytes of text)", len);
    size_t nn = normalize(m, (const uint8_t *)text, len, norm);
    st.text = norm;
    if (nn == 0) goto done;
    st.syms = nx_malloc(nn * sizeof *st.syms);
    if (m->has_unused) {
        st.rev = nx_calloc((size_t)m->n, sizeof *st.rev);
        if (!st.rev) goto oom;
    }
    if (!st.syms) goto oom;

    /* split into characters (user-defined pieces stay whole and frozen) */
    int32_t ns = 0;
    for (size_t pos = 0; pos < nn;) {
        size_t l = user_match(m, norm + pos, nn - pos);
        bool freeze = l > 0;
        if (!l) {
            l = one_char_len((uint8_t)norm[pos]);
            if (l > nn - pos) l = nn - pos;
        }
        st.syms[ns] = (sym){(int32_t)pos, (int32_t)l, ns - 1, -1, freeze};
        pos += l;
        st.syms[ns].next = pos < nn ? ns + 1 : -1;
        ns++;
    }
    for (int32_t i = 1; i < ns; i++)
        if (!maybe_add_pair(&st, i - 1, i)) goto oom;

    while (st.agenda.n) {
        pair top = heap_pop(&st.agenda);
        sym *l = &st.syms[top.left], *r = &st.syms[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue;  /* stale */
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) st.syms[r->next].prev = top.left;
        r->len = 0;
        if (!maybe_add_pair(&st, l->prev, top.left) || !maybe_add_pair(&st, top.left, l->next)) goto oom;
    }
    for (int32_t i = 0; i != -1; i = st.syms[i].next) {
        s = emit(&st, st.syms[i].off, st.syms[i].len, out, 0);
        if (s != NGPT_OK) goto done;
    }
    goto done;
oom:
    s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory encoding %zu bytes", len);
done:
    nx_free(norm);
    nx_free(st.syms);
    nx_free(st.agenda.v);
    nx_free(st.rev);
    return s;
}

/* ---------------------------------------------------------------------------------------------
 * Decode (SentencePieceProcessor::Decode, 0.1.97 rules)
 * ------------------------------------------------------------------------------------------- */

static ngpt_status flush_bytes(nx_strbuf *out, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = utf8_valid_len(b + i, n - i);
        if (l) {
            NX_TRY(nx_strbuf_append(out, (const char *)b + i, l));
            i += l;
        } else {
            NX_TRY(nx_strbuf_append(out, kReplacement, 3));
            i++;
        }
    }
    return NGPT_OK;
}

ngpt_status nx_sp_decode(const nx_sp_model *m, const int32_t *ids, size_t n, nx_strbuf *out)
{
    if (!m || (!ids && n) || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_sp_decode: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->n)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "tokenizer: id %d (at %zu) is out of range [0, %d)",
                          (int)ids[i], i, (int)m->n);
    const size_t start = out->n;  /* "the text so far" is what this call wrote */
    ngpt_status s = NGPT_OK;
    uint8_t *bytes = n ? nx_malloc(n) : NULL;
    if (n && !bytes) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    size_t nb = 0;
    bool is_bos_ws = true, bos_ws_seen = false;
    for (size_t i = 0; i < n; i++) {
        const sp_piece *p = &m->pieces[ids[i]];
        if (p->type == NX_SP_BYTE) {
            bytes[nb++] = (uint8_t)p->byte;
            continue;
        }
        if ((s = flush_bytes(out, bytes, nb)) != NGPT_OK) goto done;
        nb = 0;
        if (bos_ws_seen || out->n > start) is_bos_ws = false;
        bos_ws_seen = false;
        if (p->type == NX_SP_CONTROL) continue;  /* <s>, </s>: invisible */
        if (p->type == NX_SP_UNKNOWN) {
            if ((s = nx_strbuf_append(out, m->unk_surface, strlen(m->unk_surface))) != NGPT_OK) goto done;
            continue;
        }
        const char *t = piece_str(m, ids[i]);
        size_t tl = p->len;
        if (is_bos_ws && (m->add_dummy_prefix || m->remove_extra_whitespaces) && tl >= 3 &&
            memcmp(t, kSpace, 3) == 0) {
            t += 3;
            tl -= 3;
            bos_ws_seen = !m->remove_extra_whitespaces;
        }
        while (tl) {
            if (tl >= 3 && memcmp(t, kSpace, 3) == 0) {
                s = nx_strbuf_append(out, " ", 1);
                t += 3;
                tl -= 3;
            } else {
                s = nx_strbuf_append(out, t, 1);
                t++;
                tl--;
            }
            if (s != NGPT_OK) goto done;
        }
    }
    s = flush_bytes(out, bytes, nb);
    if (s == NGPT_OK && !out->s) s = nx_strbuf_append(out, "", 0);
done:
    nx_free(bytes);
    return s;
}
