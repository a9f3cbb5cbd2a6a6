"""Start the container-side stages in a fresh interpreter that the container cannot write to.

The container's init and every exec'ed process make their last execve from inside the
container. The kernel resolves `/proc/self/exe` there (named as the program, reached through a
symlink, or as a `#!` interpreter) to the executable of the process calling execve. Were that
the host's interpreter, the container would be running it and could open it for writing through
/proc/<pid>/exe and replace it for every later use on the host (CVE-2019-5736).

So, like runc and crun with their cloned binaries, the stages do not run in a plain fork of the
runtime: the forked child execs the interpreter again through a detached, read-only clone of the
mount that holds it. /proc/self/exe then leads to a file on a mount that is read-only and in no
mount namespace, so nothing can remount it writable, and no copy of the binary is made. Without
the new mount API (Linux < 5.12) the interpreter runs from a sealed memfd copy instead: what
/proc/self/exe leads to is then that copy, never the host's file.

The runtime writes the stage's options into a memfd the child inherits (a sync message could
not hold a large config.json: a SEQPACKET message must fit the socket buffer), forks, and goes
on (making the container's cgroup and moving the child into it) while the new interpreter
starts.
"""

from __future__ import annotations

import marshal
import os
import sys

from pyruntime import linux, log
from pyruntime.init import sync

SIGKILL = 9  # the signal module would import enum, ~6 ms of the new interpreter's start

# What the new interpreter runs: argv is [-c, stage, sync fd, options fd, sys.path...].
BOOTSTRAP = ("import sys; sys.path[:] = sys.argv[4:]; from pyruntime.init.reexec import stage_main; "
             "stage_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))")


def sealed_interpreter() -> int:
    """An fd to exec this interpreter from, through which it can never be written."""
    try:
        fd = linux.open_tree(sys.executable, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC)
    except OSError:
        return _memfd_copy()
    try:
        linux.mount_setattr(fd, linux.MOUNT_ATTR_RDONLY)
    except OSError:  # Linux 5.2 to 5.11 have open_tree but not mount_setattr
        os.close(fd)
        return _memfd_copy()
    return fd


def _memfd_copy() -> int:
    import fcntl

    fd = os.memfd_create("pyruntime-interpreter", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    with open(sys.executable, "rb") as binary:
        size = os.fstat(binary.fileno()).st_size
        sent = 0
        while sent < size:
            sent += os.sendfile(fd, binary.fileno(), sent, size - sent)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    return fd


def spawn(stage: str, options, parent_sock: int, child_sock: int,
          close_in_child: set[int] = frozenset()) -> int:
    """Fork a process that runs `stage` ("init" or "exec") with `options` in a fresh sealed
    interpreter; returns its pid. The fds in `options.passed_fds()` stay open across the
    exec, and sockets among the options reach the stage as their fds.
    `close_in_child`: runtime fds the child must not keep (the container lock)."""
    interpreter = sealed_interpreter()
    payload = -1
    try:
        payload = _options_file({"log": log.settings(), "fields": _pack(options)})
        pid = os.fork()
        if pid == 0:
            _exec_stage(interpreter, payload, stage, options, parent_sock, child_sock, close_in_child)
    finally:
        os.close(interpreter)
        if payload >= 0:
            os.close(payload)
    return pid


def _options_file(message: dict) -> int:
    data = marshal.dumps(message)
    fd = os.memfd_create("pyruntime-options", os.MFD_CLOEXEC)
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    return fd


def _exec_stage(interpreter: int, payload: int, stage: str, options, parent_sock: int,
                child_sock: int, close_in_child: set[int]) -> None:
    """In the forked child: never returns."""
    try:
        os.close(parent_sock)
        for fd in close_in_child:
            os.close(fd)
        linux.set_pdeathsig(SIGKILL)  # kept across execve
        for fd in [child_sock, payload, *options.passed_fds()]:
            os.set_inheritable(_fd_of(fd), True)
        argv = [sys.executable, "-I", "-S", "-c", BOOTSTRAP, stage, str(child_sock), str(payload),
                *sys.path]
        os.execve(interpreter, argv, dict(os.environ))
    except BaseException as e:
        sync.send_error(child_sock, f"cannot start the container process: {e}")
    os._exit(1)


def _fd_of(value) -> int:
    return value.fileno() if hasattr(value, "fileno") else value


def _pack(options) -> dict:
    """The options' attributes, sockets as their fds: the stage gets the same fd numbers."""
    return {name: _fd_of(value) for name, value in vars(options).items()}


def _unpack(cls, fields: dict):
    options = cls.__new__(cls)
    vars(options).update(fields)
    return options


def stage_main(stage: str, sock: int, payload: int) -> None:
    """Entry point of the new interpreter. Never returns."""
    message = marshal.loads(os.pread(payload, os.fstat(payload).st_size, 0))
    os.close(payload)
    log.configure(*message["log"])
    if stage == "init":
        from pyruntime.init import container

        options, run = _unpack(container.InitOptions, message["fields"]), container.stage1
    else:
        from pyruntime.init import execin

        options, run = _unpack(execin.ExecOptions, message["fields"]), execin.stage1
    # Inheritable only to cross the exec: the container's program must not get them.
    for fd in [sock, *options.passed_fds()]:
        os.set_inheritable(fd, False)
    run(options, sock)
    os._exit(1)
