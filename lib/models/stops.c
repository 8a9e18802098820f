/* stops.c — stop ids, max tokens and stop strings matched across token boundaries, with the
 * streaming hold-back (see stops.h). */
#include "models/stops.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

struct nx_stops {
    int32_t *ids;
    size_t   n_ids;
    char   **strs;
    size_t  *str_len;
    size_t   n_strs;
    size_t   max_str_len;
    int32_t  max_tokens;

    char    *text;        /* (cap) NUL-terminated answer */
    size_t   len, cap;
    size_t   streamable;  /* text[0, streamable) may be streamed */
    size_t   streamed;    /* text[0, streamed) was handed out */
    size_t  *tok_end;     /* (n_tokens) byte end of each fed token's text (before any cut) */
    size_t   tok_cap;
    int32_t  n_tokens;
    int32_t  stop_token;
    bool     finished;
    nx_stop_reason reason;
};

void nx_stops_free(nx_stops *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_strs; i++) nx_free(s->strs[i]);
    nx_free(s->strs);
    nx_free(s->str_len);
    nx_free(s->ids);
    nx_free(s->text);
    nx_free(s->tok_end);
    nx_free(s);
}

ngpt_status nx_stops_create(nx_stops **out, const nx_stops_params *p)
{
    if (!out || !p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_stops_create: NULL argument");
    *out = NULL;
    if ((p->n_stop_ids && !p->stop_ids) || (p->n_stop_strings && !p->stop_strings))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "stops: NULL stop_ids or stop_strings with a nonzero count");
    if (p->max_tokens < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "stops: max_tokens %d must be >= 0 (0 = no limit)", p->max_tokens);
    for (size_t i = 0; i < p->n_stop_strings; i++)
        if (!p->stop_strings[i] || !p->stop_strings[i][0])
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "stops: stop string %zu is NULL or empty", i);

    nx_stops *s = nx_calloc(1, sizeof *s);
    if (!s) goto oom;
    s->max_tokens = p->max_tokens;
    s->stop_token = -1;
    s->cap = 64;
    s->text = nx_malloc(s->cap);
    if (!s->text) goto oom;
    s->text[0] = 0;
    if (p->n_stop_ids) {
        s->ids = nx_malloc(p->n_stop_ids * sizeof *s->ids);
        if (!s->ids) goto oom;
        memcpy(s->ids, p->stop_ids, p->n_stop_ids * sizeof *s->ids);
        s->n_ids = p->n_stop_ids;
    }
    if (p->n_stop_strings) {
        s->strs = nx_calloc(p->n_stop_strings, sizeof *s->strs);
        s->str_len = nx_calloc(p->n_stop_strings, sizeof *s->str_len);
        if (!s->strs || !s->str_len) goto oom;
        for (size_t i = 0; i < p->n_stop_strings; i++) {
            s->strs[i] = nx_strdup(p->stop_strings[i]);
            if (!s->strs[i]) goto oom;
            s->n_strs = i + 1;
            s->str_len[i] = strlen(s->strs[i]);
            if (s->str_len[i] > s->max_str_len) s->max_str_len = s->str_len[i];
        }
    }
    *out = s;
    return NGPT_OK;
oom:
    nx_stops_free(s);
    return nx_err(NGPT_ERR_OUT_OF_MEMORY, "stops: out of memory");
}

/* Length of an incomplete UTF-8 sequence at the end of t[0, n) (0 when the end is complete or
 * not UTF-8 at all). */
static size_t utf8_incomplete_tail(const char *t, size_t n)
{
    size_t k = 0;
    while (k < 3 && k < n && ((unsigned char)t[n - 1 - k] & 0xC0) == 0x80) k++;
    if (k == n) return 0;
    unsigned char lead = (unsigned char)t[n - 1 - k];
    size_t need = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 1;
    return need > k + 1 ? k + 1 : 0;
}

