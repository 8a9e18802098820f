"""Loads libnextgpt and binds the generated prototypes to it. Every module calls C as
lib.ngpt_*(...) looked up at call time, so a wrapper set on lib (the tests' count) sees each call."""
import ctypes
import ctypes.util
import os

from . import _capi as capi


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


def version():
    """The version of the library actually loaded ("0.1.0")."""
    return lib.ngpt_version().decode()


def version_number():
    return lib.ngpt_version_number()


def abi_version():
    return lib.ngpt_abi_version()


def has_cuda_build():
    return bool(lib.ngpt_has_cuda_build())
