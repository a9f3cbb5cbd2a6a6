"""Pay the kernel's cgroup-migration wait early, while the runtime is still starting up.

Moving a process into a cgroup takes the kernel's cgroup threadgroup lock for writing, and the
first writer after a quiet spell waits for an RCU grace period (7 to 25 ms on this kind of
host) before it gets it; writers that come within about one more grace period pass at once.
`create` must move its stage-1 process into the new cgroup, on the critical path of every
container start. So as soon as a create begins, a thread moves the runtime into the cgroup it
is already in: a move that changes nothing but waits out the grace period while the runtime
imports its modules, reads the config and spawns the child. The fast path closes again about
15 ms after the last writer (measured on this kind of host: a second move 10-15 ms after the
first passes in 0.04 ms, one 20 ms after it waits 6-8 ms again), and the real move comes 20-40
ms after the first, so the thread repeats its no-op move every few ms until the real move is
done (stop()) or a deadline passes. Nothing depends on it: a failed or late warm-up only costs
the wait the real move would have paid anyway.
"""

from __future__ import annotations

import os
import time

ROOT = "/sys/fs/cgroup"
# Well inside the window the lock's fast path stays open after a writer, and rare enough to
# cost nothing (three syscalls).
REPEAT_S = 0.005
# Past any create's own work: a create that waits longer (a slow hook) pays the wait once.
KEEP_WARM_S = 2.0
# How long start() waits for the thread to reach its first move; the thread takes ~0.1 ms.
START_WAIT_S = 0.02
_done = False


def own_procs_file(proc_self_cgroup: str, root: str = ROOT) -> str | None:
    """The cgroup.procs file of a cgroup this process is in, from /proc/self/cgroup text."""
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers:       # v1: mounted as "cpu,cpuacct" (or "cpu"), "name=systemd" as "systemd"
            first = controllers.split(",")[0]
            candidates = (controllers, first.removeprefix("name="))
        else:                 # the unified hierarchy: <root> on v2, <root>/unified on hybrid
            candidates = ("unified", "")
        for mount in candidates:
            procs = os.path.join(root, mount, path.lstrip("/"), "cgroup.procs")
            if os.path.exists(procs):
                return procs
    return None


def start() -> None:
    """Begin the warm-up move in a background thread; returns once that move is under way
    (not done: the grace period is what it waits for)."""
    try:
        with open("/proc/self/cgroup") as f:
            target = own_procs_file(f.read())
    except OSError:
        return
    if target is not None:
        import _thread

        global _done
        _done = False   # a process may create more than once (checkpoint's restore, tests)
        writing = _thread.allocate_lock()
        writing.acquire()
        _thread.start_new_thread(_move_self, (target, writing))
        # A new thread runs only once this one lets go of the GIL, and the imports that come
        # next hold it for up to the switch interval (5 ms) at a time: wait, the GIL
        # released, until the thread is about to write, so the grace period starts now.
        writing.acquire(timeout=START_WAIT_S)


def stop() -> None:
    """The real move is done: the warm-up thread ends at its next turn."""
    global _done
    _done = True


def _move_self(procs_file: str, writing) -> None:
    """The thread: `writing` is released just before the first move (or when none is made)."""
    pid = str(os.getpid()).encode()
    deadline = time.monotonic() + KEEP_WARM_S
    try:
        while not _done and time.monotonic() < deadline:
            try:
                # opened each time: no fd of this thread's stays open for a forked stage to see
                fd = os.open(procs_file, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    if writing is not None:
                        writing.release()
                        writing = None
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            except OSError:
                return   # not root, a read-only cgroupfs, a cgroup that went away: the real move pays
            time.sleep(REPEAT_S)
    finally:
        if writing is not None:
            writing.release()
