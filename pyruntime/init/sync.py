"""The channel between the runtime and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so one send is one message and no
framing is needed. Each side names the message it expects; anything else (an error report from
the other side, or the other side dying, seen as EOF) ends the exchange with a clear error.

Both ends are the same interpreter running the same code, so messages are marshal'ed dicts,
and both hold their end as a plain fd written and read with os calls: neither json nor socket
is imported for it (in a container stage's fresh interpreter they would cost ~15 ms).
"""

from __future__ import annotations

import marshal
import os

from pyruntime import linux
from pyruntime.errors import RuntimeUserError

MAX_MESSAGE = 1 << 20


class SyncError(RuntimeUserError):
    pass


def pair() -> tuple[int, int]:
    """(runtime end, child end): two connected SOCK_SEQPACKET socket fds, close-on-exec."""
    return linux.seqpacket_pair()


def send(fd: int, kind: str, **payload) -> None:
    os.write(fd, marshal.dumps({"type": kind, **payload}))


def send_error(fd: int, message: str) -> None:
    try:
        send(fd, "error", message=message)
    except OSError:
        pass


def recv(fd: int, *expected: str) -> dict:
    """The next message, which must be of one of the `expected` types."""
    data = os.read(fd, MAX_MESSAGE)
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
