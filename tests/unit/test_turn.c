/* test_turn.c — ngpt_backbone_turn on the golden tiny NExT-GPT model (nextgpt-a: vocab 1000 + the
 * 38 signal tokens): greedy turn == ngpt_backbone_generate_greedy, forced and model-started
 * signal groups (hidden rows == a single-shot replay, input_embs == embed_tokens), a stop string
 * split across tokens rolls the cache back, cancellation (callback, flag from another thread),
 * multi-turn without recomputation == single shot over the whole conversation, assistant media,
 * invalid arguments, and allocation failure injected over a short turn. */
#include "test.h"
#include "alloc_fail.h"

#include "api/backbone_impl.h"
#include "models/prompt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

extern void (*nx_turn_logits_hook)(float *logits, int32_t n, int32_t step, void *user);
extern void *nx_turn_logits_hook_user;

static char g_golden[900];
static ngpt_context *g_ctx;
static ngpt_backbone *g_bb;
static const ngpt_tokenizer *g_tok;
static int32_t g_H, g_V;

/* forced ids per sampled step (-1 = the model's choice), through the logits hook */
static int32_t g_force[64];
static atomic_int g_steps;
static int g_slow_us;

static void hook(float *logits, int32_t n, int32_t step, void *user)
{
    (void)user;
    atomic_fetch_add(&g_steps, 1);
    if (g_slow_us) usleep((useconds_t)g_slow_us);
    if (step < 64 && g_force[step] >= 0 && g_force[step] < n) logits[g_force[step]] = 1e9f;
}

static void no_force(void)
{
    for (int i = 0; i < 64; i++) g_force[i] = -1;
}

static int32_t piece(const char *p)
{
    int32_t id = ngpt_tokenizer_piece_to_id(g_tok, p);
    CHECK_MSG(id >= 0, "piece %s", p);
    return id;
}

static ngpt_backbone_session *new_session(void)
{
    ngpt_backbone_session_params sp;
    ngpt_backbone_session_params_default(&sp, sizeof sp);
    sp.n_ctx = 512;
    ngpt_backbone_session *s = NULL;
    CHECK_OK(ngpt_backbone_session_create(&s, g_bb, &sp));
    return s;
}

static void greedy_params(ngpt_turn_params *p, int32_t max_new)
{
    ngpt_turn_params_default(p, sizeof *p);
    p->temperature = 0.0f;
    p->max_new_tokens = max_new;
}

/* Replay everything the session's cache holds (ids only) in a fresh session, OUTPUT_ALL. */
static float *replay_hidden(const ngpt_backbone_session *s, float **logits_last)
{
    int32_t n = ngpt_backbone_session_n_past(s);
    for (int32_t i = 0; i < n; i++) CHECK_MSG(s->hist[i] >= 0, "position %d is a row", i);
    ngpt_backbone_session *r = new_session();
    ngpt_backbone_batch b;
    ngpt_backbone_batch_default(&b, sizeof b);
    b.n_tokens = n;
    b.ids = s->hist;
    b.output = NGPT_OUTPUT_ALL;
    CHECK_OK(ngpt_backbone_eval(r, &b));
    float *h = malloc((size_t)n * (size_t)g_H * sizeof *h);
    memcpy(h, ngpt_backbone_get_hidden(r, NULL), (size_t)n * (size_t)g_H * sizeof *h);
    if (logits_last) {
        *logits_last = malloc((size_t)g_V * sizeof(float));
        memcpy(*logits_last, ngpt_backbone_get_logits(r, NULL) + (size_t)(n - 1) * (size_t)g_V, (size_t)g_V * sizeof(float));
    }
    ngpt_backbone_session_free(r);
    return h;
}

/* Check every group's hidden rows against the replay (row k = state at the position before
 * [Xk]) and its input_embs against embed_tokens. */
