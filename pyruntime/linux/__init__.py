"""Thin wrappers for the Linux system calls the Python standard library lacks.

Python 3.11 has no os.unshare/os.setns and never had mount, pivot_root, capset or prctl, so they
are reached here through libc (`libc.py`, on CPython's _ctypes: the ctypes package itself
costs more to import than a container's stage spends in all these calls). Nothing else calls
C; everything else calls these functions, which raise OSError with the failing call and its
arguments named. Importing this module is cheap: libc is only opened on the first call.
"""

from __future__ import annotations

import os

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# OCI namespace type -> (clone flag, name of the /proc/<pid>/ns entry).
NAMESPACES = {
    "user": (CLONE_NEWUSER, "user"),
    "pid": (CLONE_NEWPID, "pid"),
    "mount": (CLONE_NEWNS, "mnt"),
    "uts": (CLONE_NEWUTS, "uts"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "network": (CLONE_NEWNET, "net"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# Mount flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

# prctl options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

# seccomp(2) (linux/seccomp.h)
_SYS_SECCOMP = 317
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 16

# x86_64 syscall numbers for the calls glibc 2.36 has no wrapper for.
_SYS_PIVOT_ROOT = 155
_SYS_CAPGET = 125
_SYS_CAPSET = 126
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_OPENAT2 = 437
_SYS_MOUNT_SETATTR = 442
_SYS_IOPRIO_SET = 251
_SYS_CLOSE_RANGE = 436

# The new mount API (linux/mount.h).
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
MOUNT_ATTR_IDMAP = 0x100000

# openat2(2) resolve flags (linux/openat2.h).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_libc = None


def _lib():
    global _libc
    if _libc is None:
        from pyruntime.linux import libc

        _libc = libc.Library()
    return _libc


def preload() -> None:
    """Open libc now (the first call would), for a process that has time to spare before its
    calls are on the clock."""
    _lib()


def _check(result: int, what: str) -> int:
    if result == -1:
        from pyruntime.linux import libc

        err = libc.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(path: str | bytes | None) -> bytes | None:
    if path is None:
        return None
    return path if isinstance(path, bytes) else os.fsencode(path)


def unshare(flags: int) -> None:
    _check(_lib().unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_lib().setns(fd, nstype), f"setns({fd}, {nstype:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(
        _lib().mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
        f"mount {source or 'none'} on {target} (type {fstype or 'none'}, flags {flags:#x}, "
        f"data {data or ''!r})",
    )


def umount2(target: str, flags: int = 0) -> None:
    _check(_lib().umount2(_b(target), flags), f"umount {target}")


def open_tree(path: str, flags: int, dirfd: int = AT_FDCWD) -> int:
    """A file descriptor for the mount tree at `path` (relative to `dirfd`; "" with
    AT_EMPTY_PATH for `dirfd` itself); with OPEN_TREE_CLONE, a detached copy that belongs to no
    mount namespace (AT_RECURSIVE: with its submounts)."""
    return _check(_lib().syscall(_SYS_OPEN_TREE, dirfd, _b(path), flags),
                  f"open_tree({path or dirfd})")


def mount_setattr(fd: int, attr_set: int, attr_clr: int = 0, propagation: int = 0,
                  recursive: bool = False, userns_fd: int = 0) -> None:
    """Change the attributes of the mount `fd` refers to (and of every mount below it when
    `recursive`): MOUNT_ATTR_* bits to set and clear, an MS_* propagation type, and with
    MOUNT_ATTR_IDMAP the user namespace whose maps the mount takes."""
    import struct

    from pyruntime.linux import libc

    attr = struct.pack("=QQQQ", attr_set, attr_clr, propagation, userns_fd)  # struct mount_attr
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _check(_lib().syscall(_SYS_MOUNT_SETATTR, fd, b"", flags, attr, libc.c_size_t(len(attr))),
           f"mount_setattr({fd}, set {attr_set:#x}, clear {attr_clr:#x})")


CLOSE_RANGE_CLOEXEC = 1 << 2


def close_range(first: int, last: int, flags: int = 0) -> None:
    """close_range(2): close (or with CLOSE_RANGE_CLOEXEC mark close-on-exec) fds first..last,
    without needing /proc."""
    from pyruntime.linux import libc

    _check(_lib().syscall(_SYS_CLOSE_RANGE, libc.c_uint(first), libc.c_uint(last),
                          libc.c_uint(flags)),
           f"close_range({first}, {last})")


def move_mount_to_fd(tree_fd: int, target_fd: int, what: str = "") -> None:
    """Attach the detached mount `tree_fd` (open_tree CLONE, fsmount) on the directory or file
    `target_fd` refers to: no path is walked, so nothing can be swapped in between."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    _check(_lib().syscall(_SYS_MOVE_MOUNT, tree_fd, b"", target_fd, b"", flags),
           f"move_mount {what or tree_fd} onto fd {target_fd}")


def fsmount_new(fstype: str, options: list[tuple[str, str | None]] = (), attr_flags: int = 0) -> int:
    """A new, detached filesystem of `fstype` (fsopen, fsconfig, fsmount): `options` are its
    key=value (or bare flag) options, `attr_flags` the MOUNT_ATTR_* of the mount. Nothing is
    walked to make it, and no /proc is needed; move_mount_to_fd attaches it."""
    fs = _check(_lib().syscall(_SYS_FSOPEN, _b(fstype), FSOPEN_CLOEXEC), f"fsopen({fstype})")
    try:
        for key, value in options:
            command = FSCONFIG_SET_FLAG if value is None else FSCONFIG_SET_STRING
            _check(_lib().syscall(_SYS_FSCONFIG, fs, command, _b(key), _b(value), 0),
                   f"{fstype} option {key}{'' if value is None else '=' + value}")
        _check(_lib().syscall(_SYS_FSCONFIG, fs, FSCONFIG_CMD_CREATE, None, None, 0),
               f"fsconfig({fstype}, create)")
        return _check(_lib().syscall(_SYS_FSMOUNT, fs, FSMOUNT_CLOEXEC, attr_flags),
                      f"fsmount({fstype})")
    finally:
        os.close(fs)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to `dirfd` with the kernel enforcing `resolve`
    (RESOLVE_IN_ROOT: symlinks and ".." are resolved as if `dirfd` were "/")."""
    import struct

    from pyruntime.linux import libc

    how = struct.pack("=QQQ", flags, mode, resolve)  # struct open_how
    return _check(_lib().syscall(_SYS_OPENAT2, dirfd, _b(path), how, libc.c_size_t(len(how))),
                  f"openat2({path!r})")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_lib().syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)),
           f"pivot_root({new_root}, {put_old})")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_lib().sethostname(raw, len(raw)), f"sethostname({name!r})")


