"""Seccomp user notification, the runtime's part: hand the listener to the agent.

A container whose profile uses SCMP_ACT_NOTIFY loads its filter with a listener; the init
passes the listener fd back over the sync channel ("seccomp-listener") right after loading,
and the runtime passes it on to the agent listening at linux.seccomp.listenerPath: one
connection per listener, one message holding the container process state (runtime-spec
config-linux.md, "The Container Process State") in JSON with the fd attached (SCM_RIGHTS).
The runtime keeps no copy. As runc does, it happens while `create` (or `exec`) still runs, so
the agent holds the listener before the container's process starts; the init goes on at once
and simply waits in any notified syscall until the agent answers.
"""

from __future__ import annotations

import os

from pyruntime import OCI_VERSION
from pyruntime.errors import RuntimeUserError

SECCOMP_FD_NAME = "seccompFd"
AGENT_TIMEOUT = 10.0    # seconds for connecting and sending; an agent that hangs fails the create


def process_state(seccomp: dict, pid: int, state: dict) -> dict:
    """The container process state document: `pid` is the process the filter belongs to (the
    init, or an exec'ed process), `state` the container's state document."""
    doc = {"ociVersion": OCI_VERSION, "fds": [SECCOMP_FD_NAME], "pid": pid}
    if seccomp.get("listenerMetadata"):
        doc["metadata"] = seccomp["listenerMetadata"]
    doc["state"] = state
    return doc


def forward_listener(sock: int, seccomp: dict, pid: int, state: dict) -> None:
    """Take the listener the init sends on the sync channel `sock` and give it to the agent."""
    from pyruntime.init import protocol

    listener = protocol.recv_seccomp_listener(sock)
    try:
        send_to_agent(seccomp["listenerPath"], process_state(seccomp, pid, state), listener)
    finally:
        os.close(listener)


def send_to_agent(path: str, document: dict, listener: int) -> None:
    import json
    import socket

    where = f"linux.seccomp.listenerPath {path}"
    payload = json.dumps(document, separators=(",", ":")).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as agent:
        agent.settimeout(AGENT_TIMEOUT)
        try:
            agent.connect(path)
        except OSError as e:
            raise RuntimeUserError(f"{where}: cannot connect to the seccomp agent: "
                                   f"{e.strerror or e}") from None
        try:
            sent = socket.send_fds(agent, [payload], [listener])
            if sent < len(payload):     # the fd went with the first part, the rest follows
                agent.sendall(payload[sent:])
        except OSError as e:
            raise RuntimeUserError(f"{where}: cannot send the container process state to the "
                                   f"seccomp agent: {e.strerror or e}") from None
