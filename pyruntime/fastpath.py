"""The entry point: hot lifecycle commands without importing click.

Importing click costs ~25 ms, more than the work of `state`, `start`, `kill` or `delete`, and
higher tools call these many times per container. This module parses exactly the argument
forms those tools send (runc's flags, see HOT_COMMANDS) and calls the same command functions
(pyruntime.commands) as pyruntime.cli. Anything it does not fully understand (help, an unknown
flag, a typo, a flag only click takes) is left to click, which parses and reports errors for
the whole CLI; tests check that both parsers read every option click has for these commands
alike.
"""

from __future__ import annotations

import sys

# command -> {flag: (destination, kind)}; positional arguments by name. A flag's kind: False
# (a switch), True (one value) or MANY (a value, repeatable, collected in order as click does).
MANY = "many"
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
# exec: kubelet's probes and every `podman exec` come this way. After the container id the rest
# of the line is the command, flags and all (click's allow_interspersed_args=False).
HOT_COMMANDS["exec"] = ({
    "--process": ("process_file", True), "-p": ("process_file", True),
    "--tty": ("tty", False), "-t": ("tty", False),
    "--console-socket": ("console_socket", True),
    "--detach": ("detach", False), "-d": ("detach", False),
    "--pid-file": ("pid_file", True),
    "--env": ("env", MANY), "-e": ("env", MANY),
    "--cwd": ("cwd", True),
    "--user": ("user", True), "-u": ("user", True),
    "--additional-gids": ("additional_gids", MANY), "-g": ("additional_gids", MANY),
    "--cap": ("cap", MANY), "-c": ("cap", MANY),
    "--no-new-privs": ("no_new_privs", False),
    "--preserve-fds": ("preserve_fds", True),
    "--process-label": ("process_label", True), "--apparmor": ("apparmor", True),
    "--cgroup": ("cgroup_paths", MANY),
    "--ignore-paused": ("ignore_paused", False),
}, ("container_id", "command"))
# Commands whose last argument takes the rest of the line.
REST_ARGUMENT = {"exec": "command"}

# Every option click knows for these commands, at its default. The flags this parser does not
# take (CLICK_ONLY) send the line to click, so here they are always unset.
DEFAULTS = {
    "root": None, "log_path": "", "log_format": "text", "debug": False, "rootless": "auto",
    "cgroup_manager": "cgroupfs", "criu": "criu", "systemd_cgroup": False,
    "all_processes": False, "force": False, "regex": False, "signal": "SIGTERM", "bundle": ".",
    "console_socket": None, "pid_file": None, "no_pivot": False, "no_new_keyring": False,
    "preserve_fds": 0, "config_file": None, "detach": False, "keep": False,
    "process_file": None, "tty": False, "env": (), "cwd": None, "user": None,
    "additional_gids": (), "cap": (), "no_new_privs": False, "process_label": "", "apparmor": "",
    "cgroup_paths": (), "ignore_paused": False, "command": (),
}
CLICK_ONLY_GLOBALS = ("systemd_cgroup",)
CLICK_ONLY = {"delete": ("regex",), "create": ("config_file",), "run": ("config_file",)}


def parse(argv: list[str]) -> tuple[str, dict] | None:
    """(command, options) for a hot command line, or None to let click handle it."""
    opts: dict = {}
    i = _take_flags(argv, 0, GLOBAL_FLAGS, opts)
    if i is None or i >= len(argv) or argv[i] not in HOT_COMMANDS:
        return None
    command = argv[i]
    flags, positional_names = HOT_COMMANDS[command]
    positionals: list[str] = []
    rest = REST_ARGUMENT.get(command)
    i += 1
    while i < len(argv):
        arg = argv[i]
        if rest and positionals:
            positionals.extend(argv[i:])    # the command, whatever it looks like
            break
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
    if rest and positionals:
        positionals = [*positionals[:len(positional_names) - 1],
                       tuple(positionals[len(positional_names) - 1:])]
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
    if "additional_gids" in opts:
        if not all(_is_int(g) for g in opts["additional_gids"]):
            return None
        opts["additional_gids"] = tuple(int(g) for g in opts["additional_gids"])
    return command, {**{k: DEFAULTS[k] for k in _names(command)}, **opts}


