"""`exec --cgroup`: the sub-cgroups of the container's cgroup an exec'd process joins.

runc's flag, which may be given more than once: `[controller[,controller...]:]path`. A path
without controllers (then the only --cgroup) applies to every hierarchy, the unified one of
a hybrid host included; with controllers, only those hierarchies get the sub-cgroup and the
others keep the container's own cgroup. The path is relative to the container's cgroup (a
leading "/" too) and must stay inside it: ".." is refused. The sub-cgroups must exist; the
runtime does not create them.
"""

from __future__ import annotations

from pyruntime.errors import RuntimeUserError

# The key that stands for "every hierarchy" in parse()'s result.
ALL = ""


def _clean(arg: str, path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RuntimeUserError(f"--cgroup {arg}: {path!r} is not a sub-cgroup of the container's "
                               "cgroup ('..' leaves it)")
    if any(ord(c) < 32 for c in path):
        raise RuntimeUserError(f"--cgroup {arg}: {path!r} contains control characters")
    return "/".join(parts)


def parse(args) -> dict[str, str]:
    """{controller: relative sub path}, with ALL as the controller for a path given alone."""
    result: dict[str, str] = {}
    args = list(args or ())
    for arg in args:
        if arg.count(":") > 1:
            raise RuntimeUserError(f"invalid --cgroup argument: {arg} (expected [controller:]path)")
        controllers, colon, path = arg.partition(":")
        if not colon:
            if len(args) != 1:
                raise RuntimeUserError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            result[ALL] = _clean(arg, arg)
            continue
        for name in controllers.split(","):
            if not name:
                raise RuntimeUserError(f"invalid --cgroup argument: {arg} (empty <controller> prefix)")
            if name in result:
                raise RuntimeUserError(f"invalid --cgroup argument(s): controller {name} specified multiple times")
            result[name] = _clean(arg, path)
    return result


def for_hierarchies(subs: dict[str, str], hierarchies: dict[str, str]) -> dict[str, str]:
    """{mount point: sub path} for a v1 layout (controller -> mount). Controllers mounted
    together share one directory, so they must not ask for different sub-cgroups."""
    if ALL in subs:
        return {mount: subs[ALL] for mount in hierarchies.values()}
    unknown = sorted(set(subs) - set(hierarchies))
    if unknown:
        raise RuntimeUserError(f"--cgroup: unknown controller {unknown[0]} (this host has: "
                               f"{', '.join(sorted(hierarchies))})")
    by_mount: dict[str, str] = {}
    for controller, sub in subs.items():
        mount = hierarchies[controller]
        if by_mount.get(mount, sub) != sub:
            together = sorted(c for c, m in hierarchies.items() if m == mount)
            raise RuntimeUserError(f"--cgroup: {', '.join(together)} share one hierarchy and cannot "
                                   "join different sub-cgroups")
        by_mount[mount] = sub
    return by_mount
