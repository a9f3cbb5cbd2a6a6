"""libc's functions and the few C types their arguments need, on CPython's _ctypes.

The `ctypes` package is a layer of Python over the C module `_ctypes`: its __init__ defines
every C type, pointer and library loader there is, and costs ~2 ms of CPU to import on this
kind of host, where the calls below cost microseconds. The processes that make them are on the
critical path of every create and exec: the child the runtime forks before it execs the sealed
interpreter (prctl, open_tree), the container's stages (unshare, setns, mount, pivot_root,
capset). Each would pay the import again, as an exec discards it. Built on `_ctypes`
directly, the same calls cost ~0.9 ms to set up (mostly loading _ctypes itself): the types are declared the way ctypes
declares them (a `_type_` code on _SimpleCData), and functions are found by name in the
process's own symbols (dlopen(NULL)), as ctypes.CDLL(None) finds them.

Only what pyruntime.linux uses is here. Third-party bindings (pyseccomp, python-iptables) bring
ctypes themselves.
"""

from __future__ import annotations

import _ctypes

addressof = _ctypes.addressof
byref = _ctypes.byref
get_errno = _ctypes.get_errno
Structure = _ctypes.Structure


def _simple_type(name: str, code: str) -> type:
    """A C scalar type, declared as ctypes declares its own: a _SimpleCData with a code of
    the struct module's."""
    return type(name, (_ctypes._SimpleCData,), {"_type_": code})


c_int = _simple_type("c_int", "i")
c_uint = _simple_type("c_uint", "I")
c_long = _simple_type("c_long", "l")
c_ulong = _simple_type("c_ulong", "L")
c_ushort = _simple_type("c_ushort", "H")
c_void_p = _simple_type("c_void_p", "P")
c_char = _simple_type("c_char", "c")
c_uint32 = c_uint      # 32 bits on every Linux ABI
c_size_t = c_ulong     # LP64 and ILP32 alike: size_t is as wide as long


def buffer(data: bytes | int) -> _ctypes.Array:
    """A char array holding a copy of `data` (or `data` zero bytes): what C may write into,
    or read beyond Python's bytes object; ctypes.create_string_buffer without the NUL."""
    if isinstance(data, int):
        return (c_char * data)()
    return (c_char * len(data)).from_buffer_copy(data)


# Every call saves errno at once, for get_errno (ctypes' use_errno=True). _ctypes reads
# _flags_ from the class's own namespace only, so each function type states it.
_CALL_FLAGS = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO


class _Function(_ctypes.CFuncPtr):
    _flags_ = _CALL_FLAGS
    _restype_ = c_int


class _LongFunction(_ctypes.CFuncPtr):
    _flags_ = _CALL_FLAGS
    _restype_ = c_long


class Library:
    """The functions linked into this process (libc's among them), by name, each looked up
    once. syscall() answers a long; every other function here answers an int."""

    def __init__(self):
        self._handle = _ctypes.dlopen(None)   # read by _ctypes to resolve a (name, library) pair

    def __getattr__(self, name: str):
        kind = _LongFunction if name == "syscall" else _Function
        function = kind((name, self))
        setattr(self, name, function)
        return function
