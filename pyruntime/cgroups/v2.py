"""cgroup v2 driver: one directory in the unified hierarchy.

Controllers must be enabled in every ancestor's cgroup.subtree_control before a cgroup gets
their files; on a pure v2 host all available controllers are enabled (as runc does, so stats
are complete), while the hybrid driver only enables what it needs there (hugetlb).
"""

from __future__ import annotations

import errno
import os
import time

from pyruntime.errors import NotSupported, RuntimeUserError

from . import paths
from .files import DEFAULT_ROOT, make_dirs, read_pids, read_text, write_error, write_text
from .manager import FREEZE_TIMEOUT, CgroupManager


class V2Manager(CgroupManager):
    mode = "v2"

    def __init__(self, path: str, root: str = DEFAULT_ROOT, enable_all: bool = True):
        self.path = path
        self.root = root
        self.dir = paths.join(root, path)
        self.enable_all = enable_all

    def directories(self) -> list[str]:
        return [self.dir]

    # -- create / apply ----------------------------------------------------------------
    def _plan(self, resources, with_devices):
        from . import convert, devices
        from .resources import plan_v2

        ops = plan_v2(resources, host_hugepage_sizes=convert.host_hugepage_sizes())
        rules = devices.effective_rules((resources or {}).get("devices")) if with_devices else None
        return ops, rules

    def _check_available(self, plan) -> None:
        ops, _rules = plan
        self.check_controllers(ops)

    def check_controllers(self, ops) -> None:
        from .mounts import read_controllers

        available = set(read_controllers(self.root))
        for op in ops:
            if op.controller != "cgroup" and op.controller not in available:
                raise NotSupported(f"{op.field}: the {op.controller} controller is not available in the "
                                   f"unified hierarchy of this host (available: {', '.join(sorted(available)) or 'none'})")

    def _make(self, made: list[str], plan) -> None:
        from .mounts import read_controllers

        make_dirs(self.dir, made)
        needed = {op.controller for op in plan[0]} - {"cgroup"}
        wanted = read_controllers(self.root) if self.enable_all else sorted(needed)
        if wanted:
            self.enable_controllers(wanted)

    def enable_controllers(self, controllers) -> None:
        """Enable `controllers` in the subtree_control of the root and of every ancestor."""
        for parent in [self.root] + [paths.join(self.root, a) for a in paths.ancestors(self.path)]:
            control = os.path.join(parent, "cgroup.subtree_control")
            enabled = set((read_text(control) or "").split())
            missing = [c for c in controllers if c not in enabled]
            if not missing:
                continue
            try:
                write_text(control, " ".join("+" + c for c in missing))
            except OSError as e:
                hint = " (it has processes of its own)" if e.errno == errno.EBUSY else ""
                raise RuntimeUserError(f"cannot enable the {', '.join(missing)} controller(s) in {parent}"
                                       f"{hint}: {e.strerror}") from None

    def apply(self, resources: dict) -> None:
        plan = self._plan(resources, with_devices="devices" in (resources or {}))
        self._check_available(plan)
        if not self.enable_all:
            self.enable_controllers(sorted({op.controller for op in plan[0]} - {"cgroup"}))
        self._execute(plan)

    def _execute(self, plan) -> None:
        ops, rules = plan
        self.execute_ops(ops)
        if rules is not None:
            self._apply_device_rules(rules)

    def execute_ops(self, ops) -> None:
        for op in ops:
            if op.key == "check_usage":
                self._check_usage(op)
            elif op.key == "io.weight":
                self._write_io_weight(op)
            else:
                self._write(op.field, op.key, op.value)
                if op.controller == "hugetlb":
                    self._write_reserved(op)

    def _write(self, field: str, name: str, value: str) -> None:
        try:
            write_text(os.path.join(self.dir, name), value)
        except OSError as e:
            raise write_error(field, name, value, e) from None

    def _write_reserved(self, op) -> None:
        # Kernels since 5.7 also limit reservations (hugetlb.<size>.rsvd.max); keeping both
        # equal makes the limit hold at mmap() time instead of as a SIGBUS on first touch.
        name = op.key[: -len(".max")] + ".rsvd.max"
        if os.path.exists(os.path.join(self.dir, name)):
            self._write(op.field, name, op.value)

    def _check_usage(self, op) -> None:
        current = read_text(os.path.join(self.dir, "memory.current"))
        if current is not None and op.value < int(current):
            raise RuntimeUserError(f"{op.field}: {op.value} is below the current memory usage "
                                   f"({int(current)}); refusing to lower it (checkBeforeUpdate)")

    def _write_io_weight(self, op) -> None:
        from .convert import blkio_weight_to_io_weight

        device, weight = op.value
        prefix = f"{device} " if device else ""
        # BFQ takes the blkio scale (1..1000) directly; io.weight uses 1..10000.
        if os.path.exists(os.path.join(self.dir, "io.bfq.weight")):
            self._write(op.field, "io.bfq.weight", f"{prefix}{weight}")
        else:
            self._write(op.field, "io.weight", f"{prefix}{blkio_weight_to_io_weight(weight)}")

    def _apply_device_rules(self, rules) -> None:
        # The unified hierarchy has no devices.allow/deny: the same rules become an eBPF
        # program attached to the cgroup (see ebpf.py).
        from . import ebpf

        try:
            ebpf.attach(self.dir, rules)
        except OSError as e:
            raise RuntimeUserError(f"linux.resources.devices: cannot attach the eBPF device filter to "
                                   f"{self.dir}: {e.strerror}") from None

    # -- processes and freezing ----------------------------------------------------------
    def add_process(self, pid: int, subs: dict[str, str] | None = None) -> None:
        target = self._join_target(subs) if subs else self.dir
        try:
            write_text(os.path.join(target, "cgroup.procs"), str(pid))
        except OSError as e:
            raise RuntimeUserError(f"cannot move process {pid} into cgroup {target}: {e.strerror}") from None

    def _join_target(self, subs: dict[str, str]) -> str:
        """The sub-cgroup of `exec --cgroup PATH` (subcgroups.parse): one path, no controllers."""
        from .subcgroups import ALL

        if set(subs) != {ALL}:
            raise RuntimeUserError("--cgroup: controller prefixes apply to cgroup v1 only; "
                                   "give the sub-cgroup path alone on cgroup v2")
        target = f"{self.dir}/{subs[ALL]}" if subs[ALL] else self.dir
        if not os.path.isdir(target):
            raise RuntimeUserError(f"--cgroup: {target} does not exist (the sub-cgroup must be made first)")
        return target

    def pids(self) -> list[int]:
        return read_pids(self.dir)

    def freeze(self) -> None:
        self._write("pause", "cgroup.freeze", "1")
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while not self._events_frozen():
            if time.monotonic() >= deadline:
                self.thaw()
                raise RuntimeUserError(f"cgroup {self.dir} did not freeze within {FREEZE_TIMEOUT:g}s")
            time.sleep(0.005)

    def thaw(self) -> None:
        self._write("resume", "cgroup.freeze", "0")

    def _events_frozen(self) -> bool:
        for line in (read_text(os.path.join(self.dir, "cgroup.events")) or "").splitlines():
            if line.startswith("frozen "):
                return line.split()[1] == "1"
        return False

    def is_frozen(self) -> bool:
        return (read_text(os.path.join(self.dir, "cgroup.freeze")) or "0").strip() == "1"

    def stops_processes(self) -> bool:
        # frozen by itself, or below a frozen ancestor (cgroup.events says so then)
        events = read_text(os.path.join(self.dir, "cgroup.events")) or ""
        return self.is_frozen() or "frozen 1" in events.splitlines()

    # -- reading -------------------------------------------------------------------------
    def read(self, name: str) -> str | None:
        return read_text(os.path.join(self.dir, name))

    def oom_count(self) -> int:
        for line in (self.read("memory.events") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def stats(self) -> dict:
        from .convert import host_hugepage_sizes
        from .stats import v2_stats

        return v2_stats(self.read, host_hugepage_sizes())

    def to_dict(self) -> dict:
        return {"mode": "v2", "path": self.path, "root": self.root}
