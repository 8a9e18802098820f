"""libnextgpt for Python: a small hand-written layer over the ctypes module generated from
include/nextgpt.h (nextgpt._capi, written by tools/gen_python_bindings.py at build time).

    import nextgpt
    with nextgpt.Context(device="cpu") as ctx:
        print(nextgpt.version(), ctx.backend_name, ctx.device_name)
    tok = nextgpt.Tokenizer("models/nextgpt/tokenizer")
    ids = tok.encode("Hello [IMG0]")

The library is loaded from $NGPT_LIBRARY (a path), else from the meson build tree this package
was generated into, else by its soname libnextgpt.so.0. Every failing call raises
nextgpt.Error, which carries the status and ngpt_last_error()'s message. Handles have close(),
work as context managers and are freed by the garbage collector as a last resort; a handle made
from a Context keeps the context alive, and Context.close() closes them first (the collector
frees them in that order too, also inside a reference cycle). Handles cannot be copied or
pickled; a handle may be used from any thread, one call at a time, and closing one while a call
on it (or on a handle made from it) runs raises RuntimeError. A handle lent by another
(Pipeline.backbone/.encoder/.projector/.session/.decoder(m), Backbone.tokenizer) is never freed
by Python: it keeps its owner alive, is closed with it, and its calls count as the owner's. An
exception raised in a callback cancels the call and is re-raised from it. Tensors come back as
nextgpt.Tensor (numpy() when numpy is importable; tobytes()/tolist() always).

Every C function is also reachable as nextgpt.lib.ngpt_* with the generated argtypes/restype
(nextgpt.capi holds the structs, enums and constants), including ones this layer does not wrap.

The layer is one module per stage (nextgpt.tensor, .media, .backbone, .pipeline, ...), as the C
library is; everything public is exported here: import it from nextgpt itself.
"""
from . import _enums, _library
from ._library import abi_version, capi, has_cuda_build, lib, version, version_number
from .backbone import Backbone, Generation, Session, TurnGroup, TurnResult
from .context import Context
from .decoder import Decoder
from .encoder import Encoder
from .error import Error, clear_error
from .media import (Audio, Image, video_codec, video_encode, video_postprocess, video_preprocess,
                    video_save)
from .memory import MemoryEstimate, estimate_memory
from .pipeline import Pipeline, PipelineOutput, PipelineResult
from .projector import Projector
from .scheduler import Scheduler
from .tensor import Tensor
from .tokenizer import Tokenizer

__all__ = ["Error", "Context", "Tensor", "Tokenizer", "Scheduler", "Image", "Audio", "Decoder",
           "Encoder", "Projector", "Backbone", "Session", "TurnResult", "TurnGroup", "Pipeline",
           "PipelineResult", "PipelineOutput", "MemoryEstimate", "estimate_memory", "version", "version_number", "abi_version", "has_cuda_build", "video_preprocess",
           "video_postprocess", "video_encode", "video_save", "video_codec", "Generation", "clear_error",
           "lib", "capi"]

#: functions the header declares that the loaded library does not export (an older library)
missing_functions = _library.missing_functions
# the text getters called through their own NUL-safe prototypes, not lib (the tests count them)
_result_text = _library._result_text

# the enums: one IntEnum per C enum of the header (nextgpt.Dtype, nextgpt.Modality, ...)
for _n in _enums.__all__:
    globals()[_n] = getattr(_enums, _n)
    __all__.append(_n)
del _n

# what this package exports calls itself nextgpt.X (reprs, tracebacks, pickles, help()), not the
# module of the stage it is written in (nextgpt.error.Error)
for _n in __all__:
    _o = globals()[_n]
    if (isinstance(_o, type) or callable(_o)) and getattr(_o, "__module__", "").startswith("nextgpt."):
        _o.__module__ = "nextgpt"
del _n, _o
