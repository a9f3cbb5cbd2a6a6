"""Statistics in runc's `events --stats` shape, built from cgroup files.

The parsers take file contents; `v1_stats` / `v2_stats` take a reader function
(name -> text or None) so the same code runs on a real cgroup and on recorded samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from . import convert

MAX_UINT64 = (1 << 64) - 1
# cpuacct.stat counts in clock ticks; runc reports nanoseconds.
_NS_PER_TICK = 10 ** 9 // (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def flat_keyed(text: str | None) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat, memory.events...) to a dict of ints."""
    result: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return result


def single_int(text: str | None, default: int = 0) -> int:
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return MAX_UINT64
    try:
        return int(text)
    except ValueError:
        return default


def int_list(text: str | None) -> list[int]:
    return [int(x) for x in (text or "").split()]


def blkio_entries(text: str | None) -> list[dict]:
    """blkio.*_recursive lines ("8:0 Read 4096") to runc BlkioEntry objects; "Total" is skipped."""
    entries = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            entries.append(_blkio_entry(int(major), int(minor), parts[1], int(parts[2])))
        elif len(parts) == 2 and ":" in parts[0]:  # files without an op column (sectors, time)
            major, minor = parts[0].split(":")
            entries.append(_blkio_entry(int(major), int(minor), "", int(parts[1])))
    return entries


def _blkio_entry(major: int, minor: int, op: str, value: int) -> dict:
    # runc omits zero fields (omitempty): keep the JSON identical.
    entry: dict = {}
    if major:
        entry["major"] = major
    if minor:
        entry["minor"] = minor
    if op:
        entry["op"] = op
    if value:
        entry["value"] = value
    return entry


def io_stat_entries(text: str | None) -> tuple[list[dict], list[dict]]:
    """v2 io.stat to (bytes entries, ios entries) with v1 op names Read/Write/Discard."""
    by_bytes, by_ios = [], []
    names = {"rbytes": ("bytes", "Read"), "wbytes": ("bytes", "Write"), "dbytes": ("bytes", "Discard"),
             "rios": ("ios", "Read"), "wios": ("ios", "Write"), "dios": ("ios", "Discard")}
    for line in (text or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        for kv in parts[1:]:
            key, _, value = kv.partition("=")
            if key in names:
                kind, op = names[key]
                target = by_bytes if kind == "bytes" else by_ios
                target.append(_blkio_entry(major, minor, op, int(value)))
    return by_bytes, by_ios


def _omit_zero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v not in (0, [], None, {})}


def _memory_entry(limit: int, usage: int, max_: int, failcnt: int) -> dict:
    entry = {"limit": limit}
    if usage:
        entry["usage"] = usage
    if max_:
        entry["max"] = max_
    entry["failcnt"] = failcnt
    return entry


def _cpuset(read: Callable[[str], str | None], v2: bool) -> dict:
    def ids(name):
        text = read(name)
        return convert.parse_cpu_list(text) if text and text.strip() else []

    prefix = "cpuset.cpus.effective" if v2 else "cpuset.effective_cpus"
    cpus = ids("cpuset.cpus") or ids(prefix)
    mems = ids("cpuset.mems") or ids("cpuset.mems.effective" if v2 else "cpuset.effective_mems")
    result: dict = {}
    if cpus:
        result["cpus"] = cpus
    if v2:
        for key in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                    "memory_spread_page", "memory_spread_slab", "memory_pressure",
                    "sched_load_balance"):
            result[key] = 0
        result["sched_relax_domain_level"] = 0
    else:
        for key in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                    "memory_spread_page", "memory_spread_slab", "memory_pressure",
                    "sched_load_balance"):
            result[key] = single_int(read(f"cpuset.{key}"))
        result["sched_relax_domain_level"] = single_int(read("cpuset.sched_relax_domain_level"))
    if mems:
        result["mems"] = mems
    return result


