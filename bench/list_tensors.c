/* list_tensors.c — prints the tensors the loaders read for a diffusion decoder, in the
 * make_tiny_bundle tensors.txt format ("<name> F32 <d0> <d1> ..."), for tools/make_sized_bundle.py:
 *
 *     list_tensors unet UNET_CONFIG.json     the UNet (nx_unet_list_tensors: the loader's own list)
 *     list_tensors sd-vae-decoder            SD 1.5's VAE decoder + post_quant_conv
 */
#include "bench_ckpt.h"

#include "models/unet.h"

static ngpt_status print_tensor(void *user, const char *name, int rank, const int64_t *shape)
{
    (void)user;
    printf("%s F32", name);
    for (int i = 0; i < rank; i++) printf(" %lld", (long long)shape[i]);
    printf("\n");
    return NGPT_OK;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "unet") == 0) {
        if (nx_unet_list_tensors(argv[2], print_tensor, NULL) != NGPT_OK) {
            fprintf(stderr, "list_tensors: %s\n", ngpt_last_error());
            return 1;
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "sd-vae-decoder") == 0) {
        bench_ckpt g = {0};
        bench_ckpt_sd_vae_decoder(&g);
        for (size_t k = 0; k < g.n; k++) print_tensor(NULL, g.names[k], g.e[k].rank, g.shape[k]);
        bench_ckpt_clear(&g);
        return 0;
    }
    fprintf(stderr, "usage: list_tensors unet UNET_CONFIG.json | list_tensors sd-vae-decoder\n");
    return 2;
}
