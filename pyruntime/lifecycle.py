"""The runtime side of the container lifecycle: create, start, kill, delete, run.

Every operation takes the container's lock for its whole duration, so commands on one
container from several processes happen one after the other. `create` records what it made
as it goes (rollback.py) and, on any failure, undoes it in reverse order before the error
reaches the user.
"""

from __future__ import annotations

# _signal: the C module behind `signal`, the same numbers without the enum classes `signal`
# builds at import (~3 ms of CPU, more than the rest of a `kill`).
import _signal
import os
import select

from pyruntime import log
from pyruntime.errors import ContainerNotFound, InvalidState, RuntimeUserError
from pyruntime.state import (CREATED, CREATING, PAUSED, RUNNING, STOPPED, ContainerDir,
                             ContainerState, check_id, oci_state, process_start_time, status_of,
                             utc_now)


# -- create ----------------------------------------------------------------------------------
def create(root: str, container_id: str, bundle: str, *, console_socket: str | None = None,
           pid_file: str | None = None, no_pivot: bool = False, preserve_fds: int = 0,
           console=None, config: dict | None = None, stage=None,
           cgroup_manager: str = "cgroupfs", open_cgroup=None) -> ContainerState:
    """`console`: an already connected socket to send the pty master to, and `config`: the
    bundle's config already loaded (both from `run`); `stage`: the init's stage 1, started
    ahead (reexec.start) while the runtime was still loading; the caller abandons it if the
    create fails before sending it its options. `cgroup_manager` "disabled": the container
    gets no cgroup (crun's --cgroup-manager disabled). `open_cgroup`: what makes the cgroup
    manager of a path (cgroups.open_manager)."""
    from pyruntime import cgroups, spec
    from pyruntime.rollback import Rollback

    check_id(container_id)
    bundle = os.path.abspath(bundle)
    if pid_file:
        check_pid_file_dir(pid_file)
    if config is None:
        config = spec.load_config(bundle)
    cgroup = None if cgroup_manager == "disabled" else (open_cgroup or cgroups.open_manager)(cgroups.resolve_path(
        (config.get("linux") or {}).get("cgroupsPath"), container_id))
    if cgroup is None and (config.get("linux") or {}).get("resources"):
        log.debug("--cgroup-manager disabled: linux.resources are not applied")   # as crun
    cdir = ContainerDir(root, container_id)
    cdir.make()
    with Rollback() as rollback:
        rollback.defer("unlock the container", cdir.unlock)
        rollback.push("remove state directory", cdir.remove)
        cdir.lock()
        # The cgroup is on record before it exists: a runtime killed at any point of the
        # create leaves a state that `delete --force` can clean up completely.
        state = ContainerState(id=container_id, bundle=bundle, config=config,
                               created=utc_now(), owner=_owner(),
                               cgroup=cgroup.to_dict() if cgroup else {},
                               extra={"cgroupManager": cgroup_manager})
        cdir.save(state)
        _create_container(cdir, state, cgroup, rollback, console_socket, no_pivot, preserve_fds,
                          console, stage)
        if pid_file:
            write_pid_file(pid_file, state.pid)
    return state


