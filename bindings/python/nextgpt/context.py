"""nextgpt.Context: the device, threads, logger and memory accounting that every stage handle is
made from (and that outlives them)."""
import ctypes

from ._convert import _params, _str
from ._enums import Backend, LogLevel
from ._handle import _Handle
from ._library import capi, lib
from .error import _call, _interrupt_after_call


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
                    fn(LogLevel(level), message.decode("utf-8", "replace"))
                except KeyboardInterrupt:
                    _interrupt_after_call()
            self._log = capi.ngpt_log_fn(tramp)
            p.log_callback = self._log
        out = ctypes.POINTER(capi.ngpt_context)()
        _call("ngpt_context_create", ctypes.byref(out), ctypes.byref(p))
        self._adopt(out)

    @property
    def backend(self):
        return Backend(lib.ngpt_context_backend(self._h()))

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
