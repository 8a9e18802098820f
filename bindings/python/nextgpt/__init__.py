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
"""
import array
import collections.abc
import ctypes
import ctypes.util
import enum
import functools
import io
import numbers
import os
import struct
import sys
import threading
import _thread
import types
import weakref

from . import _capi as capi

try:
    import numpy as _np
except ImportError:  # numpy is optional: lists, bytes and array.array work too
    _np = None

__all__ = ["Error", "Context", "Tensor", "Tokenizer", "Scheduler", "Image", "Audio", "Decoder",
           "Encoder", "Projector", "Backbone", "Session", "TurnResult", "TurnGroup", "Pipeline",
           "PipelineResult", "PipelineOutput", "MemoryEstimate", "estimate_memory", "version", "version_number", "abi_version", "has_cuda_build", "video_preprocess",
           "video_postprocess", "video_encode", "video_save", "video_codec", "Generation", "clear_error",
           "lib", "capi"]

# ---- loading -------------------------------------------------------------------------------


def _load_library():
    tried = []
    env = os.environ.get("NGPT_LIBRARY")
    if env:
        return ctypes.CDLL(env)  # an explicit choice: its failure is the error to show
    # inside a meson build tree: <build>/bindings/python/nextgpt/ -> <build>/lib/libnextgpt.so
    build = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    cand = os.path.join(build, "lib", "libnextgpt.so")
    if os.path.exists(os.path.join(build, "build.ninja")) and os.path.exists(cand):
        return ctypes.CDLL(cand)
    tried.append(cand)
    for name in ("libnextgpt.so.%d" % capi.NGPT_ABI_VERSION, ctypes.util.find_library("nextgpt")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            tried.append(name)
    raise ImportError("libnextgpt not found (set NGPT_LIBRARY to the path of libnextgpt.so); tried: "
                      + ", ".join(tried))


lib = _load_library()
#: functions the header declares that the loaded library does not export (an older library)
missing_functions = capi.bind(lib)
if not missing_functions and lib.ngpt_abi_version() != capi.NGPT_ABI_VERSION:
    raise ImportError("libnextgpt ABI %d loaded, these bindings are for ABI %d"
                      % (lib.ngpt_abi_version(), capi.NGPT_ABI_VERSION))

# Text that comes with its length may hold NUL bytes (the byte token <0x00>): the generated
# c_char_p of `char *` would stop at the first one. These read it through a void pointer.
_text_fn = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
_result_text = {name: ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t))((name, lib))
                for name in ("ngpt_turn_result_text", "ngpt_pipeline_result_text") if name not in missing_functions}

# ---- enums: one IntEnum per C enum, made from the generated tables ------------------------


def _enum_class(cname, members):
    words = cname[len("ngpt_"):].split("_")
    pyname = "".join(w.capitalize() for w in words)
    names = list(members)
    prefix = os.path.commonprefix(names)
    prefix = prefix[:prefix.rfind("_") + 1] if len(names) > 1 else "NGPT_"
    while any(not n[len(prefix):] or n[len(prefix)].isdigit() for n in names):  # no "0_1_5"
        prefix = prefix[:prefix[:-1].rfind("_") + 1]
    return pyname, enum.IntEnum(pyname, [(n[len(prefix):] or n, v) for n, v in members.items()],
                                module=__name__)


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

# ---- errors --------------------------------------------------------------------------------


class Error(Exception):
    """A libnextgpt call failed: .status (int, negative), .status_name ("NGPT_ERR_NOT_FOUND"),
    .message (ngpt_last_error() right after the call), .function (the C function)."""

    def __init__(self, status, message, function=""):
        self.status = int(status)
        self.status_name = lib.ngpt_status_string(self.status).decode()
        self.message = message
        self.function = function
        super().__init__("%s: %s%s" % (self.status_name, message, " (in %s)" % function if function else ""))

    def __reduce__(self):  # pickle and copy (e.g. across a process pool) keep the status and message
        return (type(self), (self.status, self.message, self.function))


def _last_error():
    return lib.ngpt_last_error().decode("utf-8", "replace")


def clear_error():
    """Forget the calling thread's last error message (ngpt_last_error() is "" again)."""
    lib.ngpt_clear_error()


_log_interrupted = False  # a log callback on the main thread caught Ctrl-C during a call


def _interrupt_after_call():
    """Ctrl-C in a log callback: ctypes would print it and drop it, and a log line cannot cancel
    the call that logs, so the KeyboardInterrupt is raised once that call has returned. On the
    main thread interrupt_main() would be taken at the callback's own next bytecode (and dropped
    again), so _call raises it; from a worker thread the main thread takes it on its return."""
    global _log_interrupted
    if threading.current_thread() is threading.main_thread():
        _log_interrupted = True
    else:
        _thread.interrupt_main()


def _call(name, *args):
    """Call lib.<name>; raise Error unless it returned NGPT_OK."""
    global _log_interrupted
    st = getattr(lib, name)(*args)
    if _log_interrupted:
        _log_interrupted = False
        raise KeyboardInterrupt
    if st != capi.NGPT_OK:
        raise Error(st, _last_error(), name)
    return st


class _Raised:
    """The first exception a callback raised: a Python exception must not unwind into C, so the
    trampoline cancels the call instead (its return value), and the call's wrapper re-raises it
    once the C call has returned (chained to the library's NGPT_ERR_CANCELLED, if any).
    KeyboardInterrupt too: Ctrl-C in a callback cancels the call, then interrupts."""

    def __init__(self):
        self.exc = None

    def guard(self, fn, on_error=False):
        def tramp(*args):
            try:
                return fn(*args)
            except BaseException as e:  # noqa: B902 (re-raised by check())
                if self.exc is None:
                    self.exc = e
                return on_error
        return tramp

    def check(self):
        if self.exc is not None:
            e, self.exc = self.exc, None
            raise e

    def call(self, name, *args):
        """_call(name, *args), re-raising a callback's exception in place of its cancellation."""
        try:
            st = _call(name, *args)
        except Error:
            self.check()
            raise
        self.check()
        return st

    def result(self, name, out, free, make, *args):
        """call(name, byref(out), *args) for a call that returns a result object to free: the
        result made by make(out), and out freed, also when a callback's exception (a cancelled
        turn returns normally) is re-raised instead."""
        try:
            _call(name, ctypes.byref(out), *args)
        except Error:
            self.check()
            raise
        try:
            self.check()
            return make(out)
        finally:
            free(out)


def _str(p):
    return None if p is None else p.decode("utf-8", "replace")


def _cstr(s, what="text"):
    """s (str: UTF-8, or bytes) as a NUL-terminated C string; an embedded NUL would silently cut
    it short in C, so it is refused."""
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if b"\0" in b:
        raise ValueError("%s contains a NUL character" % what)
    return b


def _opt_cstr(s, what):
    return None if s is None else _cstr(s, what)


def _path(p):
    return _cstr(os.fsencode(p), "path %r" % (p,))


def _i32(v, what="id"):
    v = int(v)
    if not -2**31 <= v < 2**31:
        raise ValueError("%s %d does not fit in 32 bits" % (what, v))
    return v


def _int_range(ctype):
    """(lo, hi) of an integer ctypes type, None for any other."""
    if getattr(ctype, "_type_", None) not in tuple("bBhHiIlLqQ"):
        return None
    bits = 8 * ctypes.sizeof(ctype)
    return (-2 ** (bits - 1), 2 ** (bits - 1) - 1) if ctype(-1).value < 0 else (0, 2 ** bits - 1)


def _params(struct, default_fn, **fields):
    """A params struct from its _default, with `fields` set: names the struct has (a misspelt
    keyword would be a silent Python attribute on a ctypes Structure), integers in their C
    type's range (ctypes would wrap 2**32 + 3 to 3)."""
    p = struct()
    _call(default_fn, ctypes.byref(p), ctypes.sizeof(p))
    types_ = dict(struct._fields_)
    for k, v in fields.items():
        if v is None:
            continue
        if k not in types_ or k == "struct_size":
            raise TypeError("%s has no parameter %r" % (struct.__name__, k))
        if isinstance(v, enum.Enum):
            v = int(v)
        r = _int_range(types_[k])
        if r is not None:
            v = int(v)
            if not r[0] <= v <= r[1]:
                raise ValueError("%s=%d is out of range for %s (%d..%d)" % (k, v, struct.__name__, r[0], r[1]))
        setattr(p, k, v)
    return p


def version():
    """The version of the library actually loaded ("0.1.0")."""
    return lib.ngpt_version().decode()


def version_number():
    return lib.ngpt_version_number()


def abi_version():
    return lib.ngpt_abi_version()


def has_cuda_build():
    return bool(lib.ngpt_has_cuda_build())

# ---- handles -------------------------------------------------------------------------------


# Handles form a tree: a Context's stage handles, a Backbone's sessions. The C rule is that a
# child is freed before its parent. close() closes the children first; the garbage collector
# frees a child before its parent because a child keeps its parent alive, except in a reference
# cycle, where finalizers run in any order: a parent finalized while children live (its count of
# them, _live) is only marked, and the last child to go frees it. A handle in use by a call
# (_busy, counted by the wrapped methods) cannot be closed from another thread, or from a
# callback of that call: close() raises instead of freeing what the call is using.
_life = threading.RLock()  # re-entrant: a collection (finalizers) may run inside a held block


def _in_use(h):
    return RuntimeError("%s is in use by a call that has not returned (another thread, or a callback of "
                        "that call): close it after the call" % type(h).__name__)


class _Handle:
    """An owned C handle: close() frees it once; context manager; __del__ as a last resort."""
    _exclusive = False  # a stateful handle: its methods' calls may not overlap (see _busy_call)
    _excl = 0       # exclusive calls in progress
    _free = None    # name of the ngpt_*_free function
    _ptr = None
    _parent = None  # the handle that must outlive this one
    _live = 0       # children not yet freed
    _pending = False  # finalized with children alive: freed by the last of them
    _busy = 0       # calls in progress on this handle
    _borrowed = False  # lent by its parent (a pipeline's stage, a backbone's tokenizer): never freed here

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for name, v in list(vars(cls).items()):
            if name == "__init__" and isinstance(v, types.FunctionType):  # the parent in use while it loads
                setattr(cls, name, _busy_call(v, constructor=True))
            if name.startswith("_") or name == "close":
                continue
            if isinstance(v, property) and v.fget is not None:  # getters: shared
                setattr(cls, name, property(_busy_call(v.fget), v.fset, v.fdel, v.__doc__))
            elif isinstance(v, types.FunctionType):
                setattr(cls, name, _busy_call(v, exclusive=cls._exclusive))

    def _adopt(self, ptr, parent=None):
        with _life:
            self._ptr = ptr
            if parent is not None:
                self._parent = parent
                parent._live += 1
                parent._kids().add(self)

    @classmethod
    def _lend(cls, ptr, owner):
        """A handle of cls for a pointer that `owner` lends (None for NULL): Python never frees it; it
        keeps the owner alive, becomes closed when the owner closes, and its exclusive calls are
        also calls of the owner (one at a time with the owner's own). close() only forgets it."""
        if not ptr:
            return None
        h = cls.__new__(cls)
        h._borrowed = True
        h._adopt(ptr, owner)
        return h

    def _lent(self, key, cls, ptr):
        """The handle this handle lends as `key` (cached while it is referenced: the same object
        each time), for the pointer the library returns now (None for NULL)."""
        addr = ctypes.cast(ptr, ctypes.c_void_p).value if ptr else None
        with _life:
            cache = self.__dict__.get("_lent_cache")
            if cache is None:
                cache = self._lent_cache = weakref.WeakValueDictionary()
            h = cache.get(key)
            if h is not None and not h.closed and ctypes.cast(h._ptr, ctypes.c_void_p).value == addr:
                return h
        if h is not None:
            h.close()  # a pointer the owner no longer lends
        h = cls._lend(ptr, self)
        with _life:
            if h is None:
                cache.pop(key, None)
            else:
                cache[key] = h
        return h

    def _kids(self):
        k = self.__dict__.get("_children")
        if k is None:
            k = self._children = weakref.WeakSet()
        return k

    @property
    def closed(self):
        return not self._ptr

    def _h(self):
        if not self._ptr:
            raise ValueError("%s is closed" % type(self).__name__)
        return self._ptr

    def _check_idle(self):
        """Raise if this handle or a descendant is in a call (under _life)."""
        if self._busy:
            raise _in_use(self)
        for k in list(self.__dict__.get("_children", ())):
            k._check_idle()

    def close(self):
        """Free the handle (and first its children: a Context's stage handles, a Backbone's
        sessions). A second close() does nothing."""
        with _life:
            self._check_idle()
            kids = list(self.__dict__.get("_children", ()))
        for k in kids:
            k.close()
        self._release()

    def _release(self):
        with _life:
            if self._busy:  # a call began since close() checked: the check and the swap are one step
                raise _in_use(self)
            ptr, self._ptr = self._ptr, None
            if ptr and self._live:  # children the collector has not finalized yet
                self._ptr, self._pending = ptr, True
                return
        if not ptr:
            return
        if not self._borrowed:  # a lent handle is freed by its owner
            getattr(lib, self._free)(ptr)
        with _life:
            parent, self._parent = self._parent, None
            if parent is not None:
                parent._live -= 1
                last = parent._pending and parent._live == 0
        if parent is not None:
            parent.__dict__.get("_children", set()).discard(self)
            if last:
                parent._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._release()  # children are gone (they keep us alive) or finalized after us
        except Exception:  # interpreter shutdown: the library may already be gone
            pass

    def __copy__(self):
        raise TypeError("%s owns a C handle: it cannot be copied" % type(self).__name__)

    def __deepcopy__(self, memo):
        raise TypeError("%s owns a C handle: it cannot be copied" % type(self).__name__)

    def __reduce__(self):
        raise TypeError("%s owns a C handle: it cannot be pickled" % type(self).__name__)


