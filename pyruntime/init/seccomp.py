"""linux.seccomp -> a libseccomp filter (through pyseccomp), loaded just before exec.

Unknown syscall names are skipped, as runc does: profiles list syscalls of every kernel and
architecture, and a name this libseccomp cannot resolve cannot be called here either.

Compiled once, loaded many times: podman sends the same profile (hundreds of syscalls) with
every container, and building it through pyseccomp costs ~25 ms (the binding and `typing`
~12 ms, the rules ~12 ms) in the container's init. So the runtime compiles a profile to the BPF
program libseccomp makes of it (`seccomp_export_bpf`) and keeps that in its cache, keyed by the
exact profile, the kernel and the machine, and checked against the libseccomp that built it. The
init then installs the program with one prctl (seccomp(2) when it needs a listener) and never
loads pyseccomp. A profile with load-time flags (TSYNC, LOG, SPEC_ALLOW) is built in the init,
and goes through the same steps there: export, prelude, install with its flags.

Either way runc's -ENOSYS prelude (seccomp_enosys.py) goes in front of what libseccomp built,
so that a syscall newer than the profile answers ENOSYS rather than the profile's default.

SCMP_ACT_NOTIFY: the filter goes on with SECCOMP_FILTER_FLAG_NEW_LISTENER, and the listener the
kernel returns goes back to the runtime over the sync channel (SCM_RIGHTS); the runtime hands
it to the agent at linux.seccomp.listenerPath (seccomp_agent.py). The init keeps no copy: a
container process holding its own listener could answer its own notifications.
"""

from __future__ import annotations

import errno
import os

from pyruntime.errors import NotSupported, RuntimeUserError

CACHE_FORMAT = 2    # bump when program_of changes what a profile compiles to (2: -ENOSYS prelude)

ARCHES = {
    "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_MIPS": "MIPS",
    "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPS64N32": "MIPS64N32", "SCMP_ARCH_MIPSEL": "MIPSEL",
    "SCMP_ARCH_MIPSEL64": "MIPSEL64", "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32",
    "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64", "SCMP_ARCH_PPC64LE": "PPC64LE",
    "SCMP_ARCH_S390": "S390", "SCMP_ARCH_S390X": "S390X", "SCMP_ARCH_PARISC": "PARISC",
    "SCMP_ARCH_PARISC64": "PARISC64", "SCMP_ARCH_RISCV64": "RISCV64",
}

OPERATORS = {
    "SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB",
}

ACTIONS = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]

# What the init needs before the agent holds the listener: the syscall that passes it on. A
# notification for it would wait for an answer nobody can give yet (runc, which passes the
# fd's number with write(2) instead, refuses SCMP_ACT_NOTIFY for write for the same reason).
NOTIFY_REFUSED = ("sendmsg",)


def action(lib, name: str, errno_ret: int | None, where: str) -> int:
    simple = {
        "SCMP_ACT_KILL": lib.KILL, "SCMP_ACT_KILL_THREAD": lib.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": lib.KILL_PROCESS, "SCMP_ACT_TRAP": lib.TRAP,
        "SCMP_ACT_ALLOW": lib.ALLOW, "SCMP_ACT_LOG": lib.LOG,
    }
    if name in simple:
        return simple[name]
    if name == "SCMP_ACT_ERRNO":
        return lib.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return lib.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_NOTIFY":
        return lib.NOTIFY
    raise RuntimeUserError(f"{where}: unknown seccomp action {name!r}")


def rule_arg_sets(args: list[dict]) -> list[list[dict]]:
    """libseccomp ANDs the conditions of one rule but accepts one condition per argument index;
    conditions repeating an index are therefore split into one rule each (as runc does)."""
    indexes = [a["index"] for a in args]
    if len(indexes) == len(set(indexes)):
        return [args]
    return [[a] for a in args]


def binding():
    """pyseccomp, imported without its search for libc and libseccomp (see linux/libraries)."""
    from pyruntime.linux import libraries

    return libraries.import_with_libraries_from("pyseccomp", libraries.system_library_dirs())


