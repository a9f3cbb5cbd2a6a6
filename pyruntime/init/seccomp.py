"""linux.seccomp -> a libseccomp filter (through pyseccomp), loaded just before exec.

Unknown syscall names are skipped, as runc does: profiles list syscalls of every kernel and
architecture, and a name this libseccomp cannot resolve cannot be called here either.
"""

from __future__ import annotations

import errno

from pyruntime.errors import NotSupported, RuntimeUserError

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
        raise NotSupported(f"{where}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported")
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


def preload() -> None:
    """Import the binding (which opens libseccomp) while the host's files are reachable."""
    binding()


def load(profile: dict) -> None:
    build_filter(profile).load()
