/* nextgpt chat: one pipeline, the conversation read from stdin line by line (chat_help). */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Ctrl-C during a chat turn cancels the turn (the partial answer is kept); elsewhere it ends the
 * program as usual. sig_atomic_t is int32_t on the platforms this builds on. */
static volatile sig_atomic_t g_cancel;
_Static_assert(sizeof(sig_atomic_t) == sizeof(int32_t), "sig_atomic_t is not 32-bit");

static void on_sigint(int sig)
{
    (void)sig;
    g_cancel = 1;
}

typedef struct chat {
    opts       *o;
    int         line_no;
    int         failed;
    char       *paths[MAX_MEDIA];  /* the pending attachments (owned copies) */
    ngpt_modality mods[MAX_MEDIA];
    size_t      n_media;
    uint32_t    force;             /* /force for the next message */
} chat;
static void chat_clear(chat *c)
{
    for (size_t i = 0; i < c->n_media; i++) free(c->paths[i]);
    c->n_media = 0;
    c->force = 0;
}

/* A line that failed: stderr, and with --json an error object on stdout. */
static void chat_error(chat *c, const char *input, const char *fmt, const char *arg)
{
    char msg[4096];
    snprintf(msg, sizeof msg, fmt, arg);
    fprintf(stderr, "nextgpt: line %d: %s\n", c->line_no, msg);
    if (c->o->json) {
        printf("{\"error\": {\"line\": %d, \"input\": ", c->line_no);
        json_str(stdout, input);
        printf(", \"message\": ");
        json_str(stdout, msg);
        printf("}}\n");
        fflush(stdout);
    }
    c->failed = 1;
}

/* A command line ("/..."): 1 = go on, 0 = /quit. */
static int chat_command(chat *c, ngpt_pipeline *p, const char *line)
{
    const char *sp = strchr(line, ' ');
    size_t cl = sp ? (size_t)(sp - line) : strlen(line);
    const char *arg = sp ? sp + 1 : "";
    while (*arg == ' ') arg++;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "%.*s", (int)(cl < sizeof cmd - 1 ? cl : sizeof cmd - 1), line);
    ngpt_modality m;
    if (strcmp(cmd, "/quit") == 0 || strcmp(cmd, "/exit") == 0) return 0;
    if (strcmp(cmd, "/help") == 0) {
        chat_help(stderr);
    } else if (strcmp(cmd, "/reset") == 0) {
        chat_clear(c);
        if (ngpt_pipeline_reset(p) != NGPT_OK) chat_error(c, line, "%s", ngpt_last_error());
    } else if (parse_modality(cmd + 1, &m)) {
        if (!*arg) chat_error(c, line, "%s needs a file: /image PATH, /audio PATH or /video PATH", cmd);
        else if (access(arg, R_OK) != 0) {
            char msg[4096];
            snprintf(msg, sizeof msg, "cannot read %s: %s", arg, strerror(errno));
            chat_error(c, line, "%s", msg);
        } else if (c->n_media == MAX_MEDIA) chat_error(c, line, "at most %s media per message", "64");
        else if (!(c->paths[c->n_media] = strdup(arg))) chat_error(c, line, "%s", "out of memory");
        else c->mods[c->n_media++] = m;
    } else if (strcmp(cmd, "/force") == 0) {
        if (!parse_modality(arg, &m)) chat_error(c, line, "/force: '%s' is not image, audio or video", arg);
        else c->force |= NGPT_PIPELINE_FORCE(m);
    } else {
        chat_error(c, line, "unknown command '%s' (/image, /audio, /video, /force, /reset, /help, /quit; "
                   "//TEXT sends \"/TEXT\")", cmd);
    }
    return 1;
}

int cmd_chat(int argc, char **argv)
{
    opts o;
    int rc = parse(&o, argc, argv, MODE_CHAT);
    if (rc >= 0) return rc;
    int tty = isatty(2) && !o.json;
    int prompt = isatty(0) && isatty(2);
    ngpt_context *ctx = NULL;
    ngpt_pipeline *p = NULL;
    if (open_pipeline(&o, tty, o.no_media_history ? NGPT_PIPELINE_NO_MEDIA_HISTORY : 0, &ctx, &p) != 0) return 1;
    if (prompt) fprintf(stderr, "nextgpt chat: type a message, /help for the commands, /quit to end.\n");
    chat c = {.o = &o};
    int turn = 0;
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (prompt) { fprintf(stderr, c.n_media ? "(%zu attached)> " : "> ", c.n_media); fflush(stderr); }
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) break;
        c.line_no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (strspn(line, " \t") == (size_t)len) continue;  /* empty or blank: ignored, as /help says */
        if (strlen(line) != (size_t)len) {  /* a NUL would cut the message short without a word */
            fprintf(stderr, "nextgpt: line %d: contains a NUL byte: not sent\n", c.line_no);
            c.failed = 1;
            continue;
        }
        const char *msg = line;
        if (line[0] == '/' && line[1] != '/') {
            if (!chat_command(&c, p, line)) break;
            continue;
        }
        if (line[0] == '/') msg = line + 1;  /* "//TEXT" */
        ngpt_pipeline_media media[MAX_MEDIA];
        for (size_t i = 0; i < c.n_media; i++)
            media[i] = (ngpt_pipeline_media){c.mods[i], c.paths[i], NULL, 0, NULL, NULL};
        ngpt_pipeline_turn_params tp;
        turn_params(&o, tty, c.force, &tp);
        ngpt_pipeline_result *r = NULL;
        turn++;
        g_cancel = 0;
        tp.cancel = (const volatile int32_t *)&g_cancel;
        struct sigaction sa = {0}, old;
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old);
        ngpt_status st = ngpt_pipeline_turn(&r, p, msg, media, c.n_media, &tp);
        sigaction(SIGINT, &old, NULL);
        if (tty) fprintf(stderr, "\r\033[K");
        chat_clear(&c);
        if (st != NGPT_OK) {
            chat_error(&c, line, "%s (the conversation is unchanged)", ngpt_last_error());
            continue;
        }
        if (report(&o, p, r, turn) != 0) c.failed = 1;
        ngpt_pipeline_result_free(r);
    }
    free(line);
    chat_clear(&c);
    ngpt_pipeline_free(p);
    ngpt_context_free(ctx);
    return c.failed ? 1 : 0;
}
