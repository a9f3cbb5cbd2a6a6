"""The processes `create` forks, and what each does before the user's program is exec'ed.

    create (runtime, host namespaces)
      └─ stage 1: a fresh interpreter, exec'ed from a read-only clone of its binary (reexec.py);
         │          joins namespaces given by path, creates the user namespace (the runtime
         │          writes its id maps), unshares the other new namespaces, forks, and exits
         └─ stage 2 = container init (PID 1 of a new PID namespace): rootfs, [createRuntime /
                      prestart hooks run by the runtime], createContainer hooks, pivot_root,
                      terminal, hostname, sysctl, rlimits, user, capabilities; tells the runtime
                      it is ready, then blocks opening exec.fifo until `start`; then runs the
                      startContainer hooks, loads seccomp and execs the process.

A new PID or time namespace only applies to children of the caller, hence the second fork.
Both stages report failures over the sync socket before `ready`, and through the FIFO after it.
"""

from __future__ import annotations

import os

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import protocol

# Namespaces joined first: the user namespace decides what the others may do.
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time"]


class InitOptions:
    """What the container's stages need to know: the runtime sends it to stage 1 (reexec.Stage.send),
    and stage 2 inherits it across fork."""

    def __init__(self, container_id: str, config: dict, bundle: str, state_dir: str,
                 no_pivot: bool = False, preserve_fds: int = 0, console_sock=None,
                 seccomp_program: bytes | None = None):
        self.container_id = container_id
        self.config = config
        self.bundle = bundle
        self.state_dir = state_dir    # opened by stage 1 (state_dir_fd) while the host's is in view
        self.state_dir_fd = -1
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.console_sock = console_sock
        self.seccomp_program = seccomp_program    # linux.seccomp compiled by the runtime
        self.executable = ""
        self.bind_trees: dict[int, int] = {}      # binds stage 1 detached on the host side

    def seccomp_filter(self, channel: int | None = None):
        """`channel`: the sync socket, for a filter whose listener goes back to the runtime."""
        from pyruntime.init import seccomp

        return seccomp.Filter.of(self.config, self.seccomp_program, channel)


class NamespacePlan:
    """What to do with each namespace type: join a path, or create anew (flags)."""

    def __init__(self, join: list[tuple[str, str]], new_flags: int, new_user: bool, new_types: set[str]):
        self.join = join
        self.new_flags = new_flags
        self.new_user = new_user
        self.new_types = new_types

    @classmethod
    def from_config(cls, config: dict) -> "NamespacePlan":
        join: list[tuple[str, str]] = []
        flags = 0
        types: set[str] = set()
        for ns in (config.get("linux") or {}).get("namespaces") or []:
            kind = ns["type"]
            if ns.get("path"):
                join.append((kind, ns["path"]))
            else:
                flags |= linux.NAMESPACES[kind][0]
                types.add(kind)
        join.sort(key=lambda item: JOIN_ORDER.index(item[0]))
        return cls(join, flags & ~linux.CLONE_NEWUSER, "user" in types, types)


def _fail(sock, exc: BaseException) -> None:
    if isinstance(exc, RuntimeUserError):
        message = exc.message
    elif isinstance(exc, OSError):
        message = str(exc.strerror and f"{exc.strerror}" or exc)
        if exc.filename:
            message = f"{exc.filename}: {message}"
        elif exc.args and isinstance(exc.args[-1], str) and ":" in exc.args[-1]:
            message = exc.args[-1]
    else:
        message = f"{type(exc).__name__}: {exc}"
    protocol.send_error(sock, message)


def load_ahead() -> None:
    """Import what stage 1 and the init will use. The stage calls it while it waits for its
    options (it has nothing else to do then, and runs alongside the runtime): imported after
    the cgroup move instead, these ~3 ms would lengthen every create. The init, a fork of the
    stage, inherits them."""
    import fcntl, struct  # noqa: E401,F401

    from pyruntime import hooks, linux, rootless  # noqa: F401
    from pyruntime.init import inroot, kernel, mountplan, process, rootfs, seccomp  # noqa: F401

    linux.preload()


