"""nextgpt.Error and _call, the one place a C status becomes an exception (ngpt_last_error() read
at once); _Raised carries a callback's exception across the C call it cancelled."""
import ctypes
import threading
import _thread

from ._library import capi, lib


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
