"""Minimal v1 cgroup placement used until the full manager lands (same interface)."""

from __future__ import annotations

import os
import time

from pyruntime.errors import RuntimeUserError

ROOT = "/sys/fs/cgroup"


def resolve_path(cgroups_path: str | None, container_id: str) -> str:
    if not cgroups_path:
        return f"/pyruntime/{container_id}"
    if ".." in cgroups_path.split("/"):
        raise RuntimeUserError(f"linux.cgroupsPath: {cgroups_path!r} escapes the cgroup root")
    return cgroups_path if cgroups_path.startswith("/") else f"/pyruntime/{cgroups_path}"


def open_manager(path: str, mode: str | None = None) -> "CgroupManager":
    return CgroupManager(path)


class CgroupManager:
    def __init__(self, path: str):
        self.path = path

    def _dirs(self):
        for name in sorted(os.listdir(ROOT)):
            base = os.path.join(ROOT, name)
            if os.path.ismount(base) and not os.path.islink(base):
                yield os.path.join(base, self.path.lstrip("/"))

    def create(self, resources: dict | None) -> None:
        for d in self._dirs():
            base = d.split("/")[:5]
            for part in d.split("/")[5:]:
                base.append(part)
                cur = "/".join(base)
                os.makedirs(cur, exist_ok=True)
                if "/cpuset/" in cur:
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        with open(os.path.join(cur, f)) as own:
                            if own.read().strip():
                                continue
                        with open(os.path.join(os.path.dirname(cur), f)) as src, open(os.path.join(cur, f), "w") as dst:
                            dst.write(src.read())

    def add_process(self, pid: int) -> None:
        for d in self._dirs():
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def pids(self) -> list[int]:
        with open(os.path.join(ROOT, "pids", self.path.lstrip("/"), "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def is_frozen(self) -> bool:
        try:
            with open(os.path.join(ROOT, "freezer", self.path.lstrip("/"), "freezer.state")) as f:
                return f.read().strip() != "THAWED"
        except FileNotFoundError:
            return False

    def destroy(self) -> None:
        for d in self._dirs():
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)

    def to_dict(self) -> dict:
        return {"path": self.path}

    @classmethod
    def from_dict(cls, d: dict) -> "CgroupManager":
        return cls(d["path"])
