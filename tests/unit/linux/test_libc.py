"""libc calls on _ctypes (pyruntime.linux.libc) and the wrappers built on them, in a process of
our own: answers, errno, the C types and buffers, and that no ctypes package is loaded."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys

import pytest

from pyruntime import linux
from pyruntime.linux import libc
from tests.support import REPO, repo_env

SYS_GETPID = 39     # x86_64
SYS_CLOSE = 3
SYS_MMAP = 9
SYS_MUNMAP = 11


def test_functions_answer_as_the_kernel_does():
    lib = libc.Library()
    assert lib.getpid() == os.getpid()
    assert lib.syscall(SYS_GETPID) == os.getpid()
    assert lib.getpid is lib.getpid      # looked up once


def test_a_failed_call_leaves_its_errno():
    lib = libc.Library()
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    assert lib.syscall(SYS_CLOSE, libc.c_uint(fd)) == -1
    assert libc.get_errno() == errno.EBADF


def test_syscall_answers_a_long():
    # mmap's answer, an address above 4 GiB on a 64-bit host, must come back whole: an
    # int-typed result would cut it to 32 bits, and munmap of that would fail
    lib = libc.Library()
    prot_read, map_private_anonymous = 0x1, 0x22
    address = lib.syscall(SYS_MMAP, libc.c_ulong(0), libc.c_ulong(4096), libc.c_ulong(prot_read),
                          libc.c_ulong(map_private_anonymous), libc.c_long(-1), libc.c_ulong(0))
    assert address > 1 << 32 and address % 4096 == 0
    assert lib.syscall(SYS_MUNMAP, libc.c_ulong(address), libc.c_ulong(4096)) == 0


def test_buffer_copies_bytes_including_nul_and_zero_fills():
    copy = libc.buffer(b"a\0b")
    assert copy.raw == b"a\0b" and len(copy) == 3
    assert libc.buffer(4).raw == b"\0\0\0\0"
    assert libc.buffer(b"ok\0").value == b"ok"


def test_types_match_the_ctypes_ones():
    for ours, theirs in ((libc.c_int, ctypes.c_int), (libc.c_uint, ctypes.c_uint),
                         (libc.c_long, ctypes.c_long), (libc.c_ulong, ctypes.c_ulong),
                         (libc.c_ushort, ctypes.c_ushort), (libc.c_void_p, ctypes.c_void_p),
                         (libc.c_uint32, ctypes.c_uint32), (libc.c_size_t, ctypes.c_size_t),
                         (libc.c_char, ctypes.c_char)):
        assert ctypes.sizeof(ours) == ctypes.sizeof(theirs), ours
    assert list((libc.c_uint32 * 3)(1, 2, 3)) == [1, 2, 3]


def test_structures_and_pointers_reach_c():
    class Pair(libc.Structure):
        _fields_ = [("a", libc.c_ushort), ("b", libc.c_void_p)]

    pair = Pair(7, 0)
    raw = ctypes.string_at(libc.addressof(pair), ctypes.sizeof(Pair))
    assert raw[:2] == (7).to_bytes(2, sys.byteorder)


def test_wrappers_report_the_call_and_errno():
    with pytest.raises(OSError) as info:
        linux.setns(-1, 0)
    assert info.value.errno == errno.EBADF and "setns(-1" in str(info.value)


def test_capget_reads_this_process_sets():
    effective, permitted, _ = linux.capget()
    with open("/proc/self/status") as status:
        fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
    assert effective == int(fields["CapEff"], 16) and permitted == int(fields["CapPrm"], 16)


def test_no_ctypes_package_is_loaded():
    """The point of the module: the stages' syscalls without `import ctypes`."""
    code = ("import sys\n"
            "from pyruntime import linux\n"
            "linux.set_pdeathsig(0)\n"
            "linux.capget()\n"
            "linux.close_range(1000, 1001)\n"
            "print('ctypes' in sys.modules, '_ctypes' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + code],
                         env=repo_env(), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]

