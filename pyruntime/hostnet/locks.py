"""File locks the plugin waits for, but not forever.

A plugin process stuck behind a lock (the xtables lock another tool holds, an IPAM store another
ADD holds) would hang the runtime that called it. After PYRUNTIME_CNI_LOCK_TIMEOUT seconds
(default 60) the call fails with the spec's "try again later" (11) instead: the condition is
transient and the runtime may retry.
"""

from __future__ import annotations

import fcntl
import os
import time

from pyruntime.hostnet.errors import BUSY, ENVIRONMENT, HostNetError

TIMEOUT_ENV = "PYRUNTIME_CNI_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 60.0


def timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise HostNetError(ENVIRONMENT, f"invalid {TIMEOUT_ENV}", f"{raw!r} is not a number of seconds")
    return value


def acquire(fd: int, what: str) -> None:
    """flock(fd, LOCK_EX), retried with a growing pause until the timeout runs out."""
    limit = timeout()
    deadline = time.monotonic() + limit
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostNetError(BUSY, f"{what} is busy",
                                   f"held by another process for more than {limit:g} s") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
