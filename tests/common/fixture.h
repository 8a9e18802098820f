/* fixture.h — broken copies of model folders for the bad-input tests: small files written or
 * copied, and a checkpoint + config.json copied with one edit (a tensor dropped, transposed or
 * added, a config key replaced, the file truncated). Include after test.h; needs the internal
 * weights/json headers (tests link the internal library). */
#ifndef NX_TEST_FIXTURE_H
#define NX_TEST_FIXTURE_H

#include "core/json.h"
#include "core/weights.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static inline void test_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static inline void test_copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    CHECK(a && b);
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) CHECK(fwrite(buf, 1, n, b) == n);
    if (a) fclose(a);
    if (b) fclose(b);
}

typedef struct test_edit {
    const char *drop;        /* tensor left out */
    const char *reshape;     /* tensor whose first two dimensions are swapped (rank >= 2) */
    const char *extra;       /* tensor name added: a copy of extra_like (NULL: of the first tensor) */
    const char *extra_like;
    const char *cfg_key, *cfg_val;  /* config.json key replaced by this JSON value */
    bool truncate;           /* the weights file cut after 4 KiB (its header promises more) */
    bool no_model;           /* config.json only */
} test_edit;

/* dst/config.json and dst/<weights> = src's, with the edit applied (dst must exist). */
static inline void test_copy_edited(const char *src, const char *dst, const char *weights, const test_edit *e)
{
    char a[1600], b[1600]; /* src and dst are at most 1400 bytes (the callers' buffers) */
    snprintf(a, sizeof a, "%s/config.json", src);
    json_t *cfg = NULL;
    CHECK_OK(nx_json_load_file(&cfg, a));
    if (cfg && e->cfg_key) {
        json_error_t err;
        json_t *v = json_loads(e->cfg_val, JSON_DECODE_ANY, &err);
        CHECK(v != NULL);
        json_object_set_new(cfg, e->cfg_key, v);
    }
    snprintf(b, sizeof b, "%s/config.json", dst);
    CHECK(cfg && json_dump_file(cfg, b, JSON_INDENT(1)) == 0);
    json_decref(cfg);
    if (e->no_model) return;
    snprintf(a, sizeof a, "%s/%s", src, weights);
    snprintf(b, sizeof b, "%s/%s", dst, weights);
    if (e->truncate) {
        FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
        CHECK(in && out);
        char buf[4096];
        size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
        if (out) fwrite(buf, 1, n, out);
        if (in) fclose(in);
        if (out) fclose(out);
        return;
    }
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, a));
    if (!w) return;
    size_t n = nx_weights_count(w), k = 0;
    nx_st_entry *ent = calloc(n + 1, sizeof *ent);
    int64_t(*shapes)[NGPT_MAX_DIMS] = calloc(n + 1, sizeof *shapes);
    for (size_t i = 0; ent && shapes && i < n; i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        if (e->drop && strcmp(t->name, e->drop) == 0) continue;
        memcpy(shapes[k], t->shape, sizeof shapes[k]);
        if (e->reshape && strcmp(t->name, e->reshape) == 0 && t->rank >= 2) {
            int64_t s0 = shapes[k][0];
            shapes[k][0] = shapes[k][1];
            shapes[k][1] = s0;
        }
        ent[k] = (nx_st_entry){t->name, t->dtype, t->rank, shapes[k], t->data};
        k++;
    }
    const nx_wtensor *like = !e->extra ? NULL : e->extra_like ? nx_weights_find(w, e->extra_like) : nx_weights_at(w, 0);
    CHECK(!e->extra || like);
    if (ent && shapes && like) {
        memcpy(shapes[k], like->shape, sizeof shapes[k]);
        ent[k] = (nx_st_entry){e->extra, like->dtype, like->rank, shapes[k], like->data};
        k++;
    }
    if (ent && shapes) CHECK_OK(nx_safetensors_write(b, ent, k, NULL, 0));
    free(ent);
    free(shapes);
    nx_weights_close(w);
}

#endif