static void check_groups(const ngpt_backbone_session *s, const ngpt_turn_result *r)
{
    float *h = replay_hidden(s, NULL);
    int32_t n = ngpt_backbone_session_n_past(s);
    for (int32_t g = 0; g < ngpt_turn_result_n_groups(r); g++) {
        ngpt_modality m;
        int32_t nt;
        const float *hid, *embs;
        CHECK_OK(ngpt_turn_result_group(r, g, &m, &nt, &hid, &embs));
        const char *pre = m == NGPT_MODALITY_IMAGE ? "[IMG%d]" : m == NGPT_MODALITY_VIDEO ? "[VID%d]" : "[AUD%d]";
        int32_t ids[24];
        char nm[16];
        for (int k = 0; k < nt; k++) {
            snprintf(nm, sizeof nm, pre, k);
            ids[k] = piece(nm);
        }
        float *e = malloc((size_t)nt * (size_t)g_H * sizeof *e);
        CHECK_OK(ngpt_backbone_embed_tokens(e, g_bb, ids, nt));
        CHECK(test_max_abs_diff(e, embs, (size_t)nt * (size_t)g_H) == 0.0f);
        free(e);
        /* where the group sits in the cache */
        int32_t at = -1;
        for (int32_t p = 0; p + nt <= n && at < 0; p++)
            if (memcmp(s->hist + p, ids, (size_t)nt * sizeof *ids) == 0) at = p;
        CHECK_MSG(at > 0, "group %d not found in the cache", g);
        if (at > 0) {
            float d = test_max_abs_diff(h + (size_t)(at - 1) * (size_t)g_H, hid, (size_t)nt * (size_t)g_H);
            CHECK_MSG(d <= 1e-4f, "group %d hidden rows vs replay: %g", g, d);
        }
    }
    free(h);
}

/* ---- cases ---- */

static void test_greedy_equals_generate(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 12);
    p.n_stop_strings = 0;
    static const char *const none[1] = {"unused"};
    p.stop_strings = none; /* n 0: no stop strings */
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "hello world", NULL, 0, &p));
    /* the same prompt by hand: one text segment "[BOS]### Human:  hello world\n### Assistant:" */
    const char *pr = "### Human:  hello world\n### Assistant:";
    int32_t ids[128], gen[12];
    size_t n = 0;
    CHECK_OK(ngpt_tokenizer_encode(g_tok, pr, strlen(pr), 1, ids, 128, &n));
    CHECK(ngpt_turn_result_n_prompt(r) == (int32_t)n);
    CHECK(memcmp(s->hist, ids, n * sizeof *ids) == 0);
    double prompt_ms = -1, generate_ms = -1, only_generate = -1;
    ngpt_turn_result_timings(r, &prompt_ms, &generate_ms);
    CHECK_MSG(prompt_ms > 0 && generate_ms > 0, "timings %g ms, %g ms", prompt_ms, generate_ms);
    ngpt_turn_result_timings(r, NULL, &only_generate); /* either pointer may be NULL */
    CHECK(only_generate == generate_ms);
    ngpt_turn_result_timings(NULL, &prompt_ms, NULL);  /* no result: zeros */
    CHECK(prompt_ms == 0);
    ngpt_backbone_session *s2 = new_session();
    ngpt_backbone_batch b;
    ngpt_backbone_batch_default(&b, sizeof b);
    b.n_tokens = (int32_t)n;
    b.ids = ids;
    CHECK_OK(ngpt_backbone_eval(s2, &b));
    ngpt_generate_params gp;
    ngpt_generate_params_default(&gp, sizeof gp);
    gp.max_new_tokens = 12;
    int32_t eos = 2;
    gp.stop_ids = &eos;
    gp.n_stop_ids = 1;
    int32_t ng = 0;
    CHECK_OK(ngpt_backbone_generate_greedy(&ng, s2, &gp, gen, NULL));
    int32_t nt = 0;
    const int32_t *tid = ngpt_turn_result_ids(r, &nt);
    /* equal up to the first signal token (the turn completes groups, generate does not) */
    int32_t k = 0;
    while (k < ng && k < nt && gen[k] < 1000 && tid[k] == gen[k]) k++;
    CHECK_MSG(k == ng || gen[k] >= 1000, "turn vs generate_greedy differ at %d (%d vs %d)", k, k < nt ? tid[k] : -1,
              gen[k]);
    if (k == ng) CHECK(nt == ng);
    /* ids -> the same text (the text ids only, as tokenizer.decode(skip_special_tokens)) */
    int32_t txt[64];
    size_t nx = 0;
    for (int32_t i = 0; i < nt; i++)
        if (tid[i] < 1000) txt[nx++] = tid[i];
    char buf[1024];
    size_t len = 0;
    CHECK_OK(ngpt_tokenizer_decode(g_tok, txt, nx, 1, buf, sizeof buf, &len));
    ngpt_stop_reason why = ngpt_turn_result_stop_reason(r);
    if (why == NGPT_STOP_ID || why == NGPT_STOP_STRING)
        while (len && strchr(" \n\t\r", buf[len - 1])) len--;
    size_t tl;
    const char *text = ngpt_turn_result_text(r, &tl);
    CHECK_MSG(tl == len && memcmp(text, buf, len) == 0, "turn text \"%s\" vs decode \"%.*s\"", text, (int)len, buf);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s2);
    ngpt_backbone_session_free(s);
}

