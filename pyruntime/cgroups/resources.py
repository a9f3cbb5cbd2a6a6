"""OCI linux.resources to an ordered list of cgroup writes, for v1 and for v2.

These are pure functions: they validate every value (naming the offending field by its JSON
path) and decide what to write where, without touching the filesystem. The drivers execute
the resulting `Op`s. An Op's `controller` tells which hierarchy (v1) or which controller must be
enabled (v2); its `key` is, on v1, the attribute of the controller object that owns the file,
and on v2 the interface file name. A few keys are steps rather than plain writes (their values
depend on what the cgroup holds at the time): "check_usage", "limit_and_swap", "io.weight",
"kernel_tcp", "period_and_quota", "rt_runtime" and, on v1, "rules" (the device rules).
"""

from __future__ import annotations

from pyruntime.errors import NotSupported, RuntimeUserError

from . import convert, devices

R = "linux.resources"


def _warn(message: str) -> None:
    # Through the runtime's log: a --log file (where engines look) gets the line too.
    from pyruntime import log

    log.warn(message)


# field: JSON path of the setting, for error messages; controller: v1 hierarchy / v2 controller
# the write needs; key and value: what to write (see the module docstring).
class Op(tuple):
    """One planned write: (field, controller, key, value), by position or by name. What a
    namedtuple would be, without importing collections (~1 ms of every create)."""

    __slots__ = ()
    _fields = ("field", "controller", "key", "value")

    def __new__(cls, field: str, controller: str, key: str, value):
        return tuple.__new__(cls, (field, controller, key, value))

    field = property(lambda self: self[0])
    controller = property(lambda self: self[1])
    key = property(lambda self: self[2])
    value = property(lambda self: self[3])

    def _replace(self, **changes) -> "Op":
        return Op(**{**self._asdict(), **changes})

    def _asdict(self) -> dict:
        return dict(zip(self._fields, self))

    def __repr__(self) -> str:
        return "Op(" + ", ".join(f"{name}={item!r}" for name, item in zip(self._fields, self)) + ")"


# ---------------------------------------------------------------- value checks

def _section(resources: dict, key: str, kind=dict):
    value = resources.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise RuntimeUserError(f"{R}.{key}: expected {'an object' if kind is dict else 'a list'}")
    return value


def _int(section: dict, key: str, where: str, *, minimum=None, maximum=None, special=()):
    """An optional integer field; `special` values bypass the range (e.g. -1 for unlimited)."""
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise RuntimeUserError(f"{where}.{key}: expected an integer, got {value!r}")
    if value in special:
        return value
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"{minimum if minimum is not None else '-inf'}..{maximum if maximum is not None else 'inf'}"
        extra = f" or {', '.join(map(str, special))}" if special else ""
        raise RuntimeUserError(f"{where}.{key}: {value} is out of range ({bounds}{extra})")
    return value


def _bool(section: dict, key: str, where: str) -> bool:
    value = section.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RuntimeUserError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _cpu_list(section: dict, key: str, where: str) -> list[int] | None:
    value = section.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RuntimeUserError(f"{where}.{key}: expected a string like \"0-2,4\"")
    try:
        return convert.parse_cpu_list(value)
    except ValueError as e:
        raise RuntimeUserError(f"{where}.{key}: {e}") from None


def _device_entries(block: dict, key: str, value_key: str, where: str, *, minimum=0, maximum=None):
    """[(index, major, minor, value)] for a blockIO per-device list."""
    entries = block.get(key) or []
    if not isinstance(entries, list):
        raise RuntimeUserError(f"{where}.{key}: expected a list")
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}.{key}[{i}]"
        if not isinstance(entry, dict):
            raise RuntimeUserError(f"{at}: expected an object")
        major = _int(entry, "major", at, minimum=0)
        minor = _int(entry, "minor", at, minimum=0)
        if major is None or minor is None:
            raise RuntimeUserError(f"{at}: major and minor are required")
        out.append((i, major, minor, _int(entry, value_key, at, minimum=minimum, maximum=maximum)))
    return out


