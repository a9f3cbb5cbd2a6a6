"""Import a ctypes binding without letting it search the system for its shared libraries.

Bindings such as pyseccomp and python-iptables locate their C libraries with
ctypes.util.find_library. On Linux that function runs `ldconfig -p` (and gcc or ld when that
fails) for every name it is asked, and importing ctypes.util itself loads shutil and subprocess:
together ~20 ms for pyseccomp, paid by every container with a seccomp profile, and more for
python-iptables, which asks for many spellings of many names.

The question has a plain answer on disk: the versioned shared objects ("libseccomp.so.2") in
the library directories. While the binding is imported, `ctypes.util` is a stand-in whose
find_library looks the name up there; a name not found there is None, which the bindings treat
as "not installed" or go on to look for by path. If the import fails with the stand-in, it is
retried with the real ctypes.util, so the worst case is the cost we avoid.
"""

from __future__ import annotations

import os
import sys


def system_library_dirs() -> list[str]:
    """Where the dynamic loader finds the system's libraries on this kind of host."""
    multiarch = getattr(sys.implementation, "_multiarch", "")
    dirs = [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"] if multiarch else []
    return dirs + ["/usr/lib64", "/lib64", "/usr/lib", "/lib"]


def versioned_sonames(libdirs) -> dict[str, str]:
    """Library name (as find_library takes it: "seccomp", "c") -> soname ("libseccomp.so.2"),
    from the first directory of `libdirs` that has one."""
    found: dict[str, str] = {}
    for libdir in libdirs:
        try:
            entries = sorted(os.listdir(libdir))
        except OSError:
            continue
        for entry in entries:
            name, dot_so, version = entry.partition(".so.")
            if dot_so and name.startswith("lib") and version.isdigit():
                found.setdefault(name[3:], entry)
    return found


def import_with_libraries_from(module: str, libdirs):
    """Import `module` (a binding) while find_library answers from `libdirs`; returns it."""
    if module in sys.modules:
        return sys.modules[module]
    import ctypes

    stand_in = type(sys)("ctypes.util")
    stand_in.find_library = versioned_sonames(libdirs).get
    saved_module = sys.modules.get("ctypes.util")
    saved_attr = ctypes.__dict__.get("util")
    sys.modules["ctypes.util"] = ctypes.util = stand_in
    try:
        __import__(module)
    except Exception:
        sys.modules.pop(module, None)   # half-imported: the retry below starts it afresh
    finally:
        if saved_module is None:
            del sys.modules["ctypes.util"]
        else:
            sys.modules["ctypes.util"] = saved_module
        if saved_attr is None:
            del ctypes.util
        else:
            ctypes.util = saved_attr
    if module not in sys.modules:
        __import__(module)              # with the real ctypes.util: slow, but it finds what it can
    return sys.modules[module]


def seccomp_library_version(libdirs=None) -> str | None:
    """The version of the libseccomp the runtime's filters are built with ("2.5.4"), from
    that library's own seccomp_version(); None when there is none to load. It opens the soname
    the pyseccomp import above finds, without importing the binding itself."""
    soname = versioned_sonames(system_library_dirs() if libdirs is None else libdirs).get("seccomp")
    if soname is None:
        return None
    import ctypes

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    try:
        lib = ctypes.CDLL(soname)
        query = lib.seccomp_version     # since libseccomp 2.3
    except (OSError, AttributeError):
        return None
    query.restype = ctypes.POINTER(Version)
    found = query()
    if not found:
        return None
    return f"{found.contents.major}.{found.contents.minor}.{found.contents.micro}"
