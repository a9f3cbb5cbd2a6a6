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
    """$PYRUNTIME_CACHE_DIR, else /var/cache/pyruntime for root; other users:
    $XDG_CACHE_HOME/pyruntime, else ~/.cache/pyruntime. (root ignores XDG_CACHE_HOME, which
    `sudo -E` and some service managers pass on from another user.)"""
    explicit = os.environ.get("PYRUNTIME_CACHE_DIR")
    if explicit:
        return explicit
    if os.geteuid() == 0:
        return "/var/cache/pyruntime"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return os.path.join(xdg, "pyruntime")
    return os.path.join(os.path.expanduser("~"), ".cache", "pyruntime")


def trusted(directory: str) -> bool:
    """Whether what is in `directory` may be used: it is ours and nobody else can write to it
    (a file planted there would be run as a validator or loaded as a seccomp filter)."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def write_atomically(path: str, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a part (a rename over it). Only
    into a trusted directory (OSError otherwise), through a file nobody else made."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    if not trusted(directory):
        raise PermissionError(f"{directory} is not the runtime's own")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