def inet_dgram_socket() -> int:
    """A bare AF_INET datagram socket fd, for interface ioctls. The socket module would do,
    but the container's init does not import it (~8 ms) just for this."""
    return _check(_lib().socket(2, 2 | os.O_CLOEXEC, 0), "socket(AF_INET, SOCK_DGRAM)")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_lib().setdomainname(raw, len(raw)), f"setdomainname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    from pyruntime.linux import libc

    lib = _lib()
    args = [libc.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    return _check(lib.prctl(libc.c_int(option), *args), f"prctl({option})")


def personality(persona: int) -> None:
    _check(_lib().personality(persona), f"personality({persona:#x})")


# Capability sets are passed to capset as two 32-bit halves (_LINUX_CAPABILITY_VERSION_3).
_CAP_V3 = 0x20080522


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return (effective, permitted, inheritable) of `pid` (0: this thread) as 64-bit masks."""
    from pyruntime.linux import libc

    header = (libc.c_uint32 * 2)(_CAP_V3, pid)
    data = (libc.c_uint32 * 6)()
    _check(_lib().syscall(_SYS_CAPGET, header, data), "capget")
    return (data[0] | data[3] << 32, data[1] | data[4] << 32, data[2] | data[5] << 32)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    from pyruntime.linux import libc

    header = (libc.c_uint32 * 2)(_CAP_V3, 0)
    lo, hi = 0xFFFFFFFF, 32
    data = (libc.c_uint32 * 6)(
        effective & lo, permitted & lo, inheritable & lo,
        effective >> hi, permitted >> hi, inheritable >> hi,
    )
    _check(_lib().syscall(_SYS_CAPSET, header, data), "capset")


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def seccomp_set_filter(program: bytes, flags: int = 0) -> int:
    """Install a classic BPF seccomp program (struct sock_filter entries, 8 bytes each) on
    this thread, as libseccomp's seccomp_load does. `flags`: SECCOMP_FILTER_FLAG_* (through
    seccomp(2); plain prctl without any). Returns the listener fd when
    SECCOMP_FILTER_FLAG_NEW_LISTENER is asked for, else -1. Without no_new_privs the caller
    needs CAP_SYS_ADMIN."""
    from pyruntime.linux import libc

    if not program or len(program) % 8:
        raise ValueError(f"a BPF program is a whole number of 8-byte instructions, not {len(program)} bytes")

    class SockFprog(libc.Structure):
        _fields_ = [("len", libc.c_ushort), ("filter", libc.c_void_p)]

    instructions = libc.buffer(program)
    fprog = SockFprog(len(program) // 8, libc.addressof(instructions))
    if not flags:
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, libc.addressof(fprog))
        return -1
    fd = _check(_lib().syscall(libc.c_long(_SYS_SECCOMP), libc.c_long(SECCOMP_SET_MODE_FILTER),
                               libc.c_long(flags), libc.byref(fprog)), "seccomp")
    return fd if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER else -1



# bpf(2): glibc has no wrapper. x86_64 number and the commands/constants used here.
_SYS_BPF = 321
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_OVERRIDE = 1


def _bpf(cmd: int, attr: bytearray, what: str) -> int:
    from pyruntime.linux import libc

    buf = (libc.c_char * len(attr)).from_buffer(attr)
    return _check(_lib().syscall(_SYS_BPF, libc.c_int(cmd), buf, libc.c_uint(len(attr))), what)


def bpf_prog_load(prog_type: int, insns: bytes, license: str = "Apache-2.0") -> int:
    """Load a BPF program (raw struct bpf_insn array); returns its fd.

    On a verifier rejection the OSError message carries the verifier log.
    """
    import struct

    from pyruntime.linux import libc

    code = libc.buffer(insns)
    lic = libc.buffer(license.encode() + b"\0")
    log = libc.buffer(65536)
    attr = bytearray(128)
    # union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf
    struct.pack_into("=IIQQIIQ", attr, 0, prog_type, len(insns) // 8, libc.addressof(code),
                     libc.addressof(lic), 1, len(log), libc.addressof(log))
    try:
        return _bpf(_BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as e:
        text = log.value.decode(errors="replace").strip()
        raise OSError(e.errno, f"{e.strerror}{': ' + text[-500:] if text else ''}") from None


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    """Attach a loaded program to a target (a cgroup directory fd for cgroup programs)."""
    import struct

    attr = bytearray(128)
    struct.pack_into("=IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    _bpf(_BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)")


# ioctls on namespace files (linux/nsfs.h).
_NS_GET_USERNS = 0xB701
_NS_GET_OWNER_UID = 0xB704


def ns_owner_uid(ns_fd: int) -> int:
    """The uid that owns the user namespace owning the namespace `ns_fd` (0 for the host's)."""
    import fcntl
    import struct

    userns = fcntl.ioctl(ns_fd, _NS_GET_USERNS)
    try:
        buf = bytearray(4)
        fcntl.ioctl(userns, _NS_GET_OWNER_UID, buf)
        return struct.unpack("=I", buf)[0]
    finally:
        os.close(userns)


# ioprio_set(2) (linux/ioprio.h): this process, class in the top bits.
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13


def ioprio_set(io_class: int, priority: int) -> None:
    _check(_lib().syscall(_SYS_IOPRIO_SET, _IOPRIO_WHO_PROCESS, 0,
                          (io_class << _IOPRIO_CLASS_SHIFT) | priority),
           f"ioprio_set(class {io_class}, priority {priority})")


# NUMA memory policy and scheduling attributes: glibc has no wrapper for either call.
_SYS_SET_MEMPOLICY = 238
_SYS_SCHED_SETATTR = 314


def set_mempolicy(mode: int, nodemask: bytes = b"") -> None:
    """set_mempolicy(2) for this thread, which its children inherit and execve keeps: `mode`
    with its MPOL_F_* flags or'ed in, `nodemask` the node bits as little-endian 64-bit words
    (empty: no nodes)."""
    from pyruntime.linux import libc

    if nodemask:
        mask = libc.buffer(nodemask)
        # the kernel takes maxnode - 1 bits of the mask, so one more than the mask holds
        maxnode = len(nodemask) * 8 + 1
    else:
        mask, maxnode = None, 0
    _check(_lib().syscall(_SYS_SET_MEMPOLICY, libc.c_int(mode), mask, libc.c_ulong(maxnode)),
           f"set_mempolicy(mode {mode:#x})")


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    """sched_setattr(2) for this thread: policy, SCHED_FLAG_* bits, nice, static priority and
    the deadline parameters (ns). The utilization clamps stay 0."""
    import struct

    from pyruntime.linux import libc

    # struct sched_attr as of SCHED_ATTR_SIZE_VER1 (56 bytes, with util_min and util_max)
    attr = struct.pack("=IIQiIQQQII", 56, policy, flags, nice, priority, runtime, deadline,
                       period, 0, 0)
    buf = libc.buffer(attr)
    _check(_lib().syscall(_SYS_SCHED_SETATTR, 0, buf, 0),
           f"sched_setattr(policy {policy}, flags {flags:#x}, nice {nice}, priority {priority})")