# ---------------------------------------------------------------- sections

def _memory(resources: dict, v2: bool, ops: list[Op]) -> None:
    mem = _section(resources, "memory")
    if not mem:
        return
    w = f"{R}.memory"
    limit = _int(mem, "limit", w, minimum=0, special=(-1,))
    reservation = _int(mem, "reservation", w, minimum=0, special=(-1,))
    swap = _int(mem, "swap", w, minimum=0, special=(-1,))
    swappiness = _int(mem, "swappiness", w, minimum=0, maximum=100, special=(-1,))
    disable_oom = _bool(mem, "disableOOMKiller", w)
    check = _bool(mem, "checkBeforeUpdate", w)
    kernel_tcp = _int(mem, "kernelTCP", w, minimum=0, special=(-1,))
    if mem.get("kernel"):
        _warn(f"{w}.kernel: kernel memory settings are ignored (the kernel no longer limits them separately)")
    if limit and limit > 0 and swap and swap > 0 and swap < limit:
        raise RuntimeUserError(f"{w}.swap: memory+swap ({swap}) must not be below memory.limit ({limit})")
    if check and limit and limit > 0:
        ops.append(Op(f"{w}.limit", "memory", "check_usage", limit))

    if v2:
        try:
            swap_max = convert.v2_swap(swap, limit)
        except ValueError as e:
            raise RuntimeUserError(f"{w}.swap: {e}") from None
        if swap_max is not None:
            ops.append(Op(f"{w}.swap", "memory", "memory.swap.max", convert.limit_text(swap_max)))
        if limit:
            ops.append(Op(f"{w}.limit", "memory", "memory.max", convert.limit_text(limit)))
        if reservation:
            ops.append(Op(f"{w}.reservation", "memory", "memory.low", convert.limit_text(reservation)))
        if swappiness not in (None, -1):
            raise NotSupported(f"{w}.swappiness: cgroup v2 has no per-cgroup swappiness")
        if disable_oom:
            raise NotSupported(f"{w}.disableOOMKiller: cgroup v2 cannot disable the OOM killer")
        if kernel_tcp:
            _warn(f"{w}.kernelTCP: ignored, cgroup v2 counts socket memory in memory.max")
        return

    if limit == -1 and not swap:
        swap = -1  # "memory unlimited" means memory+swap unlimited too (runc does the same)
    if limit and swap:
        ops.append(Op(f"{w}.limit", "memory", "limit_and_swap", (limit, swap)))
    elif limit:
        ops.append(Op(f"{w}.limit", "memory", "limit_in_bytes", limit))
    elif swap:
        ops.append(Op(f"{w}.swap", "memory", "memsw_limit_in_bytes", swap))
    if reservation:
        ops.append(Op(f"{w}.reservation", "memory", "soft_limit_in_bytes", reservation))
    if swappiness not in (None, -1):
        ops.append(Op(f"{w}.swappiness", "memory", "swappiness", swappiness))
    if disable_oom:
        ops.append(Op(f"{w}.disableOOMKiller", "memory", "oom_control", 1))
    if kernel_tcp:
        # The runtime-spec sets it (runc 1.1 ignores it); a kernel without the file gets a
        # warning instead (see v1.py).
        ops.append(Op(f"{w}.kernelTCP", "memory", "kernel_tcp", kernel_tcp))


