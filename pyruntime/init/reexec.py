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

The stage starts before its options are known (`start`): its interpreter's start-up, the longest
step of a create, overlaps the runtime's own (loading its modules and the config, making the
state directory and the cgroup). The options follow in a memfd the stage inherited (a sync
message could not hold a large config.json: a SEQPACKET message must fit the socket buffer),
and a console socket, connected meanwhile, over the sync channel (SCM_RIGHTS).
"""

from __future__ import annotations

import marshal
import os
import sys

from pyruntime import linux, log
from pyruntime.init import protocol, sync

SIGKILL = 9  # the signal module would import enum, ~6 ms of the new interpreter's start

# What the new interpreter runs: argv is [-c, stage, sync fd, options memfd, home, path...].
# It starts isolated and without site (-I -S: no .pth files, no site-packages scan), so it
# sees none of the finders an installation may rely on (an editable install's import hook
# lives in sys.meta_path, set up by a .pth file). It imports `pyruntime` from `home`, the
# directory holding the package the runtime itself runs, then takes the runtime's sys.path
# (plus what stage_path adds) for everything else: pyruntime's own modules then come from
# that package's directory, whatever else is on the path.
IMPORT_PYRUNTIME = ("import sys; sys.path[:] = sys.argv[5:]; sys.path.insert(0, sys.argv[4]); "
                    "import pyruntime; del sys.path[0]; ")
BOOTSTRAP = IMPORT_PYRUNTIME + ("from pyruntime.init.reexec import stage_main; "
                                "stage_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))")

# Third-party modules a stage may import: the seccomp binding, when the init builds a filter
# itself (a profile with load-time flags).
STAGE_DEPENDENCIES = ("pyseccomp",)


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


class Stage:
    """A container-side stage started ahead of its options.

    `start` forks and execs the new interpreter at once, so that its start-up (the longest
    step of a create) overlaps whatever the runtime still has to do: read the config, make the
    state directory and the cgroup. The stage waits for `send`, which hands it the options.
    """

    def __init__(self, pid: int, sock: int, payload: int):
        self.pid = pid
        self.sock = sock          # the runtime's end of the sync channel
        self._payload = payload   # memfd the options are written to; the stage inherited it
        self.sent = False
        self.reaped = False

    def send(self, options) -> None:
        """Give the stage its options; `options.console_sock`, if any, travels with them
        (SCM_RIGHTS), as it may have been connected after the stage started."""
        data = marshal.dumps({"log": log.settings(), "fields": _pack(options)})
        written = 0
        while written < len(data):
            written += os.pwrite(self._payload, data[written:], written)
        os.close(self._payload)
        self._payload = -1
        console = getattr(options, "console_sock", None)
        try:
            protocol.send_options(self.sock, _fd_of(console) if console is not None else None)
        except OSError:
            protocol.raise_reported(self.sock, "the container's init stage exited before it started")
        self.sent = True

    def wait(self) -> None:
        """Reap the stage (it exits once it has reported what it started)."""
        if not self.reaped:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.reaped = True

    def kill(self) -> None:
        """SIGKILL the stage and reap it; nothing once it is reaped (its pid may be another
        process's by then)."""
        if not self.reaped:
            try:
                os.kill(self.pid, SIGKILL)
            except ProcessLookupError:
                pass
            self.wait()

    def close(self) -> None:
        """Close the runtime's ends (the sync channel, an unsent options file); idempotent."""
        for name in ("sock", "_payload"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def abandon(self) -> None:
        """Stop the stage if it never got its options (the create failed before: once they
        are sent, the create that sent them is in charge), and close our ends."""
        if not self.sent:
            self.kill()
            self.sent = True
        self.close()


def start(stage: str, preserve_fds: int = 0, close_in_child: set[int] = frozenset()) -> Stage:
    """Fork a process that becomes `stage` ("init" or "exec") in a fresh sealed interpreter.
    It keeps stdio, the caller's `preserve_fds` fds from 3 on (--preserve-fds) and its own two
    channels; `close_in_child`: runtime fds it must not keep even among those (the container
    lock)."""
    payload = -1
    parent_sock = child_sock = -1
    runtime = os.getpid()
    try:
        parent_sock, child_sock = sync.pair()
        payload = os.memfd_create("pyruntime-options", os.MFD_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            _exec_stage(runtime, payload, stage, parent_sock, child_sock, preserve_fds,
                        close_in_child)
    except BaseException:
        for fd in (payload, parent_sock):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        if child_sock >= 0:
            os.close(child_sock)
    return Stage(pid, parent_sock, payload)


def _exec_stage(runtime: int, payload: int, stage: str, parent_sock: int, child_sock: int,
                preserve_fds: int, close_in_child: set[int]) -> None:
    """In the forked child: never returns. The child, not the runtime, opens the sealed
    interpreter and sets its parent-death signal: both are libc calls (pyruntime.linux, ~1 ms
    to load), which the runtime then need not load before the fork (a create never loads it)."""
    try:
        os.close(parent_sock)
        for fd in close_in_child:
            os.close(fd)
        close_all_but(set(range(3, 3 + preserve_fds)) | {child_sock, payload})
        linux.set_pdeathsig(SIGKILL)  # kept across execve
        if os.getppid() != runtime:   # the runtime died before the signal was set
            os._exit(1)
        interpreter = sealed_interpreter()
        for fd in (child_sock, payload):
            os.set_inheritable(fd, True)
        argv = [sys.executable, "-I", "-S", "-c", BOOTSTRAP, stage, str(child_sock), str(payload),
                *stage_path()]
        os.execve(interpreter, argv, dict(os.environ))
    except BaseException as e:
        protocol.send_error(child_sock, f"cannot start the container process: {e}")
    os._exit(1)


def close_all_but(keep: set[int]) -> None:
    """Close every fd from 3 up that is not in `keep`. Whatever the caller had open (a flock
    lock, the write end of a pipe it reads to EOF) must not live on in a container that can
    outlast it: `flock L pyruntime create` would keep L locked for the container's life."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def stage_path() -> list[str]:
    """[home, path...] for BOOTSTRAP: home is the directory that holds the imported pyruntime
    package (a checkout for an editable install, site-packages, a zip); path is this process's
    sys.path, plus the directory of each of STAGE_DEPENDENCIES that only a finder outside
    sys.path can locate here (the stage has no such finders)."""
    import pyruntime

    home = os.path.dirname(os.path.dirname(os.path.abspath(pyruntime.__file__)))
    path = list(sys.path)
    for name in STAGE_DEPENDENCIES:
        where = _import_root(name)
        if where and where not in path:
            path.append(where)
    return [home, *path]


def _import_root(name: str) -> str | None:
    """The sys.path entry top-level module `name` would be imported from (located without
    importing it, through the finders this process has), or None when it is not found."""
    module = sys.modules.get(name)
    spec = getattr(module, "__spec__", None)
    if spec is None:
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(name, None) if find_spec else None
            if spec is not None:
                break
    if spec is None or not spec.has_location or not spec.origin:
        return None
    root = os.path.dirname(spec.origin)
    if spec.submodule_search_locations is not None:   # a package: origin is its __init__.py
        root = os.path.dirname(root)
    return root


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
    # Inheritable only to cross the exec: the container's program must not get them.
    for fd in (sock, payload):
        os.set_inheritable(fd, False)
    if stage == "init":
        from pyruntime.init import container

        container.load_ahead()
        cls, run = container.InitOptions, container.stage1
    else:
        from pyruntime.init import execin

        cls, run = execin.ExecOptions, execin.stage1
    # the console socket may be connected after the stage started: it comes on the channel
    console = protocol.recv_options(sock)
    message = marshal.loads(os.pread(payload, os.fstat(payload).st_size, 0))
    os.close(payload)
    log.configure(*message["log"])
    options = _unpack(cls, message["fields"])
    if console is not None:
        options.console_sock = console
    run(options, sock)
    os._exit(1)
