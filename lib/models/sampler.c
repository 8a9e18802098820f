/* sampler.c — repetition penalty, temperature, top-k, top-p and a seeded draw over one logits
 * row (see sampler.h for the exact rules). */
#include "models/sampler.h"

#include "core/alloc.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

/* -------------------------------------------------------------------------------------------
 * RNG: splitmix64 seeding, xoshiro256** 1.0
 * ----------------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void nx_rng_seed(nx_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nx_rng_next(nx_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double nx_rng_uniform(nx_rng *r) { return (double)(nx_rng_next(r) >> 11) * 0x1.0p-53; }

/* -------------------------------------------------------------------------------------------
 * Sampler
 * ----------------------------------------------------------------------------------------- */

struct nx_sampler {
    nx_sampler_params p;
    nx_rng   rng;
    int32_t  n_vocab;
    float   *work;  /* (n_vocab) processed logits */
    int32_t *idx;   /* (n_vocab) candidate ids */
    uint8_t *mark;  /* (n_vocab) all zero between calls */
};

void nx_sampler_params_default(nx_sampler_params *p)
{
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->repetition_penalty = 1.0f;
    p->seed = 0;
}

ngpt_status nx_sampler_create(nx_sampler **out, const nx_sampler_params *p, int32_t n_vocab)
{
    if (!out || !p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_sampler_create: NULL argument");
    *out = NULL;
    if (n_vocab <= 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: n_vocab %d must be > 0", n_vocab);
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: temperature %g must be finite and >= 0", (double)p->temperature);
    if (p->top_k < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: top_k %d must be >= 0", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: top_p %g must be in (0, 1]", (double)p->top_p);
    if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: repetition_penalty %g must be finite and > 0",
                      (double)p->repetition_penalty);
    nx_sampler *s = nx_calloc(1, sizeof *s);
    if (!s) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->work = nx_malloc((size_t)n_vocab * sizeof *s->work);
    s->idx = nx_malloc((size_t)n_vocab * sizeof *s->idx);
    s->mark = nx_calloc((size_t)n_vocab, 1);
    if (!s->work || !s->idx || !s->mark) {
        nx_sampler_free(s);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "sampler: out of memory for scratch of %d ids", n_vocab);
    }
    nx_rng_seed(&s->rng, p->seed);
    *out = s;
    return NGPT_OK;
}

void nx_sampler_free(nx_sampler *s)
{
    if (!s) return;
    nx_free(s->work);
    nx_free(s->idx);
    nx_free(s->mark);
    nx_free(s);
}

void nx_sampler_reseed(nx_sampler *s, uint64_t seed)
{
    if (s) nx_rng_seed(&s->rng, seed);
}

int32_t nx_argmax(const float *logits, int32_t n)
{
    int32_t best = -1;
    float bv = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        float v = logits[i];
        if (v > bv || (best < 0 && v == INFINITY)) {
            bv = v;
            best = i;
        }
    }
    return best;
}

/* The total order used for selection: larger logit first, lower id first on equal logits. */
static inline int better(const float *w, int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); }

static inline void swap_i32(int32_t *a, int32_t *b)
{
    int32_t t = *a;
    *a = *b;
    *b = t;
}

/* Lomuto partition of idx[lo, hi) around a median-of-three pivot; returns the pivot's place. */
static size_t partition(int32_t *idx, size_t lo, size_t hi, const float *w)
{
    size_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (better(w, idx[mid], idx[lo])) swap_i32(&idx[mid], &idx[lo]);
    if (better(w, idx[last], idx[lo])) swap_i32(&idx[last], &idx[lo]);
    if (better(w, idx[mid], idx[last])) swap_i32(&idx[mid], &idx[last]);
    /* idx[last] is now the median */
    int32_t piv = idx[last];
    size_t st = lo;
    for (size_t k = lo; k < last; k++)
        if (better(w, idx[k], piv)) swap_i32(&idx[k], &idx[st++]);
    swap_i32(&idx[st], &idx[last]);
    return st;
}

/* Reorder idx[0, n) so that idx[0, m) are the m best ids (any order); 0 < m < n. */
static void select_best(int32_t *idx, size_t n, size_t m, const float *w)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t st = partition(idx, lo, hi, w);
        if (st == m || st + 1 == m) return;
        if (st > m) hi = st;
        else lo = st + 1;
    }
}