def v1_stats(read_controller: Callable[[str, str], str | None], hugepage_sizes,
             hugetlb_v2: Callable[[str], str | None] | None = None) -> dict:
    """Stats from v1 hierarchies; `read_controller(controller, file)` returns text or None."""
    cpuacct = lambda name: read_controller("cpuacct", name)  # noqa: E731
    cpu = lambda name: read_controller("cpu", name)  # noqa: E731
    mem = lambda name: read_controller("memory", name)  # noqa: E731

    acct = flat_keyed(cpuacct("cpuacct.stat"))
    usage = _omit_zero({
        "total": single_int(cpuacct("cpuacct.usage")),
        "percpu": int_list(cpuacct("cpuacct.usage_percpu")),
        "percpu_kernel": int_list(cpuacct("cpuacct.usage_percpu_sys")),
        "percpu_user": int_list(cpuacct("cpuacct.usage_percpu_user")),
    })
    usage["kernel"] = acct.get("system", 0) * _NS_PER_TICK
    usage["user"] = acct.get("user", 0) * _NS_PER_TICK
    throttle = flat_keyed(cpu("cpu.stat"))
    cpu_stats = {"usage": usage, "throttling": _omit_zero({
        "periods": throttle.get("nr_periods", 0),
        "throttledPeriods": throttle.get("nr_throttled", 0),
        "throttledTime": throttle.get("throttled_time", 0),
    })}

    raw = flat_keyed(mem("memory.stat"))
    oom = flat_keyed(mem("memory.oom_control"))

    def entry(prefix):
        return _memory_entry(single_int(mem(f"{prefix}.limit_in_bytes")), single_int(mem(f"{prefix}.usage_in_bytes")),
                             single_int(mem(f"{prefix}.max_usage_in_bytes")), single_int(mem(f"{prefix}.failcnt")))

    memory = {}
    if raw.get("cache"):
        memory["cache"] = raw["cache"]
    memory.update({"usage": entry("memory"), "swap": entry("memory.memsw"),
                   "kernel": entry("memory.kmem"), "kernelTCP": entry("memory.kmem.tcp")})
    if raw:
        memory["raw"] = raw
    memory["event_count"] = _omit_zero({"oom": oom.get("under_oom", 0), "oom_kill": oom.get("oom_kill", 0)})

    pids = _omit_zero({"current": single_int(read_controller("pids", "pids.current")),
                       "limit": _pids_limit(read_controller("pids", "pids.max"))})

    blkio_read = lambda name: read_controller("blkio", name)  # noqa: E731
    blkio = {}
    bfq_bytes = blkio_entries(blkio_read("blkio.bfq.io_service_bytes_recursive"))
    if bfq_bytes:
        blkio["ioServiceBytesRecursive"] = bfq_bytes
        blkio["ioServicedRecursive"] = blkio_entries(blkio_read("blkio.bfq.io_serviced_recursive"))
    else:
        blkio["ioServiceBytesRecursive"] = blkio_entries(blkio_read("blkio.throttle.io_service_bytes_recursive"))
        blkio["ioServicedRecursive"] = blkio_entries(blkio_read("blkio.throttle.io_serviced_recursive"))
    blkio = _omit_zero(blkio)

    hugetlb = {}
    for size in hugepage_sizes:
        if hugetlb_v2 is not None:
            hugetlb[size] = _hugetlb_v2(hugetlb_v2, size)
        else:
            h = lambda name: read_controller("hugetlb", f"hugetlb.{size}.{name}")  # noqa: E731
            hugetlb[size] = _omit_zero({"usage": single_int(h("usage_in_bytes")),
                                        "max": single_int(h("max_usage_in_bytes"))})
            hugetlb[size]["failcnt"] = single_int(h("failcnt"))

    return {"cpu": cpu_stats, "cpuset": _cpuset(lambda n: read_controller("cpuset", n), False),
            "memory": memory, "pids": pids, "blkio": blkio, "hugetlb": hugetlb,
            "intel_rdt": {}, "network_interfaces": None}


def _pids_limit(text: str | None) -> int:
    # runc reports 0 for "max": the field means "no limit" when absent.
    value = single_int(text)
    return 0 if value == MAX_UINT64 else value


def _hugetlb_v2(read: Callable[[str], str | None], size: str) -> dict:
    current = single_int(read(f"hugetlb.{size}.current"))
    result = _omit_zero({"usage": current, "max": current})
    result["failcnt"] = flat_keyed(read(f"hugetlb.{size}.events")).get("max", 0)
    return result


def v2_stats(read: Callable[[str], str | None], hugepage_sizes) -> dict:
    """Stats from one unified-hierarchy cgroup; `read(file)` returns text or None."""
    cpu = flat_keyed(read("cpu.stat"))
    usage = _omit_zero({"total": cpu.get("usage_usec", 0) * 1000})
    usage["kernel"] = cpu.get("system_usec", 0) * 1000
    usage["user"] = cpu.get("user_usec", 0) * 1000
    cpu_stats = {"usage": usage, "throttling": _omit_zero({
        "periods": cpu.get("nr_periods", 0),
        "throttledPeriods": cpu.get("nr_throttled", 0),
        "throttledTime": cpu.get("throttled_usec", 0) * 1000,
    })}

    raw = flat_keyed(read("memory.stat"))
    events = flat_keyed(read("memory.events"))
    current = single_int(read("memory.current"))
    swap_current = single_int(read("memory.swap.current"))
    memory: dict = {}
    if raw.get("file"):
        memory["cache"] = raw["file"]
    memory["usage"] = _memory_entry(single_int(read("memory.max"), MAX_UINT64), current,
                                    single_int(read("memory.peak")), events.get("max", 0))
    # v1 reported memory+swap under "swap"; keep that meaning so consumers see the same thing.
    memory["swap"] = _memory_entry(single_int(read("memory.swap.max"), MAX_UINT64), current + swap_current,
                                   0, events.get("max", 0) if swap_current else 0)
    memory["kernel"] = _memory_entry(0, 0, 0, 0)
    memory["kernelTCP"] = _memory_entry(0, 0, 0, 0)
    if raw:
        memory["raw"] = raw
    memory["event_count"] = _omit_zero({k: events.get(k, 0) for k in ("low", "high", "max", "oom", "oom_kill")})

    pids = _omit_zero({"current": single_int(read("pids.current")), "limit": _pids_limit(read("pids.max"))})
    by_bytes, by_ios = io_stat_entries(read("io.stat"))
    blkio = _omit_zero({"ioServiceBytesRecursive": by_bytes, "ioServicedRecursive": by_ios})
    hugetlb = {size: _hugetlb_v2(read, size) for size in hugepage_sizes}
    return {"cpu": cpu_stats, "cpuset": _cpuset(read, True), "memory": memory, "pids": pids,
            "blkio": blkio, "hugetlb": hugetlb, "intel_rdt": {}, "network_interfaces": None}