def _materialized(args, kwargs):
    """args and kwargs with one-shot iterators (media given as a generator) made lists, so that
    the handles in them are counted by _used and the function still sees every item."""
    def listed(x):
        return list(x) if isinstance(x, collections.abc.Iterator) and not isinstance(x, io.IOBase) else x
    return tuple(listed(a) for a in args), {k: listed(v) for k, v in kwargs.items()}


def _used(args, kwargs):
    """The handles and tensors among a call's arguments (also inside lists and (Modality, x)
    pairs): they must stay open while the call runs."""
    out = []
    for x in list(args) + list(kwargs.values()):
        # a list of numbers is data (a scheduler's floats): not scanned; any other list is, whole
        seq = isinstance(x, (list, tuple)) and x and not isinstance(x[0], numbers.Number)
        for y in (x if seq else (x,)):
            for z in (y if isinstance(y, tuple) else (y,)):
                if isinstance(z, (_Handle, Tensor)):
                    out.append(z)
    return out


def _busy_call(f, exclusive=False, constructor=False):
    """f(self, ...) counted in self._busy while it runs, and each handle or tensor it is given
    in theirs: close() refuses while a call uses them (see _Handle). exclusive: a second call
    of the same handle (another thread, or a callback of the running call) raises instead of
    changing the state the running one uses; on a lent handle (a pipeline's stage) the owner's
    calls count too. constructor: only the arguments (the parent that the new handle is loaded
    from) are counted."""
    @functools.wraps(f)
    def call(self, *args, **kwargs):
        args, kwargs = _materialized(args, kwargs)
        used = _used(args, kwargs)
        if not constructor:
            used.append(self)
        with _life:
            excl = []
            if exclusive:
                excl.append(self)
                if self._borrowed and self._parent is not None:
                    excl.append(self._parent)
            for h in excl:
                if h._excl:
                    raise RuntimeError("%s is already in a call (another thread, or a callback of that call): "
                                       "one call at a time per %s" % (type(h).__name__, type(h).__name__))
            for h in used:
                h._busy += 1
            for h in excl:
                h._excl += 1
        try:
            return f(self, *args, **kwargs)
        finally:
            with _life:
                for h in used:
                    h._busy -= 1
                for h in excl:
                    h._excl -= 1
    return call


def _busy_fn(f):
    """A module-level function counted in the _busy of the handles and tensors it is given (see
    _busy_call): they cannot be closed while it runs."""
    @functools.wraps(f)
    def call(*args, **kwargs):
        args, kwargs = _materialized(args, kwargs)
        used = _used(args, kwargs)
        with _life:
            for h in used:
                h._busy += 1
        try:
            return f(*args, **kwargs)
        finally:
            with _life:
                for h in used:
                    h._busy -= 1
    return call


class Context(_Handle):
    """ngpt_context: device, threads, logging and memory accounting.

    device: "auto" | "cpu" | "cuda" or a DeviceKind. log_callback(level: LogLevel, message: str)
    replaces the default stderr logger; it is kept alive as long as the context. It may be called
    from the library's worker threads. An exception it raises cannot cancel the call that logged:
    it goes to sys.unraisablehook (ctypes' report of a failed callback), and a KeyboardInterrupt
    is raised in the main thread once that call has returned."""
    _free = "ngpt_context_free"

    def __init__(self, device="auto", device_index=0, n_threads=0, log_level=None,
                 log_callback=None, memory_limit=0):
        if isinstance(device, str):
            kinds = {"auto": capi.NGPT_DEVICE_AUTO, "cpu": capi.NGPT_DEVICE_CPU, "cuda": capi.NGPT_DEVICE_CUDA}
            if device.lower() not in kinds:
                raise ValueError("device %r: expected one of %s" % (device, ", ".join(kinds)))
            device = kinds[device.lower()]
        p = _params(capi.ngpt_context_params, "ngpt_context_params_default", device=device,
                    device_index=device_index, n_threads=n_threads, log_level=log_level,
                    memory_limit=memory_limit)
        self._log = None
        if log_callback is not None:
            def tramp(level, message, _user, fn=log_callback):
                try:
                    fn(LogLevel(level), message.decode("utf-8", "replace"))  # noqa: F821
                except KeyboardInterrupt:
                    _interrupt_after_call()
            self._log = capi.ngpt_log_fn(tramp)
            p.log_callback = self._log
        out = ctypes.POINTER(capi.ngpt_context)()
        _call("ngpt_context_create", ctypes.byref(out), ctypes.byref(p))
        self._adopt(out)

    @property
    def backend(self):
        return Backend(lib.ngpt_context_backend(self._h()))  # noqa: F821

    @property
    def backend_name(self):
        return lib.ngpt_backend_name(lib.ngpt_context_backend(self._h())).decode()

    @property
    def device_name(self):
        return _str(lib.ngpt_context_device_name(self._h()))

    @property
    def backend_note(self):
        return _str(lib.ngpt_context_backend_note(self._h()))

    @property
    def n_threads(self):
        return lib.ngpt_context_n_threads(self._h())

    @property
    def memory_used(self):
        return lib.ngpt_context_memory_used(self._h())

    @property
    def memory_peak(self):
        return lib.ngpt_context_memory_peak(self._h())

# ---- tensors -------------------------------------------------------------------------------


_NP_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "uint16", "I64": "int64", "I32": "int32",
              "U8": "uint8", "BOOL": "bool", "F64": "float64", "I16": "int16", "I8": "int8"}
_ARRAY_CODES = {"F32": "f", "F64": "d", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B",
                "BOOL": "B", "F16": "H", "BF16": "H"}


