"""Named network namespaces, the way `ip netns` names them: a bind mount of the namespace file
at /run/netns/<name>. A named namespace outlives its processes, so `ip netns exec <name>` works
and a CNI DEL can still enter it after the container's init is gone."""

from __future__ import annotations

import os

from pyruntime import linux

NETNS_DIR = "/run/netns"


class NetnsError(OSError):
    pass


def path_of(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid network namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def _is_mount_point(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _prepare_dir() -> None:
    """As iproute2 does: /run/netns is a shared mount of its own, so that a name made or
    removed here is seen made or removed in every mount namespace copied from this one (a
    copy holding a private duplicate would keep the namespace alive after removal)."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    if _is_mount_point(NETNS_DIR):
        return
    linux.mount(NETNS_DIR, NETNS_DIR, None, linux.MS_BIND | linux.MS_REC)
    linux.mount(None, NETNS_DIR, None, linux.MS_SHARED | linux.MS_REC)


def pin(pid: int, name: str) -> str:
    """Name the network namespace of `pid`; refuse a name already in use."""
    source = f"/proc/{pid}/ns/net"
    if not os.path.exists(source):
        raise NetnsError(f"process {pid} is gone: no network namespace to name")
    return pin_fd_path(source, name)


def pin_fd_path(source: str, name: str) -> str:
    """Name the network namespace `source` (a /proc/.../ns/net or /proc/self/fd/N path)."""
    target = path_of(name)
    _prepare_dir()
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except FileExistsError:
        raise NetnsError(f"network namespace name {name!r} is already in use ({target})") from None
    os.close(fd)
    try:
        linux.mount(source, target, None, linux.MS_BIND)
    except OSError:
        os.unlink(target)
        raise
    return target


def is_pinned(name: str) -> bool:
    return _is_mount_point(path_of(name))


def unpin(name: str) -> None:
    """Remove the name; the namespace itself goes once nothing else uses it. Idempotent."""
    target = path_of(name)
    try:
        linux.umount2(target, linux.MNT_DETACH)
    except OSError:
        pass  # not mounted (a half-made pin, or already removed)
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