static void test_forced_modality(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 5);
    p.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE);
    p.suppress_strays = 1;
    p.max_groups[NGPT_MODALITY_IMAGE] = 1;
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "draw a cat", NULL, 0, &p));
    int32_t ng = ngpt_turn_result_n_groups(r);
    CHECK(ng >= 1);
    ngpt_modality m = NGPT_MODALITY_AUDIO;
    int32_t nt = 0;
    CHECK_OK(ngpt_turn_result_group(r, ng - 1, &m, &nt, NULL, NULL));
    CHECK(m == NGPT_MODALITY_IMAGE && nt == 4);
    bool model_image = false; /* the model may have chosen an image group itself (then none is forced) */
    for (int32_t g = 0; g < ng; g++) {
        ngpt_modality mg;
        CHECK_OK(ngpt_turn_result_group(r, g, &mg, NULL, NULL, NULL));
        model_image |= mg == NGPT_MODALITY_IMAGE && !ngpt_turn_result_group_required(r, g);
    }
    CHECK(model_image || ngpt_turn_result_group_required(r, ng - 1) == 1);
    int32_t n = 0;
    const int32_t *ids = ngpt_turn_result_ids(r, &n);
    CHECK(n >= 4 && ids[n - 4] == piece("[IMG0]") && ids[n - 1] == piece("[IMG3]"));
    /* the cache ends with the group; its rows equal a replay */
    int32_t np = ngpt_backbone_session_n_past(s);
    CHECK(s->hist[np - 1] == piece("[IMG3]"));
    check_groups(s, r);
    const char *text = ngpt_turn_result_text(r, NULL);
    CHECK(!strstr(text, "[IMG") && !strstr(text, "###"));
    ngpt_turn_result_free(r);
    /* video and audio: forced in the order video, audio (signal.h), each with its own rows */
    CHECK_OK(ngpt_backbone_session_reset(s));
    p.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_AUDIO) | NGPT_MODALITY_BIT(NGPT_MODALITY_VIDEO);
    p.max_new_tokens = 2;
    CHECK_OK(ngpt_backbone_turn(&r, s, "a song and a clip", NULL, 0, &p));
    ng = ngpt_turn_result_n_groups(r);
    CHECK(ng >= 2);
    int32_t nv = 0, na = 0;
    for (int32_t g = 0; g < ng; g++) {
        CHECK_OK(ngpt_turn_result_group(r, g, &m, &nt, NULL, NULL));
        if (ngpt_turn_result_group_required(r, g)) {
            nv += m == NGPT_MODALITY_VIDEO && nt == 24;
            na += m == NGPT_MODALITY_AUDIO && nt == 8;
        }
    }
    CHECK_MSG(nv == 1 && na == 1, "required video %d audio %d", nv, na);
    check_groups(s, r);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
}

static void test_model_started_group(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 10);
    no_force();
    g_force[2] = piece("[IMG0]");
    nx_turn_logits_hook = hook;
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "show me", NULL, 0, &p));
    nx_turn_logits_hook = NULL;
    int32_t n = 0;
    const int32_t *ids = ngpt_turn_result_ids(r, &n);
    CHECK(n >= 6);
    for (int k = 0; k < 4 && n >= 6; k++) {
        char nm[16];
        snprintf(nm, sizeof nm, "[IMG%d]", k);
        CHECK_MSG(ids[2 + k] == piece(nm), "step %d: %d", 2 + k, ids[2 + k]);
    }
    CHECK(ngpt_turn_result_n_groups(r) >= 1);
    CHECK(ngpt_turn_result_group_required(r, 0) == 0);
    check_groups(s, r);
    CHECK(!strstr(ngpt_turn_result_text(r, NULL), "[IMG"));
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
}

/* The room a required group needs at the context's end is not taken by another modality's
 * group: with [VID0] preferred at every step, a video group (24 positions) is not started where
 * it would leave the required image's 4 no room; the text stops in time and the image is whole. */
