"""The channel between the runtime and the processes it forks.

A SOCK_SEQPACKET socketpair keeps message boundaries, so one send is one message and no
framing is needed. Each side names the message it expects; anything else (an error report from
the other side, or the other side dying, seen as EOF) ends the exchange with a clear error.

Both ends are the same interpreter running the same code, so messages are marshal'ed dicts,
and both hold their end as a plain fd written and read with os calls: neither json nor socket
is imported for it (in a container stage's fresh interpreter they would cost ~15 ms). Only a
message that carries an fd (the console socket) needs the socket module, and only then.
"""

from __future__ import annotations

import marshal
import os

from pyruntime.errors import RuntimeUserError

MAX_MESSAGE = 1 << 20


class SyncError(RuntimeUserError):
    pass


def pair() -> tuple[int, int]:
    """(runtime end, child end): two connected SOCK_SEQPACKET socket fds, close-on-exec.

    Made with the interpreter's C socket module (`_socket`, what `socket` wraps): `socket`
    itself imports enum and selectors, and libc (pyruntime.linux) is not loaded yet when a
    create or exec starts its stage."""
    import _socket

    ends = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    return ends[0].detach(), ends[1].detach()


def send(fd: int, kind: str, **payload) -> None:
    os.write(fd, marshal.dumps({"type": kind, **payload}))


def send_error(fd: int, message: str) -> None:
    try:
        send(fd, "error", message=message)
    except OSError:
        pass


def send_fd(fd: int, kind: str, passed: int, **payload) -> None:
    """A message that carries an open fd along (SCM_RIGHTS): read it with recv_fd."""
    with FdPasser(fd) as passer:
        passer.send(kind, passed, **payload)


class FdPasser:
    """Our end of the channel, made ready to pass an fd before there is one to pass: the
    passing itself is then a single sendmsg. (A seccomp listener is passed right after its
    filter went on, when any other call might wait for an agent that has no listener yet.)"""

    def __init__(self, fd: int):
        import socket

        self._socket = socket.socket(fileno=os.dup(fd))

    def send(self, kind: str, passed: int, **payload) -> None:
        import socket

        socket.send_fds(self._socket, [marshal.dumps({"type": kind, **payload})], [passed])

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> "FdPasser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def recv(fd: int, *expected: str) -> dict:
    """The next message, which must be of one of the `expected` types."""
    return _checked(os.read(fd, MAX_MESSAGE), expected)


def recv_fd(fd: int, kind: str) -> tuple[dict, int]:
    """The next message, of type `kind`, and the fd it carries (close-on-exec here)."""
    import socket

    with socket.socket(fileno=os.dup(fd)) as channel:
        data, fds, _, _ = socket.recv_fds(channel, MAX_MESSAGE, 1)
    for extra in fds[1:]:
        os.close(extra)
    try:
        msg = _checked(data, (kind,))
        if not fds:
            raise SyncError(f"container init protocol: {kind!r} came without its file descriptor")
    except BaseException:
        if fds:
            os.close(fds[0])
        raise
    os.set_inheritable(fds[0], False)
    return msg, fds[0]


def raise_reported(fd: int, otherwise: str) -> None:
    """The other side is gone: raise what it reported before it went, else `otherwise`."""
    try:
        data = os.read(fd, MAX_MESSAGE)
    except OSError:
        data = b""
    if data:
        msg = decode(data)
        if msg.get("type") == "error":
            raise SyncError(msg.get("message") or otherwise)
    raise SyncError(otherwise)


def raise_if_reported(fd: int, otherwise: str) -> None:
    """Wait until the other side closes its end; raise what it reported before, if anything."""
    data = os.read(fd, MAX_MESSAGE)
    if data:
        raise SyncError(decode(data).get("message", otherwise))


def _checked(data: bytes, expected) -> dict:
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
