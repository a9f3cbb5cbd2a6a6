"""The -ENOSYS prelude: a syscall newer than everything a denying profile names answers ENOSYS.

The programs are run by a small classic-BPF interpreter over a seccomp_data of our choosing,
so what a container would get is read off the very bytes the init installs.
"""

import errno
import struct

import pytest

from pyruntime.init import seccomp
from pyruntime.init import seccomp_enosys as enosys

LIB = seccomp.binding()
ALLOW, ENOSYS_RET = 0x7FFF0000, 0x00050000 | errno.ENOSYS
X86_64, I386, X32 = LIB.Arch.X86_64, LIB.Arch.X86, LIB.Arch.X32
AUDIT_X86_64, AUDIT_I386 = 0xC000003E, 0x40000003


def errno_ret(code: int) -> int:
    return 0x00050000 | code


def run(program: bytes, nr: int, arch: int = AUDIT_X86_64) -> int:
    """What the program returns for syscall `nr` made with audit architecture `arch`."""
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    data = struct.pack("=IIQ6Q", nr & 0xFFFFFFFF, arch, 0, *[0] * 6)
    pc = acc = 0
    for _ in range(10_000):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:                      # ld [k]
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:                    # and #k
            acc &= k
        elif code == 0x05:                    # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:                    # ret #k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not interpreted")
    raise AssertionError("the program did not return")


def nr(name: str, arch: int = X86_64) -> int:
    return LIB.resolve_syscall(arch, name)


def denying(**changes) -> dict:
    """Default EPERM; allows a few, denies getcpu with EACCES; process_madvise (440), the
    highest named, repeats the default action (so never reaches libseccomp: still named)."""
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
               "syscalls": [{"names": ["read", "write", "openat2", "no_such_call"],
                             "action": "SCMP_ACT_ALLOW"},
                            {"names": ["getcpu"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
                            {"names": ["process_madvise"], "action": "SCMP_ACT_ERRNO"}]}
    profile.update(changes)
    return profile


def test_newer_than_everything_named_gets_enosys_the_rest_the_profiles_answers():
    program = seccomp.program_of(denying())
    highest = nr("process_madvise")
    assert run(program, highest + 1) == ENOSYS_RET                # epoll_pwait2: newer
    assert run(program, highest + 20) == ENOSYS_RET
    assert run(program, highest) == errno_ret(errno.EPERM)        # named, denied as the default
    assert run(program, nr("faccessat2")) == errno_ret(errno.EPERM)   # older, just not named
    assert run(program, nr("getcpu")) == errno_ret(errno.EACCES)
    assert run(program, nr("read")) == run(program, nr("openat2")) == ALLOW


@pytest.mark.parametrize("changes", [
    {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": None},
    {"defaultAction": "SCMP_ACT_LOG", "defaultErrnoRet": None},
    {"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": None},
    {"defaultErrnoRet": errno.ENOSYS},
], ids=["allow", "log", "trace", "errno-is-enosys"])
def test_no_prelude_where_the_default_lets_it_through_or_already_says_enosys(changes):
    profile = {k: v for k, v in denying(**changes).items() if v is not None}
    profile["syscalls"] = [r for r in profile["syscalls"] if r["action"] != profile["defaultAction"]]
    program = seccomp.program_of(profile)
    assert program == seccomp._export(seccomp.build_filter(profile))
    assert enosys.wanted(profile) is False


def test_a_killing_default_gets_the_prelude_too():
    profile = {"defaultAction": "SCMP_ACT_KILL_PROCESS",
               "syscalls": [{"names": ["read", "openat2"], "action": "SCMP_ACT_ALLOW"}]}
    program = seccomp.program_of(profile)
    assert run(program, nr("openat2") + 1) == ENOSYS_RET
    assert run(program, nr("openat2") - 1) == 0x80000000          # SECCOMP_RET_KILL_PROCESS


def test_each_architecture_is_judged_by_its_own_highest_number():
    program = seccomp.program_of(denying(architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X32"]))
    for arch, audit in ((I386, AUDIT_I386), (X32, AUDIT_X86_64), (X86_64, AUDIT_X86_64)):
        highest = nr("process_madvise", arch)
        assert run(program, highest + 1, audit) == ENOSYS_RET, arch
        assert run(program, highest, audit) == errno_ret(errno.EPERM), arch
        assert run(program, nr("openat2", arch), audit) == ALLOW, arch
    # i386 numbers its calls differently: x86_64's highest means nothing there
    assert nr("process_madvise", I386) == nr("process_madvise") and nr("getcpu", I386) != nr("getcpu")
    assert run(program, nr("getcpu", I386), AUDIT_I386) == errno_ret(errno.EACCES)


def test_the_native_architecture_counts_when_the_profile_leaves_it_out():
    program = seccomp.program_of(denying(architectures=["SCMP_ARCH_X86"]))
    assert run(program, nr("process_madvise") + 1) == ENOSYS_RET


def test_without_x32_its_calls_are_left_to_libseccomp():
    profile = denying(architectures=["SCMP_ARCH_X86_64"])
    plain = seccomp._export(seccomp.build_filter(profile))
    program = seccomp.program_of(profile)
    x32_call = 0x40000000 | (nr("process_madvise") + 1)
    assert run(program, x32_call) == run(plain, x32_call) != ENOSYS_RET


def test_prelude_of_invented_architectures():
    """s390(x) gets ENOSYS for syscall 0 too (where an unknown multiplexed call lands); an
    architecture without a section falls through to the filter, here a lone `ret ALLOW`."""
    s390x, aarch64 = 0x80000016, 0xC00000B7
    program = enosys.prelude({s390x: 300, aarch64: 200}) + struct.pack("=HBBI", 0x06, 0, 0, ALLOW)
    assert run(program, 0, s390x) == ENOSYS_RET
    assert run(program, 300, s390x) == ALLOW and run(program, 301, s390x) == ENOSYS_RET
    assert run(program, 0, aarch64) == ALLOW and run(program, 201, aarch64) == ENOSYS_RET
    assert run(program, 5000, AUDIT_I386) == ALLOW
    assert enosys.prelude({}) == b""


def test_x32_alone_is_checked_only_for_calls_with_its_bit():
    program = enosys.prelude({X32: 0x40000000 | 100}) + struct.pack("=HBBI", 0x06, 0, 0, ALLOW)
    assert run(program, 0x40000000 | 101) == ENOSYS_RET
    assert run(program, 0x40000000 | 100) == ALLOW
    assert run(program, 5000) == ALLOW                  # an x86_64 call: not x32's business


def test_highest_named_skips_names_an_architecture_lacks():
    profile = {"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ["socket", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]}
    # i386 multiplexes socket (a negative pseudo number): nothing named there
    assert enosys.highest_named(profile, [X86_64, I386], LIB.resolve_syscall) == {X86_64: nr("socket")}


def test_the_cache_holds_the_program_with_its_prelude(tmp_path):
    profile = denying()
    program = seccomp.compiled(profile, str(tmp_path))
    assert program == seccomp.program_of(profile)
    assert run(program, nr("process_madvise") + 1) == ENOSYS_RET
    assert seccomp.CACHE_FORMAT >= 2    # programs cached before the prelude are not reused
