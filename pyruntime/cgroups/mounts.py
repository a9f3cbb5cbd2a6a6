"""What the host offers: cgroup mode, v1 hierarchies and the unified hierarchy.

Everything here is a plain read of /proc or cgroupfs; the parsing functions take text so they
can be exercised on recorded samples without root.
"""

from __future__ import annotations

import os

from .files import DEFAULT_ROOT


def detect_mode(root: str = DEFAULT_ROOT) -> str:
    """"v2" (unified only), "hybrid" (v1 controllers plus cgroup2 at <root>/unified) or "v1".

    The unified hierarchy is recognised by its cgroup.controllers file, which only cgroup2 has.
    """
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return "v2"
    if os.path.exists(os.path.join(root, "unified", "cgroup.controllers")):
        return "hybrid"
    return "v1"


def parse_mountinfo(text: str) -> list[tuple[str, str, list[str]]]:
    """(mount point, filesystem type, super options) for every line of a mountinfo file."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or len(fields) < 5:
            continue
        mountpoint = fields[4].replace("\\040", " ")
        mounts.append((mountpoint, fields[sep + 1], fields[sep + 3].split(",")))
    return mounts


def parse_proc_cgroups(text: str) -> dict[str, bool]:
    """Controller name -> enabled, from /proc/cgroups."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _hier, _num, enabled = line.split()[:4]
        found[name] = enabled == "1"
    return found


def v1_hierarchies_from(mountinfo: str, known_controllers, root: str = DEFAULT_ROOT) -> dict[str, str]:
    """Controller (or "name=x" for named hierarchies) -> mount point of its v1 hierarchy.

    Only mounts below `root` count: a runtime inside a container should not pick up a hierarchy
    mounted elsewhere. Co-mounted controllers ("cpu,cpuacct") map to the same directory.
    """
    known = set(known_controllers)
    root = root.rstrip("/") + "/"
    result: dict[str, str] = {}
    for mountpoint, fstype, options in parse_mountinfo(mountinfo):
        if fstype != "cgroup" or not mountpoint.startswith(root):
            continue
        for opt in options:
            if opt in known or opt.startswith("name="):
                result.setdefault(opt, mountpoint)
    return result


def v1_hierarchies(root: str = DEFAULT_ROOT) -> dict[str, str]:
    """The v1 hierarchies mounted on this host."""
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    with open("/proc/cgroups") as f:
        controllers = parse_proc_cgroups(f.read())
    return v1_hierarchies_from(mountinfo, [c for c, on in controllers.items() if on], root)


def unified_root(root: str = DEFAULT_ROOT, mode: str | None = None) -> str | None:
    """Mount point of the unified hierarchy: root itself on v2, <root>/unified on hybrid."""
    mode = mode or detect_mode(root)
    if mode == "v2":
        return root
    if mode == "hybrid":
        return os.path.join(root, "unified")
    return None


def read_controllers(unified_dir: str) -> list[str]:
    """Controllers available in a unified-hierarchy cgroup (its cgroup.controllers)."""
    try:
        with open(os.path.join(unified_dir, "cgroup.controllers")) as f:
            return f.read().split()
    except FileNotFoundError:
        return []
