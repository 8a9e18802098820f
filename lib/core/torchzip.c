/* torchzip.c — `torch.save` zip checkpoints (torch >= 1.6): `<archive>/data.pkl` (a pickle run
 * by the restricted reader in pickle.c), `<archive>/data/<key>` (one storage each, raw
 * little-endian), `<archive>/version`. torch writes every entry STORED (uncompressed, 64-byte
 * aligned), so the file is mmapped and contiguous tensors point straight into it.
 *
 * The zip reader is minimal and strict: end-of-central-directory record (ZIP64 when the
 * counts/offsets need it), central directory, and each used entry's local header, with every
 * offset and size checked against the file. Compressed or encrypted entries are UNSUPPORTED. */
#define _POSIX_C_SOURCE 200809L
#include "weights_impl.h"

#include "alloc.h"
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZIP_MAX_ENTRIES (1u << 20)

typedef struct zentry {
    const char *name;  /* into the mapping, not NUL-terminated */
    size_t name_len;
    uint64_t lho, size, csize;
    unsigned method, flags;
} zentry;

typedef struct zip {
    const unsigned char *base;
    size_t len;
    const char *file;
    zentry *e;
    size_t n;
    nx_weights *w;
    const char *prefix;  /* "<archive>/" (into the mapping) */
    size_t prefix_len;
} zip;

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

static ngpt_status zbad(const zip *z, const char *what)
{
    return nx_err(NGPT_ERR_BAD_FORMAT, "%s: zip: %s (truncated or corrupt file?)", z->file, what);
}

static ngpt_status read_cd(zip *z)
{
    const unsigned char *b = z->base;
    size_t len = z->len;
    if (len < 22) return zbad(z, "too short for a zip file");
    size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0, eocd = SIZE_MAX;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (memcmp(b + i, "PK\x05\x06", 4) == 0) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX) return zbad(z, "no end-of-central-directory record");
    uint64_t count = le(b + eocd + 10, 2), cd_size = le(b + eocd + 12, 4), cd_off = le(b + eocd + 16, 4);
    if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        if (eocd < 20 || memcmp(b + eocd - 20, "PK\x06\x07", 4) != 0) return zbad(z, "ZIP64 locator missing");
        uint64_t z64 = le(b + eocd - 20 + 8, 8);
        if (len < 56 || z64 > len - 56 || memcmp(b + z64, "PK\x06\x06", 4) != 0) return zbad(z, "bad ZIP64 end record");
        count = le(b + z64 + 32, 8);
        cd_size = le(b + z64 + 40, 8);
        cd_off = le(b + z64 + 48, 8);
    }
    if (cd_off > len || cd_size > len - cd_off) return zbad(z, "central directory outside the file");
    if (count > ZIP_MAX_ENTRIES || count > cd_size / 46) return zbad(z, "implausible entry count");
    z->e = nx_malloc((count ? count : 1) * sizeof *z->e);
    if (!z->e) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory for %llu zip entries", z->file, (unsigned long long)count);
    const unsigned char *p = b + cd_off, *end = p + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || memcmp(p, "PK\x01\x02", 4) != 0) return zbad(z, "bad central directory entry");
        zentry *e = &z->e[z->n];
        e->flags = (unsigned)le(p + 8, 2);
        e->method = (unsigned)le(p + 10, 2);
        e->csize = le(p + 20, 4);
        e->size = le(p + 24, 4);
        size_t nl = (size_t)le(p + 28, 2), xl = (size_t)le(p + 30, 2), cl = (size_t)le(p + 32, 2);
        e->lho = le(p + 42, 4);
        if ((size_t)(end - p) < 46 + nl + xl + cl) return zbad(z, "central directory entry overruns");
        e->name = (const char *)p + 46;
        e->name_len = nl;
        /* ZIP64 extra field: the 0xffffffff fields, in order size, csize, offset */
        const unsigned char *x = p + 46 + nl, *xe = x + xl;
        while (xe - x >= 4) {
            unsigned id = (unsigned)le(x, 2), sz = (unsigned)le(x + 2, 2);
            if ((size_t)(xe - x - 4) < sz) return zbad(z, "extra field overruns");
            if (id == 1) {
                const unsigned char *q = x + 4, *qe = q + sz;
                if (e->size == 0xffffffffu) { if (qe - q < 8) return zbad(z, "short ZIP64 field"); e->size = le(q, 8); q += 8; }
                if (e->csize == 0xffffffffu) { if (qe - q < 8) return zbad(z, "short ZIP64 field"); e->csize = le(q, 8); q += 8; }
                if (e->lho == 0xffffffffu) { if (qe - q < 8) return zbad(z, "short ZIP64 field"); e->lho = le(q, 8); }
            }
            x += 4 + sz;
        }
        p += 46 + nl + xl + cl;
        z->n++;
    }
    return NGPT_OK;
}

