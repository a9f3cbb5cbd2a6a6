"""The click-free parser of hot commands reads every form exactly as the click CLI does."""

import click
import pytest

from pyruntime import cli, fastpath


def click_parse(argv):
    """(command, options) as click understands argv, without running anything."""
    import warnings

    group_ctx = cli.main_group.make_context("pyruntime", list(argv), resilient_parsing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click 8.2 renames protected_args
        pending = group_ctx.protected_args + group_ctx.args
    name, command, rest = cli.main_group.resolve_command(group_ctx, pending)
    cmd_ctx = command.make_context(name, rest, parent=group_ctx)
    options = dict(group_ctx.params)
    options.update(cmd_ctx.params)
    return command.name, options


def click_params(command_name):
    """Every parameter click takes on a line of this command: the group's, then the command's
    (each with its help option), as (is the group's, parameter)."""
    group_ctx = cli.main_group.make_context("pyruntime", [], resilient_parsing=True)
    command = cli.main_group.commands[command_name]
    command_ctx = command.make_context(command_name, [], parent=group_ctx, resilient_parsing=True)
    return ([(True, p) for p in cli.main_group.get_params(group_ctx)]
            + [(False, p) for p in command.get_params(command_ctx)])


def sample_values(option):
    """Values click accepts for an option: every choice, or a plain one of its type."""
    if option.is_flag:
        return [None]
    if isinstance(option.type, click.Choice):
        return list(option.type.choices)
    if isinstance(option.type, (click.IntRange, type(click.INT))):
        return ["0", "3"]
    return ["/a/value"]


def option_forms(name, value):
    """The ways a command line can spell one option: separate and attached values."""
    if value is None:
        return [[name]]
    attached = f"{name}={value}" if name.startswith("--") else f"{name}{value}"
    return [[name, value], [attached]]


def positional_forms(command_name):
    """The command's arguments: the required ones, then with each optional one as well."""
    arguments = [p for _, p in click_params(command_name) if isinstance(p, click.Argument)]
    required = [f"{a.name}-value" for a in arguments if a.required]
    optional = ["KILL" if a.name == "signal" else f"{a.name}-value" for a in arguments if not a.required]
    return [required + optional[:n] for n in range(len(optional) + 1)]


def fast_flags(command_name, in_group):
    return fastpath.GLOBAL_FLAGS if in_group else fastpath.HOT_COMMANDS[command_name][0]


def left_to_click_by_value(option, value):
    """A value click takes that the fast path deliberately does not (click refuses it)."""
    return option.name == "cgroup_manager" and value not in fastpath.SUPPORTED_CGROUP_MANAGERS


def every_option_line():
    """(argv, option string, the fast path has it, the fast path must read this line) for
    every option click has on every hot command, before and after the arguments, in every
    spelling; and each command's arguments alone (every option at its default)."""
    for command_name in fastpath.HOT_COMMANDS:
        for positionals in positional_forms(command_name):
            yield [command_name, *positionals], None, True, True
            for in_group, option in click_params(command_name):
                if isinstance(option, click.Argument):
                    continue
                for name in option.opts + option.secondary_opts:
                    known = name in fast_flags(command_name, in_group)
                    for value in sample_values(option):
                        for form in option_forms(name, value):
                            # the fast path reads runc's spelling; an attached value may go to click
                            wanted = known and len(form) == (1 if value is None else 2) \
                                and not left_to_click_by_value(option, value)
                            if in_group:
                                yield [*form, command_name, *positionals], name, known, wanted
                            else:
                                yield [command_name, *form, *positionals], name, known, wanted
                                yield [command_name, *positionals, *form], name, known, wanted


OPTION_LINES = list(every_option_line())


def parse_alike_or_fall_back(argv, must_be_fast):
    fast = fastpath.parse(argv)
    try:
        expected = click_parse(argv)
    except click.exceptions.Exit:      # --help, --version: click's own
        assert fast is None
        return
    if must_be_fast:
        assert fast is not None, "an option the fast path knows must not fall back to click"
    if fast is not None:
        assert fast == expected


@pytest.mark.parametrize("argv,must_be_fast", [(a, w) for a, _, _, w in OPTION_LINES],
                         ids=[" ".join(a) for a, _, _, _ in OPTION_LINES])
def test_every_click_option_of_a_hot_command_is_read_alike_or_left_to_click(monkeypatch, argv,
                                                                            must_be_fast):
    monkeypatch.delenv("PYRUNTIME_ROOT", raising=False)   # click's envvar for --root
    parse_alike_or_fall_back(argv, must_be_fast)


def test_an_option_only_click_knows_goes_to_click():
    unknown = [(argv, name) for argv, name, known, _ in OPTION_LINES if name and not known]
    assert {name for _, name in unknown} >= {"--systemd-cgroup", "--version", "-v", "-h", "--help",
                                             "--config", "--regex", "-r"}
    for argv, name in unknown:
        if in_the_rest_argument(argv, name):
            # after exec's container id, click too reads every word as the command
            assert fastpath.parse(argv) == click_parse(argv), argv
        else:
            assert fastpath.parse(argv) is None, argv


def in_the_rest_argument(argv, option_name) -> bool:
    command = next(a for a in argv if a in fastpath.HOT_COMMANDS)
    if command not in fastpath.REST_ARGUMENT or "container_id-value" not in argv:
        return False
    first_word = next(i for i, a in enumerate(argv) if a.startswith(option_name))
    return first_word > argv.index("container_id-value")


@pytest.mark.parametrize("command_name", fastpath.HOT_COMMANDS)
def test_the_fast_path_knows_no_option_click_lacks(command_name):
    """Each fast flag is one of click's options on that command, with click's destination and
    kind; the arguments are click's, in click's order."""
    params = click_params(command_name)
    by_flag = {name: (in_group, p) for in_group, p in params if isinstance(p, click.Option)
               for name in p.opts + p.secondary_opts}
    for in_group in (True, False):
        for flag, (dest, kind) in fast_flags(command_name, in_group).items():
            click_in_group, option = by_flag[flag]
            assert (click_in_group, option.name, not option.is_flag, option.multiple) == \
                (in_group, dest, bool(kind), kind == fastpath.MANY), flag
    arguments = [p.name for _, p in params if isinstance(p, click.Argument)]
    assert list(fastpath.HOT_COMMANDS[command_name][1]) == arguments


def test_every_fast_option_at_once_is_read_alike(monkeypatch):
    monkeypatch.delenv("PYRUNTIME_ROOT", raising=False)
    for command_name, (flags, _) in fastpath.HOT_COMMANDS.items():
        argv = ["--root", "/r", "--log", "/l", "--log-format", "json", "--debug", "--rootless", "true",
                "--cgroup-manager", "disabled", "--criu", "/c", command_name]
        for flag, (_, takes_value) in flags.items():
            argv += [flag, "2"] if takes_value else [flag]
        argv += positional_forms(command_name)[-1]
        parse_alike_or_fall_back(argv, must_be_fast=True)


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["state"], ["state", "--help"], ["state", "a", "b"], ["kill", "a", "b", "c"],
    ["list"], ["spec"], ["create", "--bogus", "c1"], ["--log-format", "xml", "state", "c1"],
    ["create", "--preserve-fds", "x", "c1"], ["create", "--bundle"], ["--systemd-cgroup", "state", "c1"],
    ["delete", "--force=yes", "c1"],
])
def test_anything_else_goes_to_click(argv):
    assert fastpath.parse(argv) is None


