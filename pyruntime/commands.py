"""The bodies of the lifecycle commands, one function each, called by both front ends.

`fastpath.py` (no click, for the calls higher tools make many times per container) and
`cli.py` (click, for everything) only parse; once the options are known, both end here, so
that a command does the same work whichever parser read it. This module is on the hot path:
it imports nothing at the top, and each function only what its command uses.
"""

from __future__ import annotations


def _systemd_refused(flag: str):
    from pyruntime.errors import RuntimeUserError

    return RuntimeUserError(f"{flag}: the systemd cgroup driver is not supported; use "
                            "--cgroup-manager cgroupfs (the default) or disabled")


def setup(root: str | None, log_path: str | None, log_format: str, debug: bool, rootless: str,
          cgroup_manager: str = "cgroupfs", systemd_cgroup: bool = False) -> str:
    """The global options, before any command: the log first (so that every later error
    reaches --log, where containerd and podman read it), then the refused cgroup drivers,
    the rootless mode and, from it, the state root (absolute)."""
    import os
    import sys

    from pyruntime import log
    from pyruntime import rootless as rootless_mode

    log.configure(log_path, log_format, debug)
    log.debug(f"pyruntime {' '.join(sys.argv[1:])}")
    if systemd_cgroup:
        raise _systemd_refused("--systemd-cgroup")
    if cgroup_manager == "systemd":
        raise _systemd_refused("--cgroup-manager systemd")
    rootless_mode.configure(rootless)
    # An empty --root or PYRUNTIME_ROOT means the default, as an absent one.
    return os.path.abspath(root or os.environ.get("PYRUNTIME_ROOT") or rootless_mode.default_state_root())


def early_init_stage(preserve_fds: int, cgroup_manager: str):
    """Start, first of all in a create, what it would otherwise wait for: the start-up of the
    interpreter the container's init stage runs in, and the kernel's wait for a cgroup move
    (root's; a rootless caller may not move itself). Both then run while the runtime loads
    and reads the config. The caller abandons the stage when it is done (reexec.Stage)."""
    import os

    from pyruntime.init import reexec

    if os.geteuid() == 0 and cgroup_manager != "disabled":
        from pyruntime.cgroups import warmup

        warmup.start()
    return reexec.start("init", preserve_fds=preserve_fds)


def early_exec_stage(preserve_fds: int):
    """The exec stage's interpreter, started first of all: it boots and imports its modules
    while the runtime loads, reads the container's state and builds the process (the same
    overlap as early_init_stage's), and, for root, the kernel's wait for the stage's move
    into the container's cgroup. Nothing of the runtime's is open yet that the stage could
    inherit (the container's lock comes later). The caller abandons it when done."""
    import os

    from pyruntime.init import reexec

    if os.geteuid() == 0:
        from pyruntime.cgroups import warmup

        warmup.start()
    return reexec.start("exec", preserve_fds=preserve_fds)


def state(root: str, container_id: str) -> int:
    import sys

    from pyruntime import jsonlite, lifecycle

    sys.stdout.write(jsonlite.dumps_indented(lifecycle.container_state(root, container_id)) + "\n")
    return 0


def start(root: str, container_id: str) -> int:
    from pyruntime import lifecycle

    lifecycle.start(root, container_id)
    return 0


def kill(root: str, container_id: str, signal: str, all_processes: bool) -> int:
    from pyruntime import lifecycle

    lifecycle.kill(root, container_id, lifecycle.parse_signal(signal), all_processes)
    return 0


def delete(root: str, container_id: str, force: bool, regex: bool = False) -> int:
    """`regex`: container_id is a pattern, and every container whose whole id it matches is
    deleted (crun's --regex)."""
    from pyruntime import lifecycle

    if not regex:
        lifecycle.delete(root, container_id, force=force)
        return 0
    import re

    from pyruntime.errors import RuntimeUserError
    from pyruntime.state import list_ids

    try:
        pattern = re.compile(container_id)
    except re.error as e:
        raise RuntimeUserError(f"--regex {container_id!r}: {e}") from None
    for cid in list_ids(root):
        if pattern.fullmatch(cid):
            lifecycle.delete(root, cid, force=force)
    return 0


def create(root: str, container_id: str, *, bundle: str, console_socket: str | None,
           pid_file: str | None, no_pivot: bool, no_new_keyring: bool, preserve_fds: int,
           config_file: str | None, cgroup_manager: str, stage=None) -> int:
    """`stage`: the init stage the caller started before it parsed the rest (early_init_stage);
    without one, it is started here, before anything else. `no_new_keyring` is accepted: no
    session keyring is ever created."""
    if stage is None:
        stage = early_init_stage(preserve_fds, cgroup_manager)
    try:
        from pyruntime import lifecycle

        lifecycle.create(root, container_id, bundle, console_socket=console_socket,
                         pid_file=pid_file, no_pivot=no_pivot, preserve_fds=preserve_fds,
                         config=_config_from(bundle, config_file), stage=stage,
                         cgroup_manager=cgroup_manager)
    finally:
        stage.abandon()
    return 0


def run(root: str, container_id: str, *, bundle: str, console_socket: str | None,
        pid_file: str | None, no_pivot: bool, no_new_keyring: bool, preserve_fds: int,
        config_file: str | None, cgroup_manager: str, detach: bool, keep: bool,
        stage=None) -> int:
    """create + start (+ wait and delete in the foreground): the container's exit code."""
    if stage is None:
        stage = early_init_stage(preserve_fds, cgroup_manager)
    try:
        from pyruntime import lifecycle

        return lifecycle.run(root, container_id, bundle, detach=detach, keep=keep,
                             config=_config_from(bundle, config_file),
                             console_socket=console_socket, pid_file=pid_file,
                             no_pivot=no_pivot, preserve_fds=preserve_fds, stage=stage,
                             cgroup_manager=cgroup_manager)
    finally:
        stage.abandon()


def exec_process(root: str, container_id: str, *, command, process_file, tty, console_socket,
                 detach, pid_file, env, cwd, user, additional_gids, cap, no_new_privs,
                 preserve_fds, cgroup_paths, ignore_paused, stage=None) -> int:
    """exec: the process's own exit code (0 at once with `detach`); 255 when the exec itself
    fails, as runc answers, apart from any code the process may return. `stage`: the exec
    stage the caller started ahead (early_exec_stage) and abandons afterwards."""
    from pyruntime import execute, lifecycle
    from pyruntime.errors import RuntimeUserError

    try:
        config = lifecycle.saved_config(root, container_id)
        process = execute.process_from_flags(
            config, list(command), process_file=process_file, tty=tty, env=env, cwd=cwd,
            user=user, additional_gids=additional_gids, caps=cap, no_new_privs=no_new_privs)
        return execute.exec_in(root, container_id, process, console_socket=console_socket,
                               detach=detach, pid_file=pid_file, preserve_fds=preserve_fds,
                               ignore_paused=ignore_paused, cgroup_paths=cgroup_paths,
                               stage=stage)
    except RuntimeUserError as e:
        e.exit_code = 255
        raise


def _config_from(bundle: str, config_file: str | None) -> dict | None:
    """--config FILE: that file, validated against the bundle, instead of its config.json."""
    if config_file is None:
        return None
    import os

    from pyruntime import spec

    return spec.load_config(os.path.abspath(bundle), config_file)
