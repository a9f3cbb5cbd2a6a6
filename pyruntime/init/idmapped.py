"""User namespaces that exist only to give a mount its id mapping (MOUNT_ATTR_IDMAP).

An idmapped mount shows a file whose owner on disk is `containerID` as owned by `hostID`,
through the maps of a user namespace handed to mount_setattr. That namespace need hold no
process once it is open: a child is forked into a new one, the maps are written from here
(root in the host's namespace may write any map), its namespace fd is kept, and the child goes.
One namespace serves every mount with the same maps.
"""

from __future__ import annotations

import os

from pyruntime import linux


def _map_lines(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


class MappingNamespaces:
    """Open user namespace fds, one per distinct (uid maps, gid maps)."""

    def __init__(self):
        self._fds: dict[tuple[str, str], int] = {}

    def fd_for(self, uid_maps: list[dict], gid_maps: list[dict]) -> int:
        key = (_map_lines(uid_maps), _map_lines(gid_maps))
        if key not in self._fds:
            self._fds[key] = _new_userns(*key)
        return self._fds[key]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _new_userns(uid_map: str, gid_map: str) -> int:
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(done_w)
        try:
            linux.unshare(linux.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)   # stay until the maps are written and the namespace is held
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError("the child making a mapping namespace exited")
        for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
