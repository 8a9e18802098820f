/* The help texts of the nextgpt command, and the one way a usage error is reported. */
#include "cli.h"

int usage(FILE *f)
{
    fprintf(f,
        "usage: nextgpt run [--model DIR] --prompt TEXT [--image F]... [--audio F]... [--video F]...\n"
        "                   [--out-dir D] [--force image|audio|video]... [--steps N] [--seed S]\n"
        "                   [--scheduler ddim|pndm|dpm|euler|euler-a|heun|unipc|lms|kdpm2|kdpm2-a|deis|ddpm|\n"
        "                                dpm-single]   (default: each decoder's own)\n"
        "                   [--size WxH] [--frames N] [--seconds S]   (image/video size, video frames,\n"
        "                                audio length; default: each decoder's own)\n"
        "                   [--max-tokens N] [--json] [--device auto|cpu|cuda] [--threads N]\n"
        "                   [--dtype f32|f16|bf16]   (f16/bf16: compute dtype on CUDA; bf16 on the CPU too)\n"
        "                   [--no-cuda-graphs] (CUDA: run the stages op by op instead of recording them\n"
        "                                once as graphs and replaying them, the default)\n"
        "                   [--channels-last] (decoders' UNets and VAEs NHWC inside: cuDNN's layout,\n"
        "                                which CUDA takes in f16/bf16 anyway)\n"
        "                   [--safety-checker] (SD's safety checker blacks out flagged images, as NExT-GPT)\n"
        "       nextgpt chat [--model DIR] [--out-dir D] [--force image|audio|video]... [--steps N]\n"
        "                   [--seed S] [--scheduler NAME] [--size WxH] [--frames N] [--seconds S]\n"
        "                   [--max-tokens N] [--no-media-history] [--json]\n"
        "                   [--device auto|cpu|cuda] [--threads N] [--dtype f32|f16|bf16]\n"
        "                   [--no-cuda-graphs] [--channels-last] [--safety-checker]\n"
        "                   (nextgpt chat --help: commands)\n"
        "       nextgpt info [--model DIR] [--json] [--device auto|cpu|cuda] [--threads N]\n"
        "                   [--dtype f32|f16|bf16] [--ctx N] [--size WxH] [--force image|audio|video]...\n"
        "                   [--safety-checker]\n"
        "                   (components, and the memory a turn needs on that device: --force names\n"
        "                   the output decoders, default image; --size the image/video size)\n"
        "       nextgpt generate [--model DIR] --prompt TEXT [--modality image|audio|video] [--negative TEXT]\n"
        "                   [--init-image F [--strength S]] [--out FILE] [--steps N] [--seed S] [--guidance G]\n"
        "                   [--scheduler NAME] [--size WxH] [--frames N] [--seconds S] [--json]\n"
        "                   [--device auto|cpu|cuda] [--threads N] [--dtype f32|f16|bf16] [--no-cuda-graphs]\n"
        "                   [--channels-last] [--safety-checker]\n"
        "                   (one decoder alone, no language model: text-to-image/audio/video from the\n"
        "                   decoder's text encoder, or image-to-image from --init-image (size from it;\n"
        "                   --strength default 0.8); --model: a diffusers pipeline folder, or a bundle\n"
        "                   (its decoder of --modality, default image); --out default\n"
        "                   nextgpt-MODALITY.png/.wav/.mp4, the format from the extension; --guidance\n"
        "                   default 7.5, 1 or less: none)\n"
        "       nextgpt convert ARGS...   (ngpt-convert: official pickles -> safetensors)\n"
        "       nextgpt --version\n"
        "Without --model, the embedded tiny test model (random weights) is used.\n"
        "Exit status: 0 ok, 1 runtime error, 2 usage error.\n");
    return f == stdout ? 0 : 2;
}

int chat_help(FILE *f)
{
    usage(f);
    fprintf(f,
        "\n"
        "nextgpt chat: a multi-turn conversation read from stdin, one line at a time (typed, or piped).\n"
        "One pipeline for the whole conversation: the history stays in its KV cache, and generated\n"
        "media re-enter it as NExT-GPT's demo does (--no-media-history: they do not).\n"
        "A line is a message (sent as one turn, with the media attached before it), or a command:\n"
        "  /image PATH    attach an image to the next message (also /audio PATH, /video PATH;\n"
        "                 several may be attached; the file must be readable)\n"
        "  /force MODALITY  the next message must answer with image, audio or video (repeatable;\n"
        "                 --force applies to every message)\n"
        "  /reset         forget the conversation and the pending attachments\n"
        "  /help          this text (on stderr)\n"
        "  /quit          end (as does the end of stdin; /exit too)\n"
        "  //TEXT         the message \"/TEXT\"\n"
        "Ctrl-C during a turn cancels it (the partial answer is kept; \"cancelled\": true).\n"
        "Empty lines are ignored. The answer goes to stdout; generated media are written to --out-dir\n"
        "as turnN-MODALITY-I.EXT and each is named on a 'wrote' line. A line that fails (an unknown\n"
        "command, a missing file, a turn the library refuses) is reported on stderr and the chat\n"
        "goes on, the conversation unchanged; the exit status is then 1.\n"
        "--json: one JSON object per line on stdout: for a turn {\"turn\", \"test_model\", \"text\",\n"
        "\"outputs\", \"history_media\", \"history_error\", \"n_past\", \"cancelled\", \"timings_ms\","
        " \"peak_host_bytes\", \"peak_device_bytes\"} (turn: the\n"
        "message's number, failed ones included); for a failed line\n"
        "{\"error\": {\"line\": N, \"input\": LINE, \"message\": TEXT}}; commands that succeed print\n"
        "nothing.\n");
    return f == stdout ? 0 : 2;
}

int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "nextgpt: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return usage(stderr);
}
