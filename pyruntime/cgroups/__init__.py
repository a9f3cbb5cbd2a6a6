"""Container cgroups: one manager interface over the v1, hybrid and v2 (unified) layouts.

    path = resolve_path(spec_cgroups_path, container_id)
    mgr = open_manager(path)                   # the driver for this host; no filesystem change yet
    mgr.create(spec["linux"].get("resources"))
    mgr.add_process(pid)
    state["cgroup"] = mgr.to_dict()            # later: saved_manager(state["cgroup"])

The package is where a driver is chosen, for the host (open_manager) or for what state.json
recorded (saved_manager); the drivers and the interface (manager.CgroupManager) never import it
back. Importing it is cheap (no cgroupspy, no planning code, no driver until one is asked for):
the hot CLI paths only read files through a manager rebuilt by saved_manager().
"""

from __future__ import annotations

from . import paths
from .paths import DEFAULT_PARENT, resolve_path

__all__ = ["DEFAULT_PARENT", "features", "open_manager", "resolve_path", "saved_is_frozen",
           "saved_manager"]


def open_manager(path: str, mode: str | None = None, root: str | None = None):
    """The manager (a manager.CgroupManager) of the cgroup at `path` (as resolve_path gives
    it), by the driver for this host's layout.

    `mode` ("v1", "hybrid" or "v2") overrides detection; `root` is where the hierarchies are
    mounted (files.DEFAULT_ROOT).
    """
    from .files import DEFAULT_ROOT
    from .mounts import detect_mode

    root = root or DEFAULT_ROOT
    mode = mode or detect_mode(root)
    if mode == "v2":
        from .v2 import V2Manager

        return V2Manager(path, root=root)
    if mode in ("v1", "hybrid"):
        from .v1 import V1Manager

        unified = f"{root.rstrip('/')}/unified" if mode == "hybrid" else None
        return V1Manager(path, unified_mount=unified, root=root)
    raise ValueError(f"unknown cgroup mode {mode!r}")


def saved_manager(data: dict):
    """Rebuild the manager.CgroupManager a driver's to_dict() saved, without scanning the host."""
    mode = data.get("mode")
    if mode == "v2":
        from .v2 import V2Manager

        return V2Manager(data["path"], root=data["root"])
    if mode in ("v1", "hybrid"):
        from .files import DEFAULT_ROOT
        from .v1 import V1Manager

        return V1Manager(data["path"], hierarchies=dict(data["hierarchies"]),
                         unified_mount=data.get("unified"), root=data.get("root", DEFAULT_ROOT))
    raise ValueError(f"unknown cgroup manager mode {mode!r}")


def saved_is_frozen(data: dict) -> bool:
    """Whether the cgroup a driver's to_dict() saved is frozen (its driver's is_frozen()),
    read without loading a driver: `state`, `start` and `kill` ask it on every call, and the
    drivers and their interface cost ~0.5 ms to import there. An unreadable file reads as
    not frozen, as it does for the drivers."""
    mode = data.get("mode")
    if mode == "v2":
        name, frozen = paths.join(data["root"], data["path"]) + "/cgroup.freeze", "1"
    elif mode in ("v1", "hybrid"):
        mount = (data.get("hierarchies") or {}).get("freezer")
        if not mount:
            return False
        name, frozen = paths.join(mount, data["path"]) + "/freezer.state", "FROZEN"
    else:
        raise ValueError(f"unknown cgroup manager mode {mode!r}")
    try:
        with open(name) as f:
            return f.read().strip() == frozen
    except OSError:
        return False


def features() -> dict:
    """The "linux.cgroup" object of the runtime-spec features document.

    v1 and v2 say which layouts the runtime drives (both; the hybrid layout is v1 plus the
    unified mount). The systemd cgroup driver and the rdma controller are not implemented.
    """
    return {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False}