class Tensor:
    """A library-owned ngpt_tensor (an output): .dtype (Dtype), .shape, numpy() (a copy; BF16 as
    uint16 bits), tobytes(), tolist(). close() frees it; so does the garbage collector.
    Tensor.from_buffer makes one from bytes or an array, for the dtypes numpy lacks (BF16)."""

    _closed = False
    _busy = 0  # calls using this tensor (see _busy_call)

    def __init__(self, c_tensor):
        self._t = c_tensor

    @classmethod
    def from_buffer(cls, data, dtype, shape=None):
        """A Tensor of `dtype` holding a copy of data's bytes, as they are: numpy() of a BF16
        Tensor (uint16 bits) comes back through Tensor.from_buffer(bits, Dtype.BF16). data: a
        bytes-like object or a numpy array; shape: a sequence of ints (default: the array's
        shape; a bytes-like object's length in elements)."""
        dtype = Dtype(dtype)  # noqa: F821
        size = lib.ngpt_dtype_size(dtype)
        if _np is not None and isinstance(data, _np.ndarray):
            a = _np.require(data, requirements="C")  # keeps a 0-d array 0-d
            if a.dtype.byteorder not in ("=", "|"):
                a = a.astype(a.dtype.newbyteorder("="))
            if shape is None:
                shape = a.shape
            raw = memoryview(a.reshape(-1).view(_np.uint8))  # also for zero-size arrays
        else:
            raw = memoryview(data).cast("B")
            if shape is None:
                if len(raw) % size:
                    raise ValueError("%d bytes are not whole %s elements" % (len(raw), dtype.name))
                shape = (len(raw) // size,)
        shape = tuple(int(d) for d in shape)
        if len(shape) > capi.NGPT_MAX_DIMS or any(not 0 <= d < 2 ** 63 for d in shape):
            raise ValueError("bad shape %s" % (list(shape),))
        n = size
        for d in shape:
            n *= d
        if n != len(raw):
            raise ValueError("%d bytes for a %s tensor of shape %s (%d bytes)" % (len(raw), dtype.name, list(shape), n))
        t = capi.ngpt_tensor()
        dims = (ctypes.c_int64 * max(len(shape), 1))(*shape)
        _call("ngpt_tensor_create", ctypes.byref(t), dtype, len(shape), dims)
        if n:
            ctypes.memmove(t.data, (ctypes.c_char * n).from_buffer_copy(raw), n)
        return cls(t)

    @property
    def closed(self):
        return self._closed

    def _open(self):
        if self._closed:
            raise ValueError("Tensor is closed")
        return self._t

    @property
    def dtype(self):
        return Dtype(self._open().dtype)  # noqa: F821

    @property
    def shape(self):
        t = self._open()
        return tuple(t.shape[i] for i in range(t.rank))

    @property
    def nbytes(self):
        return lib.ngpt_tensor_nbytes(ctypes.byref(self._open()))

    def __len__(self):
        shape = self.shape
        return shape[0] if shape else 1

    def tobytes(self):
        t = self._open()
        if not t.data:
            return b""
        return ctypes.string_at(t.data, self.nbytes)

    def numpy(self):
        if _np is None:
            raise RuntimeError("numpy is not installed: use tobytes() or tolist()")
        name = lib.ngpt_dtype_name(self._t.dtype).decode()
        return _np.frombuffer(self.tobytes(), dtype=_NP_DTYPES[name]).reshape(self.shape).copy()

    def tolist(self):
        """Nested lists of Python numbers; F16 and BF16 as the floats they hold."""
        name = lib.ngpt_dtype_name(self._open().dtype).decode()
        data = self.tobytes()
        if name == "F16":
            flat = list(struct.unpack("=%de" % (len(data) // 2), data))
        elif name == "BF16":  # the high half of a float32
            bits = array.array("H", data)
            flat = array.array("f", array.array("I", [b << 16 for b in bits]).tobytes()).tolist()
        else:
            flat = array.array(_ARRAY_CODES[name], data).tolist()

        def nest(lo, shape):
            if len(shape) == 1:
                return flat[lo:lo + shape[0]]
            step = 1
            for d in shape[1:]:
                step *= d
            return [nest(lo + i * step, shape[1:]) for i in range(shape[0])]
        return nest(0, self.shape) if self.shape else flat[0]

    def close(self):
        with _life:
            if self._busy:
                raise RuntimeError("Tensor is in use by a call that has not returned: close it after the call")
            if self._closed:
                return
            self._closed = True
        lib.ngpt_tensor_free(ctypes.byref(self._t))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __copy__(self):
        raise TypeError("Tensor owns library memory: copy its contents with numpy() or tobytes()")

    __deepcopy__ = __reduce__ = lambda self, *a: Tensor.__copy__(self)

    def __repr__(self):
        if self._closed:
            return "Tensor(closed)"
        return "Tensor(%s, %s)" % (self.dtype.name, list(self.shape))


def _new_tensor_out():
    return capi.ngpt_tensor()


def _copy_of(ptr):
    """A library-owned Tensor copy of a borrowed ngpt_tensor (a callback's argument), or None."""
    if not ptr:
        return None
    src = ptr.contents
    t = capi.ngpt_tensor()
    shape = (ctypes.c_int64 * max(src.rank, 1))(*[src.shape[i] for i in range(src.rank)])
    _call("ngpt_tensor_create", ctypes.byref(t), src.dtype, src.rank, shape)
    n = lib.ngpt_tensor_nbytes(ctypes.byref(t))
    if n:
        ctypes.memmove(t.data, src.data, n)
    return Tensor(t)


def _f32_copy(p, shape):
    """A library-owned F32 Tensor holding a copy of the floats at p (borrowed), of `shape`."""
    t = capi.ngpt_tensor()
    dims = (ctypes.c_int64 * len(shape))(*shape)
    _call("ngpt_tensor_create", ctypes.byref(t), capi.NGPT_DTYPE_F32, len(shape), dims)
    n = lib.ngpt_tensor_nbytes(ctypes.byref(t))
    if n:
        ctypes.memmove(t.data, p, n)
    return Tensor(t)


def _tensor_view(x):
    """A caller-owned ngpt_tensor viewing x (Tensor, numpy array); returns (view, keepalive)."""
    if x is None:
        return None, None
    if isinstance(x, Tensor):
        return ctypes.pointer(x._open()), x
    if isinstance(x, _F32Rows):
        return ctypes.pointer(x.t), x
    if _np is None:
        raise TypeError("tensor inputs need numpy (or a nextgpt.Tensor)")
    if isinstance(x, capi.ngpt_tensor):  # a view made here (Projector.output's batch of one)
        return ctypes.pointer(x), x
    a = _np.require(x, requirements="CA")  # C order, aligned; ascontiguousarray would make a 0-d array 1-d
    if a.dtype.byteorder not in ("=", "|"):  # '>f4' is "float32" too: the library reads native order
        a = a.astype(a.dtype.newbyteorder("="))
    codes = {v: k for k, v in _NP_DTYPES.items() if k != "BF16"}
    if a.dtype.name not in codes:
        raise TypeError("unsupported dtype %s" % a.dtype)
    if a.ndim > capi.NGPT_MAX_DIMS:
        raise ValueError("rank %d > NGPT_MAX_DIMS" % a.ndim)
    t = capi.ngpt_tensor()
    t.dtype = getattr(capi, "NGPT_DTYPE_" + codes[a.dtype.name])
    t.rank = a.ndim
    for i, d in enumerate(a.shape):
        t.shape[i] = d
    t.data = a.ctypes.data
    t.owner = None
    return ctypes.pointer(t), a


def _reshaped(src, shape, keep):
    """A caller-owned ngpt_tensor viewing src's data (an ngpt_tensor) with another shape of the
    same element count; `keep` (what owns the data) stays alive with it."""
    t = capi.ngpt_tensor()
    t.dtype, t.rank, t.data, t.owner = src.dtype, len(shape), src.data, None
    for i, d in enumerate(shape):
        t.shape[i] = d
    t._keep = keep
    return t


def _batch_of_one(x):
    """A 2-D Tensor [n, w] as a [1, n, w] view of the same memory; anything else unchanged."""
    if not isinstance(x, Tensor) or len(x.shape) != 2:
        return x
    return _reshaped(x._open(), (1,) + x.shape, x)


class _F32Rows:
    """Floats as an F32 [1, n, width] caller tensor without numpy (x: flat, or rows)."""

    def __init__(self, x, width):
        p, n, self.keep, _ = _floats(_flat_floats(x))
        if not width or not n or n % width:
            raise ValueError("%d floats are not rows of %d" % (n, width))
        self.t = capi.ngpt_tensor()
        self.t.dtype, self.t.rank, self.t.owner = capi.NGPT_DTYPE_F32, 3, None
        self.t.shape[0], self.t.shape[1], self.t.shape[2] = 1, n // width, width
        self.t.data = ctypes.cast(p, ctypes.c_void_p)


def _flat_floats(x):
    """Rows of floats (lists, tuples or arrays of floats) flattened; a flat sequence unchanged."""
    x = x if isinstance(x, array.array) else list(x)
    if len(x) and isinstance(x[0], (list, tuple, array.array)):
        return [float(v) for row in x for v in row]
    return x


def _floats(x, writable=False):
    """(pointer to float, n, keepalive, result) for a sequence of floats. A writable float32
    C-contiguous numpy array is used in place (result is x itself); anything else is copied."""
    if isinstance(x, Tensor):  # an F32 Tensor in place (the library's memory)
        if x.dtype != Dtype.F32:  # noqa: F821
            raise TypeError("expected an F32 Tensor, not %s" % x.dtype.name)
        t = x._open()
        return ctypes.cast(t.data, ctypes.POINTER(ctypes.c_float)), lib.ngpt_tensor_numel(ctypes.byref(t)), x, x
    if _np is not None and isinstance(x, _np.ndarray):
        # in place only when C can use it as is (and write it, if asked); else a fresh copy
        # (ascontiguousarray would hand back a read-only or misaligned float32 array unchanged)
        a = x if (x.dtype == _np.float32 and x.flags.c_contiguous and x.flags.aligned
                  and (x.flags.writeable or not writable)) else _np.array(x, dtype=_np.float32, order="C")
        return a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), a.size, a, a
    a = x if isinstance(x, array.array) and x.typecode == "f" else array.array("f", x)
    if not len(a):
        return None, 0, a, a
    buf = (ctypes.c_float * len(a)).from_buffer(a)
    return ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), len(a), (a, buf), a

# ---- tokenizer -----------------------------------------------------------------------------


class Tokenizer(_Handle):
    """ngpt_tokenizer: the LLaMA tokenizer (+ NExT-GPT's added tokens) of a tokenizer folder."""
    _free = "ngpt_tokenizer_free"

    def __init__(self, model_dir):
        out = ctypes.POINTER(capi.ngpt_tokenizer)()
        _call("ngpt_tokenizer_create", ctypes.byref(out), _path(model_dir))
        self._adopt(out)

    def encode(self, text, add_bos=True):
        """Token ids (list of int) of text (str or UTF-8 bytes)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        n = ctypes.c_size_t(0)
        st = lib.ngpt_tokenizer_encode(self._h(), data, len(data), int(add_bos), None, 0, ctypes.byref(n))
        if st not in (capi.NGPT_OK, capi.NGPT_ERR_BUFFER_TOO_SMALL):
            raise Error(st, _last_error(), "ngpt_tokenizer_encode")
        ids = (ctypes.c_int32 * max(n.value, 1))()
        _call("ngpt_tokenizer_encode", self._h(), data, len(data), int(add_bos), ids, n.value, ctypes.byref(n))
        return list(ids[:n.value])

    def decode_bytes(self, ids, skip_special_tokens=False):
        """The UTF-8 bytes of ids (may contain NUL from the byte token <0x00>)."""
        ids = [_i32(i) for i in ids]
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        n = ctypes.c_size_t(0)
        st = lib.ngpt_tokenizer_decode(self._h(), arr, len(ids), int(skip_special_tokens), None, 0,
                                       ctypes.byref(n))
        if st not in (capi.NGPT_OK, capi.NGPT_ERR_BUFFER_TOO_SMALL):
            raise Error(st, _last_error(), "ngpt_tokenizer_decode")
        buf = ctypes.create_string_buffer(n.value + 1)
        _call("ngpt_tokenizer_decode", self._h(), arr, len(ids), int(skip_special_tokens), buf,
              n.value + 1, ctypes.byref(n))
        return buf.raw[:n.value]

    def decode(self, ids, skip_special_tokens=False):
        """The text of ids (str)."""
        return self.decode_bytes(ids, skip_special_tokens).decode("utf-8", "replace")

    @property
    def vocab_size(self):
        return lib.ngpt_tokenizer_vocab_size(self._h())

    def __len__(self):
        return self.vocab_size

    def token_to_piece(self, id):
        """The stored piece of id ("▁the", "<0x0A>", "[IMG0]"); None when out of range."""
        return _str(lib.ngpt_tokenizer_token_to_piece(self._h(), _i32(id)))

    def piece_to_id(self, piece):
        """The id of exactly this piece, or None."""
        i = lib.ngpt_tokenizer_piece_to_id(self._h(), _cstr(piece, "piece"))
        return None if i < 0 else i

    @property
    def bos_id(self):
        i = lib.ngpt_tokenizer_bos_id(self._h())
        return None if i < 0 else i

    @property
    def eos_id(self):
        i = lib.ngpt_tokenizer_eos_id(self._h())
        return None if i < 0 else i

# ---- schedulers ----------------------------------------------------------------------------


class Scheduler(_Handle):
    """ngpt_scheduler: DDIM, DDPM, PNDM, DPM-Solver (multistep or singlestep), UniPC or DEIS
    multistep, or one of the k-diffusion samplers (Euler, Euler ancestral, Heun, LMS, KDPM2, KDPM2
    ancestral) from a diffusers scheduler_config.json.

    Scheduler("sd/scheduler/scheduler_config.json") or Scheduler(json_text='{...}'); keyword
    params are the ngpt_scheduler_params fields (kind, prediction_type, algorithm_type,
    solver_type, solver_order, eta, use_clipped_model_output)."""
    _free = "ngpt_scheduler_free"
    _exclusive = True

    def __init__(self, config_path=None, json_text=None, **params):
        p = _params(capi.ngpt_scheduler_params, "ngpt_scheduler_params_default", **params)
        out = ctypes.POINTER(capi.ngpt_scheduler)()
        if (config_path is None) == (json_text is None):
            raise ValueError("give exactly one of config_path and json_text")
        if config_path is not None:
            _call("ngpt_scheduler_create", ctypes.byref(out), _path(config_path), ctypes.byref(p))
        else:
            data = json_text.encode("utf-8") if isinstance(json_text, str) else bytes(json_text)
            _call("ngpt_scheduler_create_from_json", ctypes.byref(out), data, len(data), ctypes.byref(p))
        self._adopt(out)

    @property
    def kind(self):
        return SchedulerKind(lib.ngpt_scheduler_get_kind(self._h()))  # noqa: F821

    def set_timesteps(self, n):
        _call("ngpt_scheduler_set_timesteps", self._h(), _i32(n, "steps"))

    @property
    def timesteps(self):
        """The timesteps in stepping order: a list of int, or of float for the k-diffusion samplers
        (whose timesteps are fractional; the model takes them rounded to float32)."""
        if self.kind in (SchedulerKind.EULER, SchedulerKind.EULER_ANCESTRAL, SchedulerKind.HEUN,  # noqa: F821
                         SchedulerKind.LMS, SchedulerKind.KDPM2, SchedulerKind.KDPM2_ANCESTRAL):  # noqa: F821
            ts = ctypes.POINTER(ctypes.c_double)()
            n = ctypes.c_size_t(0)
            _call("ngpt_scheduler_timesteps_f64", self._h(), ctypes.byref(ts), ctypes.byref(n))
            return ts[:n.value]
        ts = ctypes.POINTER(ctypes.c_int64)()
        n = ctypes.c_size_t(0)
        _call("ngpt_scheduler_timesteps", self._h(), ctypes.byref(ts), ctypes.byref(n))
        return ts[:n.value]

    @property
    def alphas_cumprod(self):
        acp = ctypes.POINTER(ctypes.c_float)()
        n = ctypes.c_size_t(0)
        _call("ngpt_scheduler_alphas_cumprod", self._h(), ctypes.byref(acp), ctypes.byref(n))
        return acp[:n.value]

    @property
    def init_noise_sigma(self):
        return lib.ngpt_scheduler_init_noise_sigma(self._h())

    def step(self, model_output, timestep, sample, variance_noise=None):
        """One denoising step. Returns the new sample: `sample` itself, updated in place, when it
        is a writable float32 C-contiguous numpy array or an array('f'); else a new one."""
        sp, n, keep_s, result = _floats(sample, writable=True)
        mp, nm, keep_m, _ = _floats(model_output)
        if nm != n:
            raise ValueError("model_output has %d values, sample %d" % (nm, n))
        vp, keep_v = None, None
        if variance_noise is not None:
            vp, nv, keep_v, _ = _floats(variance_noise)
            if nv != n:
                raise ValueError("variance_noise has %d values, sample %d" % (nv, n))
        _call("ngpt_scheduler_step_f64", self._h(), mp, float(timestep), sp, n, vp)
        return result

    def reset(self):
        _call("ngpt_scheduler_reset", self._h())

    def scale_model_input(self, sample, timestep):
        """The model's input at `timestep` (in place where `sample` allows, as step): unchanged,
        or divided by (sigma^2 + 1)^0.5 for the k-diffusion samplers."""
        sp, n, keep, result = _floats(sample, writable=True)
        _call("ngpt_scheduler_scale_model_input_f64", self._h(), sp, n, float(timestep))
        return result

    def add_noise(self, original, noise, timestep):
        """sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise (the k-diffusion samplers:
        original + sigma(t) * noise), a new array."""
        op, n, keep_o, _ = _floats(original)
        np_, nn, keep_n, _ = _floats(noise)
        if nn != n:
            raise ValueError("noise has %d values, original %d" % (nn, n))
        outp, _, keep_out, result = _floats(_np.zeros(n, _np.float32) if _np is not None else [0.0] * n,
                                            writable=True)
        _call("ngpt_scheduler_add_noise_f64", self._h(), outp, op, np_, n, float(timestep))
        if _np is not None and isinstance(original, _np.ndarray):
            return result.reshape(original.shape)
        return result

# ---- media ---------------------------------------------------------------------------------


def _is_pil(x):
    """Whether x is a PIL image. Pillow is not imported here: a caller holding one has done so."""
    m = sys.modules.get("PIL.Image")
    return m is not None and isinstance(x, m.Image)


class Image(_Handle):
    """ngpt_image: a decoded RGB8 image. Image(path), Image.from_bytes(data), Image.from_rgb8(...),
    Image.from_pil(pil_image); to_pil()."""
    _free = "ngpt_image_free"

    def __init__(self, path=None, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.POINTER(capi.ngpt_image)()
            _call("ngpt_image_load", ctypes.byref(_ptr), _path(path))
        self._adopt(_ptr)

    @classmethod
    def from_bytes(cls, data, name=None):
        out = ctypes.POINTER(capi.ngpt_image)()
        data = bytes(data)
        _call("ngpt_image_load_memory", ctypes.byref(out), data, len(data),
              _opt_cstr(name, "name"))
        return cls(_ptr=out)

    @classmethod
    def from_rgb8(cls, pixels, width=None, height=None, stride=0):
        """pixels: a numpy uint8 [h, w, 3] array, or bytes with width and height (rows of
        stride bytes, 0 = 3 * width). For float pixels in [0, 1] use from_tensor."""
        if _np is not None and isinstance(pixels, _np.ndarray):
            if pixels.dtype != _np.uint8:
                raise TypeError("from_rgb8 takes uint8 pixels, not %s (float in [0, 1]: Image.from_tensor)"
                                % pixels.dtype)
            a = _np.ascontiguousarray(pixels)
            if a.ndim != 3 or a.shape[2] != 3:
                raise ValueError("expected [height, width, 3] uint8, got %s" % (a.shape,))
            height, width = a.shape[:2]
            data = a.tobytes()
            if stride:
                raise ValueError("stride is for bytes input; an array is packed")
        else:
            data = bytes(pixels)
        if width is None or height is None:
            raise ValueError("bytes input needs width and height")
        width, height, stride = _i32(width, "width"), _i32(height, "height"), _i32(stride, "stride")
        if stride < 0:
            raise ValueError("stride %d is negative" % stride)
        # the C call reads height rows of stride bytes and takes no length: check it here
        row = stride or 3 * width
        if width > 0 and height > 0 and row >= 3 * width and len(data) < row * (height - 1) + 3 * width:
            raise ValueError("%d bytes of pixels, %dx%d with rows of %d bytes need %d" %
                             (len(data), width, height, row, row * (height - 1) + 3 * width))
        out = ctypes.POINTER(capi.ngpt_image)()
        buf = (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(data or b"\0")
        _call("ngpt_image_from_rgb8", ctypes.byref(out), buf, int(width), int(height), stride)
        return cls(_ptr=out)

    @classmethod
    def from_pil(cls, image):
        """A PIL (Pillow) image, converted with image.convert("RGB") as ImageBind's loader does
        (palette, gray, alpha and CMYK images alike)."""
        if not _is_pil(image):
            raise TypeError("from_pil takes a PIL.Image.Image, not %s" % type(image).__name__)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return cls.from_rgb8(rgb.tobytes(), rgb.width, rgb.height)

    def to_pil(self):
        """The pixels as a PIL (Pillow) RGB image (ImportError without Pillow)."""
        from PIL import Image as _PILImage
        n = self.width * self.height * 3
        return _PILImage.frombytes("RGB", (self.width, self.height),
                                   ctypes.string_at(lib.ngpt_image_pixels(self._h()), n))

    @property
    def width(self):
        return lib.ngpt_image_width(self._h())

    @property
    def height(self):
        return lib.ngpt_image_height(self._h())

    def pixels(self):
        """Packed RGB8: a numpy uint8 [h, w, 3] array, or bytes without numpy."""
        n = self.width * self.height * 3
        data = ctypes.string_at(lib.ngpt_image_pixels(self._h()), n)
        if _np is None:
            return data
        return _np.frombuffer(data, _np.uint8).reshape(self.height, self.width, 3).copy()

    def preprocess(self):
        """ImageBind's vision transform: a Tensor F32 [3, 224, 224]."""
        t = _new_tensor_out()
        _call("ngpt_image_preprocess", ctypes.byref(t), self._h())
        return Tensor(t)

    @classmethod
    def from_tensor(cls, pixels):
        """An image from pixels [H, W, 3]: uint8, or float32 in [0, 1] (rounded as diffusers'
        numpy_to_pil). pixels: a numpy array or a Tensor; a batch of one, [1, H, W, 3] (what
        Decoder.generate returns for one image), is taken as its image."""
        view, keep = _tensor_view(pixels)
        if view is not None and view.contents.rank == 4 and view.contents.shape[0] == 1:
            src = view.contents
            view = ctypes.pointer(_reshaped(src, tuple(src.shape[1:4]), keep))
        out = ctypes.POINTER(capi.ngpt_image)()
        _call("ngpt_image_from_tensor", ctypes.byref(out), view)
        return cls(_ptr=out)

    def encode(self, format="png", quality=0):
        """The encoded file as bytes; format "png" or "jpeg" (quality 1..100, 0 = 90)."""
        blob = ctypes.POINTER(capi.ngpt_blob)()
        _call("ngpt_image_encode", ctypes.byref(blob), self._h(), _image_format(format), _i32(quality, "quality"), 0)
        return _take_blob(blob)

    def save(self, path, format=None, quality=0):
        """Encode and write to path; format None = from the extension (.png, .jpg/.jpeg)."""
        _call("ngpt_image_save", self._h(), _path(path), _image_format(format), _i32(quality, "quality"), 0)

    @staticmethod
    def postprocess(image):
        """F32 [B, 3, H, W] (numpy or Tensor) -> Tensor U8 [B, H, W, 3]."""
        view, keep = _tensor_view(image)
        t = _new_tensor_out()
        _call("ngpt_image_postprocess", ctypes.byref(t), view)
        return Tensor(t)


def _image_format(fmt):
    I = ImageFormat
    return _named_format(fmt, I, {"png": I.PNG, "jpeg": I.JPEG, "jpg": I.JPEG}, "image")


class Audio(_Handle):
    """ngpt_audio: decoded float samples. Audio(path), Audio.from_bytes(data), Audio.from_pcm(...)."""
    _free = "ngpt_audio_free"

    def __init__(self, path=None, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.POINTER(capi.ngpt_audio)()
            _call("ngpt_audio_load", ctypes.byref(_ptr), _path(path))
        self._adopt(_ptr)

    @classmethod
    def from_bytes(cls, data, name=None):
        out = ctypes.POINTER(capi.ngpt_audio)()
        data = bytes(data)
        _call("ngpt_audio_load_memory", ctypes.byref(out), data, len(data),
              _opt_cstr(name, "name"))
        return cls(_ptr=out)

    @classmethod
    def from_pcm(cls, samples, channels, sample_rate):
        """samples: interleaved floats [frames][channels] (flat sequence or numpy array)."""
        sp, n, keep, _ = _floats(samples)
        channels, sample_rate = _i32(channels, "channels"), _i32(sample_rate, "sample_rate")
        if channels > 0 and n % channels:
            raise ValueError("%d samples are not whole frames of %d channels" % (n, channels))
        out = ctypes.POINTER(capi.ngpt_audio)()
        _call("ngpt_audio_from_pcm", ctypes.byref(out), sp, n // max(channels, 1), channels, sample_rate)
        return cls(_ptr=out)

    @property
    def sample_rate(self):
        return lib.ngpt_audio_sample_rate(self._h())

    @property
    def channels(self):
        return lib.ngpt_audio_channels(self._h())

    @property
    def frames(self):
        return lib.ngpt_audio_frames(self._h())

    def samples(self):
        """Interleaved samples: numpy float32 [frames, channels], or a list without numpy."""
        n = self.frames * self.channels
        p = lib.ngpt_audio_samples(self._h())
        if _np is None:
            return p[:n]
        return _np.ctypeslib.as_array(p, (n,)).reshape(self.frames, self.channels).copy() if n else \
            _np.zeros((0, self.channels), _np.float32)

    def encode(self, format="wav"):
        """The encoded file as bytes at the sound's rate and channel count; format "wav" (16-bit
        PCM), "wav_float" (32-bit float), "flac" (16-bit) or "ogg" (Vorbis), or an AudioFormat."""
        blob = ctypes.POINTER(capi.ngpt_blob)()
        _call("ngpt_audio_encode", ctypes.byref(blob), self._h(), _audio_format(format))
        return _take_blob(blob)

    def save(self, path, format=None):
        """Encode and write to path; format None = from the extension (.wav: 16-bit PCM, .flac,
        .ogg/.oga)."""
        _call("ngpt_audio_save", self._h(), _path(path), _audio_format(format))

    def preprocess(self, clip_rule=None):
        """ImageBind's audio transform: a Tensor F32 [3, 1, 128, 204]."""
        p = _params(capi.ngpt_audio_preprocess_params, "ngpt_audio_preprocess_params_default",
                    clip_rule=clip_rule)
        t = _new_tensor_out()
        _call("ngpt_audio_preprocess", ctypes.byref(t), self._h(), ctypes.byref(p))
        return Tensor(t)


def _take_blob(blob):
    """The bytes of an ngpt_blob, which is freed."""
    try:
        return ctypes.string_at(lib.ngpt_blob_data(blob), lib.ngpt_blob_size(blob))
    finally:
        lib.ngpt_blob_free(blob)


def _named_format(fmt, enum_cls, names, what):
    """None -> AUTO; a name (case-insensitive) -> its value; an enum member or int unchanged."""
    if fmt is None:
        return int(enum_cls.AUTO)
    if isinstance(fmt, str):
        if fmt.lower() not in names:
            raise ValueError("%s format %r: expected one of %s" % (what, fmt, ", ".join(sorted(names))))
        return int(names[fmt.lower()])
    return _i32(fmt, what + " format")


def _audio_format(fmt):
    A = AudioFormat
    return _named_format(fmt, A, {"wav": A.WAV16, "wav16": A.WAV16, "wav_float": A.WAV_FLOAT, "flac": A.FLAC,
                                  "ogg": A.OGG}, "audio")


def _video_format(fmt):
    V = VideoFormat
    return _named_format(fmt, V, {"mp4": V.MP4, "webm": V.WEBM}, "video")


def video_preprocess(video, clip_rule=None, name=None):
    """ImageBind's video transform of a file path (str/PathLike) or bytes: a Tensor F32
    [15, 3, 2, 224, 224]."""
    p = _params(capi.ngpt_video_preprocess_params, "ngpt_video_preprocess_params_default",
                clip_rule=clip_rule)
    t = _new_tensor_out()
    if isinstance(video, (bytes, bytearray, memoryview)):
        data = bytes(video)
        _call("ngpt_video_preprocess_memory", ctypes.byref(t), data, len(data),
              _opt_cstr(name, "name"), ctypes.byref(p))
    else:
        _call("ngpt_video_preprocess", ctypes.byref(t), _path(video), ctypes.byref(p))
    return Tensor(t)


@_busy_fn
def video_postprocess(video):
    """Zeroscope's last step (diffusers' tensor2vid): F32 [B, 3, F, H, W] (numpy or Tensor, a VAE
    output) -> Tensor U8 [F, H, B*W, 3] (truncated, not rounded; a batch side by side)."""
    view, keep = _tensor_view(video)
    t = _new_tensor_out()
    _call("ngpt_video_postprocess", ctypes.byref(t), view)
    return Tensor(t)


@_busy_fn
def video_encode(frames, fps=8.0, format="mp4"):
    """Frames U8 [F, H, W, 3] (numpy or Tensor; H and W even) encoded at fps (NExT-GPT: 8) as
    bytes; format "mp4" (H.264, else MPEG-4 part 2) or "webm" (VP9, else VP8), or a VideoFormat."""
    view, keep = _tensor_view(frames)
    blob = ctypes.POINTER(capi.ngpt_blob)()
    _call("ngpt_video_encode", ctypes.byref(blob), view, float(fps), _video_format(format))
    return _take_blob(blob)


@_busy_fn
def video_save(frames, path, fps=8.0, format=None):
    """Encode frames (as video_encode) and write them to path; format None = from the extension
    (.mp4, .webm)."""
    view, keep = _tensor_view(frames)
    _call("ngpt_video_save", view, _path(path), float(fps), _video_format(format))


def video_codec(format="mp4"):
    """The FFmpeg encoder this build uses for a video format ("libx264", "mpeg4", "libvpx-vp9",
    "libvpx"), or None when it has none."""
    return _str(lib.ngpt_media_video_codec(_video_format(format)))

# ---- decoders ------------------------------------------------------------------------------


class Decoder(_Handle):
    """ngpt_decoder: a diffusers pipeline folder (SD 1.5 / AudioLDM / Zeroscope) on ctx's backend.
    Tensor arguments are numpy arrays or nextgpt.Tensor; results are Tensors."""
    _free = "ngpt_decoder_free"
    _exclusive = True

    def __init__(self, ctx, model_dir, kind=None, components=None, compute_dtype=None, flags=None):
        """compute_dtype: Dtype.F32 (default), BF16 (CPU: the UNet's and VAE's matrices and filters in
        BF16, BF16 GEMM/convolution inputs, F32 activations), or F16 / BF16 on a CUDA context. flags:
        NGPT_DECODER_FLAG_* bits (capi), e.g. capi.NGPT_DECODER_FLAG_CUDA_GRAPH |
        capi.NGPT_DECODER_FLAG_CHANNELS_LAST."""
        p = _params(capi.ngpt_decoder_params, "ngpt_decoder_params_default", kind=kind,
                    components=components, compute_dtype=compute_dtype, flags=flags)
        out = ctypes.POINTER(capi.ngpt_decoder)()
        _call("ngpt_decoder_create", ctypes.byref(out), ctx._h(), _path(model_dir), ctypes.byref(p))
        self._adopt(out, ctx)

    @property
    def kind(self):
        return DecoderKind(lib.ngpt_decoder_get_kind(self._h()))  # noqa: F821

    @property
    def vae_scaling_factor(self):
        return lib.ngpt_decoder_vae_scaling_factor(self._h())

    @property
    def sample_rate(self):
        """Hz of an audio decoder's waveform (its vocoder's sampling_rate); 0 for other kinds."""
        return lib.ngpt_decoder_sample_rate(self._h())

    def unet(self, sample, timesteps, encoder_hidden_states=None, class_labels=None):
        views = [_tensor_view(x) for x in (sample, timesteps, encoder_hidden_states, class_labels)]
        t = _new_tensor_out()
        _call("ngpt_decoder_unet", self._h(), ctypes.byref(t), *[v for v, _ in views])
        return Tensor(t)

    def vae_decode(self, latents):
        view, keep = _tensor_view(latents)
        t = _new_tensor_out()
        _call("ngpt_decoder_vae_decode", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def vae_encode(self, image, logvar=False):
        """VAE encode: image F32 [B, in_channels, H, W] in [-1, 1] (H, W multiples of the VAE's
        scale, 8 for SD) -> Tensor F32 [B, latent_channels, H/8, W/8], the latent distribution's
        mean (not multiplied by vae_scaling_factor); logvar=True returns (mean, logvar), the
        log-variance clamped to [-30, 20]."""
        view, keep = _tensor_view(image)
        mean = _new_tensor_out()
        lv = _new_tensor_out() if logvar else None
        _call("ngpt_decoder_vae_encode", self._h(), ctypes.byref(mean), ctypes.byref(lv) if logvar else None, view)
        return (Tensor(mean), Tensor(lv)) if logvar else Tensor(mean)

    def vocoder(self, mel):
        view, keep = _tensor_view(mel)
        t = _new_tensor_out()
        _call("ngpt_decoder_vocoder", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    @property
    def text_max_length(self):
        """Padded token count of the text encoder (CLIP 77, AudioLDM's CLAP 512); 0 without one."""
        return lib.ngpt_decoder_text_max_length(self._h())  # noqa: F821

    @property
    def text_hidden_size(self):
        return lib.ngpt_decoder_text_hidden_size(self._h())  # noqa: F821

    def tokenize_text(self, prompt, max_length=None):
        """The pipelines' tokenization of prompt (str; CLIP, or RoBERTa for AUDIO): a list of
        max_length ids (bos, tokens, eos, padding)."""
        n = max_length or self.text_max_length
        ids = (ctypes.c_int32 * max(n, 1))()
        _call("ngpt_decoder_tokenize_text", self._h(), ids, n, _cstr(prompt, "prompt"), None)
        return list(ids[:n])

    def encode_text(self, prompt):
        """The text encoder on prompt (str): Tensor F32 [1, 77, hidden] (CLIP); AUDIO: [1, 512],
        the normalised CLAP embedding (usable as cond)."""
        t = _new_tensor_out()
        _call("ngpt_decoder_encode_text", self._h(), ctypes.byref(t), _cstr(prompt, "prompt"))
        return Tensor(t)

    def encode_text_ids(self, input_ids):
        """The text encoder on input_ids (I32/I64 [B, S]): Tensor F32 [B, S, hidden] (CLIP);
        AUDIO: [B, 512], normalised."""
        view, keep = _tensor_view(input_ids)
        t = _new_tensor_out()
        _call("ngpt_decoder_encode_text_ids", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def encode_text_masked(self, input_ids, attention_mask):
        """AUDIO: CLAP on input_ids with attention_mask (I32/I64 [B, S] of 0/1): Tensor F32 [B, 512]."""
        view, keep = _tensor_view(input_ids)
        mview, mkeep = _tensor_view(attention_mask)
        t = _new_tensor_out()
        _call("ngpt_decoder_encode_text_masked", self._h(), ctypes.byref(t), view, mview)
        return Tensor(t)

    def generate(self, cond, uncond=None, steps=0, guidance_scale=0.0, seed=0, scheduler=None,
                 height=0, width=0, num_frames=0, audio_length_s=0.0, eta=0.0, on_step=None,
                 on_preview=None, return_nsfw=False):
        """The diffusers pipeline of this decoder on conditioning `cond` (numpy or Tensor; the
        output projector's result): a Tensor F32 — image [B, H, W, 3] in [0, 1], audio [B, n],
        video [B, 3, F, H, W]. uncond None = the decoder's text encoder on "" (image, video).
        0 = the decoder's defaults (50 steps, guidance 7.5, its size). on_step(step, total) ->
        False cancels. on_preview(step, total, latents, rgb) -> False cancels: copies (Tensor) of
        the current latents and, for image/video, their RGB approximation [B, (F,) h, w, 3] in
        [0, 1] at the latent resolution (None for audio). An image decoder created with
        capi.NGPT_DECODER_FLAG_SAFETY_CHECKER blacks out the images its safety checker flags;
        return_nsfw=True then returns (images, [flagged, ...]) (an empty list without a checker)."""
        p = _params(capi.ngpt_decode_params, "ngpt_decode_params_default", num_inference_steps=steps,
                    guidance_scale=guidance_scale, seed=seed, scheduler=scheduler, height=height,
                    width=width, num_frames=num_frames, audio_length_s=audio_length_s, eta=eta)
        raised = _Raised()
        cb = None
        if on_step is not None:
            cb = capi.ngpt_step_fn(raised.guard(lambda step, total, _e, _u: on_step(step, total) is not False))
            p.on_step = cb
        pcb = None
        if on_preview is not None:
            pcb = capi.ngpt_preview_fn(raised.guard(
                lambda step, total, lat, rgb, _u: on_preview(step, total, _copy_of(lat), _copy_of(rgb)) is not False))
            p.on_preview = pcb
        cv, keep_c = _tensor_view(cond)
        uv, keep_u = _tensor_view(uncond)
        t = _new_tensor_out()
        aux = _new_tensor_out() if return_nsfw and self.kind == DecoderKind.IMAGE else None
        raised.call("ngpt_decoder_generate", self._h(), ctypes.byref(t), ctypes.byref(aux) if aux else None, cv, uv,
                    ctypes.byref(p))
        if not return_nsfw:
            return Tensor(t)
        flags = Tensor(aux).tolist() if aux is not None and aux.data else []
        return Tensor(t), [bool(v) for v in flags]

    def safety_check(self, images):
        """Stable Diffusion's safety checker (a decoder created with
        capi.NGPT_DECODER_FLAG_SAFETY_CHECKER) on images — numpy/Tensor F32 [B, H, W, 3] in
        [0, 1] (generate's output) or U8 — as NExT-GPT's pipeline runs it:
        (nsfw, special_scores, concept_scores): a list of B bools (the images it would black
        out) and Tensors F32 [B, 3] and [B, 17] (the rounded scores). The images are unchanged."""
        view, keep = _tensor_view(images)
        n, s, c = _new_tensor_out(), _new_tensor_out(), _new_tensor_out()
        _call("ngpt_decoder_safety_check", self._h(), ctypes.byref(n), ctypes.byref(s), ctypes.byref(c), view)
        return [bool(v) for v in Tensor(n).tolist()], Tensor(s), Tensor(c)

# ---- encoder and projectors ------------------------------------------------------------------


def _modality_bits(modalities):
    """An iterable of Modality (or one) -> the NGPT_MODALITY_BIT mask."""
    if modalities is None:
        return 0
    if isinstance(modalities, int):
        modalities = [modalities]
    bits = 0
    for m in modalities:
        bits |= 1 << int(m)
    return bits


class Encoder(_Handle):
    """ngpt_encoder: ImageBind (vision and audio branches) on ctx's backend.

    path: imagebind_huge.pth, a .safetensors, or a folder with config.json + weights.
    modalities: "image", "audio", "video" names, Modality members or ENCODER_* bits to load (None =
    all stored)."""
    _free = "ngpt_encoder_free"
    _exclusive = True

    def __init__(self, ctx, path, modalities=None, compute_dtype=None, flags=None):
        """compute_dtype: Dtype.F32 (default), or BF16 (CPU) / F16 / BF16 (CUDA). flags:
        NGPT_ENCODER_FLAG_* bits (capi), e.g. capi.NGPT_ENCODER_FLAG_CUDA_GRAPH."""
        names = {"image": capi.NGPT_ENCODER_IMAGE, "audio": capi.NGPT_ENCODER_AUDIO,
                 "video": capi.NGPT_ENCODER_VIDEO}
        bits = 0
        for m in ([modalities] if isinstance(modalities, (str, int)) else modalities or []):
            if isinstance(m, Modality):  # noqa: F821 (the enum Modality: its name, not its value)
                m = m.name.lower()
            if isinstance(m, str):
                if m.lower() not in names:
                    raise ValueError("modality %r: expected image, audio or video" % m)
                bits |= names[m.lower()]
            else:
                bits |= int(m)
        p = _params(capi.ngpt_encoder_params, "ngpt_encoder_params_default", modalities=bits,
                    compute_dtype=compute_dtype, flags=flags)
        out = ctypes.POINTER(capi.ngpt_encoder)()
        _call("ngpt_encoder_create", ctypes.byref(out), ctx._h(), _path(path), ctypes.byref(p))
        self._adopt(out, ctx)

    @property
    def embed_dim(self):
        """The embedding size (1024 for imagebind_huge)."""
        return lib.ngpt_encoder_embed_dim(self._h())

    @property
    def modalities(self):
        """The capi.NGPT_ENCODER_* bits of the branches loaded."""
        return lib.ngpt_encoder_modalities(self._h())

    def encode_image(self, image):
        """One image (an Image, a PIL image, or a path): Tensor F32 [1, embed_dim], L2-normalised."""
        if isinstance(image, Image):
            return self._encode_image(image)
        with (Image.from_pil(image) if _is_pil(image) else Image(image)) as img:
            return self._encode_image(img)

    def _encode_image(self, image):
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_image", self._h(), ctypes.byref(t), image._h())
        return Tensor(t)

    def encode_pixels(self, pixels):
        """Preprocessed pixels ([N, 3, 224, 224], ...): Tensor F32 [N, embed_dim]."""
        view, keep = _tensor_view(pixels)
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_pixels", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def encode_fbank(self, fbank):
        """Fbank clips (Audio.preprocess's output): [S, 1, 128, 204] (one sound) or [N, S, 1, 128,
        204] -> Tensor F32 [N, embed_dim], the mean over each sound's clips."""
        view, keep = _tensor_view(fbank)
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_fbank", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def encode_audio(self, audio):
        """One sound (an Audio, or a path): Tensor F32 [1, embed_dim]."""
        if isinstance(audio, Audio):
            return self._encode_audio(audio)
        with Audio(audio) as a:
            return self._encode_audio(a)

    def _encode_audio(self, audio):
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_audio", self._h(), ctypes.byref(t), audio._h(), None)
        return Tensor(t)

    def encode_video_file(self, path):
        """One video file: Tensor F32 [1, embed_dim] (the mean over its 15 clips)."""
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_video_file", self._h(), ctypes.byref(t), _path(path), None)
        return Tensor(t)


class Projector(_Handle):
    """ngpt_projector: NExT-GPT's input projector (ImageBind embedding -> soft token) and output
    projectors (signal hidden states -> decoder conditioning), from a projector folder or the
    NExT-GPT delta. input: load the input projector; outputs: Modality values to load (both None
    = everything the file holds)."""
    _free = "ngpt_projector_free"
    _exclusive = True

    def __init__(self, ctx, path, input=None, outputs=None):
        bits = 0
        if outputs is not None and any(int(m) == capi.NGPT_MODALITY_TEXT
                                       for m in (outputs if not isinstance(outputs, int) else [outputs])):
            raise ValueError("outputs: TEXT has no output projector (input=True loads the input one)")
        if input or outputs is not None:
            bits = (capi.NGPT_PROJECTOR_INPUT if input else 0) | _modality_bits(outputs)
        p = _params(capi.ngpt_projector_params, "ngpt_projector_params_default", modalities=bits)
        out = ctypes.POINTER(capi.ngpt_projector)()
        _call("ngpt_projector_create", ctypes.byref(out), ctx._h(), _path(path), ctypes.byref(p))
        self._adopt(out, ctx)

    def input(self, features):
        """features [n, input_dim] (numpy or Tensor) -> Tensor F32 [n, llm_hidden]: one soft
        token per row."""
        view, keep = _tensor_view(features)
        t = _new_tensor_out()
        _call("ngpt_projector_input", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def input_sum(self, features):
        """Several items of one modality as NExT-GPT combines them: Tensor F32 [1, llm_hidden]."""
        view, keep = _tensor_view(features)
        t = _new_tensor_out()
        _call("ngpt_projector_input_sum", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def output(self, modality, hidden, input_embs):
        """hidden, input_embs [B, n_in, llm_hidden] (or [n_in, llm_hidden] for B = 1) -> Tensor
        F32 [B, n_out, out_dim]: the decoder's conditioning."""
        if _np is not None:
            hidden, input_embs = (_np.asarray(x, _np.float32) if not isinstance(x, Tensor) else x
                                  for x in (hidden, input_embs))
            hidden, input_embs = (x[None] if not isinstance(x, Tensor) and x.ndim == 2 else x
                                  for x in (hidden, input_embs))
        else:  # array('f') (a TurnGroup's, without numpy), floats or rows: [1, n, llm_hidden]
            hidden, input_embs = (x if isinstance(x, Tensor) else _F32Rows(x, self.llm_hidden_size)
                                  for x in (hidden, input_embs))
        hidden, input_embs = (_batch_of_one(x) for x in (hidden, input_embs))
        hv, keep_h = _tensor_view(hidden)
        ev, keep_e = _tensor_view(input_embs)
        t = _new_tensor_out()
        _call("ngpt_projector_output", self._h(), ctypes.byref(t), _i32(modality, "modality"), hv, ev)
        return Tensor(t)

    @property
    def has_input(self):
        return bool(lib.ngpt_projector_has_input(self._h()))

    def has_output(self, modality):
        return bool(lib.ngpt_projector_has_output(self._h(), _i32(modality, "modality")))

    @property
    def llm_hidden_size(self):
        return lib.ngpt_projector_llm_hidden_size(self._h())

    @property
    def input_dim(self):
        return lib.ngpt_projector_input_dim(self._h())

    def output_dim(self, modality):
        return lib.ngpt_projector_output_dim(self._h(), _i32(modality, "modality"))

    def num_input_tokens(self, modality):
        return lib.ngpt_projector_num_input_tokens(self._h(), _i32(modality, "modality"))

    def num_output_tokens(self, modality):
        return lib.ngpt_projector_num_output_tokens(self._h(), _i32(modality, "modality"))

    def d_model(self, modality):
        """The transformer width of modality's output projector (512 for NExT-GPT; 0 when not loaded)."""
        return lib.ngpt_projector_d_model(self._h(), _i32(modality, "modality"))

    def nhead(self, modality):
        """The attention heads of modality's output projector (4 for NExT-GPT; 0 when not loaded)."""
        return lib.ngpt_projector_nhead(self._h(), _i32(modality, "modality"))

# ---- backbone and chat turns -----------------------------------------------------------------


class Backbone(_Handle):
    """ngpt_backbone: the LLaMA/Vicuna language model (+ the NExT-GPT delta), read-only once
    loaded; conversations live in Sessions (backbone.session())."""
    _free = "ngpt_backbone_free"

    def __init__(self, ctx, model_dir, delta_path=None, n_ctx=0, compute_dtype=None, flags=None):
        """compute_dtype: Dtype.F32 (default), BF16 (CPU: BF16 GEMM inputs), F16 / BF16 (CUDA).
        flags: NGPT_BACKBONE_FLAG_* bits (capi), e.g. capi.NGPT_BACKBONE_FLAG_CUDA_GRAPH."""
        p = _params(capi.ngpt_backbone_params, "ngpt_backbone_params_default", n_ctx=n_ctx,
                    compute_dtype=compute_dtype, flags=flags)
        keep = None
        if delta_path is not None:
            keep = _path(delta_path)
            p.delta_path = keep
        out = ctypes.POINTER(capi.ngpt_backbone)()
        _call("ngpt_backbone_create", ctypes.byref(out), ctx._h(), _path(model_dir), ctypes.byref(p))
        self._adopt(out, ctx)

    def session(self, n_ctx=0):
        """A new conversation (KV cache of n_ctx positions; 0 = the backbone's)."""
        return Session(self, n_ctx)

    @property
    def n_vocab(self):
        return lib.ngpt_backbone_n_vocab(self._h())

    @property
    def n_embd(self):
        return lib.ngpt_backbone_n_embd(self._h())

    @property
    def n_layer(self):
        return lib.ngpt_backbone_n_layer(self._h())

    @property
    def n_ctx(self):
        """The default (and largest) session context."""
        return lib.ngpt_backbone_n_ctx(self._h())

    @property
    def tokenizer(self):
        """The Tokenizer that goes with the weights, lent by the backbone (None when it has none):
        never freed by Python, it keeps the backbone alive and is closed with it."""
        return self._lent("tokenizer", Tokenizer, lib.ngpt_backbone_tokenizer(self._h()))

    def embed_tokens(self, ids):
        """The embedding rows of ids (ints in [0, n_vocab)): Tensor F32 [len(ids), n_embd], to build
        prompts of token rows and soft tokens (Session.eval's embeds)."""
        ids = [_i32(i) for i in ids]
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        width = self.n_embd
        t = capi.ngpt_tensor()
        dims = (ctypes.c_int64 * 2)(len(ids), width)
        _call("ngpt_tensor_create", ctypes.byref(t), capi.NGPT_DTYPE_F32, 2, dims)
        out = Tensor(t)
        rows = ctypes.cast(t.data, ctypes.POINTER(ctypes.c_float)) if t.data else (ctypes.c_float * 1)()
        _call("ngpt_backbone_embed_tokens", rows, self._h(), arr, len(ids))
        return out


class TurnGroup:
    """A signal group of a turn: .modality, .hidden and .input_embs ([n_tokens, n_embd] float32
    numpy arrays, or array('f') without numpy), .required (forced, not started by the model)."""

    def __init__(self, modality, hidden, input_embs, required):
        self.modality, self.hidden, self.input_embs, self.required = modality, hidden, input_embs, required

    def __repr__(self):
        return "TurnGroup(%s, %d tokens)" % (self.modality.name, len(self.hidden))


class TurnResult:
    """A turn's answer: .text, .groups (TurnGroup list), .stop_reason (StopReason), .ids,
    .n_prompt, .timings ((prompt_ms, generate_ms): wall-clock milliseconds of the prompt's
    evaluation and of the generation). A plain copy: nothing to close."""

    def __init__(self, ptr, n_embd):
        n = ctypes.c_size_t(0)
        text = _result_text["ngpt_turn_result_text"](ptr, ctypes.byref(n))
        self.text = (ctypes.string_at(text, n.value) if n.value else b"").decode("utf-8", "replace")
        self.stop_reason = StopReason(lib.ngpt_turn_result_stop_reason(ptr))  # noqa: F821
        nid = ctypes.c_int32(0)
        ids = lib.ngpt_turn_result_ids(ptr, ctypes.byref(nid))
        self.ids = ids[:nid.value] if nid.value else []
        self.n_prompt = lib.ngpt_turn_result_n_prompt(ptr)
        prompt_ms, generate_ms = ctypes.c_double(), ctypes.c_double()
        lib.ngpt_turn_result_timings(ptr, ctypes.byref(prompt_ms), ctypes.byref(generate_ms))
        self.timings = (prompt_ms.value, generate_ms.value)
        self.groups = []
        for g in range(lib.ngpt_turn_result_n_groups(ptr)):
            m = capi.ngpt_modality()
            nt = ctypes.c_int32(0)
            hid, emb = ctypes.POINTER(ctypes.c_float)(), ctypes.POINTER(ctypes.c_float)()
            _call("ngpt_turn_result_group", ptr, g, ctypes.byref(m), ctypes.byref(nt), ctypes.byref(hid),
                  ctypes.byref(emb))
            rows = [_rows(p, nt.value, n_embd) for p in (hid, emb)]
            self.groups.append(TurnGroup(Modality(m.value), rows[0], rows[1],  # noqa: F821
                                         bool(lib.ngpt_turn_result_group_required(ptr, g))))


def _rows(p, n, width):
    """A copy of n x width floats at p: numpy [n, width], or array('f')."""
    data = ctypes.string_at(p, n * width * 4)
    if _np is None:
        return array.array("f", data)
    return _np.frombuffer(data, _np.float32).reshape(n, width).copy()


class Generation:
    """What Session.generate / generate_greedy produced: .ids (list of int: the tokens chosen, a
    stop id last when one ended it), .hidden (with hidden=True: the final-norm state of the
    position whose logits chose each id, [len(ids), n_embd] as numpy float32, or array('f')
    without numpy; else None), .error (None, or the Error that ended it early after some tokens:
    NGPT_ERR_CANCELLED when on_token returned False, NGPT_ERR_INVALID_ARGUMENT when the session's
    context filled up; the tokens so far are in the session), .cancelled. A plain copy."""

    def __init__(self, ids, hidden, error):
        self.ids, self.hidden, self.error = ids, hidden, error

    @property
    def cancelled(self):
        return self.error is not None and self.error.status == capi.NGPT_ERR_CANCELLED

    def __repr__(self):
        return "Generation(%d tokens%s)" % (len(self.ids), ", %s" % self.error.status_name if self.error else "")


def _soft_rows(rows, width, what):
    """F32 rows [n_rows, width] (numpy, an F32 Tensor, array('f'), floats, or rows of floats; a
    1-D one is one row) as (address, n_rows, keepalive). The C structs carry no width: a wrong
    one would be read past its end, so it is checked here."""
    keep = rows
    if isinstance(rows, Tensor):
        if rows.dtype != Dtype.F32:
            raise ValueError("%s must be F32, not %s" % (what, rows.dtype.name))
        shape, ptr = rows.shape, rows._open().data
    elif _np is not None and not isinstance(rows, array.array):
        a = _np.require(rows, _np.float32, "CA")
        keep = a
        shape, ptr = a.shape, a.ctypes.data
    else:  # array('f') (what TurnGroup holds without numpy), floats, or rows of floats
        p_rows, n, keep, _ = _floats(_flat_floats(rows))
        shape, ptr = ((n // width, width) if n and n % width == 0 else (n,)), ctypes.cast(p_rows, ctypes.c_void_p).value
    if len(shape) not in (1, 2) or shape[-1] != width or (len(shape) == 2 and shape[0] < 1):
        raise ValueError("%s must be [n_rows, %d], not %s" % (what, width, list(shape)))
    return ptr, (shape[0] if len(shape) == 2 else 1), keep


def _text_cb(fn, raised):
    """A ngpt_text_fn around fn(str) -> False to cancel (exceptions: see _Raised). The text is
    read as its length says, through a void pointer: the generated c_char_p would stop at a NUL
    (the byte token <0x00>)."""
    tramp = _text_fn(raised.guard(
        lambda p, n, _user: fn(ctypes.string_at(p, n).decode("utf-8", "replace") if n else "") is not False))
    return ctypes.cast(tramp, capi.ngpt_text_fn)  # the cast keeps tramp alive


class Session(_Handle):
    """ngpt_backbone_session: one conversation's KV cache on a Backbone."""
    _free = "ngpt_backbone_session_free"
    _exclusive = True

    def __init__(self, backbone, n_ctx=0):
        p = _params(capi.ngpt_backbone_session_params, "ngpt_backbone_session_params_default", n_ctx=n_ctx)
        out = ctypes.POINTER(capi.ngpt_backbone_session)()
        _call("ngpt_backbone_session_create", ctypes.byref(out), backbone._h(), ctypes.byref(p))
        self._adopt(out, backbone)  # keeps the backbone alive; it closes us first
        self._widths(backbone._h())

    def _widths(self, bb):
        """n_embd and n_vocab of the backbone (a C pointer), kept: a lent session outlives the
        Python object of a lent backbone."""
        self._n_embd = lib.ngpt_backbone_n_embd(bb)
        self._n_vocab = lib.ngpt_backbone_n_vocab(bb)

    @property
    def n_past(self):
        return lib.ngpt_backbone_session_n_past(self._h())

    @property
    def n_ctx(self):
        """Positions the cache can hold (the n_ctx it was made with; 0 there: the backbone's)."""
        return lib.ngpt_backbone_session_n_ctx(self._h())

    def reset(self):
        """Forget the conversation."""
        _call("ngpt_backbone_session_reset", self._h())

    def truncate(self, n_past):
        """Keep the first n_past positions (0 <= n_past <= self.n_past), e.g. to rewind a turn."""
        _call("ngpt_backbone_session_truncate", self._h(), _i32(n_past, "n_past"))

    def eval(self, ids=None, embeds=None, is_embed=None, output=None):
        """Append positions at n_past and run them: ids (token ids), embeds (rows [n, n_embd]: soft
        tokens, or Backbone.embed_tokens rows; numpy, Tensor or floats), or both with is_embed
        ([n] bools: row i of embeds where true, else ids[i]). output: OutputMode.LAST (default:
        logits() and hidden() of the last position), ALL (every position) or NONE (cache only).
        On an error n_past is unchanged."""
        n = None
        keep = []
        p_ids = p_emb = p_mask = None
        if ids is not None:
            ids = [_i32(i) for i in ids]
            n = len(ids)
            p_ids = (ctypes.c_int32 * max(n, 1))(*ids)
        if embeds is not None:
            ptr, n_rows, k = _soft_rows(embeds, self._n_embd, "embeds")
            keep.append(k)
            if n is not None and n_rows != n:
                raise ValueError("%d ids but %d embedding rows: both give every position" % (n, n_rows))
            n = n_rows
            p_emb = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
        if n is None:
            raise ValueError("eval needs ids or embeds")
        if is_embed is not None:
            mask = [1 if v else 0 for v in is_embed]
            if len(mask) != n:
                raise ValueError("is_embed has %d entries for %d positions" % (len(mask), n))
            p_mask = (ctypes.c_uint8 * max(n, 1))(*mask)
        b = _params(capi.ngpt_backbone_batch, "ngpt_backbone_batch_default", output=output)
        b.n_tokens = _i32(n, "n_tokens")
        b.ids, b.embeds, b.is_embed = p_ids, p_emb, p_mask
        _call("ngpt_backbone_eval", self._h(), ctypes.byref(b))

    def logits(self):
        """The last eval's logits (a copy): Tensor F32 [n_rows, n_vocab] (1 row for OutputMode.LAST,
        n for ALL); None after OutputMode.NONE or before any eval."""
        n = ctypes.c_int32(0)
        p = lib.ngpt_backbone_get_logits(self._h(), ctypes.byref(n))
        return _f32_copy(p, (n.value, self._n_vocab)) if n.value else None

    def hidden(self):
        """The last eval's final-norm hidden states (a copy; what the output projectors read):
        Tensor F32 [n_rows, n_embd], or None as logits()."""
        n = ctypes.c_int32(0)
        p = lib.ngpt_backbone_get_hidden(self._h(), ctypes.byref(n))
        return _f32_copy(p, (n.value, self._n_embd)) if n.value else None

    def generate(self, max_new_tokens=None, stop_ids=(), temperature=None, top_k=None, top_p=None,
                 repetition_penalty=None, seed=None, on_token=None, hidden=False):
        """Generate from the last eval (which must have had outputs): temperature 0 (the default)
        is greedy, else sampled (top_k, top_p, repetition_penalty, seed as ngpt_generate_params).
        Each chosen token is fed back unless it is in stop_ids or the last allowed
        (max_new_tokens, default 16). on_token(id) -> False stops. hidden=True: also the hidden
        rows. -> Generation (its .error says why it ended early)."""
        return self._generate("ngpt_backbone_generate", max_new_tokens, stop_ids, on_token, hidden,
                              dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                   repetition_penalty=repetition_penalty, seed=seed))

    def generate_greedy(self, max_new_tokens=None, stop_ids=(), on_token=None, hidden=False):
        """generate() with greedy decoding (argmax, first index on ties). -> Generation."""
        return self._generate("ngpt_backbone_generate_greedy", max_new_tokens, stop_ids, on_token, hidden, {})

    def _generate(self, fn, max_new_tokens, stop_ids, on_token, hidden, sampling):
        p = _params(capi.ngpt_generate_params, "ngpt_generate_params_default", max_new_tokens=max_new_tokens,
                    **sampling)
        stops = [_i32(i, "stop id") for i in stop_ids]
        arr = (ctypes.c_int32 * max(len(stops), 1))(*stops)
        if stops:
            p.stop_ids, p.n_stop_ids = arr, len(stops)
        raised = _Raised()
        cb = None
        if on_token is not None:
            cb = capi.ngpt_token_fn(raised.guard(lambda tok, _u: on_token(tok) is not False))
            p.on_token = cb
        cap = max(p.max_new_tokens, 1)
        width = self._n_embd
        ids = (ctypes.c_int32 * cap)()
        rows = (ctypes.c_float * (cap * width))() if hidden else None
        n = ctypes.c_int32(0)
        st = getattr(lib, fn)(ctypes.byref(n), self._h(), ctypes.byref(p), ids, rows)
        raised.check()  # a callback's exception, in place of the cancellation it caused
        err = None if st == capi.NGPT_OK else Error(st, _last_error(), fn)
        if err is not None and n.value == 0:
            raise err
        return Generation(list(ids[:n.value]), _rows(rows, n.value, width) if hidden else None, err)

    def add_assistant_media(self, media):
        """Right after a turn: re-write its cached answer as the official history holds it, media
        first ("### Assistant:" {<Img> soft </Img>} [BOS] answer-text), as NExT-GPT's demo does
        with the media it generated. media: (Modality, rows) pairs as turn()'s (the outputs
        re-encoded by ImageBind and the input projector), at least one."""
        arr, keep = self._media(media)
        _call("ngpt_backbone_add_assistant_media", self._h(), arr, len(keep))

    def _media(self, media):
        """An ngpt_turn_media array of (Modality, rows) pairs, and what keeps their rows alive
        (one entry per item)."""
        media = list(media)
        arr = (capi.ngpt_turn_media * max(len(media), 1))()
        keep = []
        width = self._n_embd
        for i, (m, rows) in enumerate(media):
            ptr, n_rows, k = _soft_rows(rows, width, "soft rows of %s" % Modality(int(m)).name)
            keep.append(k)
            arr[i].modality = _i32(m, "modality")
            arr[i].soft_rows = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
            arr[i].n_rows = n_rows
        return arr, keep

    def turn(self, text, media=(), require=None, max_new_tokens=None, temperature=None, top_p=None,
             top_k=None, seed=None, on_text=None):
        """Answer one user turn with NExT-GPT's template. media: (Modality, rows) pairs, rows =
        projected soft tokens [n_rows, n_embd] (numpy or Tensor; several rows are summed).
        require: Modality values whose signal group is appended when the model does not start
        one. on_text(str) receives the streamed answer; returning False cancels. -> TurnResult."""
        p = _params(capi.ngpt_turn_params, "ngpt_turn_params_default", max_new_tokens=max_new_tokens,
                    temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                    require_modalities=_modality_bits(require))
        raised = _Raised()
        cb = None
        if on_text is not None:
            cb = _text_cb(on_text, raised)
            p.on_text = cb
        arr, keep = self._media(media)
        out = ctypes.POINTER(capi.ngpt_turn_result)()
        return raised.result("ngpt_backbone_turn", out, lib.ngpt_turn_result_free,
                             lambda r: TurnResult(r, self._n_embd), self._h(), _cstr(text),
                             arr if keep else None, len(keep), ctypes.byref(p))

# ---- pipeline --------------------------------------------------------------------------------


class PipelineOutput:
    """A media output of a pipeline turn: .modality, .status (0 = produced), .status_name,
    .data (the encoded bytes, or None), .format ("png", "wav", "mp4"), .message (why not), .nsfw
    (an image the safety checker blacked out: NGPT_PIPELINE_SAFETY_CHECKER)."""

    def __init__(self, modality, status, data, format, message, nsfw=False):
        self.modality, self.status, self.data, self.format, self.message = modality, status, data, format, message
        self.nsfw = nsfw
        self.status_name = lib.ngpt_status_string(status).decode()

    @property
    def ok(self):
        return self.status == capi.NGPT_OK

    def image(self):
        """An image output decoded: an Image (its to_pil() gives a PIL image)."""
        if not self.ok:
            raise Error(self.status, self.message, "PipelineOutput.image")
        if self.modality != capi.NGPT_MODALITY_IMAGE:
            raise ValueError("a %s output is not an image" % self.modality.name)
        return Image.from_bytes(self.data, "output." + self.format)

    def save(self, path):
        """Write the encoded bytes to path (Error when the output was not produced)."""
        if not self.ok:
            raise Error(self.status, self.message, "PipelineOutput.save")
        with open(path, "wb") as f:
            f.write(self.data)

    def __repr__(self):
        return "PipelineOutput(%s, %s, %s)" % (self.modality.name, self.status_name,
                                               "%d bytes" % len(self.data) if self.ok else self.message)


class PipelineResult:
    """A pipeline turn: .text, .outputs (PipelineOutput list), .cancelled, .stage_ms (dict of
    PipelineStage -> milliseconds), .stage_memory (dict of PipelineStage -> (host_bytes,
    device_bytes): the most tensor memory the context held during the stage), .history_media
    (outputs now in the conversation as media) and .history_error (None, or an Error saying what kept them out: the cached answer then
    stays as generated). A plain copy: nothing to close."""

    def __init__(self, ptr):
        n = ctypes.c_size_t(0)
        text = _result_text["ngpt_pipeline_result_text"](ptr, ctypes.byref(n))
        self.text = (ctypes.string_at(text, n.value) if n.value else b"").decode("utf-8", "replace")
        self.cancelled = bool(lib.ngpt_pipeline_result_cancelled(ptr))
        self.outputs = []
        for i in range(lib.ngpt_pipeline_result_n_outputs(ptr)):
            m = capi.ngpt_modality()
            data = ctypes.POINTER(ctypes.c_uint8)()
            size = ctypes.c_size_t(0)
            fmt = ctypes.c_char_p()
            st = lib.ngpt_pipeline_result_output(ptr, i, ctypes.byref(m), ctypes.byref(data), ctypes.byref(size),
                                                 ctypes.byref(fmt))
            self.outputs.append(PipelineOutput(
                Modality(m.value), st, ctypes.string_at(data, size.value) if st == capi.NGPT_OK else None,  # noqa: F821
                _str(fmt.value), _str(lib.ngpt_pipeline_result_output_message(ptr, i)),
                bool(lib.ngpt_pipeline_result_output_nsfw(ptr, i))))
        self.stage_ms = {PipelineStage(s): lib.ngpt_pipeline_result_stage_ms(ptr, s)  # noqa: F821
                         for s in range(capi.NGPT_PIPELINE_STAGE_COUNT)}
        self.stage_memory = {}
        for s in range(capi.NGPT_PIPELINE_STAGE_COUNT):
            host, device = ctypes.c_uint64(), ctypes.c_uint64()
            lib.ngpt_pipeline_result_stage_memory(ptr, s, ctypes.byref(host), ctypes.byref(device))
            self.stage_memory[PipelineStage(s)] = (host.value, device.value)
        n_hist = ctypes.c_int32(0)
        st = lib.ngpt_pipeline_result_history(ptr, ctypes.byref(n_hist))
        self.history_media = n_hist.value
        self.history_error = None if st == capi.NGPT_OK else Error(st, _last_error(), "ngpt_pipeline_result_history")


def _event_text(ev):
    """The event's text (not NUL-terminated: read exactly text_len bytes)."""
    off = capi.ngpt_pipeline_event.text.offset
    addr = ctypes.c_void_p.from_buffer(ev, off).value
    return ctypes.string_at(addr, ev.text_len).decode("utf-8", "replace") if addr else ""


class Pipeline(_Handle):
    """ngpt_pipeline: a whole NExT-GPT conversation from a bundle folder (bundle.json), every
    stage loaded once. preload: Modality values whose decoders load now (else on first use)."""
    _free = "ngpt_pipeline_free"
    _exclusive = True

    def __init__(self, ctx, bundle_dir, preload=None, n_ctx=0, flags=None, compute_dtype=None):
        """flags: NGPT_PIPELINE_* bits (capi: NGPT_PIPELINE_NO_MEDIA_HISTORY,
        NGPT_PIPELINE_CUDA_GRAPHS, NGPT_PIPELINE_CHANNELS_LAST, NGPT_PIPELINE_SAFETY_CHECKER); compute_dtype: Dtype.F32 (default),
        BF16 (CPU: every stage's CPU BF16), or F16 / BF16 on CUDA."""
        p = _params(capi.ngpt_pipeline_params, "ngpt_pipeline_params_default", n_ctx=n_ctx,
                    preload=_modality_bits(preload), flags=flags, compute_dtype=compute_dtype)
        out = ctypes.POINTER(capi.ngpt_pipeline)()
        _call("ngpt_pipeline_create", ctypes.byref(out), ctx._h(), _path(bundle_dir), ctypes.byref(p))
        self._adopt(out, ctx)

    @property
    def is_test_model(self):
        """True for a bundle with random weights (the tiny test model)."""
        return bool(lib.ngpt_pipeline_is_test_model(self._h()))

    def reset(self):
        """Forget the conversation."""
        _call("ngpt_pipeline_reset", self._h())

    def release_decoder(self, modality):
        """Free a loaded decoder (it reloads on its next use); a Decoder that decoder(modality)
        lent is closed first."""
        m = _i32(modality, "modality")  # ctypes would wrap a larger int onto another modality
        lent = self.__dict__.get("_lent_cache", {}).get(("decoder", m))
        if lent is not None:
            lent.close()  # RuntimeError while it is in a call
        _call("ngpt_pipeline_release_decoder", self._h(), m)

    # The stages, lent by the pipeline: never freed by Python, each keeps the pipeline alive and is
    # closed with it; their calls are pipeline calls too (not during a turn, nor from its callbacks).

    @property
    def backbone(self):
        """The language model (a lent Backbone)."""
        return self._lent("backbone", Backbone, lib.ngpt_pipeline_backbone(self._h()))

    @property
    def encoder(self):
        """ImageBind (a lent Encoder)."""
        return self._lent("encoder", Encoder, lib.ngpt_pipeline_encoder(self._h()))

    @property
    def projector(self):
        """The input and output projectors (a lent Projector)."""
        return self._lent("projector", Projector, lib.ngpt_pipeline_projector(self._h()))

    @property
    def session(self):
        """The conversation's backbone Session (lent), for inspection: n_past, and logits() /
        hidden() of the last evaluated position. Turns or evals on it desync the pipeline."""
        s = self._lent("session", Session, lib.ngpt_pipeline_session(self._h()))
        if s is not None and "_n_embd" not in s.__dict__:
            s._widths(lib.ngpt_pipeline_backbone(self._h()))
        return s

    def decoder(self, modality):
        """The decoder of modality (a lent Decoder), or None until it is loaded (by a turn that
        uses it, or preload); release_decoder closes it."""
        m = _i32(modality, "modality")
        return self._lent(("decoder", m), Decoder, lib.ngpt_pipeline_decoder(self._h(), m))

    def decoder_path(self, modality):
        """The absolute path of the bundle's decoder folder for modality, or None when it has none."""
        p = lib.ngpt_pipeline_decoder_path(self._h(), _i32(modality, "modality"))
        return None if p is None else os.fsdecode(p)

    def turn(self, text, media=(), force=None, steps=0, seed=0, max_new_tokens=None, temperature=None,
             top_p=None, guidance_scale=0.0, height=0, width=0, on_token=None, on_event=None):
        """One user turn. media: items that are an Image, a PIL image, an Audio, or (Modality,
        source) with source a path, encoded bytes, Image, PIL image or Audio. force: Modality values to answer with even
        when the model emits no signal tokens for them. on_token(str): the streamed answer;
        on_event(kind: PipelineEventKind, modality, step, total, text): every stage. Either
        returning False cancels (the result then says .cancelled). -> PipelineResult."""
        p = _params(capi.ngpt_pipeline_turn_params, "ngpt_pipeline_turn_params_default", force=_modality_bits(force),
                    steps=steps, seed=seed, max_new_tokens=max_new_tokens, temperature=temperature,
                    top_p=top_p, guidance_scale=guidance_scale, height=height, width=width)
        raised = _Raised()
        cb = None
        if on_token is not None or on_event is not None:
            def tramp(evp, _user):
                ev = evp.contents
                kind = PipelineEventKind(ev.kind)  # noqa: F821
                if on_event is not None and on_event(kind, Modality(ev.modality), ev.step, ev.total,  # noqa: F821
                                                     _event_text(ev)) is False:
                    return False
                if on_token is not None and kind == PipelineEventKind.TOKEN:  # noqa: F821
                    return on_token(_event_text(ev)) is not False
                return True
            cb = capi.ngpt_pipeline_event_fn(raised.guard(tramp))
            p.on_event = cb
        media = list(media)
        arr = (capi.ngpt_pipeline_media * max(len(media), 1))()
        keep = []
        for i, item in enumerate(media):
            if isinstance(item, Image) or _is_pil(item):
                item = (capi.NGPT_MODALITY_IMAGE, item)
            elif isinstance(item, Audio):
                item = (capi.NGPT_MODALITY_AUDIO, item)
            m, src = item
            arr[i].modality = _i32(m, "modality")
            if _is_pil(src):
                src = Image.from_pil(src)
                keep.append(src)  # freed by the collector once the turn has returned
            if isinstance(src, Image):
                arr[i].image = src._h()
            elif isinstance(src, Audio):
                arr[i].audio = src._h()
            elif isinstance(src, (bytes, bytearray, memoryview)):
                b = bytes(src)
                keep.append(b)
                arr[i].data = ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p)
                arr[i].size = len(b)
            else:
                b = _path(src)
                keep.append(b)
                arr[i].path = b
        out = ctypes.POINTER(capi.ngpt_pipeline_result)()
        return raised.result("ngpt_pipeline_turn", out, lib.ngpt_pipeline_result_free, PipelineResult, self._h(),
                             _cstr(text), arr if media else None, len(media), ctypes.byref(p))


# ---- memory estimate -------------------------------------------------------------------------


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
            self.parts[MemoryPart(i)] = dict(zip(("weight_bytes", "mapped_bytes", "kv_bytes", "work_bytes"),  # noqa: F821
                                                 (x.value for x in v)))
        self.stages = {PipelineStage(s): lib.ngpt_memory_estimate_stage(ptr, s)  # noqa: F821
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
