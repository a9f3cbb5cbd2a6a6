"""`exec`: start another process inside a running container.

    pyruntime exec (host)
      └─ stage 1: a fresh interpreter, exec'ed from a read-only clone of its binary (reexec.py),
         │        placed in the container's cgroup by the runtime; joins the init's namespaces
         │        (user first; mount last, which moves it into the container's root)
         └─ stage 2 (a child, so that it is inside the joined PID namespace): terminal,
                    rlimits, user, capabilities, no_new_privs, cwd, seccomp, execve

Before any container namespace is joined the process makes itself non-dumpable: processes of
the container may not open its /proc/<pid>/exe or fds, which would reach the host's interpreter
binary (the attack behind CVE-2019-5736). Stage 2 stays non-dumpable until execve replaces the
interpreter with the container's own program.
"""

from __future__ import annotations

import os

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import protocol
from pyruntime.init import process as proc
from pyruntime.init import seccomp
from pyruntime.init.container import JOIN_ORDER, _fail, preload_modules
from pyruntime.init.kernel import KERNEL, Kernel


def namespaces_to_join(init_pid: int, kernel: Kernel = KERNEL) -> list[tuple[str, str]]:
    """The init's namespaces that differ from ours, in join order."""
    result = []
    for kind in JOIN_ORDER:
        entry = linux.NAMESPACES[kind][1]
        theirs = f"/proc/{init_pid}/ns/{entry}"
        try:
            if kernel.readlink(theirs) != kernel.readlink(f"/proc/self/ns/{entry}"):
                result.append((kind, theirs))
        except FileNotFoundError:
            continue  # a namespace type this kernel lacks
    return result


def join_namespaces_of(init_pid: int, kernel: Kernel = KERNEL) -> None:
    """Enter the init's namespaces. All are opened first: after joining the mount namespace
    the host's /proc is gone."""
    fds = [(kind, kernel.open(path, os.O_RDONLY | os.O_CLOEXEC))
           for kind, path in namespaces_to_join(init_pid, kernel)]
    try:
        while fds:
            kind, fd = fds.pop(0)
            try:
                kernel.setns(fd, linux.NAMESPACES[kind][0])
            except OSError as e:
                raise RuntimeUserError(f"cannot join the container's {kind} namespace: {e.strerror}") from None
            finally:
                kernel.close(fd)
    finally:
        for _, fd in fds:
            kernel.close(fd)


class ExecOptions:
    def __init__(self, init_pid: int, process: dict, config: dict, console_sock=None,
                 preserve_fds: int = 0, seccomp_program: bytes | None = None):
        self.init_pid = init_pid
        self.process = process
        self.config = config
        self.console_sock = console_sock
        self.preserve_fds = preserve_fds
        self.seccomp_program = seccomp_program


def stage1(opts: ExecOptions, sock) -> None:
    """Started by reexec.start. Never returns."""
    code = 1
    try:
        KERNEL.prctl(proc.PR_SET_DUMPABLE, 0)
        # Nothing of the host's filesystem can be imported once the mount namespace is joined;
        # loaded while the runtime still sets up the cgroup, off the exec's critical path.
        seccomp_filter = seccomp.Filter.of(opts.config, opts.seccomp_program)
        preload_modules({"process": opts.process, "linux": opts.config.get("linux") or {}},
                        seccomp_filter)
        from pyruntime import log  # noqa: F401
        protocol.recv_cgroup_ready(sock)
        join_namespaces_of(opts.init_pid)
        pid = KERNEL.fork()
        if pid == 0:
            stage2(opts, sock)
        protocol.send_exec_pid(sock, pid)
        code = 0
    except BaseException as e:
        _fail(sock, e)
    finally:
        os._exit(code)


def stage2(opts: ExecOptions, sock) -> None:
    from pyruntime import log

    try:
        protocol.recv_exec_go(sock)  # see container.prepare_and_wait: never overtake stage 1
        process = opts.process
        KERNEL.setsid()
        if process.get("terminal"):
            proc.setup_terminal(opts.console_sock, process.get("consoleSize"),
                                uid=(process.get("user") or {}).get("uid", 0))
        proc.set_oom_score_adj(process)
        proc.set_io_priority(process)
        if process.get("scheduler"):
            from pyruntime.init import scheduler

            scheduler.apply(process)
        memory_policy = (opts.config.get("linux") or {}).get("memoryPolicy")
        if memory_policy:   # the container's, for a process that inherits nothing from it
            from pyruntime.init import mempolicy

            mempolicy.apply(memory_policy)
        proc.apply_rlimits(process.get("rlimits") or [])
        seccomp_filter = seccomp.Filter.of(opts.config, opts.seccomp_program, channel=sock)
        executable = proc.become(process, seccomp_filter, log.warn, undumpable=True)
        proc.close_fds_from(3 + opts.preserve_fds, {sock})
        protocol.send_exec(sock)
        proc.exec_program(executable, process, seccomp_filter)
    except BaseException as e:
        _fail(sock, e)
    os._exit(127)