static void test_required_room_not_taken(void)
{
    ngpt_turn_params p;
    greedy_params(&p, 60);
    p.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE);
    no_force();
    const int32_t vid0 = piece("[VID0]");
    for (int i = 0; i < 64; i++) g_force[i] = vid0;
    /* the prompt's length, then a session that leaves 20 positions after it */
    ngpt_backbone_session *s = new_session();
    ngpt_turn_result *r = NULL;
    ngpt_turn_params once = p;
    once.max_new_tokens = 1;
    once.require_modalities = 0;
    CHECK_OK(ngpt_backbone_turn(&r, s, "show me", NULL, 0, &once));
    const int32_t n_prompt = r ? ngpt_turn_result_n_prompt(r) : 0;
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
    ngpt_backbone_session_params sp;
    ngpt_backbone_session_params_default(&sp, sizeof sp);
    sp.n_ctx = n_prompt + 20;
    s = NULL;
    CHECK_OK(ngpt_backbone_session_create(&s, g_bb, &sp));
    if (!s) return;
    nx_turn_logits_hook = hook;
    r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "show me", NULL, 0, &p));
    nx_turn_logits_hook = NULL;
    int32_t n = 0;
    const int32_t *ids = r ? ngpt_turn_result_ids(r, &n) : NULL;
    for (int32_t i = 0; i < n; i++) CHECK_MSG(ids[i] != vid0, "a video group started at answer token %d", i);
    CHECK_MSG(r && ngpt_turn_result_n_groups(r) == 1, "%d groups", r ? ngpt_turn_result_n_groups(r) : -1);
    ngpt_modality m = NGPT_MODALITY_TEXT;
    int32_t nt = 0;
    const float *hid = NULL, *emb = NULL;
    if (r && ngpt_turn_result_n_groups(r) == 1) {
        CHECK_OK(ngpt_turn_result_group(r, 0, &m, &nt, &hid, &emb));
        CHECK(m == NGPT_MODALITY_IMAGE && nt == 4 && ngpt_turn_result_group_required(r, 0) == 1);
    }
    CHECK(ngpt_backbone_session_n_past(s) <= sp.n_ctx);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
    no_force();
}

/* on_text calling back into its own session (reset, truncate, eval, another turn): refused by
 * name while the turn feeds the cache, and the turn goes on. */
static int g_reentry_refused;

static bool reenter_text(const char *utf8, size_t len, void *user)
{
    (void)utf8;
    (void)len;
    ngpt_backbone_session *s = user;
    ngpt_turn_result *r = NULL;
    ngpt_backbone_batch b;
    ngpt_backbone_batch_default(&b, sizeof b);
    const int32_t id = 1;
    b.ids = &id;
    b.n_tokens = 1;
    const ngpt_status got[4] = {ngpt_backbone_session_reset(s), ngpt_backbone_session_truncate(s, 0),
                                ngpt_backbone_eval(s, &b), ngpt_backbone_turn(&r, s, "x", NULL, 0, NULL)};
    for (int i = 0; i < 4; i++) {
        CHECK_MSG(got[i] == NGPT_ERR_INVALID_ARGUMENT, "call %d: %s", i, ngpt_status_string(got[i]));
        g_reentry_refused += got[i] == NGPT_ERR_INVALID_ARGUMENT;
    }
    CHECK(r == NULL && strstr(ngpt_last_error(), "inside this session's ngpt_backbone_turn"));
    return true;
}

static void test_reentry_refused(void)
{
    ngpt_backbone_session *s = new_session();
    if (!s) return;
    ngpt_turn_params p;
    greedy_params(&p, 4);
    p.on_text = reenter_text;
    p.user_data = s;
    g_reentry_refused = 0;
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "hi", NULL, 0, &p));
    CHECK_MSG(g_reentry_refused >= 4, "%d refused", g_reentry_refused);
    CHECK(r && ngpt_backbone_session_n_past(s) > ngpt_turn_result_n_prompt(r));
    ngpt_turn_result_free(r);
    CHECK_OK(ngpt_backbone_session_reset(s)); /* after the turn: as usual */
    ngpt_backbone_session_free(s);
}

/* "#" + "##" (or "#" "#" "#") after a word and a newline: the cache keeps only the word. */
static void test_stop_string_rollback(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 10);
    no_force();
    int32_t hash = piece("#"), hh = ngpt_tokenizer_piece_to_id(g_tok, "##");
    int32_t word = piece("▁the") >= 0 ? piece("▁the") : 100;
    g_force[0] = word;
    g_force[1] = piece("<0x0A>");
    g_force[2] = hash;
    g_force[3] = hh >= 0 ? hh : hash;
    g_force[4] = hash;
    nx_turn_logits_hook = hook;
    ngpt_turn_result *r = NULL;
    int32_t n0 = ngpt_backbone_session_n_past(s);
    CHECK_OK(ngpt_backbone_turn(&r, s, "hi", NULL, 0, &p));
    nx_turn_logits_hook = NULL;
    CHECK(ngpt_turn_result_stop_reason(r) == NGPT_STOP_STRING);
    CHECK_MSG(strcmp(ngpt_turn_result_text(r, NULL), "the") == 0, "text \"%s\"", ngpt_turn_result_text(r, NULL));
    int32_t np = ngpt_backbone_session_n_past(s);
    CHECK_MSG(np == n0 + ngpt_turn_result_n_prompt(r) + 1, "n_past %d, expected %d", np,
              n0 + ngpt_turn_result_n_prompt(r) + 1);
    CHECK(s->hist[np - 1] == word);
    ngpt_turn_result_free(r);
    /* the next turn appends "\n### Human:  again\n### Assistant:" exactly as one string would */
    greedy_params(&p, 0);
    CHECK_OK(ngpt_backbone_turn(&r, s, "again", NULL, 0, &p));
    const char *full = "### Human:  hi\n### Assistant: the\n### Human:  again\n### Assistant:";
    int32_t ids[256];
    size_t n = 0;
    CHECK_OK(ngpt_tokenizer_encode(g_tok, full, strlen(full), 1, ids, 256, &n));
    int32_t np2 = ngpt_backbone_session_n_past(s);
    CHECK_MSG(np2 == np + ngpt_turn_result_n_prompt(r), "n_past %d after turn 2", np2);
    CHECK_MSG((int32_t)n == np2 && memcmp(ids, s->hist, n * sizeof *ids) == 0,
              "the cached conversation (%d) differs from the one-string tokenization (%zu)", np2, n);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
}