def _create_container(cdir: ContainerDir, state: ContainerState, cgroup, rollback,
                      console_socket: str | None, no_pivot: bool, preserve_fds: int, console,
                      stage) -> None:
    from pyruntime import hooks, hostprocess, idmap
    from pyruntime.cgroups import warmup
    from pyruntime.console import connect_console
    from pyruntime.init import container, protocol, reexec, seccomp

    config = state.config
    lx = config.get("linux") or {}
    process = config.get("process") or {}
    # Pushed before the init exists so that it runs after the init is killed; it only removes
    # what create() made (a failing create() has already cleaned up after itself).
    if cgroup is not None:
        rollback.push("remove cgroup", cgroup.undo_create)
    if stage is not None:
        rollback.defer("close the channel to the init", stage.close)

    if console is None:
        console = connect_console(console_socket, bool(process.get("terminal")))
    if console:
        rollback.defer("close the console socket", console.close)
    cdir.make_fifo()
    opts = container.InitOptions(
        container_id=state.id, config=config, bundle=state.bundle, state_dir=cdir.path,
        no_pivot=no_pivot, preserve_fds=preserve_fds, console_sock=console,
        seccomp_program=seccomp.compiled_for(config))
    if stage is None:
        # The container lock must not stay with the child: a flock is shared by every
        # copy of its fd, and `start` would wait for it forever.
        stage = reexec.start("init", preserve_fds,
                             {cdir.lock_fd} if cdir.lock_fd is not None else set())
        rollback.defer("close the channel to the init", stage.close)
    stage1_pid, parent_sock = stage.pid, stage.sock
    rollback.push("stop init", stage.kill)
    stage.send(opts)
    # The new interpreter started up while the runtime loaded; stage 1 waits for
    # "cgroup-ready" before it does anything. The devices the init creates must be
    # allowed by the devices controller.
    if cgroup is not None and _make_cgroup(cgroup, lx):
        cgroup.add_process(stage1_pid)
        warmup.stop()
    else:
        state.cgroup = {}
    protocol.send_cgroup_ready(parent_sock)
    init_pid = protocol.recv_userns_or_init_pid(parent_sock)
    if init_pid is None:
        idmap.write_id_maps(stage1_pid, config)
        protocol.send_userns_mapped(parent_sock)
        init_pid = protocol.recv_init_pid(parent_sock)
    state.pid = init_pid
    rollback.push("stop container init", lambda: hostprocess.kill_and_wait(state.pid))
    # "init-go" only keeps the init's messages behind stage 1's report: the init goes on
    # with its mounts while the state with its pid is saved
    protocol.send_init_go(parent_sock)
    stage.wait()
    state.pid_start_time = process_start_time(state.pid) or 0
    cdir.save(state)
    if lx.get("netDevices"):
        # into the init's network namespace, before any hook looks at it (runc's order)
        from pyruntime import netdevices

        netdevices.move_into(lx["netDevices"], state.pid)

    protocol.recv_hooks(parent_sock)
    # The runtime-spec's lifecycle runs these hooks after the environment is created
    # (step 2), so their state says "created", as crun's and runc 1.2's do.
    hook_state = oci_state(state, CREATED)
    # From here on hooks may have made things outside the container (a network, say):
    # a create that fails runs the poststop hooks once the init is gone, as runc does
    # when it destroys a container, so they can undo it.
    rollback.push("run poststop hooks", lambda: _poststop_after_failure(state))
    hooks.run_hooks(config, "prestart", hook_state)
    hooks.run_hooks(config, "createRuntime", hook_state)
    # without the annotations, which may be larger than a message: the init has the config
    bare = oci_state(state, CREATED)
    bare.pop("annotations", None)
    protocol.send_hooks_done(parent_sock, bare)
    if lx.get("seccomp") and seccomp.notifies(lx["seccomp"]):
        from pyruntime import seccomp_agent

        seccomp_agent.forward_listener(parent_sock, lx["seccomp"], state.pid,
                                       oci_state(state, CREATING))
    protocol.recv_ready(parent_sock)
    state.creating = False
    cdir.save(state)
    # Only now may the init wait for `start`: a runtime killed before this point closes
    # the channel instead, and the init exits rather than wait forever.
    protocol.send_created(parent_sock)


