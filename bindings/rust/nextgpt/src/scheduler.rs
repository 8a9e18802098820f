//! The diffusion schedulers.
use crate::ffi::*;
use crate::*;
use std::os::raw::c_char;
use std::path::Path;
use std::ptr::{self, NonNull};

/// `ngpt_scheduler`: any of the 13 samplers of `ngpt_scheduler_kind` (DDIM, PNDM, DPM-Solver++,
/// Euler, UniPC, ...), from a diffusers scheduler_config.json.
pub struct Scheduler {
    pub(crate) ptr: NonNull<sys::ngpt_scheduler>,
}

// SAFETY: stateful, used by one thread at a time (&mut for the stateful calls).
unsafe impl Send for Scheduler {}

impl Scheduler {
    /// The default `ngpt_scheduler_params` (kind, prediction type, eta, ... from the config),
    /// to change before [`Scheduler::from_file_with`] / [`Scheduler::from_json_with`].
    pub fn default_params() -> sys::ngpt_scheduler_params {
        // SAFETY: a zeroed POD struct filled by _default with our own size.
        let mut p: sys::ngpt_scheduler_params = unsafe { std::mem::zeroed() };
        unsafe { sys::ngpt_scheduler_params_default(&mut p, std::mem::size_of_val(&p)) };
        p
    }

    pub fn from_file<P: AsRef<Path>>(config_json: P) -> Result<Scheduler> {
        Scheduler::from_file_with(config_json, &Scheduler::default_params())
    }

    pub fn from_file_with<P: AsRef<Path>>(config_json: P, p: &sys::ngpt_scheduler_params) -> Result<Scheduler> {
        let path = c_path(config_json.as_ref())?;
        let p = sized(p);
        let mut out = ptr::null_mut();
        check(unsafe { sys::ngpt_scheduler_create(&mut out, path.as_ptr(), &p) })?;
        Ok(Scheduler { ptr: NonNull::new(out).expect("ngpt_scheduler_create returned NULL") })
    }

    pub fn from_json(json: &str) -> Result<Scheduler> {
        Scheduler::from_json_with(json, &Scheduler::default_params())
    }

