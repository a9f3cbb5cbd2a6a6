"""The runtime side of `exec`: build the process, fork into the container, wait or detach."""

from __future__ import annotations

import os

from pyruntime import jsonlite, lifecycle
from pyruntime.errors import InvalidState, RuntimeUserError
from pyruntime.state import CREATED, PAUSED, RUNNING, ContainerDir, status_of


def process_from_flags(config: dict, args: list[str], *, process_file: str | None = None,
                       tty: bool = False, env: tuple[str, ...] = (), cwd: str | None = None,
                       user: str | None = None, additional_gids: tuple[int, ...] = (),
                       caps: tuple[str, ...] = (), no_new_privs: bool = False) -> dict:
    """The process to exec: a --process file as given, or the container's own process with the
    command line and runc's exec flags applied on top."""
    if process_file:
        from pyruntime.boundedfile import MAX_CONFIG_BYTES, read_bounded_file

        raw = read_bounded_file(process_file, MAX_CONFIG_BYTES,
                                missing=f"--process {process_file}: no such file")
        try:
            process = jsonlite.loads(raw)
        except (ValueError, RecursionError) as e:
            raise RuntimeUserError(f"--process {process_file}: not valid JSON: {e}") from None
        if not isinstance(process, dict) or not process.get("args"):
            raise RuntimeUserError(f"--process {process_file}: args: a command is required")
        return process
    if not args:
        raise RuntimeUserError("exec: a command is required (or --process FILE)")
    # a copy the flags may change (through the JSON codec, loaded anyway: `copy` costs ~1.3 ms)
    process = jsonlite.loads(jsonlite.dumps_compact(config.get("process") or {}))
    process["args"] = list(args)
    process["terminal"] = tty
    process.pop("consoleSize", None)
    process["env"] = list(process.get("env") or []) + list(env)
    if cwd:
        process["cwd"] = cwd
    if user:
        process["user"] = parse_user(user, process.get("user") or {})
    if additional_gids:
        process.setdefault("user", {})["additionalGids"] = list(additional_gids)
    if caps:
        sets = process.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            sets[kind] = list(sets.get(kind) or []) + [c for c in caps if c not in (sets.get(kind) or [])]
    if no_new_privs:
        process["noNewPrivileges"] = True
    return process


def parse_user(text: str, base: dict) -> dict:
    uid_text, _, gid_text = text.partition(":")
    try:
        user = {"uid": int(uid_text), "gid": int(gid_text) if gid_text else 0}
    except ValueError:
        raise RuntimeUserError(f"--user {text!r}: expected UID[:GID] as numbers") from None
    if "umask" in base:
        user["umask"] = base["umask"]
    return user


def exec_in(root: str, container_id: str, process: dict, *, console_socket: str | None = None,
            detach: bool = False, pid_file: str | None = None, preserve_fds: int = 0,
            ignore_paused: bool = False, cgroup_paths=(), stage=None) -> int:
    """Run `process` in the container; return its exit code (0 at once with `detach`).

    `ignore_paused`: exec into a paused container too (the process starts once it is
    resumed); `cgroup_paths`: runc's `--cgroup [controller:]path` values (sub-cgroups of the
    container's to put the process in); `stage`: the exec stage, started ahead by the caller
    (reexec.start("exec")), who abandons it; without one it is started here, once the
    container is locked (and without its lock fd)."""
    from pyruntime import cgroups, hostprocess, linux
    from pyruntime.cgroups import warmup
    from pyruntime.console import TerminalProxy, connect_console
    from pyruntime.init import execin, protocol, reexec, seccomp
    from pyruntime.rollback import Rollback

    subs = None
    if cgroup_paths:
        from pyruntime.cgroups import subcgroups

        subs = subcgroups.parse(cgroup_paths)
    if pid_file:
        lifecycle.check_pid_file_dir(pid_file)
    terminal = bool(process.get("terminal"))
    if not detach:
        linux.set_child_subreaper()  # the exec'ed process is a grandchild
    proxy = TerminalProxy(terminal and not console_socket and not detach)
    with ContainerDir(root, container_id).lock(shared=True) as cdir, Rollback() as rollback:
        rollback.defer("close the terminal proxy", proxy.close)
        state = cdir.load()
        status = status_of(cdir, state)
        if status == PAUSED and not ignore_paused:
            raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
        if status not in (CREATED, RUNNING, PAUSED):
            raise InvalidState(f"cannot exec in a {status} container")
        if subs is not None and not state.cgroup:
            raise RuntimeUserError("--cgroup: the container has no cgroup")
        console = proxy.theirs or connect_console(console_socket, terminal)
        if console is not None and console is not proxy.theirs:
            rollback.defer("close the console socket", console.close)
        opts = execin.ExecOptions(state.pid, process, state.config, console_sock=console,
                                  preserve_fds=preserve_fds,
                                  seccomp_program=seccomp.compiled_for(state.config))
        if stage is None:
            stage = reexec.start("exec", preserve_fds,
                                 {cdir.lock_fd} if cdir.lock_fd is not None else set())
        rollback.defer("close the channel to the process", stage.close)
        # once reaped (below), the stage is left alone: its pid may be another's by then
        rollback.push("stop the exec stage", stage.kill)
        stage1_pid, parent_sock = stage.pid, stage.sock
        stage.send(opts)
        if proxy.theirs is not None:
            proxy.theirs.close()  # the child has it; an EOF must reach us if it dies
        if state.cgroup:
            cgroups.saved_manager(state.cgroup).add_process(stage1_pid, subs)
            warmup.stop()
        protocol.send_cgroup_ready(parent_sock)
        if status == PAUSED:
            # The stage now waits, frozen, for a `resume`, which needs the lock.
            cdir.unlock()
        pid = protocol.recv_exec_pid(parent_sock)
        protocol.send_exec_go(parent_sock)
        stage.wait()
        seccomp_profile = (state.config.get("linux") or {}).get("seccomp")
        if seccomp_profile and seccomp.notifies(seccomp_profile):
            _forward_listener(parent_sock, seccomp_profile, pid, state, status)
        protocol.recv_exec(parent_sock)
        master = proxy.receive()
    if pid_file:
        with Rollback() as rollback:
            # nobody would know the process to stop it
            rollback.push("stop the exec'ed process", lambda: hostprocess.kill_and_wait(pid))
            lifecycle.write_pid_file(pid_file, pid)
    if detach:
        return 0
    try:
        return hostprocess.wait_forwarding_signals(pid, master)
    finally:
        if master is not None:
            os.close(master)


def _forward_listener(sock, seccomp_profile: dict, pid: int, state, status: str) -> None:
    """The exec'ed process's own listener, to the agent; a process the agent cannot serve is
    not left behind."""
    from pyruntime import hostprocess, seccomp_agent
    from pyruntime.rollback import Rollback
    from pyruntime.state import oci_state

    with Rollback() as rollback:
        rollback.push("stop the exec'ed process", lambda: hostprocess.kill_and_wait(pid))
        seccomp_agent.forward_listener(sock, seccomp_profile, pid, oci_state(state, status))

