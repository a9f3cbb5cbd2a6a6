"""Process attributes applied by the container init: rlimits, user, capabilities, no_new_privs,
umask, the terminal, and finding the program to exec."""

from __future__ import annotations

import errno
import os
import resource

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init.kernel import KERNEL, Kernel

CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {f"CAP_{name}": number for number, name in enumerate(CAPABILITIES)}

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITIES) - 1


def cap_mask(names: list[str], available: int, warn) -> int:
    """Turn capability names into a bit mask. Names this kernel lacks, or that the runtime
    itself does not hold, cannot be granted: they are left out with a warning (as runc does)."""
    mask = 0
    skipped = []
    for name in names:
        number = CAP_NUMBERS.get(name.upper())
        if number is None:
            raise RuntimeUserError(f"process.capabilities: unknown capability {name!r}")
        if not available >> number & 1:
            skipped.append(name)
            continue
        mask |= 1 << number
    if skipped:
        warn(f"ignoring unknown or unavailable capabilities: {sorted(set(skipped))}")
    return mask


class CapabilitySets:
    def __init__(self, caps: dict[str, list[str]] | None, warn, kernel: Kernel = KERNEL):
        self.kernel = kernel
        _, permitted, _ = kernel.capget()
        bounding_now = sum(1 << c for c in range(last_cap() + 1) if _in_bounding(kernel, c))
        available = permitted & bounding_now
        caps = caps or {}
        self.bounding = cap_mask(caps.get("bounding", []), available, warn)
        self.effective = cap_mask(caps.get("effective", []), available, warn)
        self.permitted = cap_mask(caps.get("permitted", []), available, warn)
        self.inheritable = cap_mask(caps.get("inheritable", []), available, warn)
        self.ambient = cap_mask(caps.get("ambient", []), available, warn)

    def drop_bounding(self) -> None:
        for cap in range(last_cap() + 1):
            if not self.bounding >> cap & 1 and _in_bounding(self.kernel, cap):
                self.kernel.prctl(linux.PR_CAPBSET_DROP, cap)

    def apply(self) -> None:
        self.kernel.capset(self.effective, self.permitted, self.inheritable)
        for cap in range(last_cap() + 1):
            if self.ambient >> cap & 1:
                try:
                    self.kernel.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, cap)
                except PermissionError:
                    # The kernel only raises ambient caps that are also inheritable; runc's
                    # default spec asks for ambient ones without that, and runc goes on.
                    from pyruntime import log

                    log.debug(f"ambient capability {CAPABILITIES[cap]} not raised: not inheritable")


def _in_bounding(kernel: Kernel, cap: int) -> bool:
    try:
        return kernel.prctl(linux.PR_CAPBSET_READ, cap) == 1
    except OSError:
        return False


RLIMITS = {
    "RLIMIT_CPU": resource.RLIMIT_CPU, "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA, "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_CORE": resource.RLIMIT_CORE, "RLIMIT_RSS": resource.RLIMIT_RSS,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC, "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK, "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
    "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE, "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO, "RLIMIT_RTTIME": resource.RLIMIT_RTTIME,
}

_RLIM_INFINITY = 2**64 - 1


def apply_rlimits(rlimits: list[dict], kernel: Kernel = KERNEL) -> None:
    for index, rl in enumerate(rlimits):
        kind = RLIMITS.get(rl["type"])
        if kind is None:
            raise RuntimeUserError(f"process.rlimits[{index}].type: unknown rlimit {rl['type']!r}")
        soft, hard = (resource.RLIM_INFINITY if v >= _RLIM_INFINITY else v
                      for v in (rl["soft"], rl["hard"]))
        try:
            kernel.setrlimit(kind, soft, hard)
        except (ValueError, OSError) as e:
            raise RuntimeUserError(
                f"process.rlimits[{index}]: cannot set {rl['type']} to soft={rl['soft']} "
                f"hard={rl['hard']}: {getattr(e, 'strerror', None) or e}") from None


