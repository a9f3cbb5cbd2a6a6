"""The -ENOSYS prelude of a seccomp program: syscalls newer than the profile answer ENOSYS.

A profile that denies by default (SCMP_ACT_ERRNO, KILL, TRAP) also denies every syscall its
author never heard of, with its own errno. For a syscall newer than the profile that is the
wrong answer: glibc and others try the new call first (clone3, faccessat2, openat2, ...) and
fall back to an older one only on ENOSYS, so a container would fail where the kernel merely
has more to offer. runc therefore puts a short program in front of the one libseccomp builds:
for each architecture, a syscall number above the highest one the profile names returns
ENOSYS; everything else goes on to the profile's own filter. This module builds the same
prelude, as plain data in and bytes out.

"Named" means listed in any rule, whatever its action (a rule may repeat the default action and
so never reach libseccomp: its syscall is still known to the profile). The native architecture
always counts, listed or not (profiles for ppc64le often leave it out). x86_64 and x32 share
the kernel's AUDIT_ARCH_X86_64 and differ in bit 30 of the syscall number, so they are told
apart by that bit. On s390 and s390x, syscall 0 is where the kernel leaves a multiplexed call
it does not know, so it answers ENOSYS too.

Like runc's, the rule cannot see holes: a syscall added later with a number below the highest
named one (close_range was) still gets the profile's default action.
"""

from __future__ import annotations

import errno
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_TOKEN = 0x4000003E          # libseccomp's SCMP_ARCH_X32: not a kernel value
X32_SYSCALL_BIT = 0x40000000
S390_TOKENS = (0x00000016, 0x80000016)

# classic BPF opcodes (linux/bpf_common.h)
LD_W_ABS = 0x20
JMP_JA = 0x05
JMP_JEQ_K = 0x15
JMP_JGT_K = 0x25
JMP_JSET_K = 0x45
RET_K = 0x06

SECCOMP_RET_ERRNO = 0x00050000
RET_ENOSYS = SECCOMP_RET_ERRNO | errno.ENOSYS

# offsets in struct seccomp_data
DATA_NR = 0
DATA_ARCH = 4

# Default actions that let an unknown syscall through anyway (TRACE too: a tracer is expected
# to handle what it does not know, and ENOSYS would hide the call from it).
PERMISSIVE_ACTIONS = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"}


def wanted(profile: dict) -> bool:
    """Whether the profile's default action would answer an unknown syscall with anything but
    ENOSYS."""
    default = profile["defaultAction"]
    if default in PERMISSIVE_ACTIONS:
        return False
    return not (default == "SCMP_ACT_ERRNO" and profile.get("defaultErrnoRet") == errno.ENOSYS)


def highest_named(profile: dict, arch_tokens: list[int], resolve) -> dict[int, int]:
    """libseccomp architecture token -> the highest syscall number the profile names there.

    `resolve(token, name)` is libseccomp's number for a name (negative when the architecture
    has no such syscall, or multiplexes it). An architecture with no named syscall is left out.
    """
    names = {name for rule in profile.get("syscalls") or [] for name in rule["names"]}
    highest: dict[int, int] = {}
    for token in dict.fromkeys(arch_tokens):
        numbers = [n for n in (resolve(token, name) for name in names) if n > 0]
        if numbers:
            highest[token] = max(numbers)
    return highest


def audit_arch(token: int) -> int:
    """libseccomp's architecture tokens are the kernel's AUDIT_ARCH values, x32's aside."""
    return AUDIT_ARCH_X86_64 if token == X32_TOKEN else token


def prelude(highest: dict[int, int]) -> bytes:
    """The instructions to put in front of libseccomp's program (b"" when nothing is known).

    Per architecture: one check of the arch that skips the section when it is another, then the
    syscall number compared with the highest known one. Every section ends by jumping past the
    prelude, where libseccomp's program starts (it loads what it needs itself)."""
    if not highest:
        return b""
    by_arch: dict[int, dict[int, int]] = {}
    for token, number in sorted(highest.items()):
        by_arch.setdefault(audit_arch(token), {})[token] = number
    sections = [(arch, _section(arch, tokens)) for arch, tokens in sorted(by_arch.items())]
    program: list[tuple] = [(LD_W_ABS, 0, 0, DATA_ARCH)]
    end = 1 + sum(1 + len(body) for _, body in sections)
    for arch, body in sections:
        program.append((JMP_JEQ_K, 0, len(body), arch))
        start = len(program)
        for index, insn in enumerate(body):
            if insn[0] == JMP_JA:       # "to the filter": relative to where it lands
                insn = (JMP_JA, 0, 0, end - (start + index) - 1)
            program.append(insn)
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def _section(arch: int, tokens: dict[int, int]) -> list[tuple]:
    """The checks for one AUDIT_ARCH; jumps stay inside the section, whose last instruction is
    the jump to the filter (its offset is filled in by prelude)."""
    to_filter = (JMP_JA, 0, 0, 0)
    enosys = (RET_K, 0, 0, RET_ENOSYS)
    load_nr = (LD_W_ABS, 0, 0, DATA_NR)
    if arch == AUDIT_ARCH_X86_64:
        native, x32 = tokens.get(AUDIT_ARCH_X86_64), tokens.get(X32_TOKEN)
        if native is not None and x32 is not None:
            return [load_nr,
                    (JMP_JSET_K, 1, 0, X32_SYSCALL_BIT),     # x32: compare with its own highest
                    (JMP_JGT_K, 1, 2, native),
                    (JMP_JGT_K, 0, 1, x32),
                    enosys, to_filter]
        if native is not None:          # an x32 call is left to the filter (not ours to judge)
            return [load_nr, (JMP_JSET_K, 2, 0, X32_SYSCALL_BIT),
                    (JMP_JGT_K, 0, 1, native), enosys, to_filter]
        return [load_nr, (JMP_JSET_K, 0, 2, X32_SYSCALL_BIT),
                (JMP_JGT_K, 0, 1, x32), enosys, to_filter]
    [(token, number)] = tokens.items()
    checks = [load_nr]
    if token in S390_TOKENS:
        checks.append((JMP_JEQ_K, 1, 0, 0))            # syscall 0: to the ENOSYS below
    return checks + [(JMP_JGT_K, 0, 1, number), enosys, to_filter]
