"""Host processes the runtime signals, stops, waits for and reaps: a container's init and
its other processes, an exec'ed process, the stages it forked."""

from __future__ import annotations

# _signal: the C module behind `signal`, without the enums it builds at import (~3 ms)
import _signal as signal
import os
import time

from pyruntime.state import process_start_time

# What a foreground `run` or `exec` passes on to the container's process.
# Every signal that has a name (what signal.Signals lists), but those that cannot be caught or
# that tell us about our own children.
FORWARDED_SIGNALS = sorted({getattr(signal, name) for name in dir(signal)
                            if name.startswith("SIG") and not name.startswith("SIG_")
                            and isinstance(getattr(signal, name), int)}
                           - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD})


def signal_if_alive(pid: int, sig: int) -> None:
    """Send `sig`; a process that is already gone is no error."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL `pid` and wait until it is gone (reaped, or a zombie nobody waits for)."""
    start_time = process_start_time(pid)
    if start_time is None:
        reap(pid)
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_start_time(pid) == start_time and time.monotonic() < deadline:
        reap(pid)
        time.sleep(0.005)
    reap(pid)


def reap(pid: int) -> None:
    """Collect `pid` if it is an exited child of ours; nothing otherwise."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+signal if killed."""
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def wait_forwarding_signals(pid: int, master: int | None = None) -> int:
    """Wait for `pid` (a child, or a descendant we are the subreaper of) and return its exit
    code, passing the signals we get on to it; with `master`, proxy its pty meanwhile."""
    def forward(signum, _frame):
        signal_if_alive(pid, signum)

    previous = {}
    for sig in FORWARDED_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, forward)
        except (OSError, ValueError):
            pass
    try:
        if master is not None:
            from pyruntime import console

            return console.proxy_until_exit(master, pid, lambda: reap_exit_code(pid))
        while True:
            try:
                waited, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 255
            if waited == pid:
                return exit_code(status)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def reap_exit_code(pid: int) -> int | None:
    """Reap any exited child (we are a subreaper); the exit code of `pid` once it is gone."""
    while True:
        try:
            waited, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 255
        if waited == 0:
            return None
        if waited == pid:
            return exit_code(status)


class PidNamespaceProcesses:
    """The processes of a container that has no cgroup (rootless without a delegated one):
    those in its init's PID namespace, or the init alone when it shares the host's."""

    def __init__(self, init_pid: int):
        self.init_pid = init_pid

    def pids(self) -> list[int]:
        if self.init_pid <= 0:
            return []
        try:
            theirs = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        except OSError:
            return []
        if theirs == os.readlink("/proc/self/ns/pid"):
            return [self.init_pid]
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == theirs:
                        found.append(int(entry))
                except OSError:
                    continue   # gone meanwhile, or not ours to look at
        return sorted(found)
