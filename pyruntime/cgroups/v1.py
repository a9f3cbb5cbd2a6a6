"""cgroup v1 driver (and hybrid: v1 controllers plus the unified hierarchy).

The cgroup exists once per mounted hierarchy, at the same relative path. Resource limits are
written through cgroupspy controller objects (see v1_controllers); the device rules and the
cpuset set-up every container needs are plain writes. On a hybrid host the same path is
also created in the cgroup2 mount at <root>/unified and the process joins it too, as runc
does; hugetlb limits go there when hugetlb is a v2-only controller on the host.
"""

from __future__ import annotations

import errno
import os
import time

from pyruntime.errors import NotSupported, RuntimeUserError

from . import paths
from .files import DEFAULT_ROOT, make_dirs, read_pids, read_text, write_error, write_text
from .manager import FREEZE_TIMEOUT, CgroupManager

# Hierarchy used to list processes, in order of preference (all hold the same tasks).
_PIDS_SOURCES = ("pids", "freezer", "memory", "devices", "cpu", "cpuacct", "cpuset", "blkio")


class V1Manager(CgroupManager):
    def __init__(self, path: str, hierarchies: dict[str, str] | None = None,
                 unified_mount: str | None = None, root: str = DEFAULT_ROOT):
        self.path = path
        self.root = root
        self._hierarchies = hierarchies
        self.unified_mount = unified_mount
        self._controllers: dict = {}

    @property
    def mode(self) -> str:
        return "hybrid" if self.unified_mount else "v1"

    @property
    def hierarchies(self) -> dict[str, str]:
        """Controller -> mount point; discovered from mountinfo on first use."""
        if self._hierarchies is None:
            from .mounts import v1_hierarchies

            self._hierarchies = v1_hierarchies(self.root)
        return self._hierarchies

    @property
    def unified(self):
        """The unified-hierarchy part of a hybrid cgroup (None on pure v1)."""
        if not self.unified_mount:
            return None
        from .v2 import V2Manager

        return V2Manager(self.path, root=self.unified_mount, enable_all=False)

    def dir(self, controller: str) -> str | None:
        mount = self.hierarchies.get(controller)
        return paths.join(mount, self.path) if mount else None

    def directories(self) -> list[str]:
        seen: list[str] = []
        for mount in self.hierarchies.values():
            d = paths.join(mount, self.path)
            if d not in seen:
                seen.append(d)
        if self.unified_mount:
            seen.append(paths.join(self.unified_mount, self.path))
        return seen

    # -- create / apply ----------------------------------------------------------------
    def _plan(self, resources, with_devices):
        """(v1 ops, unified ops): hugetlb goes to the unified hierarchy when only v2 has it."""
        from . import convert
        from .resources import hugepage_ops, plan_v1

        sizes = convert.host_hugepage_sizes()
        hugetlb_in_v2 = "hugetlb" not in self.hierarchies and self.unified_mount is not None
        # The default rules alone are not worth failing for on a host without the devices
        # controller; rules the config asks for are (they would otherwise be ignored).
        devices_too = with_devices and ("devices" in self.hierarchies or (resources or {}).get("devices"))
        ops = plan_v1(resources, with_devices=bool(devices_too), hugepages=not hugetlb_in_v2,
                      host_hugepage_sizes=sizes)
        unified_ops = hugepage_ops(resources or {}, True, sizes) if hugetlb_in_v2 else []
        return ops, unified_ops

    def _check_available(self, plan) -> None:
        ops, unified_ops = plan
        for op in ops:
            if op.controller not in self.hierarchies:
                raise NotSupported(f"{op.field}: the {op.controller} cgroup controller is not "
                                   "available (not mounted) on this host")
        if unified_ops:
            self.unified.check_controllers(unified_ops)

    def _make(self, made: list[str], plan) -> None:
        for d in self.directories():
            if self.unified_mount and d == paths.join(self.unified_mount, self.path):
                continue
            make_dirs(d, made)
        if "cpuset" in self.hierarchies:
            init_cpuset(self.dir("cpuset"))
        if self.unified_mount:
            self.unified._make(made, (plan[1], None))

    def _controller(self, name: str):
        ctrl = self._controllers.get(name)
        if ctrl is None:
            from .v1_controllers import controller

            ctrl = self._controllers[name] = controller(name, self.dir(name))
        return ctrl

    def _execute(self, plan) -> None:
        ops, unified_ops = plan
        for op in ops:
            if op.key == "check_usage":
                self._check_usage(op)
            elif op.key == "limit_and_swap":
                self._set_limit_and_swap(op)
            elif op.key == "kernel_tcp":
                self._set_kernel_tcp(op)
            elif op.key == "period_and_quota":
                self._set_period_and_quota(op)
            elif op.key == "rt_runtime":
                self._set_rt_runtime(op)
            elif op.key == "rules":
                self._write_device_rules(op)
            elif op.key.startswith("limit:"):
                self._set(op, "hugetlb", f"hugetlb.{op.key[6:]}.limit_in_bytes",
                          lambda c: c.set_limit(op.key[6:], op.value))
            else:
                self._setattr(op)
        if unified_ops:
            unified = self.unified
            # An update may ask for hugetlb where create did not: enable it on the way down.
            unified.enable_controllers(sorted({op.controller for op in unified_ops}))
            unified.execute_ops(unified_ops)

    def _write_device_rules(self, op) -> None:
        """Take the devices cgroup from what its devices.list shows to the wanted state
        (op.value) with the fewest writes (devices.transition): one rule line per write to
        devices.allow / devices.deny. Every container has such rules (deny all, then the
        default devices), so they are plain writes, without loading cgroupspy (~4 ms) for a
        container that sets no limits."""
        from .devices import DeviceState, transition

        directory = self.dir("devices")
        current = DeviceState.from_list(read_text(os.path.join(directory, "devices.list")))
        for rule in transition(current, op.value):
            name = "devices.allow" if rule.allow else "devices.deny"
            line = rule.v1_line()
            try:
                write_text(os.path.join(directory, name), line)
            except OSError as e:
                raise write_error(op.field, name, line, e) from None

    def _set_kernel_tcp(self, op) -> None:
        name = "memory.kmem.tcp.limit_in_bytes"
        path = os.path.join(self.dir("memory"), name)
        if not os.path.exists(path):
            from .resources import _warn

            _warn(f"{op.field}: ignored, this kernel has no {name}")
            return
        try:
            write_text(path, str(op.value))
        except OSError as e:
            raise write_error(op.field, name, op.value, e) from None

    def _set_period_and_quota(self, op) -> None:
        """The kernel checks quota/period against the parent's after each write, so going from
        one pair to the other may have to pass through either mixed pair; the period goes
        first and, if the kernel refuses it (EINVAL), again after the quota (runc's order)."""
        period, quota = op.value
        try:
            self._controller("cpu").cfs_period_us = period
            period_pending = False
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise write_error(op.field, "cpu.cfs_period_us", period, e) from None
            period_pending = True
        self._setattr(op._replace(field=op.field[: -len("period")] + "quota"), "cfs_quota_us", quota)
        if period_pending:
            self._setattr(op, "cfs_period_us", period)

    def _set_rt_runtime(self, op) -> None:
        """cpu.rt_runtime_us; when the kernel refuses it for want of runtime in the parents
        (EINVAL), they are given room (rt.make_room) and the write is tried once more."""
        runtime, period = op.value
        directory = self.dir("cpu")
        path = os.path.join(directory, "cpu.rt_runtime_us")
        try:
            write_text(path, str(runtime))
            return
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise write_error(op.field, "cpu.rt_runtime_us", runtime, e) from None
        from . import rt

        if period is None:
            period = int(read_text(os.path.join(directory, "cpu.rt_period_us")) or 0)

        def write_parent(target: str, value: str) -> None:
            try:
                write_text(target, value)
            except OSError as e:
                raise write_error(op.field, target, value, e) from None

        rt.make_room(directory, self.hierarchies["cpu"], period, runtime, op.field, write_parent)
        try:
            write_text(path, str(runtime))
        except OSError as e:
            raise write_error(op.field, "cpu.rt_runtime_us", runtime, e) from None

    def _setattr(self, op, key: str | None = None, value=None) -> None:
        key = key or op.key
        value = op.value if value is None else value
        from .v1_controllers import filename

        ctrl = self._controller(op.controller)
        self._set(op, op.controller, filename(ctrl, key), lambda c: setattr(c, key, value), value)

    def _set(self, op, controller: str, name: str, action, value=None) -> None:
        ctrl = self._controller(controller)
        value = op.value if value is None else value
        try:
            action(ctrl)
        except OSError as e:
            if e.errno == errno.EACCES and not os.path.exists(ctrl.filepath(name.encode())):
                # cgroupfs cannot create files: a write to one this kernel lacks (blkio.weight
                # without CFQ or BFQ) fails with EACCES, not ENOENT
                e = OSError(errno.ENOENT, os.strerror(errno.ENOENT))
            raise write_error(op.field, name, value, e) from None
        except (ValueError, TypeError, RuntimeError) as e:
            raise RuntimeUserError(f"{op.field}: invalid value {value!r} for {name}: {e}") from None

    def _check_usage(self, op) -> None:
        usage = read_text(os.path.join(self.dir("memory"), "memory.usage_in_bytes"))
        if usage is not None and op.value < int(usage):
            raise RuntimeUserError(f"{op.field}: {op.value} is below the current memory usage "
                                   f"({int(usage)}); refusing to lower it (checkBeforeUpdate)")

    def _set_limit_and_swap(self, op) -> None:
        """memory.limit_in_bytes must stay <= memory.memsw.limit_in_bytes after every write,
        so the order depends on whether the total grows or shrinks (runc's rule)."""
        limit, swap = op.value
        memdir = self.dir("memory")
        if not os.path.exists(os.path.join(memdir, "memory.memsw.limit_in_bytes")):
            raise NotSupported("linux.resources.memory.swap: swap accounting is not enabled on this "
                               "host (memory.memsw.* files are missing)")
        current = int(read_text(os.path.join(memdir, "memory.limit_in_bytes")) or 0)
        swap_first = swap == -1 or current < swap
        steps = [("linux.resources.memory.swap", "memsw_limit_in_bytes", swap),
                 ("linux.resources.memory.limit", "limit_in_bytes", limit)]
        for field, key, value in (steps if swap_first else steps[::-1]):
            self._setattr(op._replace(field=field), key, value)

    # -- processes and freezing ----------------------------------------------------------
    def add_process(self, pid: int, subs: dict[str, str] | None = None) -> None:
        for d in self._join_targets(subs) if subs else self.directories():
            try:
                write_text(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError as e:
                raise RuntimeUserError(f"cannot move process {pid} into cgroup {d}: {e.strerror}") from None

    def _join_targets(self, subs: dict[str, str]) -> list[str]:
        """The directory to join in each hierarchy for `exec --cgroup` (subcgroups.parse)."""
        from .subcgroups import ALL, for_hierarchies

        by_mount = for_hierarchies(subs, self.hierarchies)
        pairs = [(paths.join(mount, self.path), by_mount.get(mount))
                 for mount in dict.fromkeys(self.hierarchies.values())]
        if self.unified_mount:
            pairs.append((paths.join(self.unified_mount, self.path), subs.get(ALL)))
        targets = [f"{base}/{sub}" if sub else base for base, sub in pairs]
        for d in targets:
            if not os.path.isdir(d):
                raise RuntimeUserError(f"--cgroup: {d} does not exist (the sub-cgroup must be made first)")
        cpuset = self.dir("cpuset")
        for d in targets:
            if cpuset and d != cpuset and d.startswith(cpuset + "/"):
                init_cpuset(d)   # an empty cpuset takes no process: give it its parent's
        return targets

    def pids(self) -> list[int]:
        for name in _PIDS_SOURCES:
            d = self.dir(name)
            if d and os.path.isdir(d):
                return read_pids(d)
        return []

    def _freezer_state(self) -> str | None:
        d = self.dir("freezer")
        text = read_text(os.path.join(d, "freezer.state")) if d else None
        return text.strip() if text else None

    def _write_freezer(self, state: str, action: str) -> None:
        d = self.dir("freezer")
        if not d:
            raise NotSupported(f"cannot {action}: the freezer cgroup controller is not mounted on this host")
        try:
            write_text(os.path.join(d, "freezer.state"), state)
        except OSError as e:
            raise RuntimeUserError(f"cannot {action} cgroup {d}: {e.strerror}") from None

    def freeze(self) -> None:
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while True:
            # Writing FROZEN again nudges tasks that were in the middle of a fork.
            self._write_freezer("FROZEN", "pause")
            if self._freezer_state() == "FROZEN":
                return
            if time.monotonic() >= deadline:
                self.thaw()
                raise RuntimeUserError(f"cgroup {self.path} did not freeze within {FREEZE_TIMEOUT:g}s")
            time.sleep(0.005)

    def thaw(self) -> None:
        self._write_freezer("THAWED", "resume")

    def is_frozen(self) -> bool:
        return self._freezer_state() == "FROZEN"

    def stops_processes(self) -> bool:
        # a child of a frozen cgroup reads FROZEN too (the parent's state is inherited)
        return self._freezer_state() in ("FROZEN", "FREEZING")

    # -- reading -------------------------------------------------------------------------
    def read(self, controller: str, name: str) -> str | None:
        d = self.dir(controller)
        return read_text(os.path.join(d, name)) if d else None

    def oom_count(self) -> int:
        for line in (self.read("memory", "memory.oom_control") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def stats(self) -> dict:
        from .convert import host_hugepage_sizes
        from .stats import v1_stats

        unified = self.unified if "hugetlb" not in self.hierarchies else None
        return v1_stats(self.read, host_hugepage_sizes(), unified.read if unified else None)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "path": self.path, "root": self.root,
                "hierarchies": dict(self.hierarchies), "unified": self.unified_mount}


def init_cpuset(directory: str) -> None:
    """Give a new cpuset cgroup its parent's cpus and mems (v1 starts them empty).

    No process can join a cpuset cgroup with empty cpus or mems. Parents are filled first
    (walking up until a non-empty one), which is what runc does for intermediate cgroups.
    """
    def value(d: str, name: str) -> str:
        return (read_text(os.path.join(d, f"cpuset.{name}")) or "").strip()

    chain = []
    current = directory.rstrip("/")
    while not (value(current, "cpus") and value(current, "mems")):
        chain.append(current)
        parent = os.path.dirname(current)
        if parent == current or not os.path.exists(os.path.join(parent, "cpuset.cpus")):
            break
        current = parent
    for d in reversed(chain):
        for name in ("cpus", "mems"):
            if not value(d, name):
                write_text(os.path.join(d, f"cpuset.{name}"), value(os.path.dirname(d), name))