def test_click_rejects_what_fastpath_passes_on():
    with pytest.raises(click.UsageError):
        click_parse(["create", "--bogus", "c1"])


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_shows_its_traceback_only_with_debug(monkeypatch, capsys, debug):
    from pyruntime import lifecycle

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(lifecycle, "container_state", broken)
    monkeypatch.setattr("sys.argv", ["pyruntime", *(["--debug"] if debug else []), "state", "c1"])
    if debug:
        with pytest.raises(ZeroDivisionError):
            fastpath.main()
        return
    with pytest.raises(SystemExit) as exit_info:
        fastpath.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == "internal error: ZeroDivisionError: a bug (run with --debug for details)\n"


def test_corrupt_state_is_a_user_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "state.json").write_text("[1]")
    monkeypatch.setattr("sys.argv", ["pyruntime", "--root", str(tmp_path), "state", "c1"])
    with pytest.raises(SystemExit) as exit_info:
        fastpath.main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("container 'c1': state.json is corrupt")


# -- --cgroup-manager --------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["--cgroup-manager", "disabled", "create", "-b", "/b", "c1"],
    ["--cgroup-manager=cgroupfs", "run", "-d", "c1"],
    ["--cgroup-manager", "disabled", "state", "c1"],
    ["--criu", "/usr/local/sbin/criu", "delete", "c1"],
], ids=" ".join)
def test_cgroup_manager_is_read_alike_by_both_parsers(argv):
    from pyruntime import fastpath
    from tests.unit.test_fastpath import click_parse

    command, fast = fastpath.parse(argv)
    click_command, slow = click_parse(argv)
    assert command == click_command
    assert fast["cgroup_manager"] == slow["cgroup_manager"] and fast["criu"] == slow["criu"]


@pytest.mark.parametrize("argv", [["--cgroup-manager", "systemd", "create", "c1"],
                                  ["--cgroup-manager", "bogus", "state", "c1"]])
def test_unsupported_cgroup_managers_are_left_to_click(argv):
    from pyruntime import fastpath

    assert fastpath.parse(argv) is None
