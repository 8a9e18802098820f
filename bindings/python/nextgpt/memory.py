"""estimate_memory: what a pipeline turn on a bundle needs, from its configs alone, to choose a
device or settings before loading anything."""
import ctypes

from ._convert import _modality_bits, _params, _path
from ._enums import MemoryPart, PipelineStage
from ._library import capi, lib
from .error import _call


class MemoryEstimate:
    """ngpt_pipeline_estimate_memory's answer, copied: .parts (MemoryPart -> dict of weight_bytes,
    mapped_bytes, kv_bytes, work_bytes; parts the bundle has), .stages (PipelineStage -> bytes the
    context holds at that stage's peak), .peak, .overhead, .mapped (bytes). Nothing to close."""

    def __init__(self, ptr):
        self.parts = {}
        for i in range(capi.NGPT_MEMORY_PART_COUNT):
            if not lib.ngpt_memory_estimate_has_part(ptr, i):
                continue
            v = [ctypes.c_uint64() for _ in range(4)]
            lib.ngpt_memory_estimate_part(ptr, i, *[ctypes.byref(x) for x in v])
            self.parts[MemoryPart(i)] = dict(zip(("weight_bytes", "mapped_bytes", "kv_bytes", "work_bytes"),
                                                 (x.value for x in v)))
        self.stages = {PipelineStage(s): lib.ngpt_memory_estimate_stage(ptr, s)
                       for s in range(capi.NGPT_PIPELINE_STAGE_COUNT)}
        peak, over, mapped = ctypes.c_uint64(), ctypes.c_uint64(), ctypes.c_uint64()
        lib.ngpt_memory_estimate_peak(ptr, ctypes.byref(peak), ctypes.byref(over), ctypes.byref(mapped))
        self.peak, self.overhead, self.mapped = peak.value, over.value, mapped.value

    def __repr__(self):
        return "MemoryEstimate(peak=%.3f GiB)" % (self.peak / 2.0 ** 30)


def estimate_memory(bundle_dir, backend=None, compute_dtype=None, n_ctx=None, n_batch=None, inputs=None,
                    outputs=None, preload=None, width=None, height=None, num_frames=None, audio_length_s=None,
                    flags=None):
    """The memory a pipeline turn on bundle_dir needs, from its configs alone (no weights, no device):
    backend Backend.CPU (default) or Backend.CUDA; inputs / outputs / preload: Modality values (defaults:
    an image in, an image out); flags: NGPT_PIPELINE_* bits (capi.NGPT_PIPELINE_SAFETY_CHECKER counts the
    safety checker); the rest as ngpt_memory_params. Raises Error on unreadable configs."""
    p = _params(capi.ngpt_memory_params, "ngpt_memory_params_default", backend=backend, compute_dtype=compute_dtype,
                n_ctx=n_ctx, n_batch=n_batch, inputs=None if inputs is None else _modality_bits(inputs),
                outputs=None if outputs is None else _modality_bits(outputs),
                preload=None if preload is None else _modality_bits(preload), width=width, height=height,
                num_frames=num_frames, audio_length_s=audio_length_s, flags=flags)
    out = ctypes.POINTER(capi.ngpt_memory_estimate)()
    _call("ngpt_pipeline_estimate_memory", ctypes.byref(out), _path(bundle_dir), ctypes.byref(p))
    try:
        return MemoryEstimate(out)
    finally:
        lib.ngpt_memory_estimate_free(out)
