"""SCMP_ACT_NOTIFY without a container: what the config may say, how the filter is loaded and
when, and the container process state the runtime hands to the agent."""

import json
import os
import socket
import threading

import pytest

from pyruntime import OCI_VERSION, linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import seccomp
from pyruntime.seccomp_agent import process_state, send_to_agent
from tests.unit.test_schema_config import (  # noqa: F401 (isolated_cache is a fixture)
    base_config,
    isolated_cache,
    mutate,
    problems_of,
)

NOTIFY_MKDIR = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}


def with_seccomp(**profile) -> dict:
    return mutate(base_config(), "linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", **profile})


def test_a_profile_with_notify_and_a_listener_path_is_valid():
    assert problems_of(with_seccomp(syscalls=[NOTIFY_MKDIR], listenerPath="/run/agent.sock",
                                    listenerMetadata="opaque")) == []


@pytest.mark.parametrize("profile,path,fragment", [
    ({"syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"}, NOTIFY_MKDIR]},
     "linux.seccomp.listenerPath", "is required: linux.seccomp.syscalls[1] uses SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"},
     "linux.seccomp.defaultAction", "cannot be the default action"),
    ({"syscalls": [{"names": ["recvmsg", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}],
      "listenerPath": "/run/agent.sock"},
     "linux.seccomp.syscalls[0].names", "cannot be used for sendmsg"),
    ({"listenerMetadata": "opaque"}, "linux.seccomp.listenerPath", "required when listenerMetadata"),
], ids=["no-listener-path", "notify-default", "notify-sendmsg", "metadata-without-path"])
def test_notify_profiles_the_runtime_refuses(profile, path, fragment):
    problems = problems_of(with_seccomp(**profile))
    assert problems and problems[0][0] == path, problems
    assert fragment in problems[0][1], problems


def test_a_listener_path_without_notify_is_ignored():
    assert problems_of(with_seccomp(listenerPath="/run/agent.sock")) == []
    assert seccomp.notifies({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}) is False


def test_notify_loads_with_a_new_listener():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [NOTIFY_MKDIR]}
    assert seccomp.flag_bits(profile) == linux.SECCOMP_FILTER_FLAG_NEW_LISTENER
    assert seccomp.flag_bits(dict(profile, flags=["SECCOMP_FILTER_FLAG_TSYNC"])) == (
        linux.SECCOMP_FILTER_FLAG_NEW_LISTENER | linux.SECCOMP_FILTER_FLAG_TSYNC
        | linux.SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
    log_and_ssb = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert seccomp.flag_bits({"defaultAction": "SCMP_ACT_ALLOW", "flags": log_and_ssb}) == (
        linux.SECCOMP_FILTER_FLAG_LOG | linux.SECCOMP_FILTER_FLAG_SPEC_ALLOW)
    # libseccomp compiles the action: the program returns SECCOMP_RET_USER_NOTIF for mkdir
    program = seccomp.compiled(profile)
    assert (0x7FC00000).to_bytes(4, "little") in program


def test_a_listener_filter_goes_on_while_the_runtime_still_listens():
    notify = seccomp.Filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [NOTIFY_MKDIR]}, b"", 7)
    plain = seccomp.Filter({"defaultAction": "SCMP_ACT_ALLOW"}, b"")
    assert notify.moment({"noNewPrivileges": True}) == "no-new-privs"
    assert plain.moment({"noNewPrivileges": True}) == "exec"
    assert notify.moment({}) == plain.moment({"noNewPrivileges": False}) == "privileged"


def test_process_state_document():
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b",
             "annotations": {"k": "v"}}
    doc = process_state({"listenerPath": "/a", "listenerMetadata": "MKNOD=/dev/null"}, 42, state)
    assert doc == {"ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": 42,
                   "metadata": "MKNOD=/dev/null", "state": state}
    assert "metadata" not in process_state({"listenerPath": "/a"}, 43, state)


def test_the_agent_gets_one_message_with_the_fd_and_the_connection_closes(tmp_path):
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = {}

    def agent():
        conn, _ = server.accept()
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            while chunk := conn.recv(1 << 16):     # to EOF: the runtime closes after one state
                data += chunk
            received.update(doc=json.loads(data), fds=fds)

    thread = threading.Thread(target=agent)
    thread.start()
    r, w = os.pipe()
    try:
        send_to_agent(path, {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": 1, "state": {}}, w)
        thread.join(10)
        [passed] = received["fds"]
        os.write(passed, b"through the agent's copy")
        os.close(passed)
        assert os.read(r, 100) == b"through the agent's copy"
        assert received["doc"]["fds"] == ["seccompFd"]
    finally:
        os.close(r)
        os.close(w)
        server.close()


def test_an_absent_agent_is_a_clear_error(tmp_path):
    r, w = os.pipe()
    try:
        with pytest.raises(RuntimeUserError, match=r"linux.seccomp.listenerPath .*missing.sock: "
                                                   r"cannot connect to the seccomp agent"):
            send_to_agent(str(tmp_path / "missing.sock"), {}, w)
    finally:
        os.close(r)
        os.close(w)
