"""The sealed interpreter the container stages are started from (pyruntime/init/reexec.py)."""

import os
import socket
import sys

import pytest

from pyruntime.init import container, reexec


def test_memfd_copy_is_the_interpreter_and_cannot_be_written():
    fd = reexec._memfd_copy()
    try:
        with open(sys.executable, "rb") as f:
            original = f.read()
        assert os.pread(fd, len(original) + 1, 0) == original
        with pytest.raises(PermissionError):
            os.pwrite(fd, b"\0", 0)  # sealed against writes
    finally:
        os.close(fd)


def test_interpreter_runs_from_the_memfd_copy():
    """Exec'ed from the copy, /proc/self/exe is the memfd, not the host's binary."""
    fd = reexec._memfd_copy()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.execve(fd, [sys.executable, "-I", "-S", "-c", "import os; print(os.readlink('/proc/self/exe'))"], {})
    os.close(w)
    os.close(fd)
    with os.fdopen(r) as out:
        exe = out.read().strip()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert exe.startswith("/memfd:pyruntime-interpreter"), exe


def test_options_cross_the_exec_as_plain_data_with_sockets_as_fds():
    ours, theirs = socket.socketpair()
    try:
        opts = container.InitOptions("c1", {"process": {"args": ["true"]}}, "/b", state_dir_fd=7,
                                     console_sock=theirs, extra_keep_fds={theirs.fileno()})
        copy = reexec._unpack(container.InitOptions, reexec._pack(opts))
        assert copy.console_sock == theirs.fileno() and copy.state_dir_fd == 7
        assert copy.config == opts.config and copy.extra_keep_fds == {theirs.fileno()}
        assert sorted(copy.passed_fds()) == sorted([7, theirs.fileno()])
    finally:
        ours.close()
        theirs.close()
