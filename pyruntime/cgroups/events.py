"""`runc events`: the stats and OOM events of a container's cgroup, as runc's event objects.

The functions take the container's manager (manager.CgroupManager) and yield plain dicts; the
clock and sleep are parameters so the streams can be driven without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from .manager import CgroupManager


def stats_event(manager: CgroupManager, container_id: str) -> dict:
    """`runc events --stats`: one event object {"type": "stats", "id": ..., "data": {...}}."""
    return {"type": "stats", "id": container_id, "data": manager.stats()}



def oom_events(manager: CgroupManager, container_id: str, poll: float = 0.2,
               alive: Callable[[], bool] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> Iterator[dict]:
    """One {"type": "oom", "id": ...} per OOM kill in the cgroup, until it goes away.

    The kernel's counter (memory.oom_control / memory.events oom_kill) is polled; kills that
    happened before the stream started are not reported.
    """
    alive = alive or manager.exists
    seen = manager.oom_count()
    while alive():
        sleep(poll)
        try:
            count = manager.oom_count()
        except OSError:
            return
        for _ in range(max(0, count - seen)):
            yield {"type": "oom", "id": container_id}
        seen = max(seen, count)


def event_stream(manager: CgroupManager, container_id: str, interval: float = 5.0, poll: float = 0.2,
                 alive: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[dict]:
    """`runc events` without --stats: a stats event every `interval` seconds, OOM events as
    they happen (within `poll` seconds), until the container's cgroup is gone."""
    alive = alive or manager.exists
    seen = manager.oom_count()
    next_stats = clock()
    while alive():
        now = clock()
        if now >= next_stats:
            try:
                yield stats_event(manager, container_id)
            except OSError:
                return
            next_stats = now + interval
        count = manager.oom_count()
        for _ in range(max(0, count - seen)):
            yield {"type": "oom", "id": container_id}
        seen = max(seen, count)
        sleep(min(poll, max(0.0, next_stats - clock())))
