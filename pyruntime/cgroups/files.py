"""cgroupfs as files: reading and writing control files, making and removing cgroup directories.

Every driver and the manager interface build on these; they import nothing else of the
package, so that any layer can use them without pulling in another.
"""

from __future__ import annotations

import errno
import os
import time

from pyruntime.errors import RuntimeUserError

# Where the cgroup hierarchies are mounted on a host that follows the usual layout.
DEFAULT_ROOT = "/sys/fs/cgroup"
# How long remove_cgroup_dir() retries rmdir while the last processes of a cgroup are reaped.
DESTROY_TIMEOUT = 2.0


def read_text(path: str) -> str | None:
    """A cgroup file's content, or None if it does not exist."""
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_text(path: str, value: str) -> None:
    """One write(2) of `value`: cgroup files act on each write, never on partial content."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_error(field: str, filename: str, value, err: OSError) -> RuntimeUserError:
    """A user-facing error for a cgroup write the kernel refused."""
    reasons = {
        errno.EINVAL: "the kernel rejected the value",
        errno.EBUSY: "the cgroup is using more than that (or the value is in use)",
        errno.ENOENT: "this host's kernel or controller does not provide it",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "no such CPU or memory node, or the limit conflicts with a parent cgroup",
        errno.ERANGE: "the value is out of range",
    }
    reason = reasons.get(err.errno, err.strerror or str(err))
    return RuntimeUserError(f"{field}: cannot write {str(value).strip()!r} to {filename}: {reason}")


def read_pids(directory: str, recursive: bool = True) -> list[int]:
    """Process ids in a cgroup (and, by default, in its descendants)."""
    found: list[int] = []
    dirs = [directory]
    while dirs:
        d = dirs.pop()
        text = read_text(os.path.join(d, "cgroup.procs"))
        if text is None:
            continue
        found.extend(int(x) for x in text.split())
        if recursive:
            try:
                dirs.extend(e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                pass
    return sorted(set(found))


def make_dirs(directory: str, made: list[str]) -> None:
    """mkdir -p, recording each directory this call created (for rollback)."""
    parent = os.path.dirname(directory.rstrip("/"))
    if not os.path.isdir(parent):
        make_dirs(parent, made)
    try:
        os.mkdir(directory, 0o755)
        made.append(directory)
    except FileExistsError:
        pass


def remove_made_dirs(made: list[str]) -> None:
    """Remove the directories a failed create made (make_dirs' record), deepest first; never
    raise.

    Only those directories, one rmdir each: a parent made here may meanwhile hold another
    container's cgroup, which must survive (rmdir then fails and the parent stays).
    """
    for directory in reversed(made):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def remove_cgroup_dir(directory: str, timeout: float = DESTROY_TIMEOUT) -> None:
    """rmdir a cgroup and its descendants, children first.

    Already-gone directories are fine. EBUSY (tasks still exiting, or a dying memory cgroup)
    is retried with a short backoff until `timeout`, then reported.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            _remove_tree_once(directory)
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() >= deadline:
                raise RuntimeUserError(f"cannot remove cgroup {directory}: {e.strerror}"
                                       + (" (processes still in it)" if e.errno == errno.EBUSY else "")) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _remove_tree_once(directory: str) -> None:
    try:
        children = [e.path for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    for child in children:
        _remove_tree_once(child)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
