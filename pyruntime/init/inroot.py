"""Paths inside a container's root, resolved by the kernel and used through file descriptors.

A path string checked in user space and used later is walked twice, and another process that
shares part of the tree (a second container on the same volume) can swap a component for a
symlink in between: the second walk then leaves the rootfs (runc's CVE-2021-30465). So nothing
here hands a path to a later call. Each path is resolved once by openat2(RESOLVE_IN_ROOT), which
treats the rootfs fd as "/" for every symlink and "..", even one swapped in mid-walk, and refuses
magic links (/proc/self/fd/N, /proc/1/root); what is created is created relative to a directory
fd, and the fd returned is what the caller mounts on, chmods or enters.

What exists is opened by the kernel's walk alone. Only for what is missing does `secure_join`
plan where the path points inside the root (following the image's symlinks as if the root were
"/", so that a dangling symlink names the file to create); the kernel then enforces that every
walk of that plan stays inside, whatever the tree looks like by then.
"""

from __future__ import annotations

import errno
import os
import stat

from pyruntime import linux
from pyruntime.errors import RuntimeUserError

MAX_SYMLINKS = 255
_RESOLVE = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
# Below a directory just made or just opened: one component, which must be what it claims.
_RESOLVE_ONE = linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS | linux.RESOLVE_NO_MAGICLINKS
_O_PATH = os.O_PATH | os.O_CLOEXEC
_RETRIES = 32   # openat2 answers EAGAIN when a rename or mount raced a ".." step


def secure_join(root: str, unsafe: str) -> str:
    """Where `unsafe` points under `root` as if `root` were `/`: symlinks (absolute or
    relative) and `..` never climb above it; missing components are kept as they are. A plan
    only: use the result through `Root`, never as a path to act on."""
    resolved: list[str] = []
    pending = [c for c in unsafe.split("/") if c]
    pending.reverse()
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise RuntimeUserError(f"too many symlinks resolving {unsafe!r} in the rootfs")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([c for c in target.split("/") if c]))
    return os.path.join(root, *resolved)


def fd_path(fd: int) -> str:
    """The magic link through which mount(2) reaches exactly what `fd` refers to."""
    return f"/proc/self/fd/{fd}"


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    for _ in range(_RETRIES):
        try:
            return linux.openat2(dirfd, path, flags, resolve)
        except BlockingIOError:
            continue
    raise OSError(errno.EAGAIN, f"{path}: kept changing while it was resolved")