def switch_user(user: dict, caps: CapabilitySets | None, kernel: Kernel = KERNEL) -> None:
    """setgroups/setgid/setuid, keeping the permitted capabilities across the uid change so the
    configured sets can then be applied (effective is cleared by the kernel on setuid)."""
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if caps is not None:
        kernel.prctl(linux.PR_SET_KEEPCAPS, 1)
    try:
        groups = list(user.get("additionalGids") or [])
        try:
            kernel.setgroups(groups)
        except PermissionError:
            # Inside a user namespace with setgroups denied only an empty list is accepted.
            if groups:
                raise
        kernel.setresgid(gid, gid, gid)
        kernel.setresuid(uid, uid, uid)
    except OSError as e:
        raise RuntimeUserError(f"process.user: cannot switch to uid {uid} gid {gid}: {e.strerror}") from None
    if caps is not None:
        kernel.prctl(linux.PR_SET_KEEPCAPS, 0)


PR_SET_DUMPABLE = 4


def set_io_priority(process: dict, kernel: Kernel = KERNEL) -> None:
    """process.ioPriority, while the capabilities an RT class needs are still there."""
    wanted = process.get("ioPriority")
    if not wanted:
        return
    try:
        kernel.ioprio_set(linux.IOPRIO_CLASSES[wanted["class"]], wanted.get("priority", 0))
    except OSError as e:
        raise RuntimeUserError(f"process.ioPriority: cannot set {wanted['class']} "
                               f"{wanted.get('priority', 0)}: {e.strerror}") from None


def set_oom_score_adj(process: dict, kernel: Kernel = KERNEL) -> None:
    if "oomScoreAdj" in process:
        kernel.write_text("/proc/self/oom_score_adj", str(process["oomScoreAdj"]))


def become(process: dict, seccomp_filter, warn, undumpable: bool = False,
           kernel: Kernel = KERNEL) -> str:
    """Turn this (root, fully capable) process into the configured one, short of exec:
    capabilities, user, no_new_privs, umask and cwd, in the order that keeps each step
    possible. Returns the program to exec (looked up now, so a missing one fails early).

    `undumpable`: stay non-dumpable across the uid change (for processes that entered an
    existing container and must stay out of its reach until exec).
    """
    caps = CapabilitySets(process.get("capabilities"), warn, kernel)
    no_new_privs = bool(process.get("noNewPrivileges"))
    load_seccomp_at("privileged", seccomp_filter, process, kernel)
    caps.drop_bounding()
    user = process.get("user") or {}
    give_stdio_pipes(user.get("uid", 0), user.get("gid", 0), kernel)
    cwd = process.get("cwd") or "/"
    # runc's order: the cwd is entered with the runtime's privileges, which may reach a
    # directory the user could not; only where those do not suffice (a rootless runtime is
    # not the container's user) is it entered again as the user.
    entered = enter_cwd(cwd, denied_ok=True, kernel=kernel)
    switch_user(user, caps, kernel)
    if undumpable:
        kernel.prctl(PR_SET_DUMPABLE, 0)  # a uid change may reset the flag (fs.suid_dumpable)
    caps.apply()
    if no_new_privs:
        kernel.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    load_seccomp_at("no-new-privs", seccomp_filter, process, kernel)
    kernel.umask(user.get("umask", 0o022))
    if not entered:
        enter_cwd(cwd, kernel=kernel)
    return find_executable(process["args"][0], process.get("env") or [], cwd)


def give_stdio_pipes(uid: int, gid: int, kernel: Kernel = KERNEL) -> None:
    """Stdio that are pipes become the process's user's (as crun does): a process that is
    not root can then reopen them, as `echo > /dev/stdout` or a log file named /dev/stderr
    do. Only pipes: a file or device the caller passed is not ours to change. One whose
    owner is not mapped in our user namespace cannot be given away, and stays as it is."""
    import stat

    for fd in (0, 1, 2):
        try:
            if stat.S_ISFIFO(kernel.fstat(fd).st_mode):
                kernel.fchown(fd, uid, gid)
        except OSError as e:
            if e.errno not in (errno.EBADF, errno.EPERM, errno.EINVAL):
                raise


def enter_cwd(cwd: str, denied_ok: bool = False, kernel: Kernel = KERNEL) -> bool:
    """chdir into `cwd`, resolved inside the container's root with magic links refused: a
    /proc/self/fd/N or /proc/1/root there could lead to a host directory (CVE-2024-21626).
    `denied_ok`: a permission error returns False instead of failing."""
    try:
        with kernel.open_root("/") as root:
            fd = root.open(cwd, os.O_PATH | os.O_DIRECTORY)
        try:
            kernel.fchdir(fd)
        finally:
            kernel.close(fd)
    except PermissionError:
        if denied_ok:
            return False
        raise RuntimeUserError(f"process.cwd: cannot enter {cwd}: Permission denied") from None
    except OSError as e:
        raise RuntimeUserError(f"process.cwd: cannot enter {cwd}: {e.strerror}") from None
    return True


