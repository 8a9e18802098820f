/* weights.c — the name -> tensor table behind nx_weights: dispatch by file content, hash
 * lookup, checked fetches, unused-tensor reports and F32 decoding. The format readers live in
 * safetensors.c and torchzip.c (+ pickle.c). */
#define _POSIX_C_SOURCE 200809L
#include "weights_impl.h"

#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

bool nx_numel_checked(int rank, const int64_t *shape, uint64_t *numel)
{
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0) return false;
        uint64_t d = (uint64_t)shape[i];
        if (d && n > UINT64_MAX / d) return false;
        n *= d;
    }
    *numel = n;
    return true;
}

/* ---- table -------------------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t *find_slot(const nx_weights *w, const char *name)
{
    if (!w->n_slots) return NULL;
    size_t mask = w->n_slots - 1;
    for (size_t i = (size_t)hash_str(name) & mask;; i = (i + 1) & mask) {
        size_t *s = &w->slots[i];
        if (!*s || strcmp(w->t[*s - 1].name, name) == 0) return s;
    }
}

static ngpt_status rehash(nx_weights *w, size_t n_slots)
{
    size_t *slots = nx_calloc(n_slots, sizeof *slots);
    if (!slots) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for the tensor index", w->path);
    nx_free(w->slots);
    w->slots = slots;
    w->n_slots = n_slots;
    for (size_t i = 0; i < w->n; i++) *find_slot(w, w->t[i].name) = i + 1;
    return NGPT_OK;
}

ngpt_status nx_w_add(nx_weights *w, const char *name, ngpt_dtype dt, int rank, const int64_t *shape,
                     const void *data, size_t nbytes, const char *file)
{
    if (rank < 0 || rank > NGPT_MAX_DIMS)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most %d supported)", file, name,
                      rank, NGPT_MAX_DIMS);
    if ((w->n + 1) * 2 > w->n_slots) NX_TRY(rehash(w, w->n_slots ? w->n_slots * 2 : 64));
    size_t *slot = find_slot(w, name);
    if (*slot)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s' appears twice (also in %s)", file, name,
                      w->t[*slot - 1].file);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        nx_wtensor *t = nx_realloc(w->t, cap * sizeof *t);
        if (!t) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu tensors", file, cap);
        w->t = t;
        w->cap = cap;
    }
    size_t es = nx_dtype_size(dt);
    if (es > 1 && nbytes && (uintptr_t)data % es) {
        /* the file does not align this tensor (safetensors offsets and zip entries may be
         * anywhere): copy it so that readers can use it as an array of its type */
        void *copy;
        NX_TRY(nx_w_alloc_owned(w, nbytes, &copy));
        memcpy(copy, data, nbytes);
        data = copy;
    }
    char *nm = nx_strdup(name);
    if (!nm) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for tensor name '%s'", file, name);
    nx_wtensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->dtype = dt;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    t->file = file;
    w->n++;
    *slot = w->n;
    return NGPT_OK;
}

ngpt_status nx_w_alloc_owned(nx_weights *w, size_t nbytes, void **out)
{
    if (w->n_owned == w->cap_owned) {
        size_t cap = w->cap_owned ? w->cap_owned * 2 : 16;
        void **o = nx_realloc(w->owned, cap * sizeof *o);
        if (!o) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", w->path);
        w->owned = o;
        w->cap_owned = cap;
    }
    void *p = nx_malloc(nbytes ? nbytes : 1);
    if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu bytes of tensor data", w->path, nbytes);
    w->owned[w->n_owned++] = p;
    *out = p;
    return NGPT_OK;
}

ngpt_status nx_w_map(nx_weights *w, const char *path, const nx_mapping **m)
{
    if (w->n_maps == w->cap_maps) {
        size_t cap = w->cap_maps ? w->cap_maps * 2 : 4;
        nx_mapping *mp = nx_realloc(w->maps, cap * sizeof *mp);
        if (!mp) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        w->maps = mp;
        w->cap_maps = cap;
    }
    char *p = nx_strdup(path);
    if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        nx_free(p);
        return nx_err(e == ENOENT ? NGPT_ERR_NOT_FOUND : NGPT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        nx_free(p);
        return nx_err(NGPT_ERR_IO, "%s: not a regular file", path);
    }
    void *addr = NULL;
    size_t len = (size_t)sb.st_size;
    if (len) {
        addr = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            int e = errno;
            close(fd);
            nx_free(p);
            return nx_err(NGPT_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, len, strerror(e));
        }
    }
    close(fd);
    nx_mapping *mp = &w->maps[w->n_maps++];
    mp->addr = addr;
    mp->len = len;
    mp->path = p;
    *m = mp;
    return NGPT_OK;
}

/* ---- open / close ------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Legacy torch.save: pickle PROTO 2 then LONG1 of the magic number 0x1950a86a20f9469cfc6c. */
static const unsigned char k_legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

