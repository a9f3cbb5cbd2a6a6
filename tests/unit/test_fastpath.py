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


HOT_FORMS = [
    ["state", "c1"],
    ["--root", "/run/x", "state", "c1"],
    ["--root=/run/x", "--log", "/tmp/l", "--log-format", "json", "start", "c1"],
    ["--debug", "kill", "c1"],
    ["kill", "c1", "KILL"],
    ["kill", "--all", "c1", "9"],
    ["kill", "c1", "-a", "SIGTERM"],
    ["delete", "c1"],
    ["delete", "--force", "c1"],
    ["delete", "-f", "c1"],
    ["create", "--bundle", "/b", "--pid-file", "/p", "c1"],
    ["create", "-b", "/b", "--console-socket", "/s", "--no-pivot", "c1"],
    ["create", "c1", "--bundle=/b", "--preserve-fds", "2", "--no-new-keyring"],
    ["run", "-d", "-b", "/b", "c1"],
    ["run", "--detach", "--keep", "--bundle", "/b", "c1"],
    ["--log-format", "json", "--log", "/l", "run", "c1"],
]


@pytest.mark.parametrize("argv", HOT_FORMS, ids=" ".join)
def test_fast_parse_matches_click(argv):
    fast = fastpath.parse(argv)
    assert fast is not None, "a hot form must not fall back to click"
    command, fast_opts = fast
    click_command, click_opts = click_parse(argv)
    assert command == click_command
    for key, value in fast_opts.items():
        if key == "root":
            continue  # click applies the default itself; both end at the same path
        assert click_opts[key] == value, key


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
