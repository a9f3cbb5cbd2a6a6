"""The channel between the runtime and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so one send is one message and no
framing is needed. Each side names the message it expects; anything else (an error report from
the other side, or the other side dying, seen as EOF) ends the exchange with a clear error.

Both ends are the same interpreter running the same code, so messages are marshal'ed dicts.
The runtime holds its end as a socket object; the container stages, started in a fresh
interpreter, hold theirs as a plain fd and read and write it with os calls. Neither json nor
socket is imported on that side: together they would cost each container start ~15 ms.
"""

from __future__ import annotations

import marshal
import os

from pyruntime.errors import RuntimeUserError

MAX_MESSAGE = 1 << 20


class SyncError(RuntimeUserError):
    pass


def pair():
    """(runtime end, child end): two connected SOCK_SEQPACKET sockets."""
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def fileno(channel) -> int:
    """A channel is a socket object (the runtime's end) or its fd (a container stage's)."""
    return channel if isinstance(channel, int) else channel.fileno()


def send(channel, kind: str, **payload) -> None:
    os.write(fileno(channel), marshal.dumps({"type": kind, **payload}))


def send_error(channel, message: str) -> None:
    try:
        send(channel, "error", message=message)
    except OSError:
        pass


def recv(channel, *expected: str) -> dict:
    """The next message, which must be of one of the `expected` types."""
    data = os.read(fileno(channel), MAX_MESSAGE)
    wanted = " or ".join(repr(e) for e in expected)
    if not data:
        raise SyncError(f"container init exited unexpectedly (waiting for {wanted})")
    msg = decode(data)
    if msg.get("type") == "error":
        raise SyncError(msg.get("message", "container init failed"))
    if msg.get("type") not in expected:
        raise SyncError(f"container init protocol: expected {wanted}, got {msg.get('type')!r}")
    return msg


def decode(data: bytes) -> dict:
    return marshal.loads(data)
