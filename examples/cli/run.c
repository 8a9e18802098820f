/* nextgpt run: one pipeline turn; and what chat shares with it (opening the pipeline, the turn's
 * settings, writing the outputs and printing the answer). */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const k_names[4] = {"text", "image", "audio", "video"};

static bool progress(const ngpt_pipeline_event *ev, void *ud)
{
    (void)ud;
    switch (ev->kind) {
    case NGPT_PIPELINE_EVENT_LOAD:
        fprintf(stderr, "\rloading %.*s...\033[K", (int)ev->text_len, ev->text);
        break;
    case NGPT_PIPELINE_EVENT_ENCODE:
        fprintf(stderr, "\rencoding media %d/%d\033[K", ev->step, ev->total);
        break;
    case NGPT_PIPELINE_EVENT_TOKEN:
        fprintf(stderr, "\rgenerating text (%.1f s)\033[K", ev->elapsed_s);
        break;
    case NGPT_PIPELINE_EVENT_DENOISE:
        fprintf(stderr, "\r%s: step %d/%d\033[K", k_names[ev->modality & 3], ev->step, ev->total);
        break;
    case NGPT_PIPELINE_EVENT_OUTPUT:
        fprintf(stderr, "\r\033[K");
        break;
    }
    fflush(stderr);
    return true;
}

/* The context and the pipeline (--out-dir created first); 0, or 1 with the message printed. */
int open_pipeline(const opts *o, int tty, uint32_t flags, ngpt_context **ctx, ngpt_pipeline **p)
{
    *ctx = NULL;
    *p = NULL;
    const char *model = pick_model(o);
    if (!model) return 1;
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "nextgpt: cannot create --out-dir %s: %s\n", o->out_dir, strerror(errno));
        return 1;
    }
    /* before loading anything: a turn takes minutes on a real model, its files are written last */
    struct stat sb;
    if (stat(o->out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(o->out_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "nextgpt: --out-dir %s is not a folder we can write into\n", o->out_dir);
        return 1;
    }
    if (!(*ctx = make_context(o))) return 1;
    ngpt_pipeline_params pp;
    ngpt_pipeline_params_default(&pp, sizeof pp);
    pp.flags = flags | (o->cuda_graphs ? NGPT_PIPELINE_CUDA_GRAPHS : 0u) | (o->channels_last ? NGPT_PIPELINE_CHANNELS_LAST : 0u) |
               (o->safety_checker ? NGPT_PIPELINE_SAFETY_CHECKER : 0u);
    pp.compute_dtype = o->dtype;
    if (tty) pp.on_event = progress;
    if (ngpt_pipeline_create(p, *ctx, model, &pp) != NGPT_OK) {
        if (tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        ngpt_context_free(*ctx);
        *ctx = NULL;
        return 1;
    }
    return 0;
}

void turn_params(const opts *o, int tty, uint32_t force, ngpt_pipeline_turn_params *tp)
{
    ngpt_pipeline_turn_params_default(tp, sizeof *tp);
    tp->force = o->force | force;
    tp->steps = o->steps;
    tp->seed = o->seed;
    tp->scheduler = o->scheduler;
    tp->width = o->width;
    tp->height = o->height;
    tp->num_frames = o->frames;
    tp->audio_length_s = o->seconds;
    if (o->max_tokens) tp->max_new_tokens = o->max_tokens;
    if (tty) tp->on_event = progress;
}

/* Write the result's media into --out-dir as PREFIX MODALITY-I.EXT and print the answer: text
 * lines, or one JSON object (turn > 0: chat's fields too). 0, or 1 when an output was not
 * produced (not counting a cancelled turn's), a file could not be written, or stdout failed. */
int report(const opts *o, ngpt_pipeline *p, const ngpt_pipeline_result *r, int turn)
{
    int rc = 0;
    char prefix[32] = "";
    if (turn > 0) snprintf(prefix, sizeof prefix, "turn%d-", turn);
    errno = 0; /* a failed write to stdout below leaves its reason here */
    if (o->json) {
        printf("{");
        if (turn > 0) printf("\"turn\": %d, ", turn);
        printf("\"test_model\": %s, \"text\": ", ngpt_pipeline_is_test_model(p) ? "true" : "false");
        json_str(stdout, ngpt_pipeline_result_text(r, NULL));
        printf(", \"outputs\": [");
    } else {
        printf("%s\n", ngpt_pipeline_result_text(r, NULL));
    }
    for (int32_t i = 0; i < ngpt_pipeline_result_n_outputs(r); i++) {
        ngpt_modality m;
        const uint8_t *bytes;
        size_t n;
        const char *fmt;
        ngpt_status os = ngpt_pipeline_result_output(r, i, &m, &bytes, &n, &fmt);
        char path[4096] = "";
        const char *msg = os == NGPT_OK ? "" : ngpt_pipeline_result_output_message(r, i);
        if (os == NGPT_OK) {
            snprintf(path, sizeof path, "%s/%s%s-%d.%s", o->out_dir, prefix, k_names[m & 3], (int)i, fmt);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(bytes, 1, n, f) != n) {
                fprintf(stderr, "nextgpt: cannot write %s: %s\n", path, strerror(errno));
                if (f) fclose(f);
                rc = 1;
                path[0] = 0;
            } else if (fclose(f) != 0) {
                fprintf(stderr, "nextgpt: cannot write %s: %s\n", path, strerror(errno));
                rc = 1;
                path[0] = 0;
            } else if (!o->json) {
                printf("wrote %s (%s, %zu bytes%s)\n", path, k_names[m & 3], n,
                       ngpt_pipeline_result_output_nsfw(r, i) ? "; blacked out by the safety checker" : "");
            }
        } else {
            fprintf(stderr, "nextgpt: %s output not produced: %s\n", k_names[m & 3], msg);
            if (os != NGPT_ERR_CANCELLED) rc = 1;
        }
        if (o->json) {
            printf("%s{\"modality\": \"%s\", \"status\": \"%s\", \"file\": ", i ? ", " : "", k_names[m & 3],
                   ngpt_status_string(os));
            if (path[0]) json_str(stdout, path); else printf("null");
            printf(", \"bytes\": %zu, \"nsfw\": %s, \"message\": ", os == NGPT_OK ? n : (size_t)0,
                   ngpt_pipeline_result_output_nsfw(r, i) ? "true" : "false");
            json_str(stdout, msg);
            printf("}");
        }
    }
    int32_t n_hist = 0;
    const char *hist_msg = NULL;
    if (turn > 0 && ngpt_pipeline_result_history(r, &n_hist) != NGPT_OK) {
        hist_msg = ngpt_last_error();
        fprintf(stderr, "nextgpt: generated media did not re-enter the history: %s\n", hist_msg);
    }
    if (o->json) {
        static const char *const stages[NGPT_PIPELINE_STAGE_COUNT] = {"load", "encode", "project", "llm", "decode", "media_out"};
        printf("]");
        if (turn > 0) {
            printf(", \"history_media\": %d, \"history_error\": ", (int)n_hist);
            if (hist_msg) json_str(stdout, hist_msg); else printf("null");
            printf(", \"n_past\": %d", (int)ngpt_backbone_session_n_past(ngpt_pipeline_session(p)));
        }
        printf(", \"cancelled\": %s, \"timings_ms\": {", ngpt_pipeline_result_cancelled(r) ? "true" : "false");
        for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++)
            printf("%s\"%s\": %.3f", s ? ", " : "", stages[s], ngpt_pipeline_result_stage_ms(r, (ngpt_pipeline_stage)s));
        for (int dev = 0; dev < 2; dev++) { /* per-stage tensor-memory high-water marks */
            printf("}, \"peak_%s_bytes\": {", dev ? "device" : "host");
            for (int s = 0; s < NGPT_PIPELINE_STAGE_COUNT; s++) {
                uint64_t h = 0, d = 0;
                ngpt_pipeline_result_stage_memory(r, (ngpt_pipeline_stage)s, &h, &d);
                printf("%s\"%s\": %llu", s ? ", " : "", stages[s], (unsigned long long)(dev ? d : h));
            }
        }
        printf("}}\n");
    }
    if (fflush(stdout) != 0 || ferror(stdout)) { /* a full disk or a closed pipe: not silent */
        fprintf(stderr, "nextgpt: cannot write the answer to stdout: %s\n", errno ? strerror(errno) : "write error");
        clearerr(stdout);
        rc = 1;
    }
    return rc;
}

