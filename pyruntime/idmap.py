"""The id maps of a container's new user namespace, written by the runtime.

Root in the host's user namespace writes any map itself. Anyone else may write only a map of
its own uid (and gid, once setgroups is denied), once: every other map is written by the
setuid helpers newuidmap/newgidmap (Debian package uidmap), which check the caller's ranges in
/etc/subuid and /etc/subgid, as runc and crun do.
"""

from __future__ import annotations

import os

from pyruntime.errors import RuntimeUserError
from pyruntime.rootless import in_initial_userns


def map_lines(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def needs_helper(kind: str, mappings: list[dict]) -> bool:
    """Whether this map is beyond what the caller may write itself."""
    if os.geteuid() == 0 and in_initial_userns():
        return False
    own = os.geteuid() if kind == "uid" else os.getegid()
    return not (len(mappings) == 1 and mappings[0]["hostID"] == own and mappings[0]["size"] == 1)


def write_id_maps(pid: int, config: dict) -> None:
    """Runs in the runtime: give the new user namespace of `pid` its uid and gid maps."""
    lx = config.get("linux") or {}
    rootless = not (os.geteuid() == 0 and in_initial_userns())
    for kind in ("uid", "gid"):
        mappings = lx.get(f"{kind}Mappings") or []
        if needs_helper(kind, mappings):
            _map_with_helper(kind, pid, mappings)
            continue
        if kind == "gid" and rootless:
            # the kernel takes an unprivileged gid map only once setgroups is denied for good
            _write_proc(pid, "setgroups", "deny", f"linux.{kind}Mappings")
        _write_proc(pid, f"{kind}_map", map_lines(mappings), f"linux.{kind}Mappings")


def _write_proc(pid: int, name: str, text: str, field: str) -> None:
    try:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)
    except OSError as e:
        raise RuntimeUserError(f"{field}: the kernel refused {text.strip()!r}: {e.strerror}") from None


def _map_with_helper(kind: str, pid: int, mappings: list[dict]) -> None:
    import shutil
    import subprocess

    helper = f"new{kind}map"
    program = shutil.which(helper)
    if program is None:
        raise RuntimeUserError(f"linux.{kind}Mappings: mapping more than your own {kind} needs "
                               f"{helper} (Debian package uidmap) and ranges in /etc/sub{kind}")
    args = [program, str(pid)]
    for m in mappings:
        args += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise RuntimeUserError(f"linux.{kind}Mappings: {helper} refused "
                               f"{map_lines(mappings).strip()!r}: {reason}")
