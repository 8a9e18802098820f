/* decoder.h — the ngpt_decoder behind the handle, shared by decoder.c (loading, stage by stage)
 * and decoder_generate.c (the denoising pipelines). */
#ifndef NX_API_DECODER_H
#define NX_API_DECODER_H

#include "context.h"

#include "../models/hifigan.h"
#include "../models/unet.h"
#include "../models/vae.h"

struct ngpt_decoder {
    ngpt_context     *ctx;
    ngpt_decoder_kind kind;
    char             *dir;
    nx_unet          *unet;
    nx_vae           *vae;
    nx_hifigan       *vocoder;
    int64_t           sample_size;  /* unet/config.json sample_size (latent pixels) */
};

#endif
