/* stages.c — every stage named in ../shared/golden/<family>/STAGES.md, and the function that
 * runs it (NULL until the stage is implemented: ngpt-case reports it as "unimplemented"). */
#include "stage.h"
#include "stage_media.h"
#include "stage_sched.h"
#include "stage_tokenizer.h"
#include "stage_unet.h"

const case_stage case_stages[] = {
    /* llm */
    {"tokenizer.encode", case_tokenizer_encode},
    {"tokenizer.decode", case_tokenizer_decode},
    {"llama.logits", NULL},
    {"llama.logits_embeds", NULL},
    {"llama.generate_greedy", NULL},
    {"llama.lora", NULL},
    /* vision (encoders, projectors, image out) */
    {"image.preprocess", case_image_preprocess},
    {"video.preprocess", case_video_preprocess},
    {"audio.fbank", case_audio_fbank},
    {"imagebind.vision", NULL},
    {"imagebind.audio", NULL},
    {"projector.input", NULL},
    {"projector.output", NULL},
    {"unet2d", case_unet2d},
    {"vae.decode", NULL},
    {"scheduler.ddim", case_scheduler_ddim},
    {"scheduler.pndm", case_scheduler_pndm},
    {"sd.generate", NULL},
    {"image.postprocess", case_image_postprocess},
    /* audio out */
    {"audioldm.unet", case_audioldm_unet},
    {"audioldm.vae_decode", NULL},
    {"vocoder.hifigan", NULL},
    {"audioldm.generate", NULL},
    /* video out */
    {"zeroscope.unet3d", NULL},
    {"zeroscope.vae_decode", NULL},
    {"video.postprocess", NULL},
    {"zeroscope.generate", NULL},
    {"scheduler.dpmsolver", case_scheduler_dpmsolver},
    {NULL, NULL},
};
