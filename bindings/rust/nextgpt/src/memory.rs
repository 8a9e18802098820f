//! Memory estimates from a bundle's configs.
use crate::ffi::*;
use crate::*;
use std::path::Path;
use std::ptr;

/// What [`estimate_memory`] is asked about (the fields of `ngpt_memory_params` a Rust program sets).
#[derive(Clone, Debug)]
pub struct MemoryParams {
    /// Where the pipeline would run (no device is needed to estimate either).
    pub backend: Backend,
    /// `NGPT_DTYPE_F32` (default), BF16 on either backend, or F16 with [`Backend::Cuda`].
    pub compute_dtype: sys::ngpt_dtype,
    /// The conversation's context (0 = min(2048, the model's)).
    pub n_ctx: i32,
    /// The decoders the turn runs (default: image).
    pub outputs: Vec<Modality>,
    /// Image / video size (0 = the decoder's default).
    pub width: i32,
    pub height: i32,
    /// `sys::NGPT_PIPELINE_*` bits that change memory (`NGPT_PIPELINE_SAFETY_CHECKER`).
    pub flags: u32,
}

impl Default for MemoryParams {
    fn default() -> Self {
        MemoryParams { backend: Backend::Cpu, compute_dtype: sys::NGPT_DTYPE_F32, n_ctx: 0,
                       outputs: vec![Modality::Image], width: 0, height: 0, flags: 0 }
    }
}

/// One part's bytes: weights as the backend holds them (`mapped` of them views of the files),
/// its KV cache, its peak working memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPart {
    pub weights: u64,
    pub mapped: u64,
    pub kv: u64,
    pub work: u64,
}

/// `ngpt_pipeline_estimate_memory`'s answer (a copy).
#[derive(Clone, Debug)]
pub struct MemoryEstimate {
    /// Indexed by `ngpt_memory_part` (backbone, encoder, projector, image/audio/video decoder);
    /// None for a part the bundle does not have.
    pub parts: Vec<Option<MemoryPart>>,
    /// Indexed by `ngpt_pipeline_stage`: tensor bytes the context holds at the stage's peak.
    pub stages: Vec<u64>,
    /// The turn's peak (largest stage + overhead), the CUDA allowance, the mmapped weights.
    pub peak: u64,
    pub overhead: u64,
    pub mapped: u64,
}

/// The memory a pipeline turn on `bundle_dir` needs, from its configs alone.
pub fn estimate_memory<P: AsRef<Path>>(bundle_dir: P, p: &MemoryParams) -> Result<MemoryEstimate> {
    let dir = c_path(bundle_dir.as_ref())?;
    let mut mp: sys::ngpt_memory_params = unsafe { std::mem::zeroed() };
    check(unsafe { sys::ngpt_memory_params_default(&mut mp, std::mem::size_of_val(&mp)) })?;
    mp.backend = match p.backend {
        Backend::Cpu => sys::NGPT_BACKEND_CPU,
        Backend::Cuda => sys::NGPT_BACKEND_CUDA,
        Backend::Other(v) => v as sys::ngpt_backend,
    };
    mp.compute_dtype = p.compute_dtype;
    mp.n_ctx = p.n_ctx;
    mp.outputs = bits(&p.outputs);
    mp.width = p.width;
    mp.height = p.height;
    mp.flags = p.flags;
    let mut out = ptr::null_mut();
    check(unsafe { sys::ngpt_pipeline_estimate_memory(&mut out, dir.as_ptr(), &mp) })?;
    let mut parts = Vec::new();
    for i in 0..sys::NGPT_MEMORY_PART_COUNT {
        if unsafe { sys::ngpt_memory_estimate_has_part(out, i) } == 0 {
            parts.push(None);
            continue;
        }
        let mut m = MemoryPart::default();
        unsafe { sys::ngpt_memory_estimate_part(out, i, &mut m.weights, &mut m.mapped, &mut m.kv, &mut m.work) };
        parts.push(Some(m));
    }
    let stages = (0..sys::NGPT_PIPELINE_STAGE_COUNT).map(|s| unsafe { sys::ngpt_memory_estimate_stage(out, s) }).collect();
    let (mut peak, mut overhead, mut mapped) = (0u64, 0u64, 0u64);
    unsafe {
        sys::ngpt_memory_estimate_peak(out, &mut peak, &mut overhead, &mut mapped);
        sys::ngpt_memory_estimate_free(out);
    }
    Ok(MemoryEstimate { parts, stages, peak, overhead, mapped })
}
