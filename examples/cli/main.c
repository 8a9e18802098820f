/* nextgpt — the libnextgpt command line.
 *
 *   nextgpt run [--model DIR] --prompt TEXT [--image F]... [--audio F]... [--video F]...
 *               [--out-dir D] [--force image|audio|video]... [--steps N] [--seed S]
 *               [--scheduler ddim|pndm|dpm|euler|euler-a|heun|unipc|lms|kdpm2|kdpm2-a|deis|ddpm|
 *                            dpm-single]
 *               [--size WxH] [--frames N] [--seconds S]
 *               [--max-tokens N] [--json] [--device auto|cpu|cuda] [--threads N] [--dtype f32|f16|bf16]
 *               [--no-cuda-graphs] [--channels-last] [--safety-checker]
 *   nextgpt chat [--model DIR] [--out-dir D] [--force M]... [--steps N] [--seed S] [--scheduler NAME]
 *               [--size WxH] [--frames N] [--seconds S] [--max-tokens N] [--no-media-history] [--json]
 *               [--device ...] [--threads N] [--dtype ...]
 *               [--no-cuda-graphs] [--channels-last] [--safety-checker]
 *   nextgpt info [--model DIR] [--json] [--device ...] [--threads N] [--dtype ...] [--ctx N]
 *               [--size WxH] [--force M]... [--safety-checker]   (memory estimate of a turn: its device, dtype,
 *               context, image size and output modalities; default: image)
 *   nextgpt generate [--model DIR] --prompt TEXT [--modality image|audio|video] [--negative TEXT]
 *               [--init-image F [--strength S]] [--out FILE] [--steps N] [--seed S] [--guidance G]
 *               [--scheduler NAME] [--size WxH] [--frames N] [--seconds S] [--json] [--device ...]
 *               [--threads N] [--dtype ...] [--no-cuda-graphs] [--channels-last] [--safety-checker]
 *               (one decoder alone: text-to-image/audio/video, or image-to-image)
 *   nextgpt convert ARGS...        (runs ngpt-convert: official pickles -> safetensors)
 *
 * Without --model, `run`, `chat` and `generate` use the embedded tiny test model (random weights: the answer
 * and the media are noise) from the build tree or <prefix>/share/libnextgpt/tiny, and say so on
 * stderr. `chat` reads the conversation from stdin, one line per message or command (chat_help).
 * Exit status: 0 success, 1 a runtime error (the library's message on stderr; for chat: any line
 * failed), 2 bad usage. Progress goes to stderr when it is a terminal; --json prints one JSON
 * object on stdout (run, info) or one per turn and per failed line (chat).
 *
 * This file: the command dispatch, and convert (cli.h lists the other parts).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * convert: run ngpt-convert (next to this program, in the build tree, or on PATH)
 * ------------------------------------------------------------------------------------------- */

static int cmd_convert(int argc, char **argv, const char *self)
{
    char path[4096];
    const char *slash = strrchr(self, '/');
    char **args = calloc((size_t)argc + 2, sizeof *args);
    if (!args) return 1;
    for (int i = 0; i < argc; i++) args[i + 1] = argv[i];
    if (slash) {
        snprintf(path, sizeof path, "%.*s/ngpt-convert", (int)(slash - self), self);
        args[0] = path;
        if (access(path, X_OK) == 0) execv(path, args);
    }
    if (NGPT_CONVERT_BUILD_PATH[0] && access(NGPT_CONVERT_BUILD_PATH, X_OK) == 0) {
        args[0] = (char *)NGPT_CONVERT_BUILD_PATH;
        execv(NGPT_CONVERT_BUILD_PATH, args);
    }
    args[0] = (char *)"ngpt-convert";
    execvp("ngpt-convert", args);
    fprintf(stderr, "nextgpt: cannot run ngpt-convert: %s\n", strerror(errno));
    free(args);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", ngpt_version());
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return usage(stdout);
    if (argc < 2 || strcmp(argv[1], "info") == 0) return cmd_info(argc < 2 ? 0 : argc - 2, argv + 2);
    if (strcmp(argv[1], "run") == 0) return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "chat") == 0) return cmd_chat(argc - 2, argv + 2);
    if (strcmp(argv[1], "generate") == 0) return cmd_generate(argc - 2, argv + 2);
    if (strcmp(argv[1], "convert") == 0) return cmd_convert(argc - 2, argv + 2, argv[0]);
    if (argv[1][0] == '-') return cmd_info(argc - 1, argv + 1);  /* `nextgpt --device cpu`: info */
    return bad_usage("unknown command '%s' (run, chat, info, generate, convert)", argv[1]);
}