/* A required group after a stop string that was rolled back: it follows the answer's last
 * kept token, and its first hidden row is that position's state. */
static void test_required_after_stop_string(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 10);
    p.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE);
    no_force();
    int32_t word = piece("▁the");
    g_force[0] = word;
    g_force[1] = piece("<0x0A>");
    g_force[2] = g_force[3] = g_force[4] = piece("#");
    nx_turn_logits_hook = hook;
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "hi", NULL, 0, &p));
    nx_turn_logits_hook = NULL;
    CHECK(ngpt_turn_result_stop_reason(r) == NGPT_STOP_STRING);
    CHECK(strcmp(ngpt_turn_result_text(r, NULL), "the") == 0);
    int32_t np = ngpt_backbone_session_n_past(s), n0 = ngpt_turn_result_n_prompt(r);
    CHECK_MSG(np == n0 + 5 && s->hist[n0] == word && s->hist[n0 + 1] == piece("[IMG0]"), "n_past %d", np);
    CHECK(ngpt_turn_result_n_groups(r) == 1 && ngpt_turn_result_group_required(r, 0) == 1);
    check_groups(s, r);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
}

static char g_stream[256];
static size_t g_nstream;
static bool collect_text(const char *u, size_t n, void *user)
{
    (void)user;
    /* whole UTF-8 characters only: a chunk never ends inside a sequence */
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)u[i];
        size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        CHECK_MSG(i + l <= n, "chunk cut inside a UTF-8 character");
        i += l;
    }
    if (g_nstream + n < sizeof g_stream) memcpy(g_stream + g_nstream, u, n), g_nstream += n;
    return true;
}

/* Byte-fallback pieces of one character, the dummy-prefix space, a newline before the stop:
 * the text and the stream are what tokenizer.decode gives, without the stop and the newline. */
static void test_detok_stream(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 12);
    no_force();
    int32_t f[] = {piece("▁the"), piece("<0xE4>"), piece("<0xB8>"), piece("<0xAD>"), piece("▁the"),
                   piece("<0x0A>"), piece("#"), piece("#"), piece("#")};
    for (int i = 0; i < 9; i++) g_force[i] = f[i];
    nx_turn_logits_hook = hook;
    p.on_text = collect_text;
    g_nstream = 0;
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "hi", NULL, 0, &p));
    nx_turn_logits_hook = NULL;
    size_t len;
    const char *text = ngpt_turn_result_text(r, &len);
    CHECK_MSG(strcmp(text, "the\xe4\xb8\xad the") == 0, "text \"%s\"", text);
    CHECK_MSG(g_nstream == len && memcmp(g_stream, text, len) == 0, "stream \"%.*s\"", (int)g_nstream, g_stream);
    char buf[64];
    size_t n = 0;
    CHECK_OK(ngpt_tokenizer_decode(g_tok, f, 5, 1, buf, sizeof buf, &n));
    CHECK(n == len && memcmp(buf, text, n) == 0);
    CHECK(ngpt_turn_result_stop_reason(r) == NGPT_STOP_STRING);
    /* the cache keeps the 5 answer tokens, not the newline and the "#"s */
    CHECK(ngpt_backbone_session_n_past(s) == ngpt_turn_result_n_prompt(r) + 5);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
}

static int g_calls;
static bool stop_after_one(const char *u, size_t n, void *user)
{
    (void)u, (void)n, (void)user;
    return ++g_calls < 1;
}

typedef struct flag_arg {
    volatile int32_t *flag;
} flag_arg;