static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int entry_cmp(const void *pa, const void *pb)
{
    const zentry *a = pa, *b = pb;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

/* Entries sorted by name, so that each tensor's storage is a binary search (a crafted archive
 * of 2^20 entries and as many tensors would otherwise be 2^40 comparisons); a name twice is an
 * error, not a silent choice of one of them. */
static ngpt_status sort_entries(zip *z)
{
    qsort(z->e, z->n, sizeof *z->e, entry_cmp);
    for (size_t i = 1; i < z->n; i++)
        if (entry_cmp(&z->e[i - 1], &z->e[i]) == 0)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: zip: entry '%.*s' appears twice", z->file,
                          z->e[i].name_len > 300 ? 300 : (int)z->e[i].name_len, z->e[i].name);
    return NGPT_OK;
}

static const zentry *zfind(const zip *z, const char *a, size_t al, const char *bb, size_t bl)
{
    char key[1024];
    if (al + bl > sizeof key) return NULL;
    memcpy(key, a, al);
    memcpy(key + al, bb, bl);
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(z->e[mid].name, z->e[mid].name_len, key, al + bl);
        if (c == 0) return &z->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* The bytes of a stored entry, checked against the file. */
static ngpt_status zdata(const zip *z, const zentry *e, const unsigned char **data)
{
    int nl = e->name_len > 300 ? 300 : (int)e->name_len;
    if (e->flags & 1)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: zip entry '%.*s' is encrypted", z->file, nl, e->name);
    if (e->method != 0)
        return nx_err(NGPT_ERR_UNSUPPORTED,
                      "%s: zip entry '%.*s' is compressed (method %u); only stored entries, as torch.save writes "
                      "them, are supported", z->file, nl, e->name, e->method);
    if (e->csize != e->size) return zbad(z, "stored entry with different sizes");
    if (e->lho > z->len || z->len - e->lho < 30 || memcmp(z->base + e->lho, "PK\x03\x04", 4) != 0)
        return zbad(z, "bad local header");
    size_t lnl = (size_t)le(z->base + e->lho + 26, 2);
    if (lnl != e->name_len || z->len - e->lho - 30 < lnl || memcmp(z->base + e->lho + 30, e->name, lnl) != 0)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: zip entry '%.*s': its local header names another file (corrupt file?)",
                      z->file, nl, e->name);
    uint64_t off = e->lho + 30 + lnl + le(z->base + e->lho + 28, 2);
    if (off > z->len || e->size > z->len - off) {
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: zip entry '%.*s' (%llu bytes at %llu) runs past the end of the file "
                      "(%zu bytes): truncated?", z->file, nl, e->name, (unsigned long long)e->size,
                      (unsigned long long)off, z->len);
    }
    *data = z->base + off;
    return NGPT_OK;
}

