"""The runtime's on-disk cache: things compiled once per host and reused by every call.

Two kinds live here: the compiled config.json validator (spec/fastcheck.py) and compiled seccomp
filters (init/seccomp.py). Both are derived data: a missing, unreadable or unwritable cache
only means compiling again. The directory is trusted like the runtime itself (what is read
from it is executed or loaded into the kernel), so the default for root is root's own
/var/cache/pyruntime.
"""

from __future__ import annotations

import os


def cache_dir() -> str:
    """$PYRUNTIME_CACHE_DIR, else $XDG_CACHE_HOME/pyruntime, else /var/cache/pyruntime for root,
    else ~/.cache/pyruntime."""
    explicit = os.environ.get("PYRUNTIME_CACHE_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return os.path.join(xdg, "pyruntime")
    if os.geteuid() == 0:
        return "/var/cache/pyruntime"
    return os.path.join(os.path.expanduser("~"), ".cache", "pyruntime")


def write_atomically(path: str, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a part (a rename over it)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
