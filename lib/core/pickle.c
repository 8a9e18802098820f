/* pickle.c — the restricted, code-free pickle virtual machine described in pickle.h.
 *
 * Objects live in an arena freed at the end; the memo and the stack hold pointers into it
 * (sharing is what pickle means by memo). Nothing here calls into Python semantics: a
 * REDUCE of a whitelisted global builds a plain C record (dict, storage ref, tensor view). */
#include "pickle.h"

#include "alloc.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define PKL_MAX_STACK   (1u << 18)   /* entries (torch batches SETITEMS by 1000) */
#define PKL_MAX_MARKS   (1u << 12)
#define PKL_MAX_MEMO    (1u << 22)   /* memo index */
#define PKL_MAX_STR     (1u << 20)   /* bytes of one string */
#define PKL_MAX_ARENA   ((size_t)1 << 30)
#define PKL_MAX_NEST    32           /* nested dict depth when flattening */
#define PKL_NAME_CAP    4096

enum { O_NONE, O_BOOL, O_INT, O_FLOAT, O_STR, O_TUPLE, O_LIST, O_DICT, O_GLOBAL, O_STORAGE, O_TENSOR };
enum { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE };

typedef struct obj obj;
struct obj {
    int     kind;
    int64_t i;         /* INT, BOOL; STORAGE: numel; TENSOR: offset */
    double  f;
    const char *s;     /* STR; STORAGE: key */
    obj   **items;     /* TUPLE/LIST: items; DICT: key,value pairs */
    size_t  n, cap;    /* items used / allocated (DICT: 2 per pair) */
    int     g;         /* GLOBAL: G_*; */
    ngpt_dtype dt;     /* GLOBAL G_STORAGE, STORAGE, TENSOR */
    obj    *storage;   /* TENSOR */
    int     rank;      /* TENSOR */
    int64_t shape[NGPT_MAX_DIMS], stride[NGPT_MAX_DIMS];
    bool    walked;    /* DICT: already flattened (see flatten) */
};

typedef struct chunk { struct chunk *next; size_t used, cap; } chunk;

typedef struct vm {
    const unsigned char *p, *end, *start;
    const char *file;
    chunk *chunks;
    size_t arena_total;
    obj  **stack;
    size_t sp, stack_cap;
    size_t marks[PKL_MAX_MARKS];
    size_t n_marks;
    obj  **memo;
    size_t memo_cap, memo_n;  /* memo_n: distinct indices set (MEMOIZE's next index) */
    obj    none;
} vm;

static ngpt_status bad(vm *v, const char *what)
{
    return nx_err(NGPT_ERR_BAD_FORMAT, "%s: pickle: %s at offset %zu", v->file, what, (size_t)(v->p - v->start));
}

static ngpt_status oom(vm *v)
{
    return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: pickle: out of memory", v->file);
}

static void *arena(vm *v, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (v->chunks && v->chunks->cap - v->chunks->used >= n) {
        void *r = (char *)(v->chunks + 1) + v->chunks->used;
        v->chunks->used += n;
        return r;
    }
    size_t cap = n > 65536 ? n : 65536;
    if (v->arena_total + cap > PKL_MAX_ARENA) return NULL;
    chunk *c = nx_malloc(sizeof(chunk) + cap);
    if (!c) return NULL;
    c->next = v->chunks;
    c->used = n;
    c->cap = cap;
    v->chunks = c;
    v->arena_total += cap;
    return c + 1;
}

static obj *new_obj(vm *v, int kind)
{
    obj *o = arena(v, sizeof *o);
    if (o) {
        memset(o, 0, sizeof *o);
        o->kind = kind;
    }
    return o;
}

static bool add_item(vm *v, obj *c, obj *x)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        obj **it = arena(v, cap * sizeof *it);
        if (!it) return false;
        if (c->n) memcpy(it, c->items, c->n * sizeof *it);
        c->items = it;
        c->cap = cap;
    }
    c->items[c->n++] = x;
    return true;
}