def _make_cgroup(cgroup, lx: dict) -> bool:
    """Create the container's cgroup with its limits. A rootless caller that may not write
    there runs its container without one (as runc does), unless limits were asked for: those
    are never dropped in silence. False when there is no cgroup."""
    from pyruntime import rootless

    _refuse_frozen(cgroup)      # an existing one, before anything is written to it
    _warn_if_occupied(cgroup)
    try:
        cgroup.create(lx.get("resources"))
    except PermissionError as e:
        if not rootless.is_rootless():
            raise
        where = e.filename or cgroup.path
        limits = sorted(k for k in lx.get("resources") or {} if k != "devices")
        if limits:
            raise RuntimeUserError(
                f"linux.resources.{limits[0]}: a rootless container gets limits only in a cgroup "
                f"its user may write (a delegated cgroup v2 subtree); {where}: permission denied"
            ) from None
        # Said once to a user who called us; an engine that runs us in its own user namespace
        # (rootless podman) reads any line on stderr as the reason a create failed.
        report = log.warn if rootless.in_initial_userns() else log.debug
        report(f"rootless: no cgroup for the container ({where}: permission denied); "
               "pause, update and events need one")
        return False
    _refuse_frozen(cgroup)      # a new one, below a frozen parent
    return True


def _warn_if_occupied(cgroup) -> None:
    """A cgroup that already holds processes still takes the container (runc 1.1 warns the
    same way, and `delete` then stops those processes with the container's)."""
    try:
        count = len(cgroup.pids())
    except OSError:
        return
    if count:
        log.warn(f"container's cgroup is not empty: {count} process(es) found")


def _refuse_frozen(cgroup) -> None:
    """A process moved into a frozen cgroup stops there, and the create with it, for good."""
    if cgroup.stops_processes():
        raise RuntimeUserError(f"cannot create a container in the frozen cgroup {cgroup.path}")


def _poststop_after_failure(state: ContainerState) -> None:
    from pyruntime import hooks, hostprocess

    hostprocess.kill_and_wait(state.pid)
    hooks.run_hooks(state.config, "poststop", oci_state(state, STOPPED), fatal=False)


