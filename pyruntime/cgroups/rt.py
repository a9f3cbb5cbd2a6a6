"""Realtime CPU bandwidth on cgroup v1: room for a container's cpu.rt_runtime_us in its parents.

The kernel gives a cgroup realtime runtime only out of its parent's: the ratios
runtime/period of a cgroup's children may not add up to more than its own, and every new
cgroup starts with none (rt_runtime_us = 0). A container below an intermediate cgroup (the
runtime's default parent, a pod) can therefore only get realtime runtime once each ancestor
has enough, and the write fails with EINVAL until then. When it does, the ancestors are raised
just as far as needed, from the top down, and the write is tried again. The root (the
system-wide sched_rt_runtime_us) is never changed: what it allows is the limit.

`raises(...)` is the pure plan; `make_room(...)` reads the hierarchy and applies it. Raised
ancestors keep their runtime when the container goes (as Docker leaves its parent cgroup):
lowering it again could fail for a sibling that came meanwhile.
"""

from __future__ import annotations

import os
from collections import namedtuple

from pyruntime.errors import RuntimeUserError

# The kernel's fixed-point unit for bandwidth ratios (to_ratio in kernel/sched/core.c).
BW_SHIFT = 20
UNLIMITED = -1

# One ancestor, closest to the container first: its directory, rt_period_us, rt_runtime_us,
# and the summed ratio of its children other than the one on the container's path.
Level = namedtuple("Level", "directory period runtime others")


def ratio(period: int, runtime: int) -> int:
    """runtime/period in the kernel's fixed point; unlimited runtime counts as the whole."""
    if runtime == UNLIMITED:
        return 1 << BW_SHIFT
    if period <= 0:
        return 0
    return (runtime << BW_SHIFT) // period


def runtime_for(period: int, needed_ratio: int) -> int:
    """The least runtime of `period` whose ratio is at least `needed_ratio`."""
    return -(-(needed_ratio * period) >> BW_SHIFT) if needed_ratio else 0


def raises(period: int, runtime: int, levels: list[Level], root: tuple[int, int],
           field: str) -> list[tuple[str, int]]:
    """(directory, new rt_runtime_us) for the ancestors that must grow so that a child with
    `runtime` of every `period` fits, top-down (the order they must be written in).

    `levels` are the ancestors below the root, closest first; `root` is the root's (period,
    runtime). An ancestor that already has room stops the climb: nothing above it changes.
    """
    plan: list[tuple[str, int]] = []
    child_ratio = ratio(period, runtime)
    for level in levels:
        needed = level.others + child_ratio
        if level.runtime == UNLIMITED or ratio(level.period, level.runtime) >= needed:
            return plan[::-1]
        new_runtime = runtime_for(level.period, needed)
        if new_runtime > level.period:
            raise RuntimeUserError(
                f"{field}: {level.directory} would need {new_runtime} us of realtime runtime "
                f"every {level.period} us for its children, more than its period")
        plan.append((level.directory, new_runtime))
        child_ratio = ratio(level.period, new_runtime)
    root_period, root_runtime = root
    if root_runtime != UNLIMITED and child_ratio > ratio(root_period, root_runtime):
        raise RuntimeUserError(
            f"{field}: the system allows realtime tasks {root_runtime} us of every {root_period} us "
            "(kernel.sched_rt_runtime_us), less than this container's parents would need")
    return plan[::-1]


def _read_int(directory: str, name: str) -> int:
    with open(os.path.join(directory, name)) as f:
        return int(f.read().strip())


def _children_ratio(directory: str, skip: str) -> int:
    total = 0
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False) and entry.path != skip:
            try:
                total += ratio(_read_int(entry.path, "cpu.rt_period_us"),
                               _read_int(entry.path, "cpu.rt_runtime_us"))
            except FileNotFoundError:
                continue  # removed while we looked
    return total


def levels_above(cgroup_dir: str, mount: str) -> tuple[list[Level], tuple[int, int]]:
    """The ancestors of `cgroup_dir` below the hierarchy `mount`, closest first, and the
    root's (period, runtime)."""
    mount = mount.rstrip("/")
    levels = []
    child = cgroup_dir.rstrip("/")
    parent = os.path.dirname(child)
    while parent != mount and parent.startswith(mount + "/"):
        levels.append(Level(parent, _read_int(parent, "cpu.rt_period_us"),
                            _read_int(parent, "cpu.rt_runtime_us"), _children_ratio(parent, child)))
        child, parent = parent, os.path.dirname(parent)
    return levels, (_read_int(mount, "cpu.rt_period_us"), _read_int(mount, "cpu.rt_runtime_us"))


def make_room(cgroup_dir: str, mount: str, period: int, runtime: int, field: str, write) -> None:
    """Raise the ancestors of `cgroup_dir` so that it can get `runtime` of every `period`;
    `write(path, text)` does the writes (the driver's, for its error handling)."""
    levels, root = levels_above(cgroup_dir, mount)
    for directory, value in raises(period, runtime, levels, root, field):
        write(os.path.join(directory, "cpu.rt_runtime_us"), str(value))