class Root:
    """An open directory that stands for "/" of a container (its rootfs before pivot_root,
    or "/" after it). Every method takes a container path and returns an fd; close them."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "Root":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def relative(self, container_path: str) -> str:
        """The planned location of `container_path`, relative to the root ("." for itself)."""
        planned = secure_join(self.path, container_path)
        return os.path.relpath(planned, self.path) if planned != self.path else "."

    def open(self, container_path: str, flags: int = _O_PATH) -> int:
        """Open an existing `container_path`: the kernel walks it, inside the root, refusing
        magic links."""
        return _openat2(self.fd, container_path.lstrip("/") or ".", flags | os.O_CLOEXEC, _RESOLVE)

    def mkdir_all(self, container_path: str, mode: int = 0o755,
                  on_mounts: set[int] | None = None) -> int:
        """Open the directory `container_path`, creating what is missing of it. With
        `on_mounts`, what exists of it must lie on one of those mounts (by id) before anything
        is made: EXDEV otherwise."""
        try:
            fd, parts, have = self.open(container_path, os.O_PATH | os.O_DIRECTORY), [], 0
        except FileNotFoundError:
            # Something is missing: the plan says what to make (a dangling symlink of the
            # image names a directory to create inside the root).
            parts = [p for p in self.relative(container_path).split("/") if p not in ("", ".")]
            fd, have = self._deepest_existing(parts)
        try:
            if on_mounts is not None and mount_id(fd) not in on_mounts:
                raise OSError(errno.EXDEV, f"{container_path} is on a mount that is not the "
                                           "container's own (a bind mount): nothing is made there")
            for part in parts[have:]:
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                # Made or found by us a moment ago: a symlink here now was swapped in.
                child = open_beneath(fd, part, os.O_DIRECTORY)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_parent(self, container_path: str, follow: bool = True,
                    on_mounts: set[int] | None = None) -> tuple[int, str]:
        """(fd of the directory that holds `container_path`, made if missing, and its last
        component); with `follow`, a final symlink is followed first (as for a mount
        destination), else the entry itself is meant (as for a device node to replace)."""
        if follow:
            head, name = os.path.split(self.relative(container_path))
        else:
            head, name = os.path.split(container_path.rstrip("/"))
        if name in ("", ".", ".."):
            raise RuntimeUserError(f"{container_path!r} names no entry inside the container's root")
        return self.mkdir_all("/" + head, on_mounts=on_mounts), name

    def make_file(self, container_path: str, mode: int = 0o644) -> int:
        """Open the file `container_path` (O_PATH), creating an empty one if nothing is there."""
        try:
            return self.open(container_path)
        except FileNotFoundError:
            pass
        parent, name = self.open_parent(container_path)
        try:
            try:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, mode, dir_fd=parent))
            except FileExistsError:
                pass
            return open_beneath(parent, name)
        finally:
            os.close(parent)

    def _deepest_existing(self, parts: list[str]) -> tuple[int, int]:
        """(fd, n): the deepest directory that exists among the prefixes of `parts`, and how
        many components it covers."""
        for n in range(len(parts), 0, -1):
            try:
                return _openat2(self.fd, "/".join(parts[:n]), _O_PATH | os.O_DIRECTORY, _RESOLVE), n
            except FileNotFoundError:
                continue
        return os.dup(self.fd), 0


def open_beneath(dirfd: int, relative: str, flags: int = 0) -> int:
    """O_PATH fd of `relative` below `dirfd`, reached without following any symlink."""
    return _openat2(dirfd, relative, _O_PATH | flags, _RESOLVE_ONE)


def copy_tree(source_dir: int, dest_dir: int, copy_root_mode: bool) -> None:
    """Copy the contents of the directory `source_dir` (any fd of it) into `dest_dir`, with
    owners, modes and times, never following a symlink: every step is relative to an fd
    opened with O_NOFOLLOW, so a tree changed meanwhile cannot make it read outside."""
    src = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=source_dir)
    dst = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dest_dir)
    try:
        if copy_root_mode:
            st = os.fstat(src)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
            os.fchown(dst, st.st_uid, st.st_gid)
        _copy_entries(src, dst)
    finally:
        os.close(src)
        os.close(dst)


def _copy_entries(src: int, dst: int) -> None:
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    for entry in os.scandir(src):
        st = entry.stat(follow_symlinks=False)
        name = entry.name
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            child_src = os.open(name, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=src)
            child_dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=dst)
            try:
                _copy_entries(child_src, child_dst)
                _copy_attributes(child_dst, st)
            finally:
                os.close(child_src)
                os.close(child_dst)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src, dst, name, st)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        else:   # device nodes, fifos, sockets: the node, not what it leads to
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
            node = os.open(name, os.O_PATH | nofollow, dir_fd=dst)
            try:
                chmod_fd(node, stat.S_IMODE(st.st_mode))
                chown_fd(node, st.st_uid, st.st_gid)
            finally:
                os.close(node)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _copy_file(src: int, dst: int, name: str, st: os.stat_result) -> None:
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    fin = os.open(name, os.O_RDONLY | nofollow, dir_fd=src)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o600, dir_fd=dst)
        try:
            copied = 0
            while copied < st.st_size:
                sent = os.sendfile(fout, fin, copied, st.st_size - copied)
                if not sent:
                    break
                copied += sent
            _copy_attributes(fout, st)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_attributes(fd: int, st: os.stat_result) -> None:
    os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))   # after chown, which clears set-id bits


def mount_id(fd: int) -> int:
    """The id of the mount `fd` lies on (as /proc/self/mountinfo numbers them)."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.EINVAL, f"fd {fd}: the kernel reports no mount id")


def chmod_fd(fd: int, mode: int) -> None:
    """chmod what an O_PATH fd refers to (fchmod refuses O_PATH fds)."""
    os.chmod(fd_path(fd), mode)


def chown_fd(fd: int, uid: int, gid: int) -> None:
    os.chown(fd_path(fd), uid, gid)