def load_seccomp_at(moment: str, seccomp_filter, process: dict, kernel: Kernel = KERNEL) -> None:
    """Load the filter if this is its moment (seccomp.Filter.moment: "privileged",
    "no-new-privs" or "exec")."""
    if seccomp_filter is not None and seccomp_filter.moment(process) == moment:
        seccomp_filter.load(kernel)


def exec_program(executable: str, process: dict, seccomp_filter, kernel: Kernel = KERNEL) -> None:
    """The last step: with no_new_privs the filter goes on only now, so that nothing the
    runtime still does is subject to it."""
    load_seccomp_at("exec", seccomp_filter, process, kernel)
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in process.get("env") or [])
    if "HOME" not in env:
        env["HOME"] = home_of((process.get("user") or {}).get("uid", 0))
    kernel.execve(executable, process["args"], env)


def home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    """The user's home in the container's /etc/passwd, else "/" (runc's HOME for a process
    whose env has none)."""
    try:
        with open(passwd, errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid) and fields[5]:
                    return fields[5]
    except OSError:
        pass
    return "/"


def find_executable(arg0: str, env: list[str], cwd: str) -> str:
    if "/" in arg0:
        path = arg0 if os.path.isabs(arg0) else os.path.join(cwd, arg0)
        _check_executable(path, arg0)
        return path
    search = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            search = item[5:]
    for directory in search.split(":"):
        candidate = os.path.join(directory or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeUserError(f'exec: "{arg0}": executable file not found in $PATH')


def _check_executable(path: str, arg0: str) -> None:
    if not os.path.exists(path):
        raise RuntimeUserError(f'exec: "{arg0}": stat {arg0}: no such file or directory')
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise RuntimeUserError(f'exec: "{arg0}": permission denied')


def close_fds_from(first: int, keep: set[int], kernel: Kernel = KERNEL) -> None:
    """Mark every fd >= `first` close-on-exec, so only stdio and preserved fds reach the
    container process (ours die at exec, and we keep using them until then). close_range
    needs no /proc, which a container need not have."""
    start = first
    try:
        for fd in sorted(k for k in keep if k >= first):
            if fd > start:
                kernel.close_range(start, fd - 1, linux.CLOSE_RANGE_CLOEXEC)
            start = fd + 1
        kernel.close_range(start, 0xFFFFFFFF, linux.CLOSE_RANGE_CLOEXEC)
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.EINVAL):   # before Linux 5.11
            raise
        _cloexec_listed_fds(first, keep, kernel)


def _cloexec_listed_fds(first: int, keep: set[int], kernel: Kernel) -> None:
    import fcntl

    for name in kernel.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < first or fd in keep:
            continue
        try:
            flags = kernel.fcntl(fd, fcntl.F_GETFD)
            kernel.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
        except OSError as e:
            if e.errno != errno.EBADF:
                raise


def setup_terminal(console_fd: int, size: dict[str, int] | None, bind_console=None,
                   uid: int = 0, kernel: Kernel = KERNEL) -> None:
    """Open a pty in the container's devpts, make its slave our stdio and controlling terminal,
    owned by the process's user (its group stays devpts's tty group, as with runc and crun),
    give it to `bind_console` (the init binds it over /dev/console), and hand the master to the
    caller through the console socket (`console_fd`)."""
    import struct
    import termios

    master, slave = kernel.openpty()
    slave_path = kernel.ttyname(slave)
    kernel.fchown(slave, uid, -1)
    if size:
        kernel.ioctl(master, termios.TIOCSWINSZ,
                     struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
    if bind_console is not None:
        bind_console(slave)
    # The init is already a session leader (setsid at its start): take the pty as its terminal.
    kernel.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        kernel.dup2(slave, fd)
    if slave > 2:
        kernel.close(slave)
    kernel.send_fds(console_fd, [slave_path.encode()], [master])
    kernel.close(master)
    kernel.close(console_fd)
