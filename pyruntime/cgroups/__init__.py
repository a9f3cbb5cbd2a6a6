"""Container cgroups: one manager interface over the v1, hybrid and v2 (unified) layouts.

    mode = detect_mode()                       # "v1", "v2" or "hybrid"
    path = resolve_path(spec_cgroups_path, container_id)
    mgr = open_manager(path)                   # no filesystem change yet
    mgr.create(spec["linux"].get("resources"))
    mgr.add_process(pid)
    state["cgroup"] = mgr.to_dict()            # later: CgroupManager.from_dict(state["cgroup"])

Importing this package is cheap (no cgroupspy, no planning code): the hot CLI paths only read
files through a manager rebuilt with from_dict().
"""

from __future__ import annotations

from .manager import CgroupManager
from .mounts import DEFAULT_ROOT, detect_mode
from .paths import DEFAULT_PARENT, resolve_path

__all__ = ["CgroupManager", "DEFAULT_PARENT", "DEFAULT_ROOT", "detect_mode", "features",
           "open_manager", "resolve_path"]


def open_manager(path: str, mode: str | None = None, root: str = DEFAULT_ROOT) -> CgroupManager:
    """A manager for the cgroup at `path` (as returned by resolve_path) in the host's layout.

    `mode` overrides detection; `root` is where the hierarchies are mounted.
    """
    mode = mode or detect_mode(root)
    if mode == "v2":
        from .v2 import V2Manager

        return V2Manager(path, root=root)
    if mode in ("v1", "hybrid"):
        from .v1 import V1Manager

        unified = f"{root.rstrip('/')}/unified" if mode == "hybrid" else None
        return V1Manager(path, unified_mount=unified, root=root)
    raise ValueError(f"unknown cgroup mode {mode!r}")


def features() -> dict:
    """The "linux.cgroup" object of the runtime-spec features document.

    v1 and v2 say which layouts the runtime drives (both; the hybrid layout is v1 plus the
    unified mount). The systemd cgroup driver and the rdma controller are not implemented.
    """
    return {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False}
