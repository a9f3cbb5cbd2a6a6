"""The container's terminal on the runtime's side: the --console-socket the pty master goes
to, and, for `run` or `exec` in the foreground with process.terminal and no --console-socket,
the proxy: like runc, the runtime receives the pty master itself and copies between it and its
own stdin/stdout."""

from __future__ import annotations

import os
import select


def receive_master(sock) -> int:
    import socket

    _, fds, _, _ = socket.recv_fds(sock, 1024, 1)
    if not fds:
        from pyruntime.errors import RuntimeUserError

        raise RuntimeUserError("the container did not send its terminal")
    return fds[0]


class RawStdin:
    """Put our stdin in raw mode while proxying, if it is a terminal; restore it after."""

    def __enter__(self):
        self.saved = None
        if os.isatty(0):
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)


def copy_window_size(master: int) -> None:
    if os.isatty(0):
        import fcntl
        import termios

        size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def proxy_until_exit(master: int, pid: int, reap) -> int:
    """Copy stdin -> master and master -> stdout until the container's init exits;
    `reap()` returns its exit code once it has, else None."""
    poller = select.poll()
    poller.register(master, select.POLLIN)
    stdin_open = True
    try:
        poller.register(0, select.POLLIN)
    except (OSError, ValueError):
        stdin_open = False
    with RawStdin():
        while True:
            for fd, event in poller.poll(50):
                if fd == master:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every slave fd is closed
                        data = b""
                    if not data:
                        poller.unregister(master)
                        continue
                    os.write(1, data)
                elif stdin_open:
                    data = os.read(0, 65536)
                    if data:
                        os.write(master, data)
                    else:
                        poller.unregister(0)
                        stdin_open = False
            code = reap()
            if code is not None:
                _drain(master)
                return code


def _drain(master: int) -> None:
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        os.write(1, data)


def connect_console(path: str | None, terminal: bool):
    """The --console-socket, connected; None without a terminal."""
    from pyruntime.errors import RuntimeUserError

    if not terminal:
        if path:
            raise RuntimeUserError("--console-socket given but process.terminal is false")
        return None
    if not path:
        raise RuntimeUserError("process.terminal is true: --console-socket is required")
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise RuntimeUserError(f"--console-socket {path}: {e.strerror}") from None
    return sock


class TerminalProxy:
    """A socketpair standing in for --console-socket when the runtime itself will proxy the
    container's pty (foreground `run` or `exec` with a terminal)."""

    def __init__(self, wanted: bool):
        self.ours = self.theirs = None
        if wanted:
            import socket

            self.ours, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def receive(self) -> int | None:
        if self.ours is None:
            return None
        master = receive_master(self.ours)
        copy_window_size(master)
        return master

    def close(self) -> None:
        for s in (self.ours, self.theirs):
            if s is not None:
                s.close()
