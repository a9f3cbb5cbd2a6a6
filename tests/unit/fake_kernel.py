"""A recording stand-in for pyruntime.init.kernel.Kernel: no syscall is made.

Every call is appended to `calls` as a tuple, fds written as what they stand for ("tree:/src"
for an open_tree clone, "dir:/data" for a directory of the rootfs opened by mkdir_all,
"root:/dev" for Root.open, "fd:<that>" for a /proc/self/fd path), so a test states the
exact calls a configuration leads to. What the disk would answer is given up front: files
(`read_text`), entries that exist (`existing`, container or host paths), modes of what fds
stand for (`modes`, default a 0755 directory), paths on foreign mounts (`foreign`), and
exceptions to raise once (`fail`, keyed by (method, first argument as recorded, a list as
a tuple)).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

_DIR = stat.S_IFDIR | 0o755


class FakeStatvfs:
    def __init__(self, f_flag: int):
        self.f_flag = f_flag


class FakeStat:
    def __init__(self, st_mode: int):
        self.st_mode = st_mode


class FakeRoot:
    """inroot.Root over the fake: opens nothing, records the walks."""

    def __init__(self, kernel: FakeKernel, path: str):
        self.kernel = kernel
        self.path = path
        self.fd = kernel.new_fd(f"rootdir:{path}")

    def close(self) -> None:
        if self.fd >= 0:
            self.kernel.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self, container_path: str, flags: int = os.O_PATH) -> int:
        self.kernel.calls.append(("root.open", container_path))
        self.kernel.raise_if("root.open", container_path)
        if container_path in self.kernel.missing:
            raise FileNotFoundError(errno.ENOENT, container_path)
        return self.kernel.new_fd(f"root:{container_path}")

    def mkdir_all(self, container_path: str, mode: int = 0o755, on_mounts=None) -> int:
        self.kernel.calls.append(("root.mkdir_all", container_path))
        self.kernel.raise_if("root.mkdir_all", container_path)
        if on_mounts is not None and container_path in self.kernel.foreign:
            raise OSError(errno.EXDEV, f"{container_path} is on a foreign mount")
        return self.kernel.new_fd(f"dir:{container_path}")

    def open_parent(self, container_path: str, follow: bool = True, on_mounts=None):
        head, name = posixpath.split(container_path.rstrip("/"))
        return self.mkdir_all(head, on_mounts=on_mounts), name

    def make_file(self, container_path: str, mode: int = 0o644) -> int:
        self.kernel.calls.append(("root.make_file", container_path))
        return self.kernel.new_fd(f"file:{container_path}")


class FakeNamespaces:
    def __init__(self, kernel: FakeKernel):
        self.kernel = kernel
        self.fds: dict[tuple, int] = {}

    def fd_for(self, uid_maps: list[dict], gid_maps: list[dict]) -> int:
        key = (repr(uid_maps), repr(gid_maps))
        if key not in self.fds:
            self.kernel.calls.append(("userns", uid_maps, gid_maps))
            self.fds[key] = self.kernel.new_fd(f"userns:{len(self.fds)}")
        return self.fds[key]

    def close(self) -> None:
        for fd in self.fds.values():
            self.kernel.close(fd)


class FakeKernel:
    def __init__(self, files: dict[str, str] | None = None, existing=(), missing=(),
                 modes: dict[str, int] | None = None, foreign=(), fail=None,
                 statvfs_flags: int = 0):
        self.calls: list[tuple] = []
        self.files = dict(files or {})
        self.existing = set(existing)
        self.missing = set(missing)
        self.modes = dict(modes or {})
        self.foreign = set(foreign)
        self.fail = dict(fail or {})
        self.statvfs_flags = statvfs_flags
        self.fds: dict[int, str] = {}      # open fds -> what they stand for
        self._next = 1000                  # far above any real fd of the test process

    # -- bookkeeping -----------------------------------------------------------------------
    def new_fd(self, what: str) -> int:
        fd = self._next
        self._next += 1
        self.fds[fd] = what
        return fd

    def what(self, fd: int) -> str:
        if fd == -100:
            return "AT_FDCWD"
        if fd in (0, 1, 2):
            return f"stdio:{fd}"
        return self.fds[fd]

    def _path(self, path):
        if isinstance(path, str) and path.startswith("/proc/self/fd/"):
            return "fd:" + self.what(int(path.rsplit("/", 1)[1]))
        return path

    def raise_if(self, method: str, key) -> None:
        if isinstance(key, list):
            key = tuple(key)
        exc = self.fail.pop((method, key), None)
        if exc is not None:
            raise exc

    def _record(self, *call) -> None:
        self.calls.append(call)
        self.raise_if(call[0], call[1])

    def named(self, *methods: str) -> list[tuple]:
        """The recorded calls of these methods, in order."""
        return [c for c in self.calls if c[0] in methods]

    def _entry(self, dirfd: int, name: str) -> str:
        return posixpath.join(self.what(dirfd).split(":", 1)[1], name)

    # -- mounts ----------------------------------------------------------------------------
    def mount(self, source, target, fstype, flags=0, data=None):
        self._record("mount", self._path(source), self._path(target), fstype, flags, data)

    def umount2(self, target, flags=0):
        self._record("umount2", target, flags)

    def open_tree(self, path, flags, dirfd=-100):
        self._record("open_tree", path, flags, self.what(dirfd))
        return self.new_fd(f"tree:{path or self.what(dirfd)}")

    def mount_setattr(self, fd, attr_set, attr_clr=0, propagation=0, recursive=False,
                      userns_fd=0):
        self._record("mount_setattr", self.what(fd), attr_set, attr_clr, propagation, recursive,
                     self.what(userns_fd) if userns_fd else 0)

    def move_mount_to_fd(self, tree_fd, target_fd, what=""):
        self._record("move_mount", self.what(tree_fd), self.what(target_fd))

    def fsmount_new(self, fstype, options=(), attr_flags=0):
        self._record("fsmount", fstype, list(options), attr_flags)
        return self.new_fd(f"fsmount:{fstype}")

    def mount_id(self, fd):
        return 7 if self.what(fd).split(":", 1)[1] not in self.foreign else 99

    def mapping_namespaces(self):
        return FakeNamespaces(self)

    # -- the root --------------------------------------------------------------------------
    def pivot_root(self, new_root, put_old):
        self._record("pivot_root", new_root, put_old)

    def chroot(self, path):
        self._record("chroot", path)

    def chdir(self, path):
        self._record("chdir", path)

    def fchdir(self, fd):
        self._record("fchdir", self.what(fd))

    def open_root(self, path):
        self.calls.append(("open_root", path))
        return FakeRoot(self, path)

    # -- files -----------------------------------------------------------------------------
    def open(self, path, flags, mode=0o777, dir_fd=None):
        where = path if dir_fd is None else self._entry(dir_fd, path)
        self._record("open", where, flags)
        return self.new_fd(f"open:{where}")

    def close(self, fd):
        if fd not in self.fds:
            raise OSError(errno.EBADF, f"fd {fd} closed twice or never opened")
        del self.fds[fd]

    def fstat(self, fd):
        return FakeStat(self.modes.get(self.what(fd), _DIR))

    def fstatvfs(self, fd):
        self.calls.append(("fstatvfs", self.what(fd)))
        return FakeStatvfs(self.statvfs_flags)

    def lexists_at(self, dirfd, name):
        return self._entry(dirfd, name) in self.existing

    def exists_beneath(self, dirfd, relative):
        return self._entry(dirfd, relative) in self.existing

    def path_exists(self, path):
        return path in self.existing

    def read_text(self, path):
        return self.files[path]

    def mkdir(self, name, mode, dir_fd):
        self._record("mkdir", self._entry(dir_fd, name), mode)

    def mknod(self, name, mode, device, dir_fd):
        self._record("mknod", self._entry(dir_fd, name), mode, os.major(device), os.minor(device))
        self.existing.add(self._entry(dir_fd, name))

    def unlink(self, name, dir_fd):
        self._record("unlink", self._entry(dir_fd, name))
        self.existing.discard(self._entry(dir_fd, name))

    def symlink(self, target, name, dir_fd):
        self._record("symlink", target, self._entry(dir_fd, name))
        self.existing.add(self._entry(dir_fd, name))

    def chmod_fd(self, fd, mode):
        self._record("chmod", self.what(fd), mode)

    def chown_fd(self, fd, uid, gid):
        self._record("chown", self.what(fd), uid, gid)

    def copy_tree(self, source_dir, dest_dir, copy_root_mode):
        self._record("copy_tree", self.what(source_dir), self.what(dest_dir), copy_root_mode)


class FakeProcessKernel(FakeKernel):
    """The process calls: `bounding` the capabilities PR_CAPBSET_READ reports, `permitted`
    what capget reports, `ioctl_replies` what an ioctl request answers (else its argument);
    `files` also gives readlink's targets and listdir's names (space-separated)."""

    def __init__(self, bounding: int = 0, permitted: int = 0, ioctl_replies=None, **kw):
        super().__init__(**kw)
        self.bounding = bounding
        self.permitted = permitted
        self.ioctl_replies = dict(ioctl_replies or {})

    def prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0):
        from pyruntime import linux

        if option == linux.PR_CAPBSET_READ:
            return self.bounding >> arg2 & 1
        self._record("prctl", option, arg2, arg3)
        if option == linux.PR_CAPBSET_DROP:
            self.bounding &= ~(1 << arg2)
        return 0

    def setns(self, fd, nstype=0):
        self._record("setns", self.what(fd), nstype)

    def umask(self, mask):
        self._record("umask", mask)
        return 0o022

    def fchown(self, fd, uid, gid):
        self._record("fchown", self.what(fd), uid, gid)

    def capget(self):
        return 0, self.permitted, 0

    def capset(self, effective, permitted, inheritable):
        self._record("capset", effective, permitted, inheritable)

    def setgroups(self, groups):
        self._record("setgroups", list(groups))

    def setresgid(self, rgid, egid, sgid):
        self._record("setresgid", rgid, egid, sgid)

    def setresuid(self, ruid, euid, suid):
        self._record("setresuid", ruid, euid, suid)

    def ioprio_set(self, io_class, priority):
        self._record("ioprio_set", io_class, priority)

    def sched_setattr(self, policy, flags=0, nice=0, priority=0, runtime=0, deadline=0,
                      period=0):
        self._record("sched_setattr", policy, flags, nice, priority, runtime, deadline, period)

    def set_mempolicy(self, mode, nodemask=b""):
        self._record("set_mempolicy", mode, nodemask)

    def setrlimit(self, kind, soft, hard):
        self._record("setrlimit", kind, soft, hard)

    def seccomp_set_filter(self, program, flags=0):
        from pyruntime import linux

        self._record("seccomp_set_filter", program, flags)
        if flags & linux.SECCOMP_FILTER_FLAG_NEW_LISTENER:
            return self.new_fd("seccomp-listener")
        return 0

    def setsid(self):
        self._record("setsid")

    def fork(self):
        self._record("fork")
        return 4242

    def execve(self, path, args, env):
        self._record("execve", path, list(args), dict(env))

    def unshare(self, flags):
        self._record("unshare", flags)

    def readlink(self, path):
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, path)
        return self.files[path]

    def sethostname(self, name):
        self._record("sethostname", name)

    def setdomainname(self, name):
        self._record("setdomainname", name)

    def personality(self, persona):
        self._record("personality", persona)

    def write_text(self, path, text):
        self._record("write_text", path, text)

    def inet_dgram_socket(self):
        self.calls.append(("socket", "inet-dgram"))
        return self.new_fd("socket:inet-dgram")

    def write(self, fd, data):
        self._record("write", self.what(fd), data)
        return len(data)

    def close_range(self, first, last, flags=0):
        self._record("close_range", first, last, flags)

    def listdir(self, path):
        return list(self.files[path].split())

    def fcntl(self, fd, cmd, arg=0):
        self._record("fcntl", fd, cmd, arg)
        return 0

    def ioctl(self, fd, request, arg=0):
        """Answers with `ioctl_replies[request]` where given, else with the argument."""
        self._record("ioctl", self.what(fd), request, arg)
        return self.ioctl_replies.get(request, arg)

    def openpty(self):
        self.calls.append(("openpty",))
        return self.new_fd("pty-master"), self.new_fd("pty-slave")

    def ttyname(self, fd):
        return "/dev/pts/3"

    def dup2(self, fd, fd2):
        self._record("dup2", self.what(fd), fd2)

    def send_fds(self, sock_fd, buffers, fds):
        self._record("send_fds", self.what(sock_fd), list(buffers), [self.what(fd) for fd in fds])