def _cpu(resources: dict, v2: bool, ops: list[Op]) -> None:
    cpu = _section(resources, "cpu")
    if not cpu:
        return
    w = f"{R}.cpu"
    shares = _int(cpu, "shares", w, minimum=convert.MIN_SHARES, maximum=convert.MAX_SHARES, special=(0,))
    quota = _int(cpu, "quota", w, minimum=convert.MIN_CFS_QUOTA, special=(0, -1))
    period = _int(cpu, "period", w, minimum=convert.MIN_CFS_PERIOD, maximum=convert.MAX_CFS_PERIOD, special=(0,))
    burst = _int(cpu, "burst", w, minimum=0)
    rt_runtime = _int(cpu, "realtimeRuntime", w, minimum=0, special=(-1,))
    rt_period = _int(cpu, "realtimePeriod", w, minimum=0)
    idle = _int(cpu, "idle", w, minimum=0, maximum=1)
    cpus = _cpu_list(cpu, "cpus", w)
    mems = _cpu_list(cpu, "mems", w)

    if v2:
        if shares:
            ops.append(Op(f"{w}.shares", "cpu", "cpu.weight", str(convert.shares_to_weight(shares))))
        text = convert.cpu_max(quota, period)
        if text:
            ops.append(Op(f"{w}.quota" if quota else f"{w}.period", "cpu", "cpu.max", text))
        if burst is not None:
            ops.append(Op(f"{w}.burst", "cpu", "cpu.max.burst", str(burst)))
        if rt_runtime or rt_period:
            raise NotSupported(f"{w}.realtimeRuntime: cgroup v2 has no realtime CPU bandwidth control")
        if idle is not None:
            ops.append(Op(f"{w}.idle", "cpu", "cpu.idle", str(idle)))
        if cpus is not None:
            ops.append(Op(f"{w}.cpus", "cpuset", "cpuset.cpus", convert.format_cpu_list(cpus)))
        if mems is not None:
            ops.append(Op(f"{w}.mems", "cpuset", "cpuset.mems", convert.format_cpu_list(mems)))
        return

    if shares:
        ops.append(Op(f"{w}.shares", "cpu", "shares", shares))
    if period and quota:
        # One step: which write must go first depends on the values in place (see v1.py).
        ops.append(Op(f"{w}.period", "cpu", "period_and_quota", (period, quota)))
    elif period:
        ops.append(Op(f"{w}.period", "cpu", "cfs_period_us", period))
    elif quota:
        ops.append(Op(f"{w}.quota", "cpu", "cfs_quota_us", quota))
    if burst is not None:
        ops.append(Op(f"{w}.burst", "cpu", "cfs_burst_us", burst))
    if rt_period:
        ops.append(Op(f"{w}.realtimePeriod", "cpu", "rt_period_us", rt_period))
    if rt_runtime:
        # A step: the parents may need runtime of their own first (see rt.py).
        ops.append(Op(f"{w}.realtimeRuntime", "cpu", "rt_runtime", (rt_runtime, rt_period)))
    if idle is not None:
        ops.append(Op(f"{w}.idle", "cpu", "idle", idle))
    if cpus is not None:
        ops.append(Op(f"{w}.cpus", "cpuset", "cpus", set(cpus)))
    if mems is not None:
        ops.append(Op(f"{w}.mems", "cpuset", "mems", set(mems)))


def _pids(resources: dict, v2: bool, ops: list[Op]) -> None:
    pids = _section(resources, "pids")
    limit = _int(pids, "limit", f"{R}.pids")
    if not limit:
        return  # 0 or absent: leave the cgroup's limit alone
    if v2:
        ops.append(Op(f"{R}.pids.limit", "pids", "pids.max", convert.limit_text(limit)))
    else:
        ops.append(Op(f"{R}.pids.limit", "pids", "max", limit if limit > 0 else None))


