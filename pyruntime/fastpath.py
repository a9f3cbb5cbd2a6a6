"""The entry point: hot lifecycle commands without importing click.

Importing click costs ~25 ms, more than the work of `state`, `start`, `kill` or `delete`, and
higher tools call these many times per container. This module parses exactly the argument
forms those tools send (runc's flags, see HOT_COMMANDS) and calls the same lifecycle functions
as pyruntime.cli. Anything it does not fully understand (help, an unknown flag, a typo) is
left to click, which parses and reports errors for the whole CLI; tests check that both
parsers read every hot form alike.
"""

from __future__ import annotations

import sys

# command -> {flag: (destination, takes a value)}; positional arguments by name.
GLOBAL_FLAGS = {
    "--root": ("root", True), "--log": ("log_path", True), "--log-format": ("log_format", True),
    "--debug": ("debug", False), "--rootless": ("rootless", True),
    "--cgroup-manager": ("cgroup_manager", True), "--criu": ("criu", True),
}
# What --cgroup-manager may name here; click refuses the rest ("systemd") with its message.
SUPPORTED_CGROUP_MANAGERS = ("cgroupfs", "disabled")
HOT_COMMANDS: dict[str, tuple[dict[str, tuple[str, bool]], tuple[str, ...]]] = {
    "state": ({}, ("container_id",)),
    "start": ({}, ("container_id",)),
    "kill": ({"--all": ("all_processes", False), "-a": ("all_processes", False)},
             ("container_id", "signal")),
    "delete": ({"--force": ("force", False), "-f": ("force", False)}, ("container_id",)),
    "create": ({"--bundle": ("bundle", True), "-b": ("bundle", True),
                "--console-socket": ("console_socket", True), "--pid-file": ("pid_file", True),
                "--no-pivot": ("no_pivot", False), "--no-new-keyring": ("no_new_keyring", False),
                "--preserve-fds": ("preserve_fds", True)}, ("container_id",)),
}
HOT_COMMANDS["run"] = ({**HOT_COMMANDS["create"][0], "--detach": ("detach", False),
                        "-d": ("detach", False), "--keep": ("keep", False)}, ("container_id",))

DEFAULTS = {
    "root": None, "log_path": "", "log_format": "text", "debug": False, "rootless": "auto",
    "cgroup_manager": "cgroupfs", "criu": "criu",
    "all_processes": False, "force": False, "signal": "SIGTERM", "bundle": ".",
    "console_socket": None, "pid_file": None, "no_pivot": False, "no_new_keyring": False,
    "preserve_fds": 0, "detach": False, "keep": False,
}


def parse(argv: list[str]) -> tuple[str, dict] | None:
    """(command, options) for a hot command line, or None to let click handle it."""
    opts: dict = {}
    i = _take_flags(argv, 0, GLOBAL_FLAGS, opts)
    if i is None or i >= len(argv) or argv[i] not in HOT_COMMANDS:
        return None
    command = argv[i]
    flags, positional_names = HOT_COMMANDS[command]
    positionals: list[str] = []
    i += 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            if arg == "--":
                positionals.extend(argv[i + 1:])
                break
            i = _take_flags(argv, i, flags, opts, stop_at_positional=True)
            if i is None:
                return None
            continue
        positionals.append(arg)
        i += 1
    if not 1 <= len(positionals) <= len(positional_names):
        return None
    opts.update(zip(positional_names, positionals))
    if opts.get("log_format", "text") not in ("text", "json"):
        return None
    if opts.get("cgroup_manager", "cgroupfs") not in SUPPORTED_CGROUP_MANAGERS:
        return None
    if "preserve_fds" in opts:
        if not str(opts["preserve_fds"]).isdigit():
            return None
        opts["preserve_fds"] = int(opts["preserve_fds"])
    return command, {**{k: DEFAULTS[k] for k in _names(command)}, **opts}