int cmd_run(int argc, char **argv)
{
    opts o;
    int rc = parse(&o, argc, argv, MODE_RUN);
    if (rc >= 0) return rc;
    if (!o.prompt) return bad_usage("run: --prompt is required%s", "");
    for (size_t i = 0; i < o.n_media; i++)
        if (access(o.media[i].path, R_OK) != 0) {
            fprintf(stderr, "nextgpt: cannot read %s: %s\n", o.media[i].path, strerror(errno));
            return 1;
        }
    int tty = isatty(2) && !o.json;
    ngpt_context *ctx = NULL;
    ngpt_pipeline *p = NULL;
    /* one turn: nothing follows, so generated media need not re-enter the history */
    if (open_pipeline(&o, tty, NGPT_PIPELINE_NO_MEDIA_HISTORY, &ctx, &p) != 0) return 1;
    ngpt_pipeline_turn_params tp;
    turn_params(&o, tty, 0, &tp);
    ngpt_pipeline_result *r = NULL;
    ngpt_status st = ngpt_pipeline_turn(&r, p, o.prompt, o.media, o.n_media, &tp);
    if (tty) fprintf(stderr, "\r\033[K");
    if (st != NGPT_OK) {
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        ngpt_pipeline_free(p);
        ngpt_context_free(ctx);
        return 1;
    }
    rc = report(&o, p, r, 0);
    ngpt_pipeline_result_free(r);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return rc;
}
