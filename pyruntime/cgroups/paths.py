"""Where a container's cgroup lives: runtime-spec `linux.cgroupsPath` semantics.

The result is a path relative to the root of every hierarchy ("/pyruntime/abc"), the same
string for each v1 controller and for the unified hierarchy.
"""

from __future__ import annotations

from pyruntime.errors import RuntimeUserError

# Relative cgroupsPath values and containers without one are placed under this parent.
DEFAULT_PARENT = "/pyruntime"


def resolve_path(cgroups_path: str | None, container_id: str) -> str:
    """Turn config.json's linux.cgroupsPath into the cgroup path used in every hierarchy.

    - None or "": DEFAULT_PARENT/<container id>
    - absolute ("/a/b"): used as is, relative to each hierarchy's root
    - relative ("a/b"): placed under DEFAULT_PARENT
    The systemd form "slice:prefix:name" is refused (this runtime drives cgroupfs directly),
    and so is any ".." component, which could reach outside the intended subtree.
    """
    if not cgroups_path:
        _check_component(container_id, "container id")
        return f"{DEFAULT_PARENT}/{container_id}"
    if ":" in cgroups_path:
        raise RuntimeUserError(
            f"linux.cgroupsPath: {cgroups_path!r} looks like a systemd unit path (slice:prefix:name); "
            "the systemd cgroup driver is not supported, use a cgroupfs path such as /mygroup/ctr")
    parts = [p for p in cgroups_path.split("/") if p not in ("", ".")]
    for part in parts:
        if part == "..":
            raise RuntimeUserError(
                f"linux.cgroupsPath: {cgroups_path!r} must not contain '..' components")
        _check_component(part, "linux.cgroupsPath")
    if not parts:
        raise RuntimeUserError(
            f"linux.cgroupsPath: {cgroups_path!r} names the root cgroup, which a container cannot own")
    if cgroups_path.startswith("/"):
        return "/" + "/".join(parts)
    return DEFAULT_PARENT + "/" + "/".join(parts)


def _check_component(name: str, what: str) -> None:
    if not name or name in (".", "..") or "/" in name:
        raise RuntimeUserError(f"{what}: {name!r} cannot be used as a cgroup name")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise RuntimeUserError(f"{what}: {name!r} contains control characters")
    # Names like "cgroup.procs" or "memory.max" would collide with the interface files.
    if name.startswith("cgroup.") or name in ("tasks", "notify_on_release", "release_agent"):
        raise RuntimeUserError(f"{what}: {name!r} collides with a cgroup interface file name")


def join(root: str, cgroup_path: str) -> str:
    """Directory of `cgroup_path` inside the hierarchy mounted at `root`."""
    return root.rstrip("/") + "/" + cgroup_path.strip("/")


def ancestors(cgroup_path: str) -> list[str]:
    """The cgroup's parents from the top down, excluding the root: "/a/b/c" -> ["/a", "/a/b"]."""
    parts = cgroup_path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