    pub fn from_json_with(json: &str, p: &sys::ngpt_scheduler_params) -> Result<Scheduler> {
        let p = sized(p);
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::ngpt_scheduler_create_from_json(&mut out, json.as_ptr() as *const c_char, json.len(), &p)
        })?;
        Ok(Scheduler { ptr: NonNull::new(out).expect("ngpt_scheduler_create_from_json returned NULL") })
    }

    /// The kind in use (`sys::NGPT_SCHEDULER_*`).
    pub fn kind(&self) -> sys::ngpt_scheduler_kind {
        unsafe { sys::ngpt_scheduler_get_kind(self.ptr.as_ptr()) }
    }

    pub fn set_timesteps(&mut self, n: i32) -> Result<()> {
        check(unsafe { sys::ngpt_scheduler_set_timesteps(self.ptr.as_ptr(), n) })
    }

    /// The timesteps in stepping order (an error before set_timesteps, and for the k-diffusion
    /// samplers — Euler, Euler ancestral, Heun, LMS, KDPM2, KDPM2 ancestral — whose timesteps
    /// are fractional: see [`Scheduler::timesteps_f64`]).
    pub fn timesteps(&self) -> Result<&[i64]> {
        let mut ts = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::ngpt_scheduler_timesteps(self.ptr.as_ptr(), &mut ts, &mut n) })?;
        // SAFETY: borrowed until the next set_timesteps (&mut self) or drop.
        Ok(unsafe { slice(ts, n) })
    }

    /// Every kind's timesteps as f64 (the k-diffusion samplers' fractional ones; the model takes
    /// them as f32).
    pub fn timesteps_f64(&self) -> Result<&[f64]> {
        let mut ts = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::ngpt_scheduler_timesteps_f64(self.ptr.as_ptr(), &mut ts, &mut n) })?;
        // SAFETY: borrowed until the next set_timesteps (&mut self) or drop.
        Ok(unsafe { slice(ts, n) })
    }

    pub fn alphas_cumprod(&self) -> Result<&[f32]> {
        let mut p = ptr::null();
        let mut n = 0usize;
        check(unsafe { sys::ngpt_scheduler_alphas_cumprod(self.ptr.as_ptr(), &mut p, &mut n) })?;
        Ok(unsafe { slice(p, n) })
    }

    pub fn init_noise_sigma(&self) -> f32 {
        unsafe { sys::ngpt_scheduler_init_noise_sigma(self.ptr.as_ptr()) }
    }

    /// One denoising step: `sample` becomes the sample at the previous timestep.
    pub fn step(&mut self, model_output: &[f32], timestep: i64, sample: &mut [f32],
                variance_noise: Option<&[f32]>) -> Result<()> {
        let noise = step_noise(model_output, sample, variance_noise)?;
        check(unsafe {
            sys::ngpt_scheduler_step(self.ptr.as_ptr(), model_output.as_ptr(), timestep, sample.as_mut_ptr(),
                                     sample.len(), noise)
        })
    }

    /// [`Scheduler::step`] at a timestep of [`Scheduler::timesteps_f64`] (every kind).
    pub fn step_f64(&mut self, model_output: &[f32], timestep: f64, sample: &mut [f32],
                    variance_noise: Option<&[f32]>) -> Result<()> {
        let noise = step_noise(model_output, sample, variance_noise)?;
        check(unsafe {
            sys::ngpt_scheduler_step_f64(self.ptr.as_ptr(), model_output.as_ptr(), timestep, sample.as_mut_ptr(),
                                         sample.len(), noise)
        })
    }

    /// Forget the stepping history, keep the timesteps.
    pub fn reset(&mut self) -> Result<()> {
        check(unsafe { sys::ngpt_scheduler_reset(self.ptr.as_ptr()) })
    }

    /// The model's input at `timestep`, in place: unchanged, or divided by (sigma^2 + 1)^0.5
    /// for the k-diffusion samplers.
    pub fn scale_model_input(&self, sample: &mut [f32], timestep: i64) -> Result<()> {
        check(unsafe {
            sys::ngpt_scheduler_scale_model_input(self.ptr.as_ptr(), sample.as_mut_ptr(), sample.len(), timestep)
        })
    }

    pub fn scale_model_input_f64(&self, sample: &mut [f32], timestep: f64) -> Result<()> {
        check(unsafe {
            sys::ngpt_scheduler_scale_model_input_f64(self.ptr.as_ptr(), sample.as_mut_ptr(), sample.len(), timestep)
        })
    }

    /// `sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise` (the k-diffusion samplers:
    /// original + sigma(t) * noise).
    pub fn add_noise(&self, original: &[f32], noise: &[f32], timestep: i64) -> Result<Vec<f32>> {
        let mut out = noise_out(original, noise)?;
        check(unsafe {
            sys::ngpt_scheduler_add_noise(self.ptr.as_ptr(), out.as_mut_ptr(), original.as_ptr(), noise.as_ptr(),
                                          out.len(), timestep)
        })?;
        Ok(out)
    }

    pub fn add_noise_f64(&self, original: &[f32], noise: &[f32], timestep: f64) -> Result<Vec<f32>> {
        let mut out = noise_out(original, noise)?;
        check(unsafe {
            sys::ngpt_scheduler_add_noise_f64(self.ptr.as_ptr(), out.as_mut_ptr(), original.as_ptr(), noise.as_ptr(),
                                              out.len(), timestep)
        })?;
        Ok(out)
    }
}

/// The caller's params with `struct_size` ours: the library reads that many bytes, so a larger
/// value set by hand would make it read past this struct.
fn sized(p: &sys::ngpt_scheduler_params) -> sys::ngpt_scheduler_params {
    let mut q = *p;
    q.struct_size = std::mem::size_of::<sys::ngpt_scheduler_params>();
    q
}

/// step's noise argument, once the lengths are checked.
fn step_noise(model_output: &[f32], sample: &[f32], variance_noise: Option<&[f32]>) -> Result<*const f32> {
    if model_output.len() != sample.len() || variance_noise.map_or(false, |v| v.len() != sample.len()) {
        return Err(Error::invalid("model_output, sample and variance_noise must have the same length"));
    }
    Ok(variance_noise.map_or(ptr::null(), |v| v.as_ptr()))
}

/// add_noise's output buffer, once the lengths are checked.
fn noise_out(original: &[f32], noise: &[f32]) -> Result<Vec<f32>> {
    if original.len() != noise.len() {
        return Err(Error::invalid("original and noise must have the same length"));
    }
    Ok(vec![0f32; original.len()])
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        unsafe { sys::ngpt_scheduler_free(self.ptr.as_ptr()) }
    }
}