static void *setter(void *a)
{
    flag_arg *f = a;
    while (atomic_load(&g_steps) < 3) usleep(200);
    *f->flag = 1;
    return NULL;
}

static void test_cancel(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 40);
    static const char *const none[1] = {"x"};
    p.stop_strings = none;
    p.n_stop_strings = 0;
    p.stop_ids = NULL;
    int32_t no_ids = 0;
    p.stop_ids = &no_ids;
    p.n_stop_ids = 0;
    no_force();
    for (int i = 0; i < 40; i++) g_force[i] = piece("▁the") >= 0 ? piece("▁the") : 100;
    nx_turn_logits_hook = hook;
    p.on_text = stop_after_one;
    g_calls = 0;
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "go", NULL, 0, &p));
    CHECK(ngpt_turn_result_stop_reason(r) == NGPT_STOP_CANCELLED);
    int32_t n = 0;
    ngpt_turn_result_ids(r, &n);
    CHECK_MSG(n < 40 && g_calls == 1, "n %d calls %d", n, g_calls);
    ngpt_turn_result_free(r);
    /* the flag from another thread */
    ngpt_backbone_session_reset(s);
    p.on_text = NULL;
    volatile int32_t flag = 0;
    p.cancel = (const volatile int32_t *)&flag;
    atomic_store(&g_steps, 0);
    g_slow_us = 2000;
    flag_arg fa = {&flag};
    pthread_t th;
    pthread_create(&th, NULL, setter, &fa);
    CHECK_OK(ngpt_backbone_turn(&r, s, "go", NULL, 0, &p));
    pthread_join(th, NULL);
    g_slow_us = 0;
    nx_turn_logits_hook = NULL;
    CHECK(ngpt_turn_result_stop_reason(r) == NGPT_STOP_CANCELLED);
    ngpt_turn_result_ids(r, &n);
    CHECK_MSG(n >= 3 && n < 40, "n %d", n);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
}

static void test_multi_turn(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_params p;
    greedy_params(&p, 6);
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "what is this", NULL, 0, &p));
    ngpt_turn_result_free(r);
    int32_t n1 = ngpt_backbone_session_n_past(s);
    /* turn 2 with max_new_tokens 0: the session's logits are those of its last prompt position */
    greedy_params(&p, 0);
    CHECK_OK(ngpt_backbone_turn(&r, s, "and then", NULL, 0, &p));
    int32_t n2 = ngpt_backbone_session_n_past(s);
    CHECK_MSG(n2 == n1 + ngpt_turn_result_n_prompt(r), "turn 2 added %d positions for a %d-position prompt", n2 - n1,
              ngpt_turn_result_n_prompt(r));
    CHECK(s->hist[n1] != 1); /* no BOS at the continuation */
    int32_t nr = 0;
    const float *lg = ngpt_backbone_get_logits(s, &nr);
    CHECK(nr == 1);
    float *ref = NULL;
    float *h = replay_hidden(s, &ref);
    float d = test_max_abs_diff(lg, ref, (size_t)g_V);
    CHECK_MSG(d <= 1e-4f, "turn 2 logits vs single shot: %g", d);
    free(h);
    free(ref);
    ngpt_turn_result_free(r);
    /* reset: a new conversation opens with the template again */
    CHECK_OK(ngpt_backbone_session_reset(s));
    CHECK_OK(ngpt_backbone_turn(&r, s, "what is this", NULL, 0, &p));
    CHECK(s->hist[0] == 1 && ngpt_backbone_session_n_past(s) == ngpt_turn_result_n_prompt(r));
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
}

