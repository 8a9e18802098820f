"""The lock over handle and tensor lifetimes (see _handle), in a module of its own because
Tensor.close takes it too and _handle imports tensor."""
import threading

_life = threading.RLock()  # re-entrant: a collection (finalizers) may run inside a held block
