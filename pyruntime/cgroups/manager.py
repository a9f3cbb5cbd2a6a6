"""The driver-independent part of a cgroup manager.

A manager owns one cgroup path (the same in every hierarchy) and knows how to create it with
resources applied, put processes in it, freeze it, read it and remove it. The drivers (v1,
hybrid, v2) supply the hierarchy-specific steps. Reading state (pids, is_frozen, destroy,
from_dict) is plain file access so that `state`, `kill` and `delete` stay cheap; applying
resources imports the heavier planning code only when called.
"""

from __future__ import annotations

import errno
import os
import time

from pyruntime.errors import RuntimeUserError

# How long destroy() retries rmdir while the last processes of a cgroup are being reaped.
DESTROY_TIMEOUT = 2.0
# How long freeze() waits for every task to reach the frozen state.
FREEZE_TIMEOUT = 5.0


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


def rollback(made: list[str]) -> None:
    """Remove the directories a failed create() made, deepest first; never raise.

    Only those directories, one rmdir each: a parent made here may meanwhile hold another
    container's cgroup, which must survive (rmdir then fails and the parent stays).
    """
    for directory in reversed(made):
        try:
            os.rmdir(directory)
        except OSError:
            pass


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


class CgroupManager:
    """Common interface of the cgroup drivers; see v1.V1Manager and v2.V2Manager."""

    mode = ""
    path = ""
    made: list[str] = []    # directories the last create() made

    # -- lifecycle ---------------------------------------------------------------------
    def create(self, resources: dict | None = None, linux_devices=None) -> None:
        """Make the cgroup in every hierarchy and apply `resources` (OCI linux.resources).

        Everything is validated before the first mkdir. On any failure the directories made
        here are removed again and a RuntimeUserError naming the setting is raised.
        `linux_devices` (config.json linux.devices) is accepted and grants nothing: as with
        runc and crun, a node the runtime creates is usable only where
        linux.resources.devices allows it.
        """
        plan = self._plan(resources, with_devices=True)
        self._check_available(plan)
        made: list[str] = []
        try:
            self._make(made, plan)
            self._execute(plan)
        except BaseException:
            rollback(made)
            raise
        self.made = made

    def undo_create(self) -> None:
        """Remove what create() made of this cgroup, in each hierarchy where it made it, and
        nothing else: a cgroup the caller had made before (its own, a pod's) stays. Parents
        create() made stay too, as other containers may be below them by now."""
        own = set(self.directories())
        failed = []
        for directory in reversed(self.made):
            if directory in own:
                try:
                    remove_cgroup_dir(directory)
                except RuntimeUserError as e:
                    failed.append(e.message)
        self.made = []
        if failed:
            raise RuntimeUserError("; ".join(failed))

    def apply(self, resources: dict) -> None:
        """Apply resources to the existing cgroup (devices only if the dict names them)."""
        plan = self._plan(resources, with_devices="devices" in (resources or {}))
        self._check_available(plan)
        self._execute(plan)

    def update(self, stored: dict | None, changes: dict) -> dict:
        """`runc update`: merge `changes` into the resources the container runs with, apply
        the merged set and return it for state.json. Device rules are applied only when the
        changes name them: the new list replaces the old one, and on v1 the cgroup goes from
        the old rules to the new ones without ever allowing more than either."""
        from .resources import merge

        merged = merge(stored, changes)
        applied = merged if "devices" in changes else {k: v for k, v in merged.items() if k != "devices"}
        self.apply(applied)
        return merged

    def destroy(self) -> None:
        """Remove the cgroup from every hierarchy. Each is tried; one error names every
        directory that could not be removed."""
        failed = []
        for directory in self.directories():
            try:
                remove_cgroup_dir(directory)
            except RuntimeUserError as e:
                failed.append(e.message)
        if failed:
            raise RuntimeUserError("; ".join(failed))

    # -- driver hooks ------------------------------------------------------------------
    def directories(self) -> list[str]:
        """Every directory of this cgroup, one per hierarchy."""
        raise NotImplementedError

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.directories())

    def _plan(self, resources, with_devices):
        raise NotImplementedError

    def _check_available(self, plan) -> None:
        raise NotImplementedError

    def _make(self, made: list[str], plan) -> None:
        raise NotImplementedError

    def _execute(self, plan) -> None:
        raise NotImplementedError

    def add_process(self, pid: int, subs: dict[str, str] | None = None) -> None:
        """Move `pid` into the cgroup, or with `subs` (subcgroups.parse) into sub-cgroups."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def stops_processes(self) -> bool:
        """A process put in this cgroup would be frozen (by it or by an ancestor)."""
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError

    def oom_count(self) -> int:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict) -> "CgroupManager":
        """Rebuild the manager saved by to_dict() without scanning the host."""
        mode = data.get("mode")
        if mode == "v2":
            from .v2 import V2Manager

            return V2Manager(data["path"], root=data["root"])
        if mode in ("v1", "hybrid"):
            from .v1 import V1Manager

            return V1Manager(data["path"], hierarchies=dict(data["hierarchies"]),
                             unified_mount=data.get("unified"), root=data.get("root", "/sys/fs/cgroup"))
        raise ValueError(f"unknown cgroup manager mode {mode!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode} {self.path}>"