def leading_globals(argv: list[str]) -> dict:
    """The global flags before the first argument that is not one (for logging set-up when
    the rest of the line is left to click)."""
    opts: dict = {}
    i = 0
    while i < len(argv) and argv[i] != "--":
        consumed = _take_flags(argv, i, GLOBAL_FLAGS, opts, stop_at_positional=True)
        if consumed is None or consumed == i:
            break
        i = consumed
    return opts


def _names(command: str) -> set[str]:
    flags, positional = HOT_COMMANDS[command]
    return {d for d, _ in GLOBAL_FLAGS.values()} | {d for d, _ in flags.values()} | set(positional[1:])


def _take_flags(argv, i, flags, opts, stop_at_positional=False):
    """Consume flags from argv[i:]; return the next index, or None on anything unknown."""
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name not in flags:
            return None
        dest, takes_value = flags[name]
        if takes_value:
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            opts[dest] = value
        elif eq:
            return None
        else:
            opts[dest] = True
        i += 1
        if stop_at_positional:
            return i
    return i


def dispatch(command: str, o: dict) -> int:
    import os

    stage = None
    if command in ("create", "run"):
        # First of all, so that both run while the rest loads: the kernel's wait for a cgroup
        # move (root's; a rootless caller may not move itself), and the start-up of the
        # interpreter the container's init stage runs in.
        from pyruntime.init import reexec

        if os.geteuid() == 0 and o["cgroup_manager"] != "disabled":
            from pyruntime.cgroups import warmup

            warmup.start()
        stage = reexec.start("init", preserve_fds=o["preserve_fds"])
    try:
        return _dispatch(command, o, stage)
    finally:
        if stage is not None:
            stage.abandon()


def _dispatch(command: str, o: dict, stage) -> int:
    import os

    from pyruntime import lifecycle, log
    from pyruntime import rootless

    log.configure(o["log_path"], o["log_format"], o["debug"])
    log.debug(f"pyruntime {' '.join(sys.argv[1:])}")
    rootless.configure(o["rootless"])
    root = os.path.abspath(o["root"] or os.environ.get("PYRUNTIME_ROOT") or rootless.default_state_root())
    cid = o["container_id"]
    if command == "state":
        import json

        sys.stdout.write(json.dumps(lifecycle.container_state(root, cid), indent=2) + "\n")
    elif command == "start":
        lifecycle.start(root, cid)
    elif command == "kill":
        lifecycle.kill(root, cid, lifecycle.parse_signal(o["signal"]), o["all_processes"])
    elif command == "delete":
        lifecycle.delete(root, cid, force=o["force"])
    else:
        create_opts = dict(console_socket=o["console_socket"], pid_file=o["pid_file"],
                           no_pivot=o["no_pivot"], preserve_fds=o["preserve_fds"], stage=stage,
                           cgroup_manager=o["cgroup_manager"])
        if command == "create":
            lifecycle.create(root, cid, o["bundle"], **create_opts)
        else:
            return lifecycle.run(root, cid, o["bundle"], detach=o["detach"], keep=o["keep"],
                                 **create_opts)
    return 0


def main() -> None:
    """Console entry point: every user error becomes one message and a non-zero exit; a bug
    shows its traceback only with --debug."""
    from pyruntime import log
    from pyruntime.errors import RuntimeUserError

    try:
        parsed = parse(sys.argv[1:])
        if parsed is None:
            from pyruntime.cli import click_main

            # Even a command line click rejects must leave its error in the --log file:
            # containerd and podman read the reason for a failure from there.
            early = leading_globals(sys.argv[1:])
            log.configure(early.get("log_path"), early.get("log_format", "text"), early.get("debug", False))
            code = click_main()
        else:
            code = dispatch(*parsed)
    except RuntimeUserError as e:
        log.error(e.message)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    except Exception as e:
        if log.debug_enabled():
            raise
        log.error(f"internal error: {type(e).__name__}: {e} (run with --debug for details)")
        code = 1
    sys.exit(code)
