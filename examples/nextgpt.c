/* nextgpt — the libnextgpt command line. For now: `nextgpt [info] [--device auto|cpu|cuda]
 * [--threads N]` prints the library version, the backend in use and the device. */
#include <nextgpt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f)
{
    fprintf(f, "usage: nextgpt [info] [--device auto|cpu|cuda] [--threads N]\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "info") == 0) continue;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return usage(stdout);
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s\n", ngpt_version());
            return 0;
        }
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            const char *d = argv[++i];
            if (strcmp(d, "auto") == 0) cp.device = NGPT_DEVICE_AUTO;
            else if (strcmp(d, "cpu") == 0) cp.device = NGPT_DEVICE_CPU;
            else if (strcmp(d, "cuda") == 0) cp.device = NGPT_DEVICE_CUDA;
            else return usage(stderr);
            continue;
        }
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            cp.n_threads = atoi(argv[++i]);
            continue;
        }
        return usage(stderr);
    }
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) {
        fprintf(stderr, "nextgpt: %s\n", ngpt_last_error());
        return 1;
    }
    printf("libnextgpt %s (ABI %d)\n", ngpt_version(), ngpt_abi_version());
    printf("cuda build: %s\n", ngpt_has_cuda_build() ? "yes" : "no");
    printf("backend:    %s\n", ngpt_backend_name(ngpt_context_backend(ctx)));
    printf("device:     %s\n", ngpt_context_device_name(ctx));
    printf("threads:    %d\n", ngpt_context_n_threads(ctx));
    const char *note = ngpt_context_backend_note(ctx);
    if (note[0]) printf("note:       %s\n", note);
    ngpt_context_free(ctx);
    return 0;
}
