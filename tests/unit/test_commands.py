"""Both front ends (the fast path and click) run a command through the same function, and a
create through either starts the container's init stage before anything else."""

import os
import sys

import pytest

from pyruntime import cli, commands, fastpath, lifecycle
from pyruntime.errors import RuntimeUserError

HOT_LINES = [
    ["state", "c1"],
    ["start", "c1"],
    ["kill", "--all", "c1", "KILL"],
    ["delete", "-f", "c1"],
    ["create", "-b", "/b", "--pid-file", "/p", "--no-pivot", "--preserve-fds", "2", "c1"],
    ["run", "-d", "--bundle", "/b", "--console-socket", "/s", "--keep", "c1"],
    ["exec", "-e", "A=1", "--env", "B=2", "--cap", "CAP_KILL", "-u", "1:1", "-g", "10",
     "--cgroup", "cpu:sub", "c1", "sh", "-c", "echo -e x"],
]
COMMAND_FUNCTIONS = {"exec": "exec_process"}


def run_front_end(monkeypatch, front_end, argv):
    """The exit code of the whole command line through one front end."""
    monkeypatch.setattr(sys, "argv", ["pyruntime", *argv])
    if front_end == "click":
        return cli.click_main()
    with pytest.raises(SystemExit) as exit_info:
        fastpath.main()
    return exit_info.value.code


class FakeStage:
    def __init__(self):
        self.abandoned = False

    def abandon(self):
        self.abandoned = True


@pytest.mark.parametrize("argv", HOT_LINES, ids=" ".join)
def test_both_front_ends_call_the_same_command_function(monkeypatch, tmp_path, argv):
    assert fastpath.parse(["--root", str(tmp_path), *argv]) is not None
    calls = {}
    early = FakeStage()
    monkeypatch.setattr(commands, "early_init_stage", lambda *_: early)
    monkeypatch.setattr(commands, "early_exec_stage", lambda *_: early)
    for front_end in ("fastpath", "click"):
        def record(*args, **kwargs):
            calls[front_end] = (args, kwargs)
            return 0

        monkeypatch.setattr(commands, COMMAND_FUNCTIONS.get(argv[0], argv[0]), record)
        assert run_front_end(monkeypatch, front_end, ["--root", str(tmp_path), *argv]) == 0
    (fast_args, fast_kwargs), (click_args, click_kwargs) = calls["fastpath"], calls["click"]
    if argv[0] in ("create", "run", "exec"):
        # the fast path started the stage before it parsed; click's command starts it itself
        assert fast_kwargs.pop("stage") is early and "stage" not in click_kwargs
        assert early.abandoned
    assert (fast_args, fast_kwargs) == (click_args, click_kwargs)
    assert fast_args[0] == str(tmp_path)


@pytest.fixture
def early_route(monkeypatch):
    """What a create does first, and what it then hands to the lifecycle, in order."""
    from pyruntime.cgroups import warmup
    from pyruntime.init import reexec

    events = []
    stages = []

    def start_stage(name, preserve_fds=0, close_in_child=frozenset()):
        events.append(("stage", name, preserve_fds))
        stages.append(FakeStage())
        return stages[-1]

    def lifecycle_call(name, result):
        def call(root, container_id, bundle, **kwargs):
            events.append((name, kwargs["stage"]))
            if isinstance(result, Exception):
                raise result
            return result
        return call

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(warmup, "start", lambda: events.append(("warmup",)))
    monkeypatch.setattr(reexec, "start", start_stage)
    monkeypatch.setattr(lifecycle, "create", lifecycle_call("lifecycle.create", None))
    monkeypatch.setattr(lifecycle, "run", lifecycle_call("lifecycle.run", 7))
    return events, stages, lifecycle_call


@pytest.mark.parametrize("front_end", ["fastpath", "click"])
@pytest.mark.parametrize("command,code", [("create", 0), ("run", 7)])
def test_a_create_starts_the_init_stage_first_on_either_front_end(monkeypatch, tmp_path, early_route,
                                                                  front_end, command, code):
    events, stages, _ = early_route
    argv = ["--root", str(tmp_path), command, "--preserve-fds", "1", "c1"]
    assert run_front_end(monkeypatch, front_end, argv) == code
    assert events == [("warmup",), ("stage", "init", 1), (f"lifecycle.{command}", stages[0])]
    assert stages[0].abandoned


@pytest.mark.parametrize("front_end", ["fastpath", "click"])
def test_no_cgroup_warm_up_without_a_cgroup(monkeypatch, tmp_path, early_route, front_end):
    events, stages, _ = early_route
    argv = ["--root", str(tmp_path), "--cgroup-manager", "disabled", "create", "c1"]
    assert run_front_end(monkeypatch, front_end, argv) == 0
    assert events == [("stage", "init", 0), ("lifecycle.create", stages[0])]


@pytest.mark.parametrize("front_end", ["fastpath", "click"])
def test_a_failed_create_abandons_the_early_stage(monkeypatch, tmp_path, capsys, early_route, front_end):
    events, stages, lifecycle_call = early_route
    monkeypatch.setattr(lifecycle, "create", lifecycle_call("lifecycle.create", RuntimeUserError("no bundle")))
    monkeypatch.setattr(sys, "argv", ["pyruntime", "--root", str(tmp_path), "create", "c1"])
    if front_end == "click":
        with pytest.raises(RuntimeUserError):   # the entry point turns it into a message
            cli.click_main()
    else:
        with pytest.raises(SystemExit) as exit_info:
            fastpath.main()
        assert exit_info.value.code == 1 and capsys.readouterr().err == "no bundle\n"
    assert events[-1] == ("lifecycle.create", stages[0]) and stages[0].abandoned


def test_click_reads_its_config_file_after_the_stage_started(monkeypatch, tmp_path, early_route):
    from pyruntime import spec

    events, stages, _ = early_route
    monkeypatch.setattr(spec, "load_config", lambda bundle, path: events.append(("config", bundle, path)))
    argv = ["--root", str(tmp_path), "create", "--config", "/c.json", "-b", "/b", "c1"]
    assert fastpath.parse(argv) is None      # --config is click's alone
    assert run_front_end(monkeypatch, "click", argv) == 0
    assert events == [("warmup",), ("stage", "init", 0), ("config", "/b", "/c.json"),
                      ("lifecycle.create", stages[0])]
