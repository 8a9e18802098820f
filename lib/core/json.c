/* json.c — JSON files through libjansson, with "file:line:col: message" errors and typed
 * getters for config files. */
#define _POSIX_C_SOURCE 200809L
#include "json.h"

#include "alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* 64 MiB: far above any config/index file we read; keeps a wrong path from eating memory. */
#define NX_JSON_MAX_FILE ((long)64 << 20)

static ngpt_status parse_error(const json_error_t *e, const char *what)
{
    ngpt_status st = NGPT_ERR_BAD_FORMAT;
    if (json_error_code(e) == json_error_out_of_memory) st = NGPT_ERR_OUT_OF_MEMORY;
    return nx_err(st, "%s:%d:%d: %s", what, e->line, e->column, e->text);
}

ngpt_status nx_json_load_buf(json_t **out, const char *buf, size_t len, const char *what)
{
    *out = NULL;
    json_error_t e;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (!j) return parse_error(&e, what ? what : "<buffer>");
    *out = j;
    return NGPT_OK;
}

ngpt_status nx_json_load_file(json_t **out, const char *path)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return nx_err(e == ENOENT ? NGPT_ERR_NOT_FOUND : NGPT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return nx_err(NGPT_ERR_IO, "%s: cannot read (not a regular file?)", path);
    }
    if (size > NX_JSON_MAX_FILE) {
        fclose(f);
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: %ld bytes is too large for a JSON file (limit %ld)", path, size,
                      NX_JSON_MAX_FILE);
    }
    char *buf = nx_malloc((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory reading %ld bytes", path, size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || got != (size_t)size) {
        nx_free(buf);
        return nx_err(NGPT_ERR_IO, "%s: read error", path);
    }
    ngpt_status st = nx_json_load_buf(out, buf, got, path);
    nx_free(buf);
    return st;
}

/* ---- typed getters ------------------------------------------------------------------------ */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static ngpt_status wrong_type(const json_t *v, const char *key, const char *file, const char *expected)
{
    return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is %s, expected %s", file ? file : "<json>", key, type_name(v),
                  expected);
}

/* The value of key, NULL if absent (or null: HF configs write null for "not set"). */
static ngpt_status lookup(const json_t *obj, const char *key, const char *file, json_t **v)
{
    *v = NULL;
    if (!json_is_object(obj))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: looking up '%s' in %s, not an object", file ? file : "<json>", key,
                      obj ? type_name(obj) : "nothing");
    json_t *x = json_object_get(obj, key);
    if (x && !json_is_null(x)) *v = x;
    return NGPT_OK;
}

static ngpt_status missing(const char *key, const char *file)
{
    return nx_err(NGPT_ERR_NOT_FOUND, "%s: required key '%s' is missing", file ? file : "<json>", key);
}

static ngpt_status get_int(const json_t *v, const char *key, const char *file, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return NGPT_OK;
    }
    if (json_is_real(v)) {  /* 4096.0 is accepted; 0.5 is not */
        double d = json_real_value(v);
        if (d > -9.2e18 && d < 9.2e18 && d == (double)(int64_t)d) { /* in range before the cast */
            *out = (int64_t)d;
            return NGPT_OK;
        }
    }
    return wrong_type(v, key, file, "an integer");
}

ngpt_status nx_json_int(const json_t *obj, const char *key, const char *file, int64_t *out)
{
    json_t *v;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) return missing(key, file);
    return get_int(v, key, file, out);
}

ngpt_status nx_json_int_opt(const json_t *obj, const char *key, const char *file, int64_t def, int64_t *out)
{
    json_t *v;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) {
        *out = def;
        return NGPT_OK;
    }
    return get_int(v, key, file, out);
}

static ngpt_status get_num(const json_t *v, const char *key, const char *file, double *out)
{
    if (!json_is_number(v)) return wrong_type(v, key, file, "a number");
    *out = json_number_value(v);
    return NGPT_OK;
}

ngpt_status nx_json_num(const json_t *obj, const char *key, const char *file, double *out)
{
    json_t *v;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) return missing(key, file);
    return get_num(v, key, file, out);
}

ngpt_status nx_json_num_opt(const json_t *obj, const char *key, const char *file, double def, double *out)
{
    json_t *v;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) {
        *out = def;
        return NGPT_OK;
    }
    return get_num(v, key, file, out);
}

ngpt_status nx_json_bool_opt(const json_t *obj, const char *key, const char *file, bool def, bool *out)
{
    json_t *v;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) {
        *out = def;
        return NGPT_OK;
    }
    if (!json_is_boolean(v)) return wrong_type(v, key, file, "a boolean");
    *out = json_is_true(v);
    return NGPT_OK;
}

ngpt_status nx_json_str(const json_t *obj, const char *key, const char *file, const char **out)
{
    json_t *v;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) return missing(key, file);
    if (!json_is_string(v)) return wrong_type(v, key, file, "a string");
    *out = json_string_value(v);
    return NGPT_OK;
}

ngpt_status nx_json_str_opt(const json_t *obj, const char *key, const char *file, const char *def, const char **out)
{
    json_t *v;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) {
        *out = def;
        return NGPT_OK;
    }
    if (!json_is_string(v)) return wrong_type(v, key, file, "a string");
    *out = json_string_value(v);
    return NGPT_OK;
}

ngpt_status nx_json_int_array(const json_t *obj, const char *key, const char *file, int64_t *vals, size_t cap,
                              size_t *n)
{
    json_t *v;
    *n = 0;
    NX_TRY(lookup(obj, key, file, &v));
    if (!v) return missing(key, file);
    if (!json_is_array(v)) return wrong_type(v, key, file, "an array of integers");
    size_t len = json_array_size(v);
    if (len > cap)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' has %zu entries, at most %zu expected", file ? file : "<json>",
                      key, len, cap);
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(v, i);
        int64_t x = 0;
        if (get_int(e, key, file, &x) != NGPT_OK)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s'[%zu] is %s, expected an integer", file ? file : "<json>",
                          key, i, type_name(e));
        vals[i] = x;
    }
    *n = len;
    return NGPT_OK;
}
