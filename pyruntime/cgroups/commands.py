"""The cgroup side of runc's `update`, `events`, `ps`, `pause`/`resume` and `kill --all`.

The CLI parses flags and loads the container; these functions hold the logic and speak plain
data (OCI resources dicts, runc event objects, pid lists) so they can be tested directly.
"""

from __future__ import annotations

import os
import signal as signals
import time
from collections.abc import Callable, Iterator

from pyruntime.errors import RuntimeUserError

from . import convert
from .manager import CgroupManager


# ---------------------------------------------------------------- update

def _uint(flag: str, text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise RuntimeUserError(f"invalid value for --{flag}: {text!r} is not a whole number") from None
    if value < 0:
        raise RuntimeUserError(f"invalid value for --{flag}: {text!r} must not be negative")
    return value


def _int(flag: str, text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise RuntimeUserError(f"invalid value for --{flag}: {text!r} is not an integer") from None


def _bytes(flag: str, text: str) -> int:
    if text.strip() == "-1":
        return -1
    try:
        return convert.ram_in_bytes(text)
    except ValueError as e:
        raise RuntimeUserError(f"invalid value for --{flag}: {e}") from None


def load_resources_json(source: str, stdin=None) -> dict:
    """`update -r FILE` / `-r -`: an OCI linux.resources object from a file or stdin."""
    import json

    try:
        if source == "-":
            text = (stdin if stdin is not None else __import__("sys").stdin).read()
        else:
            with open(source) as f:
                text = f.read()
        data = json.loads(text)
    except OSError as e:
        raise RuntimeUserError(f"cannot read resources from {source}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RuntimeUserError(f"resources in {source} are not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise RuntimeUserError(f"resources in {source} must be a JSON object")
    return data


def update_from_flags(*, resources: str | None = None, stdin=None,
                      memory: str | None = None, memory_swap: str | None = None,
                      memory_reservation: str | None = None, kernel_memory: str | None = None,
                      kernel_memory_tcp: str | None = None,
                      cpu_period: str | None = None, cpu_quota: str | None = None,
                      cpu_burst: str | None = None, cpu_share: str | None = None,
                      cpu_rt_period: str | None = None, cpu_rt_runtime: str | None = None,
                      cpuset_cpus: str | None = None, cpuset_mems: str | None = None,
                      cpu_idle: str | None = None, pids_limit: int | str | None = None,
                      blkio_weight: int | str | None = None,
                      warn: Callable[[str], None] | None = None) -> dict:
    """runc update's flags as the OCI resources to change (only what was given).

    As in runc: with `resources` (-r FILE or -r -) every other flag is ignored; memory sizes
    take units ("512m", "1g") or -1 for unlimited; --memory -1 without --memory-swap also
    lifts the swap limit; --kernel-memory-tcp sets memory.kernelTCP (applied where the v1
    kernel has the file), --kernel-memory is accepted and ignored with a warning;
    a zero --blkio-weight or --pids-limit means "leave as is".
    """
    if resources:
        return load_resources_json(resources, stdin)
    if warn is None:
        from .resources import _warn as warn

    out: dict = {}

    def put(section: str, key: str, value) -> None:
        out.setdefault(section, {})[key] = value

    if blkio_weight not in (None, "", 0, "0"):
        weight = _uint("blkio-weight", str(blkio_weight))
        if weight > 65535:
            raise RuntimeUserError(f"invalid value for --blkio-weight: {weight} is too large")
        put("blockIO", "weight", weight)
    if cpuset_cpus:
        put("cpu", "cpus", cpuset_cpus)
    if cpuset_mems:
        put("cpu", "mems", cpuset_mems)
    if cpu_idle:
        put("cpu", "idle", _int("cpu-idle", cpu_idle))
    for flag, key, text in (("cpu-burst", "burst", cpu_burst), ("cpu-period", "period", cpu_period),
                            ("cpu-rt-period", "realtimePeriod", cpu_rt_period),
                            ("cpu-share", "shares", cpu_share)):
        if text:
            put("cpu", key, _uint(flag, text))
    for flag, key, text in (("cpu-quota", "quota", cpu_quota), ("cpu-rt-runtime", "realtimeRuntime", cpu_rt_runtime)):
        if text:
            put("cpu", key, _int(flag, text))
    for flag, key, text in (("memory", "limit", memory), ("memory-swap", "swap", memory_swap),
                            ("memory-reservation", "reservation", memory_reservation),
                            ("kernel-memory-tcp", "kernelTCP", kernel_memory_tcp)):
        if text:
            put("memory", key, _bytes(flag, text))
    if kernel_memory:
        warn("setting --kernel-memory is ignored: kernel memory is no longer limited separately")
    if out.get("memory", {}).get("limit") == -1 and "swap" not in out["memory"]:
        put("memory", "swap", -1)
    if pids_limit not in (None, ""):
        limit = _int("pids-limit", str(pids_limit))
        if limit:
            put("pids", "limit", limit)
    return out


# ---------------------------------------------------------------- events

def stats_event(manager: CgroupManager, container_id: str) -> dict:
    """`runc events --stats`: one event object {"type": "stats", "id": ..., "data": {...}}."""
    return {"type": "stats", "id": container_id, "data": manager.stats()}


events_stats = stats_event


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


# ---------------------------------------------------------------- ps

def ps_json(manager: CgroupManager) -> list[int]:
    """`runc ps --format json`: the pids in the container's cgroup."""
    return manager.pids()


def pid_column(header: str) -> int:
    fields = header.split()
    if "PID" not in fields:
        raise RuntimeUserError("couldn't find PID field in ps output")
    return fields.index("PID")


def filter_ps_output(output: str, pids) -> str:
    """Keep the header and the lines of `ps` output whose PID is one of `pids`."""
    lines = output.splitlines()
    if not lines:
        return ""
    index = pid_column(lines[0])
    wanted = set(pids)
    kept = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > index and fields[index].isdigit() and int(fields[index]) in wanted:
            kept.append(line)
    return "\n".join(kept) + "\n"


def ps_table(manager: CgroupManager, ps_args=()) -> str:
    """`runc ps ID [ps options]`: run ps (default -ef) and keep the container's processes."""
    import subprocess

    args = list(ps_args) or ["-ef"]
    try:
        proc = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise RuntimeUserError("ps is not installed") from None
    if proc.returncode != 0:
        raise RuntimeUserError(f"ps {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()}")
    return filter_ps_output(proc.stdout, manager.pids())


# ---------------------------------------------------------------- kill --all

def signal_all(manager: CgroupManager, sig: int = signals.SIGKILL) -> list[int]:
    """Send `sig` to every process of the cgroup; returns the pids signalled.

    The cgroup is frozen meanwhile (when it can be) so that a forking process cannot leave
    children behind that were not in the list; SIGKILL is delivered on thaw.
    """
    frozen_here = False
    try:
        if not manager.is_frozen():
            manager.freeze()
            frozen_here = True
    except RuntimeUserError:
        pass
    try:
        pids = manager.pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pids
    finally:
        if frozen_here:
            manager.thaw()
