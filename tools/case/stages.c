/* stages.c — every stage named in ../shared/golden/<family>/STAGES.md, and the function that
 * runs it (NULL until the stage is implemented: ngpt-case reports it as "unimplemented"). */
#include "stage.h"
#include "stage_clap.h"
#include "stage_clip.h"
#include "stage_encoder.h"
#include "stage_generate.h"
#include "stage_llama.h"
#include "stage_media.h"
#include "stage_projector.h"
#include "stage_safety.h"
#include "stage_sched.h"
#include "stage_tokenizer.h"
#include "stage_unet.h"
#include "stage_vae.h"

const case_stage case_stages[] = {
    /* llm */
    {"tokenizer.encode", case_tokenizer_encode},
    {"tokenizer.decode", case_tokenizer_decode},
    {"llama.logits", case_llama_logits},
    {"llama.logits_embeds", case_llama_logits_embeds},
    {"llama.generate_greedy", case_llama_generate_greedy},
    {"llama.lora", case_llama_lora},
    /* vision (encoders, projectors, image out) */
    {"image.preprocess", case_image_preprocess},
    {"video.preprocess", case_video_preprocess},
    {"audio.fbank", case_audio_fbank},
    {"imagebind.vision", case_imagebind_vision},
    {"imagebind.video", case_imagebind_video},
    {"imagebind.audio", case_imagebind_audio},
    {"projector.input", case_projector_input},
    {"projector.output", case_projector_output},
    {"unet2d", case_unet2d},
    {"vae.decode", case_vae_decode},
    {"vae.encode", case_vae_encode},
    {"sd.image_latents", case_sd_image_latents},
    {"scheduler.ddim", case_scheduler_ddim},
    {"scheduler.pndm", case_scheduler_pndm},
    {"sd.generate", case_sd_generate},
    {"sd.safety_checker", case_sd_safety_checker},
    {"clip.tokenize", case_clip_tokenize},
    {"clip.text_encoder", case_clip_text_encoder},
    {"image.postprocess", case_image_postprocess},
    /* audio out */
    {"audioldm.unet", case_audioldm_unet},
    {"audioldm.vae_decode", case_audioldm_vae_decode},
    {"vocoder.hifigan", case_vocoder_hifigan},
    {"audioldm.generate", case_audioldm_generate},
    {"roberta.tokenize", case_roberta_tokenize},
    {"clap.text_encoder", case_clap_text_encoder},
    /* video out */
    {"zeroscope.unet3d", case_zeroscope_unet3d},
    {"zeroscope.vae_decode", case_zeroscope_vae_decode},
    {"zeroscope.video_latents", case_zeroscope_video_latents},
    {"video.postprocess", case_video_postprocess},
    {"zeroscope.generate", case_zeroscope_generate},
    {"scheduler.dpmsolver", case_scheduler_dpmsolver},
    {"scheduler.euler", case_scheduler_euler},
    {"scheduler.euler_ancestral", case_scheduler_euler_ancestral},
    {"scheduler.heun", case_scheduler_heun},
    {"scheduler.unipc", case_scheduler_unipc},
    {"scheduler.lms", case_scheduler_lms},
    {"scheduler.kdpm2", case_scheduler_kdpm2},
    {"scheduler.kdpm2_ancestral", case_scheduler_kdpm2_ancestral},
    {"scheduler.deis", case_scheduler_deis},
    {"scheduler.ddpm", case_scheduler_ddpm},
    {"scheduler.dpmsolver_singlestep", case_scheduler_dpmsolver_singlestep},
    {NULL, NULL},
};
