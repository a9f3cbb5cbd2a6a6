"""lifecycle.create with a fake stage 1 and a fake cgroup: what a failing create undoes, and in
which order. The stage's side of the channel is played by the test (init/protocol.py); the
container's init is a plain child process."""

from __future__ import annotations

import os
import subprocess

import pytest

from pyruntime import hostprocess, lifecycle
from pyruntime.errors import RuntimeUserError
from pyruntime.init import protocol, sync
from pyruntime.lifecycle import parse_signal
from pyruntime.state import process_start_time


class Events:
    """One file both the fakes and the hooks append to, so their order is one order."""

    def __init__(self, path):
        self.path = path
        path.write_text("")

    def add(self, what: str) -> None:
        with open(self.path, "a") as f:
            f.write(what + "\n")

    def read(self) -> list[str]:
        return self.path.read_text().splitlines()


class FakeStage:
    """Stands in for reexec.Stage: the runtime's end of a real channel, whose other end the
    test holds."""

    def __init__(self, events: Events):
        self.events = events
        self.sock, self.theirs = sync.pair()
        self.pid = os.getpid()      # only named to the fake cgroup

    def send(self, options) -> None:
        self.events.add(f"options for {options.container_id}")

    def wait(self) -> None:
        self.events.add("reap stage 1")

    def kill(self) -> None:
        self.events.add("stop stage 1")

    def close(self) -> None:
        if self.sock >= 0:
            os.close(self.sock)
            self.sock = -1
            self.events.add("close the channel")


class FakeCgroup:
    def __init__(self, events: Events, path: str, fail_undo: bool = False):
        self.events = events
        self.path = path
        self.fail_undo = fail_undo

    def to_dict(self) -> dict:
        return {"path": self.path}

    def stops_processes(self) -> bool:
        return False

    def pids(self) -> list[int]:
        return []

    def create(self, resources) -> None:
        self.events.add("make cgroup")

    def add_process(self, pid: int) -> None:
        self.events.add("join cgroup")

    def undo_create(self) -> None:
        if self.fail_undo:
            raise RuntimeUserError(f"{self.path}: Device or resource busy")
        self.events.add("remove cgroup")


@pytest.fixture
def events(tmp_path):
    return Events(tmp_path / "events")


@pytest.fixture
def init():
    """A child process in the role of the container's init."""
    child = subprocess.Popen(["sleep", "60"])
    yield child
    if process_start_time(child.pid) is not None:
        child.kill()
        child.wait()


@pytest.fixture
def recorded_kills(monkeypatch, events):
    real = hostprocess.kill_and_wait

    def recording(pid, timeout=10.0):
        events.add(f"kill {pid}")
        real(pid, timeout)
    monkeypatch.setattr(hostprocess, "kill_and_wait", recording)


def _config(hooks: dict | None = None) -> dict:
    return {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
            "process": {"args": ["true"], "cwd": "/"}, "hooks": hooks or {}}


def _create(tmp_path, stage, cgroup, config):
    return lifecycle.create(str(tmp_path / "state"), "c1", str(tmp_path), config=config,
                            stage=stage, open_cgroup=lambda path: cgroup)


def test_a_create_failing_in_a_prestart_hook_undoes_everything_in_reverse(
        tmp_path, events, init, recorded_kills):
    stage = FakeStage(events)
    cgroup = FakeCgroup(events, "/pyruntime/c1")
    # what stage 1 and the init say, queued ahead: the init is up, then ready for the hooks
    protocol.send_init_pid(stage.theirs, init.pid)
    protocol.send_hooks(stage.theirs)
    config = _config({
        "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo poststop hook >> {events.path}"]}],
    })
    try:
        with pytest.raises(RuntimeUserError, match="prestart"):
            _create(tmp_path, stage, cgroup, config)
    finally:
        os.close(stage.theirs)
    assert events.read() == [
        "options for c1", "make cgroup", "join cgroup", "reap stage 1",
        # the rollback, last step first
        f"kill {init.pid}", "poststop hook",        # run poststop hooks (once the init is gone)
        f"kill {init.pid}",                         # stop container init
        "stop stage 1", "close the channel", "remove cgroup",
    ]
    assert process_start_time(init.pid) is None     # killed and reaped
    assert not os.path.exists(tmp_path / "state" / "c1")


def test_a_failing_undo_step_is_reported_and_the_stage_error_stays_the_users(
        tmp_path, events, init, recorded_kills, capfd):
    stage = FakeStage(events)
    cgroup = FakeCgroup(events, "/pyruntime/c1", fail_undo=True)
    protocol.send_error(stage.theirs, "mounts[1]: /nonexistent: no such file")
    try:
        with pytest.raises(RuntimeUserError, match=r"^mounts\[1\]: /nonexistent: no such file$"):
            _create(tmp_path, stage, cgroup, _config())
    finally:
        os.close(stage.theirs)
    assert events.read() == ["options for c1", "make cgroup", "join cgroup",
                             "stop stage 1", "close the channel"]
    assert "warning: rollback: remove cgroup: /pyruntime/c1: Device or resource busy" in \
        capfd.readouterr().err
    assert not os.path.exists(tmp_path / "state" / "c1")   # the steps after it still ran


def test_a_create_that_succeeds_undoes_nothing_and_closes_the_channel(
        tmp_path, events, init, recorded_kills):
    stage = FakeStage(events)
    cgroup = FakeCgroup(events, "/pyruntime/c1")
    protocol.send_init_pid(stage.theirs, init.pid)
    protocol.send_hooks(stage.theirs)
    protocol.send_ready(stage.theirs)
    try:
        state = _create(tmp_path, stage, cgroup, _config())
        assert state.pid == init.pid and not state.creating
        # what the runtime said on the way, in the protocol's order
        protocol.recv_cgroup_ready(stage.theirs)
        protocol.recv_init_go(stage.theirs)
        assert protocol.recv_hooks_done(stage.theirs)["pid"] == init.pid
        protocol.recv_created(stage.theirs)
    finally:
        os.close(stage.theirs)
    assert events.read() == ["options for c1", "make cgroup", "join cgroup", "reap stage 1",
                             "close the channel"]
    saved = lifecycle.ContainerDir(str(tmp_path / "state"), "c1")
    assert saved.load().pid == init.pid
    saved.remove()


@pytest.mark.parametrize("text,number", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("kill", 9),
                                         ("TERM", 15), ("SIGUSR1", 10), ("64", 64),
                                         ("0", 0)])   # runc: signal 0 probes
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["65", "SIGNOPE", "NOPE", "-1", ""])
def test_parse_signal_rejects(bad):
    with pytest.raises(RuntimeUserError):
        parse_signal(bad)