def stage1(opts: InitOptions, sock) -> None:
    """Runs in the first child of `create`, started by reexec.start. Never returns."""
    code = 1
    try:
        from pyruntime.init.kernel import KERNEL as kernel

        # exec.fifo is opened through it once the container's root is all the init can see
        opts.state_dir_fd = kernel.open(opts.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        protocol.recv_cgroup_ready(sock)
        plan = NamespacePlan.from_config(opts.config)
        if "mount" in plan.new_types and binds_detached_first(opts.config, plan):
            from pyruntime.init.rootfs import detach_bind_sources

            # with the runtime's credentials, before a user namespace limits them
            opts.bind_trees = detach_bind_sources(opts.config, opts.bundle)
        for kind, path in plan.join:
            join_namespace(kind, path, kernel)
        if plan.new_user:
            kernel.unshare(linux.CLONE_NEWUSER)
            protocol.send_userns(sock)
            protocol.recv_userns_mapped(sock)
            become_root_if_mapped(opts.config, kernel)
        if plan.new_flags:
            kernel.unshare(plan.new_flags)
        if "time" in plan.new_types:
            write_time_offsets((opts.config.get("linux") or {}).get("timeOffsets") or {}, kernel)
        pid = kernel.fork()
        if pid == 0:
            stage2(opts, sock, plan)
        protocol.send_init_pid(sock, pid)
        code = 0
    except BaseException as e:  # report everything: the runtime turns it into the error
        _fail(sock, e)
    finally:
        os._exit(code)


def binds_detached_first(config: dict, plan: NamespacePlan) -> bool:
    """Binds are made by stage 1, before it enters a user namespace, when the container has
    one (its root may not reach a source) or a bind is idmapped (only host root may). Only
    a runtime that is root where it runs may: an unprivileged one cannot clone a mount
    before it has a user namespace of its own (rootless binds are made inside it)."""
    if os.geteuid() != 0:
        return False
    if plan.new_user or any(kind == "user" for kind, _ in plan.join):
        return True
    from pyruntime.init.mountplan import is_idmapped

    return any(is_idmapped(m) for m in config.get("mounts") or [])


def join_namespace(kind: str, path: str, kernel=None) -> None:
    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    flag, _ = linux.NAMESPACES[kind]
    try:
        fd = kernel.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeUserError(f"linux.namespaces: cannot open {kind} namespace {path}: {e.strerror}") from None
    try:
        kernel.setns(fd, flag)
    except OSError as e:
        raise RuntimeUserError(f"linux.namespaces: cannot join {kind} namespace {path}: {e.strerror}") from None
    finally:
        kernel.close(fd)


def become_root_if_mapped(config: dict, kernel=None) -> None:
    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    lx = config.get("linux") or {}

    def maps_zero(mappings):
        return any(m["containerID"] <= 0 < m["containerID"] + m["size"] for m in mappings or [])

    if maps_zero(lx.get("gidMappings")):
        kernel.setresgid(0, 0, 0)
    if maps_zero(lx.get("uidMappings")):
        kernel.setresuid(0, 0, 0)


def write_time_offsets(offsets: dict, kernel=None) -> None:
    """linux.timeOffsets, while the new time namespace has no process yet (only until then may
    they be written). One write per clock, so that a refusal names its clock."""
    import errno

    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    for clock in ("monotonic", "boottime"):
        if clock not in offsets:
            continue
        secs, nanosecs = offsets[clock].get("secs", 0), offsets[clock].get("nanosecs", 0)
        try:
            kernel.write_text("/proc/self/timens_offsets", f"{clock} {secs} {nanosecs}\n")
        except OSError as e:
            # ERANGE: the clock would read below zero (or beyond the kernel's range)
            why = "the clock would leave its range (below zero?)" if e.errno == errno.ERANGE else e.strerror
            raise RuntimeUserError(f"linux.timeOffsets.{clock}: cannot apply {secs} s {nanosecs} ns: "
                                   f"{why}") from None


def loopback_up(kernel=None) -> None:
    """A new network namespace has `lo` down; bring it up as runc does (SIOCSIFFLAGS)."""
    import struct

    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    s = kernel.inet_dgram_socket()
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", kernel.ioctl(s, siocgifflags, req))[1]
        kernel.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
    finally:
        kernel.close(s)


def stage2(opts: InitOptions, sock, plan: NamespacePlan) -> None:
    """The container's init. Never returns: execs the user process or exits non-zero."""
    from pyruntime.init.kernel import KERNEL as kernel

    ready = False
    fifo = -1
    try:
        prepare_and_wait(opts, sock, plan)
        ready = True
        # Blocks until `start` opens the FIFO for reading.
        fifo = kernel.open("exec.fifo", os.O_WRONLY | os.O_CLOEXEC, dir_fd=opts.state_dir_fd)
        kernel.close(opts.state_dir_fd)
        kernel.write(fifo, b"0")
        exec_process(opts, fifo)
    except BaseException as e:
        if not ready:
            _fail(sock, e)
        elif fifo >= 0:
            message = e.message if isinstance(e, RuntimeUserError) else str(e)
            try:
                kernel.write(fifo, message.encode())
            except OSError:
                pass
    os._exit(1)


def prepare_and_wait(opts: InitOptions, sock, plan: NamespacePlan) -> None:
    from pyruntime import hooks
    from pyruntime.init import process as proc
    from pyruntime.init.kernel import KERNEL as kernel
    from pyruntime.init.rootfs import RootfsBuilder
    from pyruntime.rootless import in_initial_userns

    config = opts.config
    lx = config.get("linux") or {}
    process = config.get("process") or {}
    # Stage 1 and we share the socket: wait until the runtime has stage 1's report of our pid,
    # so that our messages can never overtake it.
    protocol.recv_init_go(sock)
    kernel.setsid()
    kernel.umask(0)
    if "network" in plan.new_types:
        loopback_up(kernel)
    # in a user namespace (a new one, a joined one, or the runtime's own under rootless
    # podman) mknod is not allowed: devices are bound from the host instead
    in_userns = plan.new_user or any(k == "user" for k, _ in plan.join) or not in_initial_userns()
    rootfs = RootfsBuilder(config, opts.bundle, in_userns=in_userns,
                           cgroupns="cgroup" in plan.new_types, bind_trees=opts.bind_trees,
                           no_pivot=opts.no_pivot)
    # Without a mount namespace of its own (none, or one joined by path) the container keeps
    # the mounts and the root it is given: nothing of the rootfs set-up may touch them.
    own_mounts = "mount" in plan.new_types
    if own_mounts:
        rootfs.prepare()
    # The runtime runs prestart and createRuntime hooks now that our namespaces exist.
    protocol.send_hooks(sock)
    hook_state = protocol.recv_hooks_done(sock)
    if config.get("annotations"):
        hook_state["annotations"] = config["annotations"]   # kept out of the message (size)
    hooks.run_hooks(config, "createContainer", hook_state)
    seccomp_filter = opts.seccomp_filter(channel=sock)
    preload_modules(config, seccomp_filter)
    if own_mounts:
        rootfs.pivot()
    if process.get("terminal"):
        proc.setup_terminal(opts.console_sock, process.get("consoleSize"),
                            bind_console=rootfs.bind_console if own_mounts else None,
                            uid=(process.get("user") or {}).get("uid", 0), kernel=kernel)
    # before the read-only paths: podman's configs list /proc/sys among them (runc's order)
    set_names_and_sysctl(config, plan, kernel)
    if own_mounts:
        rootfs.finish()
    proc.set_oom_score_adj(process, kernel)
    proc.set_io_priority(process, kernel)
    if process.get("scheduler"):
        from pyruntime.init import scheduler

        scheduler.apply(process, kernel)
    if lx.get("memoryPolicy"):
        from pyruntime.init import mempolicy

        mempolicy.apply(lx["memoryPolicy"], kernel)
    proc.apply_rlimits(process.get("rlimits") or [], kernel)
    if lx.get("personality"):
        kernel.personality({"LINUX": 0x0000, "LINUX32": 0x0008}[lx["personality"]["domain"]])

    from pyruntime import log

    opts.executable = proc.become(process, seccomp_filter, log.warn, kernel=kernel)
    keep = {opts.state_dir_fd, sock}
    if opts.console_sock is not None:
        keep.add(opts.console_sock)
    proc.close_fds_from(3 + opts.preserve_fds, keep, kernel)
    protocol.send_ready(sock)
    # The runtime has saved the container as created: until then a runtime that died would
    # leave us waiting for a `start` that no one can send (the channel's EOF ends us instead).
    protocol.recv_created(sock)
    kernel.close(sock)


def preload_modules(config: dict, seccomp_filter) -> None:
    """Import now what the init uses after pivot_root: from then on the interpreter's own
    files (and shared libraries such as libseccomp) are out of reach."""
    import fcntl, struct  # noqa: E401,F401
    from pyruntime.init import inroot  # noqa: F401  (the cwd is entered through it)

    if (config.get("process") or {}).get("terminal"):
        import socket, termios  # noqa: E401,F401  (setup_terminal sends the pty master with them)
    if (config.get("hooks") or {}).get("startContainer"):
        import json, subprocess  # noqa: E401,F401  (hooks.run_hook imports them when it runs)
    if (config.get("process") or {}).get("scheduler"):
        from pyruntime.init import scheduler  # noqa: F401
    if (config.get("linux") or {}).get("memoryPolicy"):
        from pyruntime.init import mempolicy  # noqa: F401
    if seccomp_filter is not None:
        seccomp_filter.preload()


def exec_process(opts: InitOptions, fifo: int) -> None:
    from pyruntime import hooks

    config = opts.config
    process = config["process"]
    if hooks.hooks_of(config, "startContainer"):
        state = {"ociVersion": config.get("ociVersion", ""), "id": opts.container_id, "status": "created",
                 "pid": os.getpid(), "bundle": opts.bundle}
        hooks.run_hooks(config, "startContainer", state)
    from pyruntime.init import process as proc

    proc.exec_program(opts.executable, process, opts.seccomp_filter())


def set_names_and_sysctl(config: dict, plan: NamespacePlan, kernel=None) -> None:
    """hostname (only in a UTS namespace of the container's own), domainname, then sysctl."""
    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    if config.get("hostname") and "uts" in plan.new_types | {k for k, _ in plan.join}:
        kernel.sethostname(config["hostname"])
    if config.get("domainname"):
        kernel.setdomainname(config["domainname"])
    apply_sysctl((config.get("linux") or {}).get("sysctl") or {}, kernel)


def apply_sysctl(sysctl: dict[str, str], kernel=None) -> None:
    if kernel is None:
        from pyruntime.init.kernel import KERNEL as kernel

    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            kernel.write_text(path, str(value))
        except OSError as e:
            raise RuntimeUserError(f"linux.sysctl.{key}: cannot set to {value!r}: {e.strerror}") from None
