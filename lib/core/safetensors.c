/* safetensors.c — strict, zero-copy safetensors reading (single files and HF sharded
 * `*.safetensors.index.json`), and writing.
 *
 * Layout: u64 little-endian N, N bytes of JSON header {name: {dtype, shape, data_offsets:[b,e]},
 * "__metadata__": {str: str}}, then the data region; offsets are relative to its start. */
#define _POSIX_C_SOURCE 200809L
#include "weights_impl.h"

#include "alloc.h"
#include "fs.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint64_t b, e; const char *name; } st_range;

static int cmp_range(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    if (x->b != y->b) return x->b < y->b ? -1 : 1;
    return x->e < y->e ? -1 : x->e > y->e;
}

static bool get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Validate one header entry and add it to w. */
static ngpt_status add_entry(nx_weights *w, const char *file, const char *name, json_t *v, const unsigned char *data,
                             uint64_t data_len, st_range *range)
{
    if (!json_is_object(v)) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: header entry '%s' is not an object", file, name);
    json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"), *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': 'dtype' missing or not a string", file, name);
    ngpt_dtype dt;
    if (!nx_dtype_parse(json_string_value(jd), &dt))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': unknown dtype '%s'", file, name, json_string_value(jd));
    if (!json_is_array(js))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': 'shape' missing or not an array", file, name);
    size_t rank = json_array_size(js);
    if (rank > NGPT_MAX_DIMS)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (at most %d supported)", file, name,
                      rank, NGPT_MAX_DIMS);
    int64_t shape[NGPT_MAX_DIMS];
    for (size_t i = 0; i < rank; i++) {
        uint64_t d;
        if (!get_u64(json_array_get(js, i), &d) || d > (uint64_t)INT64_MAX)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", file,
                          name, i);
        shape[i] = (int64_t)d;
    }
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !get_u64(json_array_get(jo, 0), &b) ||
        !get_u64(json_array_get(jo, 1), &e))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': 'data_offsets' must be [begin, end] (non-negative integers)",
                      file, name);
    if (b > e || e > data_len)
        return nx_err(NGPT_ERR_BAD_FORMAT,
                      "%s: tensor '%s': data_offsets [%llu, %llu] outside the data region of %llu bytes (truncated file?)",
                      file, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_len);
    uint64_t numel;
    size_t es = nx_dtype_size(dt);
    char sh[256];
    nx_shape_str(sh, sizeof sh, (int)rank, shape);
    if (!nx_numel_checked((int)rank, shape, &numel) || numel > UINT64_MAX / es)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': %s %s: the element count overflows", file, name,
                      nx_dtype_name(dt), sh);
    if (numel * es != e - b)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': %s %s needs %llu bytes, data_offsets give %llu", file,
                      name, nx_dtype_name(dt), sh,
                      (unsigned long long)(numel * es), (unsigned long long)(e - b));
    range->b = b;
    range->e = e;
    return nx_w_add(w, name, dt, (int)rank, shape, data + b, (size_t)(e - b), file);
}

ngpt_status nx_safetensors_read(nx_weights *w, const char *path)
{
    const nx_mapping *m;
    NX_TRY(nx_w_map(w, path, &m));
    const char *file = m->path;
    const unsigned char *base = m->addr;
    size_t len = m->len;
    if (len < 8) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: %zu bytes, too short for a safetensors file", file, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | base[i];
    if (n > NX_ST_MAX_HEADER)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: header length %llu exceeds the %llu-byte limit (not a safetensors file?)",
                      file, (unsigned long long)n, (unsigned long long)NX_ST_MAX_HEADER);
    if (n > len - 8)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: header length %llu is larger than the file (%zu bytes): truncated?",
                      file, (unsigned long long)n, len);
    if (n < 2) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: header of %llu bytes is not a JSON object", file, (unsigned long long)n);
    json_t *h;
    char what[1100];
    snprintf(what, sizeof what, "%s (header)", file);
    NX_TRY(nx_json_load_buf(&h, (const char *)base + 8, (size_t)n, what));
    if (!json_is_object(h)) {
        json_decref(h);
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: header is JSON but not an object", file);
    }
    const unsigned char *data = base + 8 + n;
    uint64_t data_len = len - 8 - n;
    size_t cnt = json_object_size(h);
    st_range *r = nx_malloc((cnt ? cnt : 1) * sizeof *r);
    if (!r) {
        json_decref(h);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu header entries", file, cnt);
    }
    size_t nr = 0;
    ngpt_status st = NGPT_OK;
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '__metadata__' is not an object", file);
                break;
            }
            continue;
        }
        r[nr].name = key;
        st = add_entry(w, file, key, v, data, data_len, &r[nr]);
        if (st != NGPT_OK) break;
        nr++;
    }
    if (st == NGPT_OK) {
        qsort(r, nr, sizeof *r, cmp_range);
        uint64_t end = 0;
        const char *prev = NULL;
        for (size_t i = 0; i < nr; i++) {
            if (r[i].b == r[i].e) continue;  /* empty tensors occupy nothing */
            if (r[i].b < end) {
                st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensors '%s' and '%s' overlap in the data region (offset %llu < %llu)",
                            file, prev, r[i].name, (unsigned long long)r[i].b, (unsigned long long)end);
                break;
            }
            end = r[i].e;
            prev = r[i].name;
        }
    }
    nx_free(r);
    json_decref(h);
    return st;
}

