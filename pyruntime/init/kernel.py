"""The one way the container stages reach the kernel.

Namespaces, mounts, the root switch, device nodes, the fd-based walks inside the rootfs, the
process's attributes (credentials, capabilities, limits, the terminal), seccomp and the final
execve all go through a `Kernel`, so that unit tests can put a recording fake in its place
(tests/unit/fake_kernel.py) and check the exact calls a configuration leads to, without root.
Each method is the plain call it names; policy lives with the callers. Modules only some
stages need (fcntl, resource, socket) are imported by the method that uses them.
"""

from __future__ import annotations

import os

from pyruntime import linux
from pyruntime.init import inroot


class Kernel:
    """The real kernel: syscalls through pyruntime.linux and os."""

    # -- mounts ----------------------------------------------------------------------------
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        linux.mount(source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        linux.umount2(target, flags)

    def open_tree(self, path: str, flags: int, dirfd: int = linux.AT_FDCWD) -> int:
        return linux.open_tree(path, flags, dirfd)

    def mount_setattr(self, fd: int, attr_set: int, attr_clr: int = 0, propagation: int = 0,
                      recursive: bool = False, userns_fd: int = 0) -> None:
        linux.mount_setattr(fd, attr_set, attr_clr, propagation, recursive, userns_fd)

    def move_mount_to_fd(self, tree_fd: int, target_fd: int, what: str = "") -> None:
        linux.move_mount_to_fd(tree_fd, target_fd, what)

    def fsmount_new(self, fstype: str, options: list[tuple[str, str | None]] = (),
                    attr_flags: int = 0) -> int:
        return linux.fsmount_new(fstype, options, attr_flags)

    def mount_id(self, fd: int) -> int:
        return inroot.mount_id(fd)

    def mapping_namespaces(self):
        """User namespaces that carry idmapped mounts' maps (init/idmapped.py)."""
        from pyruntime.init.idmapped import MappingNamespaces

        return MappingNamespaces()

    # -- the root --------------------------------------------------------------------------
    def pivot_root(self, new_root: str, put_old: str) -> None:
        linux.pivot_root(new_root, put_old)

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def fchdir(self, fd: int) -> None:
        os.fchdir(fd)

    def open_root(self, path: str):
        """An inroot.Root: paths inside `path`, resolved by the kernel (openat2 IN_ROOT)."""
        return inroot.Root(path)

    # -- files -----------------------------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0o777, dir_fd: int | None = None) -> int:
        return os.open(path, flags, mode, dir_fd=dir_fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def fstatvfs(self, fd: int) -> os.statvfs_result:
        return os.fstatvfs(fd)

    def lexists_at(self, dirfd: int, name: str) -> bool:
        try:
            os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False

    def exists_beneath(self, dirfd: int, relative: str) -> bool:
        """`relative` exists below `dirfd`, reached without following any symlink."""
        try:
            os.close(inroot.open_beneath(dirfd, relative))
            return True
        except OSError:
            return False

    def path_exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read_text(self, path: str) -> str:
        with open(path) as f:
            return f.read()

    def mkdir(self, name: str, mode: int, dir_fd: int) -> None:
        os.mkdir(name, mode, dir_fd=dir_fd)

    def mknod(self, name: str, mode: int, device: int, dir_fd: int) -> None:
        os.mknod(name, mode, device, dir_fd=dir_fd)

    def unlink(self, name: str, dir_fd: int) -> None:
        os.unlink(name, dir_fd=dir_fd)

    def symlink(self, target: str, name: str, dir_fd: int) -> None:
        os.symlink(target, name, dir_fd=dir_fd)

    def chmod_fd(self, fd: int, mode: int) -> None:
        inroot.chmod_fd(fd, mode)

    def chown_fd(self, fd: int, uid: int, gid: int) -> None:
        inroot.chown_fd(fd, uid, gid)

    def copy_tree(self, source_dir: int, dest_dir: int, copy_root_mode: bool) -> None:
        inroot.copy_tree(source_dir, dest_dir, copy_root_mode)

    # -- the process -----------------------------------------------------------------------
    def setns(self, fd: int, nstype: int = 0) -> None:
        linux.setns(fd, nstype)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
              arg5: int = 0) -> int:
        return linux.prctl(option, arg2, arg3, arg4, arg5)

    def capget(self) -> tuple[int, int, int]:
        return linux.capget()

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        linux.capset(effective, permitted, inheritable)

    def umask(self, mask: int) -> int:
        return os.umask(mask)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        os.fchown(fd, uid, gid)

    def setgroups(self, groups: list[int]) -> None:
        os.setgroups(groups)

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        os.setresgid(rgid, egid, sgid)

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        os.setresuid(ruid, euid, suid)

    def ioprio_set(self, io_class: int, priority: int) -> None:
        linux.ioprio_set(io_class, priority)

    def sched_setattr(self, policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                      runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
        linux.sched_setattr(policy, flags, nice, priority, runtime, deadline, period)

    def set_mempolicy(self, mode: int, nodemask: bytes = b"") -> None:
        linux.set_mempolicy(mode, nodemask)

    def setrlimit(self, kind: int, soft: int, hard: int) -> None:
        import resource

        resource.setrlimit(kind, (soft, hard))

    def seccomp_set_filter(self, program: bytes, flags: int = 0) -> int:
        return linux.seccomp_set_filter(program, flags)

    def setsid(self) -> None:
        os.setsid()

    def fork(self) -> int:
        return os.fork()

    def execve(self, path: str, args: list[str], env: dict[str, str]) -> None:
        os.execve(path, args, env)

    # -- namespaces and the system -----------------------------------------------------------
    def unshare(self, flags: int) -> None:
        linux.unshare(flags)

    def readlink(self, path: str) -> str:
        return os.readlink(path)

    def sethostname(self, name: str) -> None:
        linux.sethostname(name)

    def setdomainname(self, name: str) -> None:
        linux.setdomainname(name)

    def personality(self, persona: int) -> None:
        linux.personality(persona)

    def write_text(self, path: str, text: str) -> None:
        """One open and write: a /proc or /proc/sys file takes its value in a single write."""
        with open(path, "w") as f:
            f.write(text)

    def inet_dgram_socket(self) -> int:
        return linux.inet_dgram_socket()

    # -- fds and the terminal ----------------------------------------------------------------
    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def close_range(self, first: int, last: int, flags: int = 0) -> None:
        linux.close_range(first, last, flags)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def fcntl(self, fd: int, cmd: int, arg: int = 0) -> int:
        import fcntl

        return fcntl.fcntl(fd, cmd, arg)

    def ioctl(self, fd: int, request: int, arg: bytes | int = 0):
        import fcntl

        return fcntl.ioctl(fd, request, arg)

    def openpty(self) -> tuple[int, int]:
        return os.openpty()

    def ttyname(self, fd: int) -> str:
        return os.ttyname(fd)

    def dup2(self, fd: int, fd2: int) -> None:
        os.dup2(fd, fd2)

    def send_fds(self, sock_fd: int, buffers: list[bytes], fds: list[int]) -> None:
        """sendmsg with SCM_RIGHTS on a socket given by fd, which stays open."""
        import socket

        sock = socket.socket(fileno=sock_fd)
        try:
            socket.send_fds(sock, buffers, fds)
        finally:
            sock.detach()


KERNEL = Kernel()
