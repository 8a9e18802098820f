/* hifigan.c — placeholder until the vocoder lands (NGPT_ERR_UNIMPLEMENTED). */
#include "hifigan.h"

ngpt_status nx_hifigan_load(nx_hifigan **out, nx_backend *be, const char *vocoder_dir)
{
    (void)be;
    *out = NULL;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "%s: the HiFi-GAN vocoder is not implemented yet", vocoder_dir);
}
void nx_hifigan_free(nx_hifigan *h) { (void)h; }
int nx_hifigan_n_mels(const nx_hifigan *h) { (void)h; return 0; }
int nx_hifigan_hop(const nx_hifigan *h) { (void)h; return 0; }
int nx_hifigan_sampling_rate(const nx_hifigan *h) { (void)h; return 0; }
ngpt_status nx_hifigan_forward(nx_hifigan *h, nx_tensor *wave, const nx_tensor *mel)
{
    (void)h; (void)wave; (void)mel;
    return nx_err(NGPT_ERR_UNIMPLEMENTED, "the HiFi-GAN vocoder is not implemented yet");
}