/* ---- sharded: *.safetensors.index.json ---------------------------------------------------- */

ngpt_status nx_safetensors_index_read(nx_weights *w, const char *path)
{
    json_t *idx;
    NX_TRY(nx_json_load_file(&idx, path));
    json_t *wm = json_is_object(idx) ? json_object_get(idx, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        json_decref(idx);
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: no 'weight_map' object (not a safetensors index?)", path);
    }
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    /* distinct shard names, in first-seen order */
    size_t cnt = json_object_size(wm), n_shards = 0;
    const char **shards = nx_malloc((cnt ? cnt : 1) * sizeof *shards);
    char *full = NULL;
    ngpt_status st = NGPT_OK;
    if (!shards) {
        json_decref(idx);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        if (!json_is_string(v)) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: weight_map['%s'] is not a string", path, key);
            goto done;
        }
        const char *s = json_string_value(v);
        if (!*s || s[0] == '/' || strstr(s, "..")) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: weight_map['%s'] = '%s' is not a file name next to the index", path,
                        key, s);
            goto done;
        }
        size_t j = 0;
        while (j < n_shards && strcmp(shards[j], s) != 0) j++;
        if (j == n_shards) shards[n_shards++] = s;
    }
    for (size_t j = 0; j < n_shards; j++) {
        size_t sl = strlen(shards[j]);
        full = nx_malloc(dir_len + sl + 1);
        if (!full) {
            st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
            goto done;
        }
        memcpy(full, path, dir_len);
        memcpy(full + dir_len, shards[j], sl + 1);
        st = nx_safetensors_read(w, full);
        nx_free(full);
        full = NULL;
        if (st != NGPT_OK) {
            nx_err_wrap(st, "%s: shard: ", path);
            goto done;
        }
    }
    json_object_foreach(wm, key, v)
    {
        const nx_wtensor *t = nx_weights_find(w, key);
        const char *s = json_string_value(v);
        size_t fl = t ? strlen(t->file) : 0, sl = strlen(s);
        if (!t || fl < sl || strcmp(t->file + fl - sl, s) != 0) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s' is listed in shard '%s' but %s%s", path, key, s,
                        t ? "found in " : "not found there", t ? t->file : "");
            goto done;
        }
    }
done:
    nx_free(shards);
    json_decref(idx);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = nx_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_str(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_str(b, e);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

typedef struct st_out {
    const sbuf       *header;
    const nx_st_entry *entries;
    size_t            n;
} st_out;

static bool st_write(FILE *f, void *user)
{
    const st_out *o = user;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)o->header->n >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(o->header->p, 1, o->header->n, f) == o->header->n;
    for (size_t i = 0; ok && i < o->n; i++) {
        uint64_t numel;
        nx_numel_checked(o->entries[i].rank, o->entries[i].shape, &numel);
        size_t nb = (size_t)numel * nx_dtype_size(o->entries[i].dtype);
        if (nb) ok = fwrite(o->entries[i].data, 1, nb, f) == nb;
    }
    return ok;
}

ngpt_status nx_safetensors_write(const char *path, const nx_st_entry *entries, size_t n, const char *const *meta_kv,
                                 size_t n_meta)
{
    sbuf b = {0};
    uint64_t off = 0;
    char num[64];
    sb_str(&b, "{");
    if (n_meta) {
        sb_str(&b, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_str(&b, ",");
            sb_json_str(&b, meta_kv[2 * i]);
            sb_str(&b, ":");
            sb_json_str(&b, meta_kv[2 * i + 1]);
        }
        sb_str(&b, "}");
    }
    for (size_t i = 0; i < n; i++) {
        const nx_st_entry *e = &entries[i];
        uint64_t numel;
        size_t es = nx_dtype_size(e->dtype);
        if (!es || e->rank < 0 || e->rank > NGPT_MAX_DIMS || !nx_numel_checked(e->rank, e->shape, &numel) ||
            numel > UINT64_MAX / es) {
            nx_free(b.p);
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: tensor '%s': bad dtype or shape", path, e->name);
        }
        if (n_meta || i) sb_str(&b, ",");
        sb_json_str(&b, e->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, nx_dtype_name(e->dtype));
        sb_str(&b, "\",\"shape\":[");
        for (int d = 0; d < e->rank; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)e->shape[d]);
            sb_str(&b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + numel * es));
        sb_str(&b, num);
        off += numel * es;
    }
    sb_str(&b, "}");
    while (!b.oom && b.n % 8) sb_str(&b, " ");
    if (b.oom) {
        nx_free(b.p);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory building the header", path);
    }
    /* a new file renamed over path: the entries may be mapped from path itself */
    st_out o = {&b, entries, n};
    ngpt_status s = nx_write_replace(path, false, st_write, &o);
    nx_free(b.p);
    return s;
}