def build_filter(profile: dict):
    lib = binding()
    default = action(lib, profile["defaultAction"], profile.get("defaultErrnoRet"),
                     "linux.seccomp.defaultAction")
    f = lib.SyscallFilter(default)
    # libseccomp would set no_new_privs itself; that is process.noNewPrivileges' decision.
    f.set_attr(lib.Attr.CTL_NNP, 0)
    for arch in profile.get("architectures") or []:
        if arch not in ARCHES:
            raise RuntimeUserError(f"linux.seccomp.architectures: unknown architecture {arch!r}")
        try:
            f.add_arch(getattr(lib.Arch, ARCHES[arch]))
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise
    for flag in profile.get("flags") or []:
        if flag not in FLAGS:
            raise NotSupported(f"linux.seccomp.flags: {flag} is not supported")
        f.set_attr(getattr(lib.Attr, FLAGS[flag]), 1)
    for index, rule in enumerate(profile.get("syscalls") or []):
        where = f"linux.seccomp.syscalls[{index}]"
        act = action(lib, rule["action"], rule.get("errnoRet"), where + ".action")
        if act == default:
            continue  # libseccomp refuses rules that repeat the default action
        for name in rule["names"]:
            number = lib.resolve_syscall(lib.Arch.NATIVE, name)
            if number < 0:
                continue
            for arg_set in rule_arg_sets(rule.get("args") or []):
                conditions = [
                    lib.Arg(a["index"], getattr(lib, OPERATORS[a["op"]]), a["value"], a.get("valueTwo", 0))
                    for a in arg_set
                ]
                try:
                    f.add_rule(act, number, *conditions)
                except OSError as e:
                    # libseccomp refuses a rule it already holds; podman's profile repeats
                    # some (e.g. socket's) once capabilities select extra rule sets
                    if e.errno != errno.EEXIST:
                        raise
    return f


def notifies(profile: dict) -> bool:
    """Whether some rule hands its syscalls to an agent (SCMP_ACT_NOTIFY)."""
    return any(rule["action"] == "SCMP_ACT_NOTIFY" for rule in profile.get("syscalls") or [])


def flag_bits(profile: dict) -> int:
    """The SECCOMP_FILTER_FLAG_* bits to install the profile's program with."""
    from pyruntime import linux

    bits = {"SECCOMP_FILTER_FLAG_TSYNC": linux.SECCOMP_FILTER_FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_LOG": linux.SECCOMP_FILTER_FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW": linux.SECCOMP_FILTER_FLAG_SPEC_ALLOW}
    flags = 0
    for flag in profile.get("flags") or []:
        flags |= bits[flag]         # build_filter has refused any other
    if notifies(profile):
        flags |= linux.SECCOMP_FILTER_FLAG_NEW_LISTENER
        if flags & linux.SECCOMP_FILTER_FLAG_TSYNC:
            # the kernel takes TSYNC with a listener only when told how to fail (ESRCH)
            flags |= linux.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    return flags


def program_of(profile: dict) -> bytes:
    """What the init installs for the profile: libseccomp's program behind the -ENOSYS prelude
    (seccomp_enosys.py), for the native architecture and the profile's."""
    from pyruntime.init import seccomp_enosys as enosys

    lib = binding()
    program = _export(build_filter(profile))
    if not enosys.wanted(profile):
        return program
    arches = [lib.system_arch()] + [getattr(lib.Arch, ARCHES[arch])
                                    for arch in profile.get("architectures") or []]
    return enosys.prelude(enosys.highest_named(profile, arches, lib.resolve_syscall)) + program


# When the init puts its filter on (Filter.moment).
WHILE_PRIVILEGED = "privileged"
AFTER_NO_NEW_PRIVS = "no-new-privs"
AT_EXEC = "exec"