def _is_int(text: str) -> bool:
    """What click's INT takes: an optional sign and digits, blanks around them."""
    text = text.strip()
    return text.lstrip("+-").isdigit() and text.count("-") + text.count("+") <= 1


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
    return ({d for d, _ in GLOBAL_FLAGS.values()} | set(CLICK_ONLY_GLOBALS)
            | {d for d, _ in flags.values()} | set(positional[1:]) | set(CLICK_ONLY.get(command, ())))


def _take_flags(argv, i, flags, opts, stop_at_positional=False):
    """Consume flags from argv[i:]; return the next index, or None on anything unknown."""
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name not in flags:
            return None
        dest, kind = flags[name]
        if kind:
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            opts[dest] = (*opts.get(dest, ()), value) if kind == MANY else value
        elif eq:
            return None
        else:
            opts[dest] = True
        i += 1
        if stop_at_positional:
            return i
    return i


CREATING_COMMANDS = ("create", "run")
_EXEC_OPTIONS = ("command", "process_file", "tty", "console_socket", "detach", "pid_file", "env",
                 "cwd", "user", "additional_gids", "cap", "no_new_privs", "preserve_fds",
                 "cgroup_paths", "ignore_paused")
_CREATE_OPTIONS = ("bundle", "console_socket", "pid_file", "no_pivot", "no_new_keyring",
                   "preserve_fds", "config_file", "cgroup_manager")


def dispatch(command: str, o: dict) -> int:
    """Run a parsed hot command through the same command functions as click's."""
    from pyruntime import commands

    # First of all, so that the init stage starts up while the rest loads (click's create
    # takes the same route, only later).
    stage = None
    if command in CREATING_COMMANDS:
        stage = commands.early_init_stage(o["preserve_fds"], o["cgroup_manager"])
    elif command == "exec":
        stage = commands.early_exec_stage(o["preserve_fds"])
    try:
        root = commands.setup(o["root"], o["log_path"], o["log_format"], o["debug"],
                              o["rootless"], o["cgroup_manager"], o["systemd_cgroup"])
        cid = o["container_id"]
        if command == "state":
            return commands.state(root, cid)
        if command == "start":
            return commands.start(root, cid)
        if command == "kill":
            return commands.kill(root, cid, o["signal"], o["all_processes"])
        if command == "delete":
            return commands.delete(root, cid, o["force"], o["regex"])
        if command == "exec":
            return commands.exec_process(root, cid, stage=stage,
                                         **{name: o[name] for name in _EXEC_OPTIONS})
        create_opts = {name: o[name] for name in _CREATE_OPTIONS}
        if command == "create":
            return commands.create(root, cid, stage=stage, **create_opts)
        return commands.run(root, cid, detach=o["detach"], keep=o["keep"], stage=stage,
                            **create_opts)
    finally:
        # also when the global options fail (an unopenable --log): the stage must not wait
        if stage is not None:
            stage.abandon()


def main() -> None:
    """Console entry point: every user error becomes one message and a non-zero exit; a bug
    shows its traceback only with --debug."""
    sys.exit(_run(sys.argv[1:])[0])


def launch() -> None:
    """What the installed `pyruntime` program runs (its console script): main(), but a hot command
    ends without the interpreter's shutdown (module teardown, garbage collection: ~2 ms of
    CPU, nothing the command needs) once its output is flushed. Every lock, file and child of
    the command has been dealt with by then; click's commands end normally."""
    code, hot = _run(sys.argv[1:])
    if not hot:
        sys.exit(code)
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120   # what the interpreter's own shutdown answers then
    os._exit(code)


def _run(argv: list[str]) -> tuple[int, bool]:
    """(exit code, whether the command took the fast path)."""
    from pyruntime import log
    from pyruntime.errors import RuntimeUserError

    parsed = None
    try:
        parsed = parse(argv)
        if parsed is None:
            from pyruntime.cli import click_main

            # Even a command line click rejects must leave its error in the --log file:
            # containerd and podman read the reason for a failure from there.
            early = leading_globals(argv)
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
    return code, parsed is not None