static ngpt_status push(vm *v, obj *o)
{
    if (!o) return oom(v);
    if (v->sp == v->stack_cap) {
        if (v->stack_cap >= PKL_MAX_STACK) return bad(v, "stack too deep");
        size_t cap = v->stack_cap ? v->stack_cap * 2 : 256;
        obj **s = nx_realloc(v->stack, cap * sizeof *s);
        if (!s) return oom(v);
        v->stack = s;
        v->stack_cap = cap;
    }
    v->stack[v->sp++] = o;
    return NGPT_OK;
}

static size_t floor_sp(const vm *v) { return v->n_marks ? v->marks[v->n_marks - 1] : 0; }

static ngpt_status pop(vm *v, obj **o)
{
    if (v->sp <= floor_sp(v)) return bad(v, "stack underflow");
    *o = v->stack[--v->sp];
    return NGPT_OK;
}

static ngpt_status need(vm *v, size_t n)
{
    if ((size_t)(v->end - v->p) < n) return bad(v, "truncated");
    return NGPT_OK;
}

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = (x << 8) | p[i];
    return x;
}

static ngpt_status push_str(vm *v, size_t n)
{
    if (n > PKL_MAX_STR) return bad(v, "string too long");
    NX_TRY(need(v, n));
    obj *o = new_obj(v, O_STR);
    char *s = o ? arena(v, n + 1) : NULL;
    if (!s) return oom(v);
    memcpy(s, v->p, n);
    s[n] = 0;
    o->s = s;
    o->n = n;
    v->p += n;
    return push(v, o);
}

static ngpt_status push_int(vm *v, int64_t x)
{
    obj *o = new_obj(v, O_INT);
    if (o) o->i = x;
    return push(v, o);
}

static ngpt_status memo_put(vm *v, uint64_t idx)
{
    if (idx >= PKL_MAX_MEMO) return bad(v, "memo index too large");
    if (v->sp == 0) return bad(v, "memo put on an empty stack");
    if (idx >= v->memo_cap) {
        size_t cap = v->memo_cap ? v->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        obj **m = nx_realloc(v->memo, cap * sizeof *m);
        if (!m) return oom(v);
        memset(m + v->memo_cap, 0, (cap - v->memo_cap) * sizeof *m);
        v->memo = m;
        v->memo_cap = cap;
    }
    if (!v->memo[idx]) v->memo_n++;
    v->memo[idx] = v->stack[v->sp - 1];
    return NGPT_OK;
}

static ngpt_status memo_get(vm *v, uint64_t idx)
{
    if (idx >= v->memo_cap || !v->memo[idx]) return bad(v, "memo get of an unset index");
    return push(v, v->memo[idx]);
}

static const struct { const char *name; ngpt_dtype dt; } k_storages[] = {
    {"FloatStorage", NGPT_DTYPE_F32}, {"HalfStorage", NGPT_DTYPE_F16},  {"BFloat16Storage", NGPT_DTYPE_BF16},
    {"DoubleStorage", NGPT_DTYPE_F64}, {"LongStorage", NGPT_DTYPE_I64}, {"IntStorage", NGPT_DTYPE_I32},
    {"ShortStorage", NGPT_DTYPE_I16}, {"CharStorage", NGPT_DTYPE_I8},  {"ByteStorage", NGPT_DTYPE_U8},
    {"BoolStorage", NGPT_DTYPE_BOOL},
};

