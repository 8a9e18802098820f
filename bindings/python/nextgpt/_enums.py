"""The header's enums as IntEnums, made from the generated tables at import so that a new enum
needs no Python; their module is the package, so reprs and pickles say nextgpt.Dtype."""
import enum
import os

from ._library import capi

__all__ = []  # the enums' names, which the package re-exports


def _enum_class(cname, members):
    words = cname[len("ngpt_"):].split("_")
    pyname = "".join(w.capitalize() for w in words)
    names = list(members)
    prefix = os.path.commonprefix(names)
    prefix = prefix[:prefix.rfind("_") + 1] if len(names) > 1 else "NGPT_"
    while any(not n[len(prefix):] or n[len(prefix)].isdigit() for n in names):  # no "0_1_5"
        prefix = prefix[:prefix[:-1].rfind("_") + 1]
    return pyname, enum.IntEnum(pyname, [(n[len(prefix):] or n, v) for n, v in members.items()],
                                module="nextgpt")  # the package: where pickle finds them


for _c, _m in capi.ENUMS.items():
    _n, _cls = _enum_class(_c, _m)
    globals()[_n] = _cls
    __all__.append(_n)
del _c, _m, _n, _cls
# the enums this layer uses, bound by name (for readers and pyflakes, who cannot see globals())
(AudioFormat, Backend, DecoderKind, Dtype, ImageFormat, LogLevel, MemoryPart, Modality, PipelineEventKind,
 PipelineStage, SchedulerKind, StopReason, VideoFormat) = (globals()[_n] for _n in (
    "AudioFormat", "Backend", "DecoderKind", "Dtype", "ImageFormat", "LogLevel", "MemoryPart", "Modality",
    "PipelineEventKind", "PipelineStage", "SchedulerKind", "StopReason", "VideoFormat"))
