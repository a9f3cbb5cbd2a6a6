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
        opts = container.InitOptions("c1", {"process": {"args": ["true"]}}, "/b", state_dir="/run/x/c1",
                                     console_sock=theirs)
        copy = reexec._unpack(container.InitOptions, reexec._pack(opts))
        assert copy.console_sock == theirs.fileno() and copy.state_dir == "/run/x/c1"
        assert copy.config == opts.config and copy.state_dir_fd == -1
    finally:
        ours.close()
        theirs.close()


def test_an_fd_travels_with_a_sync_message_and_arrives_close_on_exec():
    from pyruntime.init import sync

    runtime, stage = sync.pair()
    r, w = os.pipe()
    try:
        sync.send(runtime, "options", console=True)
        sync.send_fd(runtime, "console", w)
        assert sync.recv(stage, "options") == {"type": "options", "console": True}
        msg, fd = sync.recv_fd(stage, "console")
        assert msg == {"type": "console"} and fd not in (r, w) and not os.get_inheritable(fd)
        os.write(fd, b"through")                        # the same pipe, under a new number
        os.close(fd)
        assert os.read(r, 16) == b"through"
        sync.send(runtime, "console")                   # without its fd: a protocol error
        with pytest.raises(sync.SyncError, match="without its file descriptor"):
            sync.recv_fd(stage, "console")
    finally:
        for fd in (runtime, stage, r, w):
            os.close(fd)


def test_a_stage_that_never_gets_its_options_is_stopped_and_reaped():
    stage = reexec.start("init")
    stage.abandon()
    assert stage.sock == -1
    with pytest.raises(ChildProcessError):
        os.waitpid(stage.pid, os.WNOHANG)               # reaped, not a zombie
    stage.abandon()                                     # a second time is harmless


def test_a_stage_that_died_before_its_options_reports_why(monkeypatch):
    from pyruntime.init import sync

    monkeypatch.setattr(reexec, "BOOTSTRAP", "import marshal, os, sys; os.write(int(sys.argv[2]), "
                        "marshal.dumps({'type': 'error', 'message': 'no interpreter for you'}))")
    stage = reexec.start("init")
    try:
        stage.wait()                                    # it has exited
        opts = container.InitOptions("c1", {}, "/b", state_dir="/nonexistent")
        with pytest.raises(sync.SyncError, match="no interpreter for you"):
            stage.send(opts)
        assert stage.reaped and not stage.sent
        stage.kill()                                    # reaped already: the pid is left alone
    finally:
        stage.abandon()


def test_stage_keeps_only_stdio_preserved_and_its_own_fds():
    from pyruntime.init.reexec import close_all_but

    extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(6)]
    keep = {extra[1], extra[4]}
    pid = os.fork()
    if pid == 0:
        close_all_but(keep)
        left = {int(n) for n in os.listdir("/proc/self/fd")}
        os._exit(0 if not (set(extra) - keep) & left and keep <= left else 3)
    _, status = os.waitpid(pid, 0)
    for fd in extra:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
