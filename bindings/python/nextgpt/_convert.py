"""Python values as C arguments, refused where C or ctypes would silently get them wrong: a NUL
that cuts a string short, an integer ctypes would wrap, a misspelt params field."""
import ctypes
import enum
import os

from .error import _call


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
