/* sched.h — the diffusion schedulers behind ngpt_scheduler (diffusers 0.17 ports).
 *
 * Split in two so that a device can run the steps:
 *  - the scheduler (sched.c and the files sched_impl.h lists): config, noise schedule,
 *    timesteps and the stepping state (history order, counters). nx_sched_plan advances that state by one step and describes the step's
 *    array work as an nx_sched_step: float32 scalar coefficients, computed exactly as diffusers
 *    does on 0-dim float32 tensors, and the state buffers to read and write as slots;
 *  - the element-wise step (sched_math.h): nx_sched_elem runs a planned step on one element.
 *    The host loops it over arrays (nx_sched_run_host, below: ngpt_scheduler_step); backends run
 *    it through nx_op_sched_step (the CPU backend with the same function, CUDA in
 *    kernels/sched.cu), the latents and the state buffers staying in backend memory.
 */
#ifndef NX_SCHED_H
#define NX_SCHED_H

#include "nextgpt.h"
#include "sched_math.h"

#include <stdbool.h>
#include <stddef.h>

/* The last ngpt_scheduler_kind (kinds run from NGPT_SCHEDULER_DDIM to it; AUTO is 0). */
#define NX_SCHED_LAST_KIND NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP

/* ngpt_scheduler_create as NExT-GPT's image pipeline (custom_sd.StableDiffusionPipeline.__init__)
 * sees the folder's config: steps_offset set to 1 and clip_sample to false, diffusers' fix-ups
 * of old Stable Diffusion folders, whatever the file says. */
ngpt_status nx_sched_create_sd(ngpt_scheduler **out, const char *scheduler_config_json_path, const ngpt_scheduler_params *p);

/* The state slots a step of s reads or writes: 0 (DDIM, Euler, Euler ancestral), the solver
 * order (DPM-Solver, DEIS), the order + 1 (UniPC), 1 (KDPM2, KDPM2 ancestral), 2 (Heun), 4 (LMS) or
 * NX_SCHED_SLOTS (PNDM); a caller stepping through nx_sched_plan keeps that many buffers of n
 * floats, zero-initialised or not (a slot is written before it is read). */
int nx_sched_slots(const ngpt_scheduler *s);

/* Plan the step at `timestep` (one of the float64 timesteps) for samples of n floats and advance
 * s past it (the scheduler's validation and errors are ngpt_scheduler_step's; have_noise: the
 * caller passes variance noise). p->cfg is false: a caller that feeds [uncond; cond] sets cfg and guidance. The caller
 * must run the plan — s already counts the step. */
ngpt_status nx_sched_plan(ngpt_scheduler *s, double timestep, size_t n, bool have_noise, nx_sched_step *p);

/* Whether a step of s reads variance noise (DDPM, DDIM eta > 0, the SDE DPM-Solvers, the ancestral
 * samplers; some of their steps may not). */
bool nx_sched_needs_noise(const ngpt_scheduler *s);

/* diffusers' SchedulerMixin.order: 2 for Heun, KDPM2 and KDPM2 ancestral (each step but the
 * first is two timesteps), 1 for the others. image-to-image skips order x t_start timesteps. */
int nx_sched_order(const ngpt_scheduler *s);

/* scale_model_input at step k (in stepping order) as a divisor of the model input: (sigma_k^2 +
 * 1)^0.5 for Euler, Euler ancestral and Heun; 0 where the input is not scaled. */
float nx_sched_input_divisor(const ngpt_scheduler *s, size_t k);

/* Run a planned step over host arrays: eps [n] (or [2n] with p->cfg), x [n] in place, noise [n]
 * when p->noise, slot[0 .. nx_sched_slots) of n floats each. */
void nx_sched_run_host(const nx_sched_step *p, const float *eps, float *x, const float *noise, float *const *slot);

#endif
