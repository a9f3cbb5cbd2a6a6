"""The create and exec handshakes (init/protocol.py) over real SOCK_SEQPACKET socketpairs."""

from __future__ import annotations

import os
import threading

import pytest

from pyruntime.init import protocol, sync
from pyruntime.init.protocol import INIT, PROCESS, RUNTIME, STAGE1


def test_the_create_handshake_is_written_down_in_its_order():
    assert [(m.kind, m.sender, m.only_with) for m in protocol.CREATE] == [
        ("options", RUNTIME, None),
        ("console", RUNTIME, "console socket"),
        ("cgroup-ready", RUNTIME, None),
        ("userns", STAGE1, "new user namespace"),
        ("userns-mapped", RUNTIME, "new user namespace"),
        ("init-pid", STAGE1, None),
        ("init-go", RUNTIME, None),
        ("hooks", INIT, None),
        ("hooks-done", RUNTIME, None),
        ("seccomp-listener", INIT, "seccomp notify"),
        ("ready", INIT, None),
        ("created", RUNTIME, None),
    ]
    assert [m.kind for m in protocol.CREATE if m.carries_fd] == ["console", "seccomp-listener"]


def test_the_exec_handshake_is_written_down_in_its_order():
    assert [(m.kind, m.sender) for m in protocol.EXEC_SEQUENCE] == [
        ("options", RUNTIME), ("console", RUNTIME), ("cgroup-ready", RUNTIME),
        ("exec-pid", STAGE1), ("exec-go", RUNTIME), ("seccomp-listener", PROCESS),
        ("exec", PROCESS),
    ]


class Channel(tuple):
    """(runtime end, stage end); `hang_up` closes the stage's end as its exit would."""

    def hang_up(self) -> None:
        os.close(self[1])
        self.stage_closed = True


@pytest.fixture
def channel():
    ends = Channel(sync.pair())
    ends.stage_closed = False
    yield ends
    os.close(ends[0])
    if not ends.stage_closed:
        os.close(ends[1])


@pytest.fixture
def received(monkeypatch):
    """The kind of every message either side takes off the channel, in order."""
    kinds: list[str] = []
    checked = sync._checked

    def recording(data, expected):
        msg = checked(data, expected)
        kinds.append(msg["type"])
        return msg
    monkeypatch.setattr(sync, "_checked", recording)
    return kinds


def _in_thread(target):
    errors: list[BaseException] = []

    def run():
        try:
            target()
        except BaseException as e:
            errors.append(e)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _expected(sequence, conditions: set[str]) -> list[str]:
    return [m.kind for m in sequence if m.only_with is None or m.only_with in conditions]


def _pipe_fd_is_passed(fd: int, pipe_read: int) -> None:
    os.write(fd, b"x")
    os.close(fd)
    assert os.read(pipe_read, 1) == b"x"


@pytest.mark.parametrize("conditions", [
    set(), {"console socket"}, {"new user namespace"}, {"seccomp notify"},
    {"console socket", "new user namespace", "seccomp notify"},
], ids=lambda c: "+".join(sorted(c)) or "plain")
def test_a_create_goes_over_the_wire_in_the_sequence_written_down(channel, received, conditions):
    runtime, stage = channel
    console_r, console_w = os.pipe()
    listener_r, listener_w = os.pipe()
    seen = {}

    def stages():
        seen["console"] = protocol.recv_options(stage)
        protocol.recv_cgroup_ready(stage)
        if "new user namespace" in conditions:
            protocol.send_userns(stage)
            protocol.recv_userns_mapped(stage)
        protocol.send_init_pid(stage, 4242)
        protocol.recv_init_go(stage)                    # from here on: the init
        protocol.send_hooks(stage)
        seen["state"] = protocol.recv_hooks_done(stage)
        if "seccomp notify" in conditions:
            with protocol.ListenerPasser(stage) as passer:
                passer.send(listener_w)
        protocol.send_ready(stage)
        protocol.recv_created(stage)

    thread, errors = _in_thread(stages)
    try:
        protocol.send_options(runtime, console_w if "console socket" in conditions else None)
        protocol.send_cgroup_ready(runtime)
        pid = protocol.recv_userns_or_init_pid(runtime)
        if pid is None:
            protocol.send_userns_mapped(runtime)
            pid = protocol.recv_init_pid(runtime)
        assert pid == 4242
        protocol.send_init_go(runtime)
        protocol.recv_hooks(runtime)
        protocol.send_hooks_done(runtime, {"id": "c1", "status": "created"})
        if "seccomp notify" in conditions:
            _pipe_fd_is_passed(protocol.recv_seccomp_listener(runtime), listener_r)
        protocol.recv_ready(runtime)
        protocol.send_created(runtime)
    finally:
        thread.join(5)
        for fd in (console_w, listener_w):
            os.close(fd)
    assert not errors, errors
    assert received == _expected(protocol.CREATE, conditions)
    assert seen["state"] == {"id": "c1", "status": "created"}
    if "console socket" in conditions:
        _pipe_fd_is_passed(seen["console"], console_r)
    else:
        assert seen["console"] is None
    os.close(console_r)
    os.close(listener_r)


