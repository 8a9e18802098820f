/* ngpt-convert — turn checkpoints into safetensors with the same tensor names.
 *
 *   ngpt-convert IN OUT.safetensors [--dtype f16|bf16|f32|keep] [--prefix-strip P] [--only PREFIX]...
 *
 * IN: a torch.save zip (.pt/.pth/.bin, e.g. NExT-GPT's delta pytorch_model.pt or
 * imagebind_huge.pth), a .safetensors file, or a sharded checkpoint's index
 * (*.bin.index.json / *.safetensors.index.json: every shard its weight_map names, in order of
 * first appearance). Pickles are read by libnextgpt's restricted reader (lib/core/pickle.c),
 * which accepts only the globals a state dict uses and never executes code.
 *
 * --dtype   floating tensors (F32/F16/BF16/F64) are converted (round to nearest even); integer
 *           and bool tensors are kept as they are. Default: keep.
 * --prefix-strip P  names that start with P lose it (others are kept as they are).
 * --only PREFIX     keep only tensors whose original name starts with PREFIX (repeatable: any).
 * The output's metadata: {"format": "pt", "source": IN's file name, "converted_by": "ngpt-convert
 * <version>"}, plus "dtype" when converted. Two tensors with the same name after stripping are an
 * error. Exit status: 0 done, 1 an error (message on stderr), 2 usage.
 */
#include "nextgpt.h"

#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/weights.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: ngpt-convert IN OUT.safetensors [--dtype f16|bf16|f32|keep] [--prefix-strip P] "
               "[--only PREFIX]...\n"
               "  IN: .pt/.pth/.bin (torch zip), .safetensors, or a sharded *.index.json\n");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool is_float(ngpt_dtype dt)
{
    return dt == NGPT_DTYPE_F32 || dt == NGPT_DTYPE_F16 || dt == NGPT_DTYPE_BF16 || dt == NGPT_DTYPE_F64;
}

/* ---- opening the input: one file, or the shards of an index ---- */

typedef struct input {
    nx_weights **shards;
    size_t       n;
} input;

static void input_close(input *in)
{
    for (size_t i = 0; i < in->n; i++) nx_weights_close(in->shards[i]);
    nx_free(in->shards);
}

static ngpt_status input_add(input *in, const char *path)
{
    nx_weights **s = nx_realloc(in->shards, (in->n + 1) * sizeof *s);
    if (!s) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
    in->shards = s;
    NX_TRY(nx_weights_open(&in->shards[in->n], path));
    in->n++;
    return NGPT_OK;
}

static ngpt_status input_open(input *in, const char *path)
{
    if (!ends_with(path, ".index.json")) return input_add(in, path);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        json_decref(root);
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: no \"weight_map\" object", path);
    }
    char *dirbuf = nx_strdup(path);
    const char *dir = dirbuf ? dirname(dirbuf) : ".";
    json_t *seen = json_object();
    ngpt_status st = NGPT_OK;
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val) {
        const char *file = json_string_value(val);
        if (!file || strchr(file, '/') || strcmp(file, "..") == 0) {
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: weight_map[\"%s\"] is not a file name in the same folder", path, key);
            break;
        }
        if (json_object_get(seen, file)) continue;
        json_object_set_new(seen, file, json_true());
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, file);
        if ((st = input_add(in, shard)) != NGPT_OK) break;
    }
    if (st == NGPT_OK && in->n == 0) st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: the weight_map is empty", path);
    json_decref(seen);
    json_decref(root);
    nx_free(dirbuf);
    return st;
}

/* ---- conversion ---- */

/* dst (numel elements of `to`) from a floating tensor. */
static void convert(const nx_wtensor *t, ngpt_dtype to, void *dst, float *tmp, size_t numel)
{
    nx_wtensor_to_f32(t, tmp);
    if (to == NGPT_DTYPE_F32) {
        memcpy(dst, tmp, numel * sizeof(float));
    } else if (to == NGPT_DTYPE_F16) {
        uint16_t *d = dst;
        for (size_t i = 0; i < numel; i++) d[i] = nx_f32_to_f16(tmp[i]);
    } else {
        uint16_t *d = dst;
        for (size_t i = 0; i < numel; i++) d[i] = nx_f32_to_bf16(tmp[i]);
    }
}

