"""The channel between the runtime and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so one send is one JSON message and no
framing is needed. Each side names the message it expects; anything else (an error report from
the other side, or the other side dying, seen as EOF) ends the exchange with a clear error.
"""

from __future__ import annotations

import json
import socket

from pyruntime.errors import RuntimeUserError

MAX_MESSAGE = 1 << 20


class SyncError(RuntimeUserError):
    pass


def pair() -> tuple[socket.socket, socket.socket]:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return parent, child


def send(sock: socket.socket, kind: str, **payload) -> None:
    sock.send(json.dumps({"type": kind, **payload}).encode())


def send_error(sock: socket.socket, message: str) -> None:
    try:
        send(sock, "error", message=message)
    except OSError:
        pass


def recv(sock: socket.socket, *expected: str) -> dict:
    """The next message, which must be of one of the `expected` types."""
    data = sock.recv(MAX_MESSAGE)
    wanted = " or ".join(repr(e) for e in expected)
    if not data:
        raise SyncError(f"container init exited unexpectedly (waiting for {wanted})")
    msg = json.loads(data)
    if msg.get("type") == "error":
        raise SyncError(msg.get("message", "container init failed"))
    if msg.get("type") not in expected:
        raise SyncError(f"container init protocol: expected {wanted}, got {msg.get('type')!r}")
    return msg
