"""_Handle, the base of every class that owns a C handle: the lifetime rules they share (freed
once, children before parents, never while a call uses it) are kept in one place."""
import collections.abc
import ctypes
import functools
import io
import numbers
import types
import weakref

from ._library import lib
from ._lock import _life
from .tensor import Tensor


# Handles form a tree: a Context's stage handles, a Backbone's sessions. The C rule is that a
# child is freed before its parent. close() closes the children first; the garbage collector
# frees a child before its parent because a child keeps its parent alive, except in a reference
# cycle, where finalizers run in any order: a parent finalized while children live (its count of
# them, _live) is only marked, and the last child to go frees it. A handle in use by a call
# (_busy, counted by the wrapped methods) cannot be closed from another thread, or from a
# callback of that call: close() raises instead of freeing what the call is using.


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