static void test_media(void)
{
    ngpt_backbone_session *s = new_session();
    float *row = calloc((size_t)g_H * 2, sizeof *row);
    for (int32_t i = 0; i < 2 * g_H; i++) row[i] = 0.01f * (float)(i % 17);
    ngpt_turn_media m = {NGPT_MODALITY_IMAGE, row, 2};
    ngpt_turn_params p;
    greedy_params(&p, 4);
    ngpt_turn_result *r = NULL;
    CHECK_OK(ngpt_backbone_turn(&r, s, "describe", &m, 1, &p));
    /* [BOS]"### Human:" <Img> row </Img> [BOS]" describe\n### Assistant:" */
    int32_t a[64], b2[64];
    size_t na = 0, nb = 0;
    CHECK_OK(ngpt_tokenizer_encode(g_tok, "### Human:", 10, 1, a, 64, &na));
    CHECK_OK(ngpt_tokenizer_encode(g_tok, " describe\n### Assistant:", 24, 1, b2, 64, &nb));
    CHECK(ngpt_turn_result_n_prompt(r) == (int32_t)(na + 3 + nb));
    CHECK(s->hist[na] == piece("<Img>") && s->hist[na + 1] == -1 && s->hist[na + 2] == piece("</Img>"));
    ngpt_turn_result_free(r);
    /* generated media re-enter the history: the answer is re-written after its media */
    int32_t start = s->answer_start;
    CHECK(start > 0);
    CHECK_OK(ngpt_backbone_add_assistant_media(s, &m, 1));
    CHECK(s->hist[start] == piece("<Img>") && s->hist[start + 1] == -1 && s->hist[start + 2] == piece("</Img>"));
    CHECK_ERR(ngpt_backbone_add_assistant_media(s, &m, 1), NGPT_ERR_INVALID_ARGUMENT, "right after");
    CHECK_OK(ngpt_backbone_turn(&r, s, "more", NULL, 0, &p));
    ngpt_turn_result_free(r);
    /* positions evaluated after the answer would be dropped by the re-write: refused, and a
     * failed eval (nothing appended) keeps the answer re-writable */
    ngpt_backbone_batch b;
    ngpt_backbone_batch_default(&b, sizeof b);
    int32_t bad = -5, tok = 1;
    b.n_tokens = 1;
    b.ids = &bad;
    CHECK(ngpt_backbone_eval(s, &b) != NGPT_OK);
    CHECK_OK(ngpt_backbone_add_assistant_media(s, &m, 1));
    CHECK_OK(ngpt_backbone_turn(&r, s, "again", NULL, 0, &p));
    ngpt_turn_result_free(r);
    b.ids = &tok;
    CHECK_OK(ngpt_backbone_eval(s, &b));
    CHECK_ERR(ngpt_backbone_add_assistant_media(s, &m, 1), NGPT_ERR_INVALID_ARGUMENT, "right after");
    free(row);
    ngpt_backbone_session_free(s);
}

static void test_bad_args(void)
{
    ngpt_backbone_session *s = new_session();
    ngpt_turn_result *r = (ngpt_turn_result *)&r;
    ngpt_turn_params p;
    ngpt_turn_params_default(&p, sizeof p);
    CHECK_ERR(ngpt_backbone_turn(NULL, s, "x", NULL, 0, NULL), NGPT_ERR_INVALID_ARGUMENT, "out");
    CHECK_ERR(ngpt_backbone_turn(&r, NULL, "x", NULL, 0, NULL), NGPT_ERR_INVALID_ARGUMENT, "s is NULL");
    CHECK(r == NULL);
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", NULL, 1, NULL), NGPT_ERR_INVALID_ARGUMENT, "media");
    float row[1] = {0};
    ngpt_turn_media m = {(ngpt_modality)7, row, 1};
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", &m, 1, NULL), NGPT_ERR_INVALID_ARGUMENT, "modality");
    m.modality = NGPT_MODALITY_TEXT;
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", &m, 1, NULL), NGPT_ERR_INVALID_ARGUMENT, "modality");
    m.modality = NGPT_MODALITY_AUDIO;
    m.n_rows = 0;
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", &m, 1, NULL), NGPT_ERR_INVALID_ARGUMENT, "soft rows");
    p.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_TEXT);
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", NULL, 0, &p), NGPT_ERR_INVALID_ARGUMENT, "require_modalities");
    p.require_modalities = 0x10;
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", NULL, 0, &p), NGPT_ERR_INVALID_ARGUMENT, "require_modalities");
    ngpt_turn_params_default(&p, sizeof p);
    p.max_new_tokens = -1;
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", NULL, 0, &p), NGPT_ERR_INVALID_ARGUMENT, "max_new_tokens");
    ngpt_turn_params_default(&p, sizeof p);
    static const char *const empty[1] = {""};
    p.stop_strings = empty;
    p.n_stop_strings = 1;
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", NULL, 0, &p), NGPT_ERR_INVALID_ARGUMENT, "stop_strings[0]");
    ngpt_turn_params_default(&p, sizeof p);
    p.max_groups[1] = -2;
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", NULL, 0, &p), NGPT_ERR_INVALID_ARGUMENT, "max_groups");
    ngpt_turn_params_default(&p, sizeof p);
    p.temperature = -1;
    CHECK_ERR(ngpt_backbone_turn(&r, s, "x", NULL, 0, &p), NGPT_ERR_INVALID_ARGUMENT, "temperature");
    CHECK(ngpt_backbone_session_n_past(s) == 0);
    CHECK_ERR(ngpt_backbone_add_assistant_media(s, &m, 0), NGPT_ERR_INVALID_ARGUMENT, "n_media");
    m.n_rows = 1;
    CHECK_ERR(ngpt_backbone_add_assistant_media(s, &m, 1), NGPT_ERR_INVALID_ARGUMENT, "right after");
    CHECK_ERR(ngpt_turn_result_group(NULL, 0, NULL, NULL, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, "NULL result");
    ngpt_turn_result_free(NULL);
    CHECK(ngpt_turn_result_text(NULL, NULL) == NULL && ngpt_turn_result_n_groups(NULL) == 0);
    ngpt_backbone_session_free(s);
    /* a plain LLaMA (no signal tokens) cannot force a modality */
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/models/llama-a", g_golden);
    ngpt_backbone *bb = NULL;
    if (ngpt_backbone_create(&bb, g_ctx, dir, NULL) == NGPT_OK) {
        ngpt_backbone_session *ls = NULL;
        ngpt_backbone_session_params sp;
        ngpt_backbone_session_params_default(&sp, sizeof sp);
        sp.n_ctx = 128;
        CHECK_OK(ngpt_backbone_session_create(&ls, bb, &sp));
        ngpt_turn_params_default(&p, sizeof p);
        p.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_VIDEO);
        CHECK_ERR(ngpt_backbone_turn(&r, ls, "x", NULL, 0, &p), NGPT_ERR_UNSUPPORTED, "signal tokens");
        p.require_modalities = 0;
        p.max_new_tokens = 3;
        CHECK_OK(ngpt_backbone_turn(&r, ls, "x", NULL, 0, &p)); /* text-only works */
        ngpt_turn_result_free(r);
        ngpt_backbone_session_free(ls);
        ngpt_backbone_free(bb);
    }
}