static ngpt_status push_global(vm *v, const char *mod, size_t ml, const char *name, size_t nl)
{
    obj *o = new_obj(v, O_GLOBAL);
    if (!o) return oom(v);
#define IS(m, n) (ml == strlen(m) && memcmp(mod, m, ml) == 0 && nl == strlen(n) && memcmp(name, n, nl) == 0)
    if (IS("collections", "OrderedDict")) o->g = G_ODICT;
    else if (IS("torch._utils", "_rebuild_tensor_v2")) o->g = G_REBUILD_V2;
    else if (IS("torch._utils", "_rebuild_parameter")) o->g = G_REBUILD_PARAM;
    else {
        o->g = -1;
        if (ml == 5 && memcmp(mod, "torch", 5) == 0)
            for (size_t i = 0; i < sizeof k_storages / sizeof k_storages[0]; i++)
                if (nl == strlen(k_storages[i].name) && memcmp(name, k_storages[i].name, nl) == 0) {
                    o->g = G_STORAGE;
                    o->dt = k_storages[i].dt;
                }
    }
#undef IS
    if (o->g < 0) {
        int a = ml > 200 ? 200 : (int)ml, b = nl > 200 ? 200 : (int)nl;
        return nx_err(NGPT_ERR_BAD_FORMAT,
                      "%s: pickle global '%.*s.%.*s' is not allowed (only state-dict globals are read)", v->file,
                      a, mod, b, name);
    }
    return push(v, o);
}

/* GLOBAL: "module\nname\n" */
static ngpt_status op_global(vm *v)
{
    const unsigned char *lines[2];
    size_t lens[2];
    for (int k = 0; k < 2; k++) {
        const unsigned char *nl = memchr(v->p, '\n', (size_t)(v->end - v->p) < 512 ? (size_t)(v->end - v->p) : 512);
        if (!nl) return bad(v, "GLOBAL without a newline (or a name over 512 bytes)");
        lines[k] = v->p;
        lens[k] = (size_t)(nl - v->p);
        v->p = nl + 1;
    }
    return push_global(v, (const char *)lines[0], lens[0], (const char *)lines[1], lens[1]);
}

static bool int_tuple(const obj *t, int64_t *vals, int *n)
{
    if (t->kind != O_TUPLE || t->n > NGPT_MAX_DIMS) return false;
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != O_INT) return false;
        vals[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return true;
}

static ngpt_status op_reduce(vm *v)
{
    obj *args = NULL, *fn = NULL;
    NX_TRY(pop(v, &args));
    NX_TRY(pop(v, &fn));
    if (fn->kind != O_GLOBAL || args->kind != O_TUPLE) return bad(v, "REDUCE of something that is not a known global");
    switch (fn->g) {
    case G_ODICT:
        if (args->n != 0) return bad(v, "OrderedDict called with arguments");
        return push(v, new_obj(v, O_DICT));
    case G_REBUILD_PARAM:
        if (args->n < 1 || args->items[0]->kind != O_TENSOR) return bad(v, "_rebuild_parameter without a tensor");
        return push(v, args->items[0]);
    case G_REBUILD_V2: {
        if (args->n < 4 || args->items[0]->kind != O_STORAGE || args->items[1]->kind != O_INT)
            return bad(v, "_rebuild_tensor_v2 with unexpected arguments");
        obj *t = new_obj(v, O_TENSOR);
        if (!t) return oom(v);
        int rs, rt;
        if (!int_tuple(args->items[2], t->shape, &rs) || !int_tuple(args->items[3], t->stride, &rt) || rs != rt)
            return bad(v, "_rebuild_tensor_v2: size/stride are not integer tuples of equal length (rank <= 8)");
        t->rank = rs;
        t->storage = args->items[0];
        t->dt = t->storage->dt;
        t->i = args->items[1]->i;
        return push(v, t);
    }
    default: return bad(v, "REDUCE of a storage type");
    }
}

