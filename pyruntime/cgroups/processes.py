"""The processes of a container's cgroup: listed for `runc ps`, signalled for `kill --all`."""

from __future__ import annotations

import os
import signal as signals

from pyruntime.errors import RuntimeUserError

from .manager import CgroupManager


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
