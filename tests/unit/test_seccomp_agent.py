"""The runtime's part of SCMP_ACT_NOTIFY (pyruntime.seccomp_agent): the container process state and
the listener it hands to the agent."""

import json
import os
import socket
import threading

import pytest

from pyruntime import OCI_VERSION
from pyruntime.errors import RuntimeUserError
from pyruntime.seccomp_agent import process_state, send_to_agent
from tests.unit.spec.support import isolated_cache  # noqa: F401 (fixture)


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