def _block_io(resources: dict, v2: bool, ops: list[Op]) -> None:
    block = _section(resources, "blockIO")
    if not block:
        return
    w = f"{R}.blockIO"
    lo, hi = convert.MIN_BLKIO_WEIGHT, convert.MAX_BLKIO_WEIGHT
    weight = _int(block, "weight", w, minimum=lo, maximum=hi, special=(0,))
    leaf = _int(block, "leafWeight", w, minimum=lo, maximum=hi, special=(0,))
    per_dev = _device_entries(block, "weightDevice", "weight", w, minimum=lo, maximum=hi)
    leaf_dev = _device_entries(block, "weightDevice", "leafWeight", w, minimum=lo, maximum=hi)
    throttles = {
        key: _device_entries(block, key, "rate", w)
        for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                    "throttleReadIOPSDevice", "throttleWriteIOPSDevice")
    }
    for key, entries in throttles.items():
        for i, _maj, _min, rate in entries:
            if rate is None:
                raise RuntimeUserError(f"{w}.{key}[{i}].rate: required")

    if v2:
        if weight:
            ops.append(Op(f"{w}.weight", "io", "io.weight", (None, weight)))
        if leaf or any(v for *_, v in leaf_dev):
            raise NotSupported(f"{w}.leafWeight: cgroup v2 has no leaf weight")
        for i, major, minor, value in per_dev:
            if value:
                ops.append(Op(f"{w}.weightDevice[{i}].weight", "io", "io.weight", (f"{major}:{minor}", value)))
        names = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
                 "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}
        for key, entries in throttles.items():
            for i, major, minor, rate in entries:
                # In v1 a rate of 0 removes the limit; "max" does the same in io.max.
                text = f"{major}:{minor} {names[key]}={rate or 'max'}"
                ops.append(Op(f"{w}.{key}[{i}]", "io", "io.max", text))
        return

    if weight:
        ops.append(Op(f"{w}.weight", "blkio", "weight", weight))
    if leaf:
        ops.append(Op(f"{w}.leafWeight", "blkio", "leaf_weight", leaf))
    for i, major, minor, value in per_dev:
        if value:
            ops.append(Op(f"{w}.weightDevice[{i}].weight", "blkio", "weight_device", f"{major}:{minor} {value}"))
    for i, major, minor, value in leaf_dev:
        if value:
            ops.append(Op(f"{w}.weightDevice[{i}].leafWeight", "blkio", "leaf_weight_device",
                          f"{major}:{minor} {value}"))
    attrs = {"throttleReadBpsDevice": "throttle_read_bps_device",
             "throttleWriteBpsDevice": "throttle_write_bps_device",
             "throttleReadIOPSDevice": "throttle_read_iops_device",
             "throttleWriteIOPSDevice": "throttle_write_iops_device"}
    for key, entries in throttles.items():
        for i, major, minor, rate in entries:
            ops.append(Op(f"{w}.{key}[{i}]", "blkio", attrs[key], f"{major}:{minor} {rate}"))


def hugepage_ops(resources: dict, v2: bool, host_sizes=None) -> list[Op]:
    """hugepageLimits alone: the hybrid driver sends these to the unified hierarchy."""
    ops: list[Op] = []
    for i, entry in enumerate(_section(resources, "hugepageLimits", list)):
        at = f"{R}.hugepageLimits[{i}]"
        if not isinstance(entry, dict):
            raise RuntimeUserError(f"{at}: expected an object")
        size = entry.get("pageSize")
        try:
            convert.hugepage_size_bytes(size if isinstance(size, str) else "")
        except ValueError as e:
            raise RuntimeUserError(f"{at}.pageSize: {e}") from None
        if host_sizes is not None and size not in host_sizes:
            raise NotSupported(f"{at}.pageSize: this host has no {size} huge pages "
                               f"(available: {', '.join(host_sizes) or 'none'})")
        limit = _int(entry, "limit", at, minimum=0, special=(-1,))
        if limit is None:
            raise RuntimeUserError(f"{at}.limit: required")
        if v2:
            ops.append(Op(f"{at}.limit", "hugetlb", f"hugetlb.{size}.max", convert.limit_text(limit)))
        else:
            ops.append(Op(f"{at}.limit", "hugetlb", f"limit:{size}", limit))
    return ops