static ngpt_status op_persid(vm *v)
{
    obj *pid = NULL;
    NX_TRY(pop(v, &pid));
    if (pid->kind != O_TUPLE || pid->n != 5 || pid->items[0]->kind != O_STR || strcmp(pid->items[0]->s, "storage") ||
        pid->items[1]->kind != O_GLOBAL || pid->items[1]->g != G_STORAGE || pid->items[2]->kind != O_STR ||
        pid->items[4]->kind != O_INT || pid->items[4]->i < 0)
        return bad(v, "persistent id is not ('storage', <type>, key, location, numel)");
    obj *s = new_obj(v, O_STORAGE);
    if (!s) return oom(v);
    s->dt = pid->items[1]->dt;
    s->s = pid->items[2]->s;
    s->i = pid->items[4]->i;
    return push(v, s);
}

/* Pop everything above the last mark into a new container of `kind` (or append to below). */
static ngpt_status pop_mark(vm *v, size_t *base)
{
    if (!v->n_marks) return bad(v, "no MARK");
    *base = v->marks[--v->n_marks];
    return NGPT_OK;
}

static ngpt_status run(vm *v, obj **result)
{
    for (;;) {
        NX_TRY(need(v, 1));
        unsigned char op = *v->p++;
        obj *a = NULL, *b = NULL, *c = NULL;
        size_t base = 0;
        switch (op) {
        case 0x80: /* PROTO */
            NX_TRY(need(v, 1));
            if (*v->p > 5) return bad(v, "unknown pickle protocol");
            v->p++;
            break;
        case 0x95: /* FRAME */
            NX_TRY(need(v, 8));
            v->p += 8;
            break;
        case 'c': NX_TRY(op_global(v)); break;
        case 0x93: /* STACK_GLOBAL */
            NX_TRY(pop(v, &b));
            NX_TRY(pop(v, &a));
            if (a->kind != O_STR || b->kind != O_STR) return bad(v, "STACK_GLOBAL of non-strings");
            NX_TRY(push_global(v, a->s, a->n, b->s, b->n));
            break;
        case 'q': NX_TRY(need(v, 1)); NX_TRY(memo_put(v, *v->p++)); break;
        case 'r': NX_TRY(need(v, 4)); NX_TRY(memo_put(v, rd_le(v->p, 4))); v->p += 4; break;
        case 0x94: /* MEMOIZE */
            NX_TRY(memo_put(v, v->memo_n));
            break;
        case 'h': NX_TRY(need(v, 1)); NX_TRY(memo_get(v, *v->p++)); break;
        case 'j': NX_TRY(need(v, 4)); NX_TRY(memo_get(v, rd_le(v->p, 4))); v->p += 4; break;
        case '(':
            if (v->n_marks == PKL_MAX_MARKS) return bad(v, "too many nested MARKs");
            v->marks[v->n_marks++] = v->sp;
            break;
        case '}': NX_TRY(push(v, new_obj(v, O_DICT))); break;
        case ']': NX_TRY(push(v, new_obj(v, O_LIST))); break;
        case ')': NX_TRY(push(v, new_obj(v, O_TUPLE))); break;
        case 't':
            NX_TRY(pop_mark(v, &base));
            if (!(c = new_obj(v, O_TUPLE))) return oom(v);
            for (size_t i = base; i < v->sp; i++)
                if (!add_item(v, c, v->stack[i])) return oom(v);
            v->sp = base;
            NX_TRY(push(v, c));
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t k = (size_t)(op - 0x84);
            if (v->sp < floor_sp(v) + k) return bad(v, "stack underflow");
            if (!(c = new_obj(v, O_TUPLE))) return oom(v);
            for (size_t i = v->sp - k; i < v->sp; i++)
                if (!add_item(v, c, v->stack[i])) return oom(v);
            v->sp -= k;
            NX_TRY(push(v, c));
            break;
        }
        case 'J': NX_TRY(need(v, 4)); NX_TRY(push_int(v, (int32_t)(uint32_t)rd_le(v->p, 4))); v->p += 4; break;
        case 'K': NX_TRY(need(v, 1)); NX_TRY(push_int(v, *v->p)); v->p += 1; break;
        case 'M': NX_TRY(need(v, 2)); NX_TRY(push_int(v, (int64_t)rd_le(v->p, 2))); v->p += 2; break;
        case 0x8a: { /* LONG1 */
            NX_TRY(need(v, 1));
            size_t n = *v->p++;
            if (n > 8) return bad(v, "integer wider than 64 bits");
            NX_TRY(need(v, n));
            uint64_t x = rd_le(v->p, (int)n);
            if (n && n < 8 && (v->p[n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n);  /* sign-extend */
            v->p += n;
            NX_TRY(push_int(v, (int64_t)x));
            break;
        }
        case 'G': { /* BINFLOAT, big-endian */
            NX_TRY(need(v, 8));
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = (u << 8) | v->p[i];
            v->p += 8;
            if (!(c = new_obj(v, O_FLOAT))) return oom(v);
            memcpy(&c->f, &u, 8);
            NX_TRY(push(v, c));
            break;
        }
        case 'X': case 'T': NX_TRY(need(v, 4)); { size_t n = (size_t)rd_le(v->p, 4); v->p += 4; NX_TRY(push_str(v, n)); } break;
        case 0x8c: case 'U': NX_TRY(need(v, 1)); { size_t n = *v->p++; NX_TRY(push_str(v, n)); } break;
        case 0x8d: NX_TRY(need(v, 8)); {
            uint64_t n = rd_le(v->p, 8);
            v->p += 8;
            if (n > PKL_MAX_STR) return bad(v, "string too long");
            NX_TRY(push_str(v, (size_t)n));
        } break;
        case 0x88: case 0x89:
            if (!(c = new_obj(v, O_BOOL))) return oom(v);
            c->i = op == 0x88;
            NX_TRY(push(v, c));
            break;
        case 'N': NX_TRY(push(v, &v->none)); break;
        case 's':
            NX_TRY(pop(v, &b));
            NX_TRY(pop(v, &a));
            if (v->sp <= floor_sp(v) || (c = v->stack[v->sp - 1])->kind != O_DICT) return bad(v, "SETITEM on a non-dict");
            if (!add_item(v, c, a) || !add_item(v, c, b)) return oom(v);
            break;
        case 'u':
            NX_TRY(pop_mark(v, &base));
            if ((v->sp - base) % 2) return bad(v, "SETITEMS with an odd number of items");
            if (base == 0 || base <= floor_sp(v) || (c = v->stack[base - 1])->kind != O_DICT) return bad(v, "SETITEMS on a non-dict");
            for (size_t i = base; i < v->sp; i++)
                if (!add_item(v, c, v->stack[i])) return oom(v);
            v->sp = base;
            break;
        case 'a':
            NX_TRY(pop(v, &a));
            if (v->sp <= floor_sp(v) || (c = v->stack[v->sp - 1])->kind != O_LIST) return bad(v, "APPEND on a non-list");
            if (!add_item(v, c, a)) return oom(v);
            break;
        case 'e':
            NX_TRY(pop_mark(v, &base));
            if (base == 0 || base <= floor_sp(v) || (c = v->stack[base - 1])->kind != O_LIST) return bad(v, "APPENDS on a non-list");
            for (size_t i = base; i < v->sp; i++)
                if (!add_item(v, c, v->stack[i])) return oom(v);
            v->sp = base;
            break;
        case 'R': NX_TRY(op_reduce(v)); break;
        case 'b': /* BUILD: state of a dict (OrderedDict._metadata) or a tensor is ignored */
            NX_TRY(pop(v, &a));
            if (v->sp <= floor_sp(v) || ((c = v->stack[v->sp - 1])->kind != O_DICT && c->kind != O_TENSOR))
                return bad(v, "BUILD on an object that is not a dict or tensor");
            break;
        case 'Q': NX_TRY(op_persid(v)); break;
        case '.':
            NX_TRY(pop(v, result));
            if (v->sp || v->n_marks) return bad(v, "STOP with items left on the stack");
            return NGPT_OK;
        default: {
            char m[64];
            v->p--;
            snprintf(m, sizeof m, "unsupported opcode 0x%02x", op);
            return bad(v, m);
        }
        }
    }
}

typedef struct flat {
    vm *v;
    nx_pkl_tensor_fn fn;
    void *user;
    char name[PKL_NAME_CAP];
} flat;

static ngpt_status flatten(flat *f, obj *d, size_t plen, int depth)
{
    if (depth > PKL_MAX_NEST)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: pickle: dicts nested more than %d deep (or a cycle)", f->v->file,
                      PKL_MAX_NEST);
    /* The memo lets one dict be the value of many keys: nested 30 deep, two keys each, a 1 KB
     * file would name 2^30 tensors. No state dict shares a sub-dict (shared tensors, as tied
     * weights, are fine: they cost one name each), so the second visit is an error. */
    if (d->walked)
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: pickle: a dict reached twice (at '%.*s'; shared or a cycle): "
                      "not a state dict", f->v->file, (int)(plen ? plen - 1 : 0), f->name);
    d->walked = true;
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        const obj *k = d->items[i];
        obj *val = d->items[i + 1];
        if (val->kind != O_TENSOR && val->kind != O_DICT) continue;
        char key[32];
        const char *ks;
        size_t kl;
        if (k->kind == O_STR) {
            ks = k->s;
            kl = k->n;
        } else if (k->kind == O_INT) {
            snprintf(key, sizeof key, "%lld", (long long)k->i);
            ks = key;
            kl = strlen(key);
        } else {
            continue;
        }
        if (plen + kl + 2 > PKL_NAME_CAP)
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: pickle: tensor name longer than %d bytes", f->v->file, PKL_NAME_CAP);
        memcpy(f->name + plen, ks, kl);
        f->name[plen + kl] = 0;
        if (memchr(ks, 0, kl))
            return nx_err(NGPT_ERR_BAD_FORMAT, "%s: pickle: tensor name with a NUL byte", f->v->file);
        if (val->kind == O_DICT) {
            f->name[plen + kl] = '.';
            NX_TRY(flatten(f, val, plen + kl + 1, depth + 1));
            continue;
        }
        nx_pkl_tensor t;
        memset(&t, 0, sizeof t);
        t.name = f->name;
        t.dtype = val->dt;
        t.storage_key = val->storage->s;
        t.storage_numel = val->storage->i;
        t.offset = val->i;
        t.rank = val->rank;
        for (int r = 0; r < val->rank; r++) {
            t.shape[r] = val->shape[r];
            t.stride[r] = val->stride[r];
        }
        NX_TRY(f->fn(f->user, &t));
    }
    return NGPT_OK;
}

ngpt_status nx_pickle_state_dict(const unsigned char *buf, size_t len, const char *file, nx_pkl_tensor_fn fn,
                                 void *user)
{
    vm v;
    memset(&v, 0, sizeof v);
    v.p = v.start = buf;
    v.end = buf + len;
    v.file = file;
    v.none.kind = O_NONE;
    obj *res = NULL;
    ngpt_status st = run(&v, &res);
    if (st == NGPT_OK && res->kind != O_DICT)
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: pickle holds a %s, not a state dict", file,
                    res->kind == O_TENSOR ? "single tensor" : res->kind == O_LIST ? "list" : "non-dict object");
    if (st == NGPT_OK) {
        flat *f = nx_malloc(sizeof *f);
        if (!f) {
            st = oom(&v);
        } else {
            f->v = &v;
            f->fn = fn;
            f->user = user;
            f->name[0] = 0;
            st = flatten(f, res, 0, 0);
            nx_free(f);
        }
    }
    while (v.chunks) {
        chunk *c = v.chunks;
        v.chunks = c->next;
        nx_free(c);
    }
    nx_free(v.stack);
    nx_free(v.memo);
    return st;
}