static ngpt_status on_tensor(void *user, const nx_pkl_tensor *t)
{
    zip *z = user;
    size_t es = nx_dtype_size(t->dtype);
    const zentry *e;
    size_t kl = strlen(t->storage_key);
    char sub[300];
    if (kl > 256) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': storage key too long", z->file, t->name);
    snprintf(sub, sizeof sub, "data/%s", t->storage_key);
    e = zfind(z, z->prefix, z->prefix_len, sub, strlen(sub));
    if (!e)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': storage '%.*s%s' missing from the archive", z->file,
                      t->name, (int)z->prefix_len, z->prefix, sub);
    const unsigned char *sdata;
    NX_TRY(zdata(z, e, &sdata));
    uint64_t snumel = (uint64_t)t->storage_numel;
    if (snumel > e->size / es)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': storage of %llu %s elements but its entry has %llu bytes",
                      z->file, t->name, (unsigned long long)snumel, nx_dtype_name(t->dtype),
                      (unsigned long long)e->size);
    uint64_t numel;
    char sh[200];
    nx_shape_str(sh, sizeof sh, t->rank, t->shape);
    if (!nx_numel_checked(t->rank, t->shape, &numel) || t->offset < 0)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s': bad shape %s or offset", z->file, t->name, sh);
    /* More elements than its storage holds can only be a view with zero strides (an expanded
     * tensor): gathering it would let a file of a few hundred bytes ask for any amount of memory,
     * and no state dict saves one. */
    if (numel > snumel)
        return nx_err(NGPT_ERR_UNSUPPORTED,
                      "%s: tensor '%s' %s has %llu elements over a storage of %llu (an expanded view): "
                      "save it contiguous", z->file, t->name, sh, (unsigned long long)numel,
                      (unsigned long long)snumel);
    bool contiguous = true;
    uint64_t last = (uint64_t)t->offset;  /* index of the last element */
    uint64_t expect = 1;                  /* <= numel <= snumel: no overflow */
    for (int i = t->rank - 1; i >= 0; i--) {
        if (t->stride[i] < 0)
            return nx_err(NGPT_ERR_UNSUPPORTED, "%s: tensor '%s': negative stride", z->file, t->name);
        if (t->shape[i] > 1 && (uint64_t)t->stride[i] != expect) contiguous = false;
        if (numel && t->shape[i] > 0) {
            uint64_t ext = (uint64_t)(t->shape[i] - 1);
            if (t->stride[i] && ext > snumel / (uint64_t)t->stride[i])
                return nx_err(NGPT_ERR_BAD_FORMAT, "%s: tensor '%s' %s reaches past its storage of %llu elements",
                              z->file, t->name, sh, (unsigned long long)snumel);
            last += ext * (uint64_t)t->stride[i];
        }
        expect *= t->shape[i] ? (uint64_t)t->shape[i] : 1;
    }
    if (numel && last >= snumel)
        return nx_err(NGPT_ERR_BAD_FORMAT,
                      "%s: tensor '%s' %s at offset %lld reaches past its storage of %llu elements", z->file, t->name,
                      sh, (long long)t->offset, (unsigned long long)snumel);
    if (contiguous || numel == 0)
        return nx_w_add(z->w, t->name, t->dtype, t->rank, t->shape, numel ? sdata + (size_t)t->offset * es : sdata,
                        (size_t)numel * es, z->file);
    /* a strided view: gather into owned memory */
    unsigned char *dst;
    NX_TRY(nx_w_alloc_owned(z->w, (size_t)numel * es, (void **)&dst));
    int64_t idx[NGPT_MAX_DIMS] = {0};
    for (uint64_t k = 0; k < numel; k++) {
        uint64_t src = (uint64_t)t->offset;
        for (int i = 0; i < t->rank; i++) src += (uint64_t)idx[i] * (uint64_t)t->stride[i];
        memcpy(dst + k * es, sdata + src * es, es);
        for (int i = t->rank - 1; i >= 0; i--) {
            if (++idx[i] < t->shape[i]) break;
            idx[i] = 0;
        }
    }
    return nx_w_add(z->w, t->name, t->dtype, t->rank, t->shape, dst, (size_t)numel * es, z->file);
}

ngpt_status nx_torchzip_read(nx_weights *w, const char *path)
{
    const nx_mapping *m;
    NX_TRY(nx_w_map(w, path, &m));
    zip z;
    memset(&z, 0, sizeof z);
    z.base = m->addr;
    z.len = m->len;
    z.file = m->path;
    z.w = w;
    ngpt_status st = read_cd(&z);
    const zentry *pkl = NULL;
    if (st == NGPT_OK) st = sort_entries(&z);
    if (st == NGPT_OK) {
        for (size_t i = 0; i < z.n && st == NGPT_OK; i++) {
            const zentry *e = &z.e[i];
            if (e->name_len >= 8 && memcmp(e->name + e->name_len - 8, "data.pkl", 8) == 0 &&
                (e->name_len == 8 || e->name[e->name_len - 9] == '/')) {
                if (pkl)  /* torch.save writes one: which would torch.load read? */
                    st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: zip with two data.pkl entries ('%.*s', '%.*s')", z.file,
                                (int)(pkl->name_len > 300 ? 300 : pkl->name_len), pkl->name,
                                (int)(e->name_len > 300 ? 300 : e->name_len), e->name);
                pkl = e;
                z.prefix = e->name;
                z.prefix_len = e->name_len - 8;
            }
        }
        if (st == NGPT_OK && !pkl)
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: zip file without a data.pkl entry (not a torch.save checkpoint)",
                        z.file);
    }
    const unsigned char *pdata = NULL;
    if (st == NGPT_OK) st = zdata(&z, pkl, &pdata);
    if (st == NGPT_OK) st = nx_pickle_state_dict(pdata, (size_t)pkl->size, z.file, on_tensor, &z);
    nx_free(z.e);
    return st;
}