def _network(resources: dict, v2: bool, ops: list[Op]) -> None:
    net = _section(resources, "network")
    if not net:
        return
    w = f"{R}.network"
    class_id = _int(net, "classID", w, minimum=0, maximum=(1 << 32) - 1)
    prios = net.get("priorities") or []
    if not isinstance(prios, list):
        raise RuntimeUserError(f"{w}.priorities: expected a list")
    if v2 and (class_id is not None or prios):
        raise NotSupported(f"{w}: net_cls and net_prio exist only in cgroup v1")
    if class_id is not None:
        ops.append(Op(f"{w}.classID", "net_cls", "class_id", class_id))
    for i, entry in enumerate(prios):
        at = f"{w}.priorities[{i}]"
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise RuntimeUserError(f"{at}.name: expected an interface name")
        prio = _int(entry, "priority", at, minimum=0, maximum=(1 << 32) - 1)
        if prio is None:
            raise RuntimeUserError(f"{at}.priority: required")
        ops.append(Op(at, "net_prio", "ifpriomap", f"{name} {prio}"))


def _unified(resources: dict, v2: bool, ops: list[Op]) -> None:
    unified = _section(resources, "unified")
    if not unified:
        return
    if not v2:
        # runc's check and wording; on a hybrid host too, whose unified part is not the
        # container's only hierarchy
        raise NotSupported(f"invalid configuration: {R}.unified: cannot use unified on cgroup v1")
    for key, value in unified.items():
        at = f"{R}.unified.{key}"
        if not isinstance(value, str):
            raise RuntimeUserError(f"{at}: expected a string value")
        if "/" in key or key.startswith(".") or "." not in key or "\n" in key:
            raise RuntimeUserError(f"{at}: not a cgroup interface file name")
        controller = key.split(".", 1)[0]
        if controller == "cgroup" and key not in ("cgroup.max.depth", "cgroup.max.descendants"):
            raise RuntimeUserError(f"{at}: the runtime manages this file itself")
        ops.append(Op(at, controller, key, value))


def _rdma(resources: dict) -> None:
    if resources.get("rdma"):
        raise NotSupported(f"{R}.rdma: the rdma controller is not supported")


# ---------------------------------------------------------------- plans

def plan_v1(resources: dict | None, *, with_devices: bool = False, hugepages: bool = True,
            host_hugepage_sizes=None) -> list[Op]:
    """Ops for the v1 driver. `with_devices` adds the device rules (the defaults and the
    config's) as one step whose value is the devices.DeviceState they lead to."""
    resources = _checked(resources)
    ops: list[Op] = []
    _memory(resources, False, ops)
    _cpu(resources, False, ops)
    _pids(resources, False, ops)
    _block_io(resources, False, ops)
    if hugepages:
        ops += hugepage_ops(resources, False, host_hugepage_sizes)
    _network(resources, False, ops)
    _unified(resources, False, ops)
    _rdma(resources)
    if with_devices:
        target = devices.emulate(devices.named_rules(resources.get("devices")))
        ops.append(Op(devices.FIELD, "devices", "rules", target))
    return ops


def plan_v2(resources: dict | None, *, host_hugepage_sizes=None) -> list[Op]:
    """Ops for the unified hierarchy (device rules are handled apart: they need eBPF)."""
    resources = _checked(resources)
    ops: list[Op] = []
    _memory(resources, True, ops)
    _cpu(resources, True, ops)
    _pids(resources, True, ops)
    _block_io(resources, True, ops)
    ops += hugepage_ops(resources, True, host_hugepage_sizes)
    _network(resources, True, ops)
    _unified(resources, True, ops)
    _rdma(resources)
    return ops


def _checked(resources) -> dict:
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise RuntimeUserError(f"{R}: expected an object")
    return resources


def merge(base: dict | None, update: dict | None) -> dict:
    """Resources after an update: objects merge key by key, anything else is replaced.

    `update` reuses what the container was created with, because some settings only make
    sense together (quota with period, swap with limit) and the drivers need both.
    """
    result = dict(base or {})
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result