ngpt_status nx_weights_open(nx_weights **out, const char *path)
{
    *out = NULL;
    if (!path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_weights_open: NULL path");
    unsigned char head[sizeof k_legacy_magic] = {0};
    size_t got = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return nx_err(e == ENOENT ? NGPT_ERR_NOT_FOUND : NGPT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    got = fread(head, 1, sizeof head, f);
    fclose(f);

    nx_weights *w = nx_calloc(1, sizeof *w);
    if (!w) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    w->path = nx_strdup(path);
    if (!w->path) {
        nx_free(w);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    ngpt_status st;
    if (got >= 4 && memcmp(head, "PK\x03\x04", 4) == 0)
        st = nx_torchzip_read(w, path);
    else if (got == sizeof head && memcmp(head, k_legacy_magic, sizeof head) == 0)
        st = nx_err(NGPT_ERR_UNSUPPORTED,
                    "%s: legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with "
                    "torch>=1.6 (torch.save(torch.load(f), f) writes the zip format)", path);
    else if (ends_with(path, ".index.json"))
        st = nx_safetensors_index_read(w, path);
    else
        st = nx_safetensors_read(w, path);
    if (st != NGPT_OK) {
        nx_weights_close(w);
        return st;
    }
    *out = w;
    return NGPT_OK;
}

void nx_weights_close(nx_weights *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) nx_free((void *)w->t[i].name);
    nx_free(w->t);
    nx_free(w->slots);
    for (size_t i = 0; i < w->n_owned; i++) nx_free(w->owned[i]);
    nx_free(w->owned);
    for (size_t i = 0; i < w->n_maps; i++) {
        if (w->maps[i].addr) munmap(w->maps[i].addr, w->maps[i].len);
        nx_free(w->maps[i].path);
    }
    nx_free(w->maps);
    nx_free(w->path);
    nx_free(w);
}

size_t nx_weights_count(const nx_weights *w) { return w ? w->n : 0; }

const nx_wtensor *nx_weights_at(const nx_weights *w, size_t i) { return w && i < w->n ? &w->t[i] : NULL; }

const nx_wtensor *nx_weights_find(const nx_weights *w, const char *name)
{
    if (!w || !name) return NULL;
    size_t *s = find_slot(w, name);
    return s && *s ? &w->t[*s - 1] : NULL;
}

void nx_weights_mark_used(nx_weights *w, const char *name)
{
    nx_wtensor *t = (nx_wtensor *)nx_weights_find(w, name);
    if (t) t->used = true;
}

/* ---- checked fetch ------------------------------------------------------------------------ */

static void dtype_set_str(char *buf, size_t cap, unsigned mask)
{
    size_t n = 0;
    buf[0] = 0;
    for (unsigned i = 0; i < 32 && n < cap; i++) {
        if (!(mask & (1u << i))) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " or " : "", nx_dtype_name((ngpt_dtype)i));
    }
}

ngpt_status nx_weights_get(nx_weights *w, const char *name, unsigned dtype_mask, int rank, const int64_t *shape,
                           const nx_wtensor **out)
{
    *out = NULL;
    nx_wtensor *t = (nx_wtensor *)nx_weights_find(w, name);
    if (!t) return nx_err(NGPT_ERR_NOT_FOUND, "%s: tensor '%s' not found", w ? w->path : "?", name);
    bool ok = t->rank == rank;
    for (int i = 0; ok && i < rank; i++)
        if (shape && shape[i] != -1 && shape[i] != t->shape[i]) ok = false;  /* -1 alone matches any size */
    if (!ok) {
        char e[256], g[256];
        int64_t exp[NGPT_MAX_DIMS];
        for (int i = 0; i < rank && i < NGPT_MAX_DIMS; i++) exp[i] = shape ? shape[i] : -1;
        nx_shape_str(e, sizeof e, rank < NGPT_MAX_DIMS ? rank : NGPT_MAX_DIMS, exp);
        nx_shape_str(g, sizeof g, t->rank, t->shape);
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: tensor '%s': expected %s, got %s", t->file, name, e, g);
    }
    if (dtype_mask && !(dtype_mask & NX_DTYPE_BIT(t->dtype))) {
        char e[128];
        dtype_set_str(e, sizeof e, dtype_mask);
        return nx_err(NGPT_ERR_DTYPE_MISMATCH, "%s: tensor '%s': expected dtype %s, got %s", t->file, name, e,
                      nx_dtype_name(t->dtype));
    }
    t->used = true;
    *out = t;
    return NGPT_OK;
}

#define NX_UNUSED_LIST 30

ngpt_status nx_weights_check_unused(const nx_weights *w)
{
    if (!w) return NGPT_OK;
    size_t n_unused = 0;
    for (size_t i = 0; i < w->n; i++) n_unused += !w->t[i].used;
    if (!n_unused) return NGPT_OK;
    char buf[1800];
    size_t len = 0, listed = 0;
    buf[0] = 0;
    for (size_t i = 0; i < w->n && listed < NX_UNUSED_LIST; i++) {
        if (w->t[i].used) continue;
        int k = snprintf(buf + len, sizeof buf - len, "%s'%s'", listed ? ", " : "", w->t[i].name);
        if (k < 0 || (size_t)k >= sizeof buf - len) break;
        len += (size_t)k;
        listed++;
    }
    if (listed < n_unused) snprintf(buf + len, sizeof buf - len, " ... and %zu more", n_unused - listed);
    return nx_err(NGPT_ERR_UNEXPECTED_TENSOR, "%s: %zu tensor%s not used by the model: %s", w->path, n_unused,
                  n_unused == 1 ? "" : "s", buf);
}

/* ---- decoding ----------------------------------------------------------------------------- */

void nx_wtensor_to_f32(const nx_wtensor *t, float *dst)
{
    size_t es = nx_dtype_size(t->dtype);
    nx_dtype_to_f32_n(t->data, t->dtype, dst, es ? t->nbytes / es : 0);
}
