"""nextgpt.Tensor (what calls return) and the views and float buffers calls take: numpy arrays
when numpy is importable, array('f'), bytes and lists when it is not."""
import array
import ctypes
import struct

from ._enums import Dtype
from ._library import capi, lib
from ._lock import _life
from .error import _call

try:
    import numpy as _np
except ImportError:  # numpy is optional: lists, bytes and array.array work too
    _np = None


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
        dtype = Dtype(dtype)
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
        return Dtype(self._open().dtype)

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
        name = lib.ngpt_dtype_name(self._open().dtype).decode()
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
        if x.dtype != Dtype.F32:
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