/* Longest suffix of t[0, n) that is a proper prefix of some stop string. */
static size_t stop_prefix_tail(const nx_stops *s, const char *t, size_t n)
{
    size_t best = 0;
    for (size_t i = 0; i < s->n_strs; i++) {
        size_t L = s->str_len[i];
        for (size_t k = (L - 1 < n ? L - 1 : n); k > best; k--)
            if (memcmp(t + n - k, s->strs[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

ngpt_status nx_stops_feed(nx_stops *s, int32_t id, const char *bytes, size_t n, nx_stop_reason *reason)
{
    if (!s || (n && !bytes) || !reason) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "nx_stops_feed: NULL argument");
    *reason = s->reason;
    if (s->reason != NX_STOP_NONE || s->finished)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "stops: token %d fed after generation stopped", id);

    for (size_t i = 0; i < s->n_ids; i++)
        if (s->ids[i] == id) n = 0; /* a stop id's text never joins the answer */

    if ((size_t)s->n_tokens == s->tok_cap) {
        size_t nc = s->tok_cap ? s->tok_cap * 2 : 64;
        size_t *ne = nx_realloc(s->tok_end, nc * sizeof *ne);
        if (!ne) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "stops: out of memory for %zu token offsets", nc);
        s->tok_end = ne;
        s->tok_cap = nc;
    }
    if (s->len + n + 1 > s->cap) {
        size_t nc = s->cap;
        while (s->len + n + 1 > nc) nc *= 2;
        char *nt = nx_realloc(s->text, nc);
        if (!nt) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "stops: out of memory for %zu bytes of text", nc);
        s->text = nt;
        s->cap = nc;
    }
    const size_t old = s->len;
    memcpy(s->text + old, bytes, n);
    s->len += n;
    s->text[s->len] = 0;
    s->tok_end[s->n_tokens++] = s->len;

    for (size_t i = 0; i < s->n_ids; i++)
        if (s->ids[i] == id) {
            s->reason = NX_STOP_ID;
            s->streamable = s->len;
            *reason = s->reason;
            return NGPT_OK;
        }

    /* A new match must end inside the new bytes: start where a string could still reach them. */
    if (s->n_strs && n) {
        size_t from = old + 1 >= s->max_str_len ? old + 1 - s->max_str_len : 0;
        for (size_t pos = from; pos < s->len; pos++) {
            for (size_t i = 0; i < s->n_strs; i++) {
                if (pos + s->str_len[i] > s->len || memcmp(s->text + pos, s->strs[i], s->str_len[i]) != 0) continue;
                /* the token holding byte pos: the first whose end is > pos */
                int32_t t = 0;
                while (s->tok_end[t] <= pos) t++;
                s->stop_token = t;
                s->len = pos;
                s->text[pos] = 0;
                s->streamable = pos;
                s->reason = NX_STOP_STRING;
                *reason = s->reason;
                return NGPT_OK;
            }
        }
    }

    if (s->max_tokens > 0 && s->n_tokens >= s->max_tokens) {
        s->reason = NX_STOP_MAX_TOKENS;
        s->streamable = s->len;
        *reason = s->reason;
        return NGPT_OK;
    }

    size_t hold = stop_prefix_tail(s, s->text, s->len);
    size_t u = utf8_incomplete_tail(s->text, s->len);
    if (u > hold) hold = u;
    if (s->len - hold > s->streamable) s->streamable = s->len - hold;
    *reason = NX_STOP_NONE;
    return NGPT_OK;
}

void nx_stops_finish(nx_stops *s)
{
    if (!s) return;
    s->finished = true;
    s->streamable = s->len;
}

const char *nx_stops_take(nx_stops *s, size_t *len)
{
    const char *p = s->text + s->streamed;
    *len = s->streamable - s->streamed;
    s->streamed = s->streamable;
    return p;
}

size_t nx_stops_held(const nx_stops *s) { return s->len - s->streamable; }

const char *nx_stops_text(const nx_stops *s, size_t *len)
{
    if (len) *len = s->len;
    return s->text;
}

int32_t nx_stops_n_tokens(const nx_stops *s) { return s->n_tokens; }
int32_t nx_stops_stop_token(const nx_stops *s) { return s->stop_token; }
nx_stop_reason nx_stops_reason(const nx_stops *s) { return s->reason; }