@pytest.mark.parametrize("conditions", [set(), {"seccomp notify"}], ids=["plain", "notify"])
def test_an_exec_goes_over_the_wire_in_the_sequence_written_down(channel, received, conditions):
    runtime, stage = channel
    listener_r, listener_w = os.pipe()

    def stages():
        protocol.recv_options(stage)
        protocol.recv_cgroup_ready(stage)
        protocol.send_exec_pid(stage, 77)
        protocol.recv_exec_go(stage)                    # from here on: the process
        if "seccomp notify" in conditions:
            with protocol.ListenerPasser(stage) as passer:
                passer.send(listener_w)
        protocol.send_exec(stage)
        channel.hang_up()                               # what a successful execve does

    thread, errors = _in_thread(stages)
    try:
        protocol.send_options(runtime, None)
        protocol.send_cgroup_ready(runtime)
        assert protocol.recv_exec_pid(runtime) == 77
        protocol.send_exec_go(runtime)
        if "seccomp notify" in conditions:
            _pipe_fd_is_passed(protocol.recv_seccomp_listener(runtime), listener_r)
        protocol.recv_exec(runtime)
    finally:
        thread.join(5)
        os.close(listener_w)
        os.close(listener_r)
    assert not errors, errors
    assert received == _expected(protocol.EXEC_SEQUENCE, conditions)


@pytest.mark.parametrize("send, recv, args, result", [
    (protocol.send_cgroup_ready, protocol.recv_cgroup_ready, (), None),
    (protocol.send_userns, protocol.recv_userns_or_init_pid, (), None),
    (protocol.send_init_pid, protocol.recv_userns_or_init_pid, (31,), 31),
    (protocol.send_userns_mapped, protocol.recv_userns_mapped, (), None),
    (protocol.send_init_pid, protocol.recv_init_pid, (12345,), 12345),
    (protocol.send_init_go, protocol.recv_init_go, (), None),
    (protocol.send_hooks, protocol.recv_hooks, (), None),
    (protocol.send_hooks_done, protocol.recv_hooks_done, ({"pid": 9, "bundle": "/b"},),
     {"pid": 9, "bundle": "/b"}),
    (protocol.send_ready, protocol.recv_ready, (), None),
    (protocol.send_created, protocol.recv_created, (), None),
    (protocol.send_exec_pid, protocol.recv_exec_pid, (808,), 808),
    (protocol.send_exec_go, protocol.recv_exec_go, (), None),
], ids=lambda v: getattr(v, "__name__", None))
def test_each_message_makes_the_round_trip(channel, send, recv, args, result):
    runtime, stage = channel
    send(stage, *args)
    assert recv(runtime) == result


def test_options_without_a_console_carry_no_fd(channel):
    runtime, stage = channel
    protocol.send_options(runtime, None)
    assert protocol.recv_options(stage) is None
    protocol.send_cgroup_ready(runtime)                 # nothing else was left queued
    protocol.recv_cgroup_ready(stage)


def test_a_message_out_of_its_order_is_a_clear_error(channel):
    runtime, stage = channel
    protocol.send_hooks(stage)                          # the init, before stage 1's report
    with pytest.raises(sync.SyncError) as e:
        protocol.recv_userns_or_init_pid(runtime)
    assert str(e.value) == "container init protocol: expected 'userns' or 'init-pid', got 'hooks'"
    protocol.send_created(runtime)
    with pytest.raises(sync.SyncError, match="expected 'userns-mapped', got 'created'"):
        protocol.recv_userns_mapped(stage)


def test_a_listener_message_without_its_fd_is_refused(channel):
    runtime, stage = channel
    sync.send(stage, "seccomp-listener")
    with pytest.raises(sync.SyncError, match="'seccomp-listener' came without its file descriptor"):
        protocol.recv_seccomp_listener(runtime)


def test_a_reported_failure_ends_the_wait_with_its_message(channel):
    runtime, stage = channel
    protocol.send_error(stage, "mounts[2]: no such file")
    with pytest.raises(sync.SyncError, match=r"^mounts\[2\]: no such file$"):
        protocol.recv_ready(runtime)


def test_a_stage_gone_without_a_word_names_what_was_awaited(channel):
    runtime = channel[0]
    channel.hang_up()
    with pytest.raises(sync.SyncError, match=r"exited unexpectedly \(waiting for 'init-pid'\)"):
        protocol.recv_init_pid(runtime)


def test_a_failure_after_exec_is_raised_and_a_clean_close_is_success(channel):
    runtime, stage = channel
    protocol.send_exec(stage)
    protocol.send_error(stage, "exec: /bin/nope: no such file")
    with pytest.raises(sync.SyncError, match="^exec: /bin/nope: no such file$"):
        protocol.recv_exec(runtime)
    protocol.send_exec(stage)
    channel.hang_up()
    protocol.recv_exec(runtime)                         # EOF after "exec": the execve happened