def check_pid_file_dir(path: str) -> None:
    """Refuse a --pid-file whose directory is missing before anything is made."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise RuntimeUserError(f"--pid-file {path}: directory {directory} does not exist")


def write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise RuntimeUserError(f"--pid-file {path}: cannot write it: {e.strerror}") from None


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


# -- start -----------------------------------------------------------------------------------
def start(root: str, container_id: str) -> None:
    from pyruntime import hooks

    with ContainerDir(root, container_id).lock() as cdir:
        state = cdir.load()
        status = status_of(cdir, state)
        if status != CREATED:
            raise InvalidState(f"cannot start a container that is {status}" if status != STOPPED
                               else "cannot start a container that has stopped")
        _release_init(cdir, state)
        hooks.run_hooks(state.config, "poststart", oci_state(state, RUNNING), fatal=False)


def _release_init(cdir: ContainerDir, state: ContainerState) -> None:
    """Open exec.fifo for reading, which lets the init go on; read until it closes (the exec
    closed it) to learn whether the exec happened or what stopped it."""
    fd = os.open(cdir.fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    received = b""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while True:
            events = poller.poll(100)
            if not events:
                if process_start_time(state.pid) != state.pid_start_time:
                    break  # the init died without ever opening the FIFO
                continue
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                break
            received += chunk
    finally:
        os.close(fd)
    os.unlink(cdir.fifo_path)
    if received[:1] != b"0":
        raise RuntimeUserError("container init exited before it could be started")
    if len(received) > 1:
        raise RuntimeUserError(received[1:].decode(errors="replace"))


# -- kill ------------------------------------------------------------------------------------
# The names `signal.Signals` has (SIGRTMIN and SIGRTMAX included).
SIGNALS = {name: getattr(_signal, name) for name in dir(_signal)
           if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(getattr(_signal, name), int)}


def parse_signal(text: str) -> int:
    """Accept 9, KILL, SIGKILL, kill (as runc does); 0 probes whether the init is alive."""
    if text.isdigit():
        number = int(text)
        if 0 <= number < 65:
            return number
        raise RuntimeUserError(f"invalid signal {text!r}")
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name not in SIGNALS:
        raise RuntimeUserError(f"unknown signal {text!r}")
    return int(SIGNALS[name])


def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    with ContainerDir(root, container_id).lock() as cdir:
        state = cdir.load()
        status = status_of(cdir, state)
        if status not in (CREATED, RUNNING, PAUSED):
            if not all_processes:
                raise InvalidState("container not running")
            # A stopped init may leave processes behind in its cgroup (a pod's shared PID
            # namespace): `kill --all` still reaches them. With none left it succeeds, as
            # runc's does: containerd's shim sends it again after the container has stopped.
            if not _live_members(state):
                return
        if all_processes and state.cgroup:
            from pyruntime.cgroups import processes

            # Frozen while signalled, so that a forking process cannot leave children behind.
            processes.signal_all(_manager(state), sig)
        else:
            from pyruntime import hostprocess

            hostprocess.signal_if_alive(state.pid, sig)


def _live_members(state: ContainerState) -> bool:
    if not state.cgroup:
        return False
    from pyruntime import cgroups

    try:
        return bool(cgroups.saved_manager(state.cgroup).pids())
    except OSError:
        return False


def _container_pids(state: ContainerState) -> list[int]:
    from pyruntime import cgroups

    pids = set()
    if state.cgroup:
        try:
            pids.update(cgroups.saved_manager(state.cgroup).pids())
        except OSError:
            pass
    if state.pid and process_start_time(state.pid) == state.pid_start_time:
        pids.add(state.pid)
    return sorted(pids)


# -- delete ----------------------------------------------------------------------------------
def delete(root: str, container_id: str, force: bool = False) -> None:
    cdir = ContainerDir(root, container_id)
    try:
        cdir.lock()
    except ContainerNotFound:
        # runc: forcing the deletion of what is already gone succeeds; podman sends it after
        # every failed create and would otherwise log a second, misleading error
        if force:
            return
        raise
    with cdir:
        try:
            state = cdir.load()
        except RuntimeUserError:
            if not force:
                raise
            cdir.remove()
            return
        status = status_of(cdir, state)
        if status in (RUNNING, PAUSED, CREATING) and not force:
            raise InvalidState(f"cannot delete container {container_id} that is not stopped: {status}")
        destroy(cdir, state, status)


def destroy(cdir: ContainerDir, state: ContainerState, status: str) -> None:
    """Stop whatever is left of the container, run its poststop hooks and remove its cgroup
    and state directory (the caller holds the lock)."""
    from pyruntime import hooks

    if status != STOPPED:
        _stop_everything(state)
    elif state.cgroup:
        _kill_leftovers(state)
    hooks.run_hooks(state.config, "poststop", oci_state(state, STOPPED), fatal=False)
    _remove_cgroup(state)
    cdir.remove()


def _stop_everything(state: ContainerState) -> None:
    from pyruntime import hostprocess

    pids = _container_pids(state)
    for pid in pids:
        hostprocess.signal_if_alive(pid, _signal.SIGKILL)
    _thaw(state)
    for pid in pids:
        hostprocess.kill_and_wait(pid)


def _kill_leftovers(state: ContainerState) -> None:
    """The init is gone, but without a PID namespace of their own its children may not be."""
    from pyruntime import hostprocess

    for pid in _container_pids(state):
        hostprocess.kill_and_wait(pid)


def _thaw(state: ContainerState) -> None:
    if state.cgroup:
        manager = _manager(state)
        if manager.is_frozen():
            manager.thaw()


def _remove_cgroup(state: ContainerState) -> None:
    if state.cgroup:
        _manager(state).destroy()


# -- run -------------------------------------------------------------------------------------
def run(root: str, container_id: str, bundle: str, *, detach: bool = False, keep: bool = False,
        config: dict | None = None, **create_opts) -> int:
    """create + start; in the foreground, wait for the container and return its exit code
    (128+signal if killed), then delete it (unless `keep`: it stays, stopped, with its cgroup,
    until `delete`), as `runc run` does. With process.terminal and no --console-socket, the
    foreground run proxies the container's pty to its own stdio."""
    from pyruntime import console, hostprocess, linux, spec
    from pyruntime.rollback import Rollback

    if config is None:
        config = spec.load_config(os.path.abspath(bundle))
    terminal_proxy = not detach and not create_opts.get("console_socket") and \
        bool((config.get("process") or {}).get("terminal"))
    if not detach:
        # The init is a grandchild: become its reaper so we can wait for it.
        linux.set_child_subreaper()
    proxy = console.TerminalProxy(terminal_proxy)
    with Rollback() as rollback:
        rollback.defer("close the terminal proxy", proxy.close)
        state = create(root, container_id, bundle, console=proxy.theirs, config=config, **create_opts)
        master = proxy.receive()
    with Rollback() as rollback:
        rollback.push("delete the container", lambda: delete(root, container_id, force=True))
        start(root, container_id)
    if detach:
        return 0
    # the end of a foreground run, not a rollback: a failing delete is the run's error
    try:
        return hostprocess.wait_forwarding_signals(state.pid, master)
    finally:
        if master is not None:
            os.close(master)
        if not keep:
            delete(root, container_id, force=True)


