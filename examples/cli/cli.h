/* The nextgpt command's parts: its options (options.c), help (usage.c), JSON output (json_out.c),
 * model lookup (model.c) and one file per command (run.c, chat.c, info.c, generate.c; convert in
 * main.c).
 * An executable, not the library: only the public header is used. */
#ifndef NGPT_CLI_H
#define NGPT_CLI_H

#include <nextgpt.h>

#include <stdbool.h>
#include <stdio.h>

#ifndef NGPT_TINY_BUILD_DIR
#define NGPT_TINY_BUILD_DIR ""
#endif
#ifndef NGPT_TINY_INSTALL_DIR
#define NGPT_TINY_INSTALL_DIR ""
#endif
#ifndef NGPT_CONVERT_BUILD_PATH
#define NGPT_CONVERT_BUILD_PATH ""
#endif

#define MAX_MEDIA 64

#define STR_(x) #x
#define STR(x) STR_(x) /* a macro's value as a string literal */

/* What run, chat and info were told (parse()); zero = the library's or the decoder's default. */
typedef struct opts {
    ngpt_context_params cp;
    const char *model;
    const char *prompt;
    const char *out_dir;
    ngpt_pipeline_media media[MAX_MEDIA];
    size_t n_media;
    uint32_t force;
    int32_t steps, max_tokens;
    uint64_t seed;
    ngpt_scheduler_kind scheduler;  /* --scheduler (AUTO: each decoder folder's own) */
    int json;
    int no_media_history;
    int cuda_graphs;
    int channels_last;
    int safety_checker;
    ngpt_dtype dtype;  /* --dtype: the pipeline's compute dtype (F32 default; f16/bf16 on CUDA, bf16 on the CPU) */
    int32_t n_ctx;     /* info --ctx: the conversation's context (0 = the pipeline's default) */
    int32_t width, height;  /* --size WxH (0 = the decoder's) */
    int32_t frames;         /* run/chat --frames: video frames (0 = 24) */
    double seconds;         /* run/chat --seconds: audio length (0 = 5 s) */
    /* generate: */
    const char *negative;   /* --negative: the negative prompt (NULL: the decoder's "" embedding) */
    ngpt_modality modality; /* --modality (default image) */
    const char *init_image; /* --init-image: image-to-image from this picture */
    double strength;        /* --strength (0 = the library's 0.8) */
    float guidance;         /* --guidance (0 = the decoder's 7.5) */
    const char *out;        /* --out FILE (NULL: nextgpt-MODALITY.EXT) */
} opts;

/* The commands whose options parse() reads (bits: an option lists the commands it belongs to). */
enum { MODE_INFO = 1, MODE_RUN = 2, MODE_CHAT = 4, MODE_GENERATE = 8 };

/* "text", "image", "audio", "video" by ngpt_modality. */
extern const char *const k_names[4];

/* usage.c: the help texts (stdout: exit status 0; stderr: 2) and a usage error (2). */
int usage(FILE *f);
int chat_help(FILE *f);
int bad_usage(const char *fmt, const char *arg);

/* options.c */
int parse_modality(const char *s, ngpt_modality *m);
/* Fills *o from the defaults and the options; returns -1 when all is well, else the exit status. */
int parse(opts *o, int argc, char **argv, int mode);
ngpt_context *make_context(const opts *o);

/* json_out.c */
void json_str(FILE *f, const char *s);

/* model.c */
int is_dir_with_manifest(const char *dir);
const char *tiny_model(void);
const char *pick_model(const opts *o);

/* run.c: what run and chat share */
int open_pipeline(const opts *o, int tty, uint32_t flags, ngpt_context **ctx, ngpt_pipeline **p);
void turn_params(const opts *o, int tty, uint32_t force, ngpt_pipeline_turn_params *tp);
int report(const opts *o, ngpt_pipeline *p, const ngpt_pipeline_result *r, int turn);

/* the commands: argv without the program and command names */
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);

#endif