static ngpt_status short_turn(void *user)
{
    (void)user;
    ngpt_backbone_session *s = NULL;
    ngpt_backbone_session_params sp;
    ngpt_backbone_session_params_default(&sp, sizeof sp);
    sp.n_ctx = 64;
    ngpt_status st = ngpt_backbone_session_create(&s, g_bb, &sp);
    if (st) return st;
    ngpt_turn_params p;
    greedy_params(&p, 1);
    p.require_modalities = NGPT_MODALITY_BIT(NGPT_MODALITY_IMAGE);
    ngpt_turn_result *r = NULL;
    st = ngpt_backbone_turn(&r, s, "hi there", NULL, 0, &p);
    ngpt_turn_result_free(r);
    r = NULL;
    p.max_new_tokens = 0;
    p.require_modalities = 0;
    if (!st) st = ngpt_backbone_turn(&r, s, "again", NULL, 0, &p);
    ngpt_turn_result_free(r);
    ngpt_backbone_session_free(s);
    return st;
}

static void test_alloc_failures(void)
{
    int64_t n = test_alloc_fail_all("two short turns", short_turn, NULL);
    fprintf(stderr, "alloc-fail: %lld allocations\n", (long long)n);
    CHECK(n > 10);
}

int main(void)
{
    const char *g = getenv("NGPT_GOLDEN_DIR");
    const char *root = getenv("NGPT_SOURCE_ROOT");
    if (!root) root = ".";
    if (g) snprintf(g_golden, sizeof g_golden, "%s", g);
    else snprintf(g_golden, sizeof g_golden, "%s/../shared/golden", root);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/models/nextgpt-a", g_golden);
    char f[1300];
    snprintf(f, sizeof f, "%s/model.safetensors", dir);
    if (access(f, R_OK) != 0) {
        fprintf(stderr, "golden models not found under %s: skipping\n", g_golden);
        return TEST_SKIP;
    }
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = 2;
    if (ngpt_context_create(&g_ctx, &cp) != NGPT_OK || ngpt_backbone_create(&g_bb, g_ctx, dir, NULL) != NGPT_OK) {
        fprintf(stderr, "setup: %s\n", ngpt_last_error());
        return 1;
    }
    g_tok = ngpt_backbone_tokenizer(g_bb);
    g_H = ngpt_backbone_n_embd(g_bb);
    g_V = ngpt_backbone_n_vocab(g_bb);
    no_force();
    RUN(test_greedy_equals_generate);
    RUN(test_forced_modality);
    RUN(test_model_started_group);
    RUN(test_required_room_not_taken);
    RUN(test_reentry_refused);
    RUN(test_stop_string_rollback);
    RUN(test_required_after_stop_string);
    RUN(test_detok_stream);
    RUN(test_cancel);
    RUN(test_multi_turn);
    RUN(test_media);
    RUN(test_bad_args);
    RUN(test_alloc_failures);
    ngpt_backbone_free(g_bb);
    ngpt_context_free(g_ctx);
    return test_done();
}