class Filter:
    """What the init loads: the compiled program when the runtime had one, else the profile,
    built in place. `channel`: the sync socket a listener (SCMP_ACT_NOTIFY) goes back on."""

    def __init__(self, profile: dict, program: bytes | None = None, channel: int | None = None):
        self.profile = profile
        self.program = program
        self.channel = channel
        self.notifies = notifies(profile)

    @classmethod
    def of(cls, config: dict, program: bytes | None, channel: int | None = None) -> "Filter | None":
        profile = (config.get("linux") or {}).get("seccomp")
        return cls(profile, program, channel) if profile else None

    def moment(self, process: dict) -> str:
        """Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: it goes on before the
        capabilities are dropped. With it, as the very last step, so that nothing the init
        still does is subject to it; unless its listener is to reach an agent: that needs the
        runtime still listening on the sync channel, so it goes on as soon as no_new_privs is
        set (where runc loads it too)."""
        if not process.get("noNewPrivileges"):
            return WHILE_PRIVILEGED
        return AFTER_NO_NEW_PRIVS if self.notifies else AT_EXEC

    def preload(self) -> None:
        """Import what loading needs while the host's files are reachable (before pivot_root)."""
        if self.program is None:
            binding()
            from pyruntime.init import seccomp_enosys  # noqa: F401
        if self.notifies:
            import socket  # noqa: F401  (the listener is passed with it)

    def load(self, kernel=None) -> None:
        if kernel is None:
            from pyruntime.init.kernel import KERNEL as kernel

        program = self.program if self.program is not None else program_of(self.profile)
        flags = flag_bits(self.profile)
        if not self.notifies:
            kernel.seccomp_set_filter(program, flags)
            return
        if self.channel is None:
            raise RuntimeUserError("linux.seccomp: SCMP_ACT_NOTIFY needs the runtime to take "
                                   "the listener")
        from pyruntime.init import protocol

        with protocol.ListenerPasser(self.channel) as passer:
            listener = kernel.seccomp_set_filter(program, flags)
            try:
                passer.send(listener)
            finally:
                kernel.close(listener)


def compiled_for(config: dict) -> bytes | None:
    """compiled() of the config's linux.seccomp, None without one."""
    profile = (config.get("linux") or {}).get("seccomp")
    return compiled(profile) if profile else None


def compiled(profile: dict, cache: str | None = None) -> bytes | None:
    """The profile's BPF program, from the cache or compiled now (and cached); None for a
    profile with load-time flags, which the init builds itself. Errors in the profile are
    raised here, in the runtime, as they would be in the init."""
    if profile.get("flags"):
        return None
    import json
    import marshal
    import zlib

    from pyruntime.cache import cache_dir, trusted, write_atomically

    machine = os.uname()
    key = json.dumps([CACHE_FORMAT, machine.machine, machine.release, profile], sort_keys=True,
                     separators=(",", ":"))
    path = os.path.join(cache or cache_dir(), f"seccomp-{zlib.crc32(key.encode()):08x}.bpf")
    if trusted(os.path.dirname(path)):
        try:
            with open(path, "rb") as f:
                stored_key, library, program = marshal.loads(f.read())
            if stored_key == key and _library_identity(library[0]) == library and program:
                return program
        except Exception:   # missing, unreadable or not an entry of ours: compile again
            pass
    try:
        program = program_of(profile)
    except OSError as e:
        raise RuntimeUserError(f"linux.seccomp: libseccomp refused the profile: {e.strerror or e}") from None
    try:
        write_atomically(path, marshal.dumps((key, _loaded_libseccomp(), program)))
    except OSError:
        pass            # a read-only cache: compile again next time
    return program


def _export(f) -> bytes:
    fd = os.memfd_create("pyruntime-seccomp", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            f.export_bpf(out)
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


def _loaded_libseccomp() -> tuple:
    """The identity of the libseccomp file this process has mapped (it built the program)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.rstrip("\n").split(" ", 5)[-1].strip()
            if "/libseccomp.so" in path:
                return _library_identity(path)
    return ("", 0, 0)


def _library_identity(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_ino, st.st_mtime_ns)