/* Sort idx[0, n) best first. */
static void sort_best(int32_t *idx, size_t n, const float *w)
{
    while (n > 16) {
        size_t st = partition(idx, 0, n, w);
        /* recurse into the smaller side, loop on the larger */
        if (st < n - st - 1) {
            sort_best(idx, st, w);
            idx += st + 1;
            n -= st + 1;
        } else {
            sort_best(idx + st + 1, n - st - 1, w);
            n = st;
        }
    }
    for (size_t i = 1; i < n; i++) {
        int32_t x = idx[i];
        size_t j = i;
        while (j > 0 && better(w, x, idx[j - 1])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = x;
    }
}

ngpt_status nx_sampler_sample(nx_sampler *s, const float *logits, int32_t n, const int32_t *context,
                              size_t n_context, int32_t *out_id)
{
    if (!s || !logits || !out_id || (n_context && !context))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_sampler_sample: NULL argument");
    if (n != s->n_vocab)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: logits row has %d entries, sampler was made for %d", n,
                      s->n_vocab);
    const nx_sampler_params *p = &s->p;
    float *w = s->work;

    for (int32_t i = 0; i < n; i++) {
        if (isnan(logits[i])) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: logit of id %d is NaN", i);
        w[i] = logits[i];
    }

    /* 1. repetition penalty over the distinct context ids */
    if (p->repetition_penalty != 1.0f && n_context) {
        const float rp = p->repetition_penalty;
        size_t k;
        for (k = 0; k < n_context; k++) {
            int32_t id = context[k];
            if (id < 0 || id >= n) break;
            if (s->mark[id]) continue;
            s->mark[id] = 1;
            w[id] = w[id] > 0 ? w[id] / rp : w[id] * rp;
        }
        for (size_t j = 0; j < k; j++) s->mark[context[j]] = 0;
        if (k < n_context)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: context id %d (at %zu) outside the vocabulary of %d",
                          context[k], k, n);
    } else {
        for (size_t k = 0; k < n_context; k++)
            if (context[k] < 0 || context[k] >= n)
                return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                              "sampler: context id %d (at %zu) outside the vocabulary of %d", context[k], k, n);
    }

    /* greedy */
    if (p->temperature == 0.0f) {
        int32_t best = nx_argmax(w, n);
        if (best < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: no finite logit in a row of %d", n);
        *out_id = best;
        return NGPT_OK;
    }

    /* 2. temperature; candidates = ids with a logit above -inf */
    size_t nc = 0;
    int32_t imax = -1;
    for (int32_t i = 0; i < n; i++) {
        if (p->temperature != 1.0f) w[i] = w[i] / p->temperature;
        if (w[i] == INFINITY)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: logit of id %d is +inf after temperature", i);
        if (w[i] > -INFINITY) {
            s->idx[nc++] = i;
            if (imax < 0 || w[i] > w[imax]) imax = i;
        }
    }
    if (nc == 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "sampler: no finite logit in a row of %d", n);
    const double lmax = (double)w[imax];

    /* 3./4. top-k and top-p: choose the kept ids, mark them */
    bool restricted = false;
    size_t nkeep = nc;
    if (p->top_k > 0 && (size_t)p->top_k < nc) {
        size_t k = (size_t)p->top_k;
        select_best(s->idx, nc, k, w);
        float thr = w[s->idx[0]];
        for (size_t j = 1; j < k; j++)
            if (w[s->idx[j]] < thr) thr = w[s->idx[j]];
        /* keep ties with the k-th value (HF removes only scores < the k-th) */
        nkeep = k;
        for (size_t j = k; j < nc; j++)
            if (w[s->idx[j]] >= thr) swap_i32(&s->idx[j], &s->idx[nkeep++]);
        nc = nkeep;
        restricted = true;
    }
    if (p->top_p < 1.0f) {
        double z = 0;
        for (size_t j = 0; j < nc; j++) z += exp((double)w[s->idx[j]] - lmax);
        const double target = (double)p->top_p * z;
        size_t m = restricted ? nc : (nc < 64 ? nc : 64);
        for (;;) {
            if (m < nc) select_best(s->idx, nc, m, w);
            sort_best(s->idx, m, w);
            double before = 0;
            size_t r = 0;
            while (r < m && (r == 0 || before < target)) {
                before += exp((double)w[s->idx[r]] - lmax);
                r++;
            }
            if (r < m || m == nc || before >= target) {
                nkeep = r;
                break;
            }
            m = m * 4 < nc ? m * 4 : nc;
        }
        restricted = true;
    }

    /* draw: inverse CDF over the kept ids in ascending id order */
    const double u = nx_rng_uniform(&s->rng);
    if (restricted) {
        for (size_t j = 0; j < nkeep; j++) s->mark[s->idx[j]] = 1;
        double total = 0;
        for (int32_t i = 0; i < n; i++)
            if (s->mark[i]) total += exp((double)w[i] - lmax);
        const double t = u * total;
        double run = 0;
        int32_t chosen = -1;
        for (int32_t i = 0; i < n; i++) {
            if (!s->mark[i]) continue;
            s->mark[i] = 0;
            if (chosen >= 0) continue;
            run += exp((double)w[i] - lmax);
            if (run > t) chosen = i;
            else if (run == total) chosen = i; /* rounding: the last kept id */
        }
        /* the last kept id always ends with run == total, so chosen >= 0 (nkeep >= 1) */
        *out_id = chosen;
    } else {
        double total = 0;
        for (int32_t i = 0; i < n; i++)
            if (w[i] > -INFINITY) total += exp((double)w[i] - lmax);
        const double t = u * total;
        double run = 0;
        int32_t chosen = -1, last = -1;
        for (int32_t i = 0; i < n; i++) {
            if (!(w[i] > -INFINITY)) continue;
            last = i;
            run += exp((double)w[i] - lmax);
            if (run > t) {
                chosen = i;
                break;
            }
        }
        *out_id = chosen >= 0 ? chosen : last;
    }
    return NGPT_OK;
}