int main(int argc, char **argv)
{
    const char *in_path = NULL, *out_path = NULL, *strip = NULL, *dtype_arg = "keep";
    const char **only = calloc((size_t)argc, sizeof *only);
    size_t n_only = 0;
    if (!only) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            free(only);
            return 0;
        }
        if ((strcmp(a, "--dtype") == 0 || strcmp(a, "--prefix-strip") == 0 || strcmp(a, "--only") == 0) && i + 1 < argc) {
            const char *v = argv[++i];
            if (a[2] == 'd') dtype_arg = v;
            else if (a[2] == 'p') strip = v;
            else only[n_only++] = v;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "ngpt-convert: unknown or incomplete option %s\n", a);
            usage(stderr);
            free(only);
            return 2;
        } else if (!in_path) {
            in_path = a;
        } else if (!out_path) {
            out_path = a;
        } else {
            fprintf(stderr, "ngpt-convert: unexpected argument %s\n", a);
            usage(stderr);
            free(only);
            return 2;
        }
    }
    bool keep = strcmp(dtype_arg, "keep") == 0;
    ngpt_dtype to = NGPT_DTYPE_F32;
    if (strcmp(dtype_arg, "f16") == 0) to = NGPT_DTYPE_F16;
    else if (strcmp(dtype_arg, "bf16") == 0) to = NGPT_DTYPE_BF16;
    else if (strcmp(dtype_arg, "f32") == 0) to = NGPT_DTYPE_F32;
    else if (!keep) {
        fprintf(stderr, "ngpt-convert: --dtype %s: expected f16, bf16, f32 or keep\n", dtype_arg);
        free(only);
        return 2;
    }
    if (!in_path || !out_path) {
        usage(stderr);
        free(only);
        return 2;
    }

    input in = {0};
    nx_st_entry *ents = NULL;
    void **owned = NULL;
    char **names = NULL;
    size_t n_ent = 0, cap = 0;
    float *tmp = NULL;
    json_t *seen = json_object();
    ngpt_status st = input_open(&in, in_path);
    for (size_t s = 0; s < in.n && st == NGPT_OK; s++) {
        for (size_t i = 0; i < nx_weights_count(in.shards[s]) && st == NGPT_OK; i++) {
            const nx_wtensor *t = nx_weights_at(in.shards[s], i);
            if (n_only) {
                bool hit = false;
                for (size_t k = 0; k < n_only && !hit; k++) hit = strncmp(t->name, only[k], strlen(only[k])) == 0;
                if (!hit) continue;
            }
            const char *name = t->name;
            if (strip && strncmp(name, strip, strlen(strip)) == 0) name += strlen(strip);
            if (!*name) {
                st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: tensor '%s' has no name left after --prefix-strip", t->file,
                            t->name);
                break;
            }
            if (json_object_get(seen, name)) {
                st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: two tensors are named '%s' in the output", t->file, name);
                break;
            }
            json_object_set_new(seen, name, json_true());
            if (n_ent == cap) {
                cap = cap ? cap * 2 : 256;
                nx_st_entry *e = nx_realloc(ents, cap * sizeof *e);
                void **o = e ? nx_realloc(owned, cap * sizeof *o) : NULL;
                if (e) ents = e;
                if (o) owned = o;
                char **nm = o ? nx_realloc(names, cap * sizeof *nm) : NULL;
                if (nm) names = nm;
                if (!e || !o || !nm) {
                    st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
                    break;
                }
            }
            nx_st_entry *e = &ents[n_ent];
            owned[n_ent] = NULL;
            names[n_ent] = nx_strdup(name);
            e->name = names[n_ent];
            e->dtype = t->dtype;
            e->rank = t->rank;
            e->shape = t->shape;
            e->data = t->data;
            n_ent++;
            if (!e->name) {
                st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "out of memory");
                break;
            }
            if (!keep && is_float(t->dtype) && t->dtype != to) {
                size_t numel = t->nbytes / nx_dtype_size(t->dtype);
                float *tt = nx_realloc(tmp, (numel ? numel : 1) * sizeof *tt);
                void *dst = nx_malloc(numel ? numel * nx_dtype_size(to) : 1);
                if (tt) tmp = tt;
                if (!tt || !dst) {
                    nx_free(dst);
                    st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: tensor '%s': cannot allocate %zu elements", t->file, t->name,
                                numel);
                    break;
                }
                convert(t, to, dst, tmp, numel);
                owned[n_ent - 1] = dst;
                e->data = dst;
                e->dtype = to;
            }
        }
    }
    if (st == NGPT_OK && n_ent == 0) st = nx_err(NGPT_ERR_NOT_FOUND, "%s: no tensors to write", in_path);
    if (st == NGPT_OK) {
        char *pbuf = nx_strdup(in_path);
        char version[64];
        snprintf(version, sizeof version, "ngpt-convert %s", ngpt_version());
        const char *meta[8] = {"format", "pt", "source", pbuf ? basename(pbuf) : in_path, "converted_by", version,
                               "dtype", keep ? "keep" : dtype_arg};
        st = nx_safetensors_write(out_path, ents, n_ent, meta, keep ? 3 : 4);
        nx_free(pbuf);
    }
    if (st == NGPT_OK) fprintf(stderr, "ngpt-convert: wrote %zu tensors to %s\n", n_ent, out_path);
    else fprintf(stderr, "ngpt-convert: %s\n", ngpt_last_error());
    for (size_t i = 0; i < n_ent; i++) {
        nx_free(owned[i]);
        nx_free(names[i]);
    }
    nx_free(owned);
    nx_free(names);
    nx_free(ents);
    nx_free(tmp);
    json_decref(seen);
    input_close(&in);
    free(only);
    return st == NGPT_OK ? 0 : 1;
}