# -- cgroup commands -------------------------------------------------------------------------
def _manager(state: ContainerState):
    from pyruntime import cgroups

    if not state.cgroup:
        why = " (created with --cgroup-manager disabled)" \
            if state.extra.get("cgroupManager") == "disabled" else ""
        raise RuntimeUserError(f"container {state.id!r} has no cgroup{why}")
    return cgroups.saved_manager(state.cgroup)


def pause(root: str, container_id: str) -> None:
    with ContainerDir(root, container_id).lock() as cdir:
        state = cdir.load()
        status = status_of(cdir, state)
        if status not in (RUNNING, CREATED):
            raise InvalidState(f"container {container_id} is {status}, not running")
        _manager(state).freeze()


def resume(root: str, container_id: str) -> None:
    with ContainerDir(root, container_id).lock() as cdir:
        state = cdir.load()
        status = status_of(cdir, state)
        if status != PAUSED:
            raise InvalidState(f"container {container_id} is {status}, not paused")
        _manager(state).thaw()


def update(root: str, container_id: str, changes: dict) -> dict:
    """Apply resource changes to a live container and keep them in its saved config."""
    with ContainerDir(root, container_id).lock() as cdir:
        state = cdir.load()
        status = status_of(cdir, state)
        if status == STOPPED:
            raise InvalidState(f"cannot update a stopped container {container_id}")
        lx = state.config.setdefault("linux", {})
        lx["resources"] = _manager(state).update(lx.get("resources"), changes)
        cdir.save(state)
        return lx["resources"]


def container_cgroup(root: str, container_id: str, *, running_only: bool = True):
    """The cgroup manager of a container (for events and ps)."""
    with ContainerDir(root, container_id).lock(shared=True) as cdir:
        state = cdir.load()
        status = status_of(cdir, state)
        if running_only and status == STOPPED:
            raise InvalidState(f"container {container_id} is not running")
        return _manager(state)


def container_processes(root: str, container_id: str):
    """What `ps` lists: the container's cgroup, or its PID namespace when it has no cgroup;
    nothing once it has stopped (runc prints an empty list then)."""
    from pyruntime import hostprocess

    with ContainerDir(root, container_id).lock(shared=True) as cdir:
        state = cdir.load()
        if status_of(cdir, state) == STOPPED:
            return hostprocess.PidNamespaceProcesses(0)
        return _manager(state) if state.cgroup else hostprocess.PidNamespaceProcesses(state.pid)


# -- queries ---------------------------------------------------------------------------------
def container_state(root: str, container_id: str) -> dict:
    with ContainerDir(root, container_id).lock(shared=True) as cdir:
        state = cdir.load()
        return oci_state(state, status_of(cdir, state))


def saved_config(root: str, container_id: str) -> dict:
    """The config the container was created with."""
    with ContainerDir(root, container_id).lock(shared=True) as cdir:
        return cdir.load().config


def list_containers(root: str) -> list[dict]:
    from pyruntime.state import list_ids

    result = []
    for cid in list_ids(root):
        try:
            result.append(container_state(root, cid))
        except RuntimeUserError:
            continue  # deleted while we listed
    return result
