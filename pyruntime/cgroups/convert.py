"""Pure value conversions between the OCI resources, cgroup v1 and cgroup v2.

The OCI runtime-spec describes resources in cgroup v1 terms (shares, blkio weight, memory+swap
totals). On the unified hierarchy the same intent is expressed with other scales and meanings,
and the formulas below are the ones runc and crun use, so a container gets the same weight
whichever runtime starts it.
"""

from __future__ import annotations

UNLIMITED = -1

# cpu.shares range accepted by the kernel (values outside are silently clamped, so we refuse them).
MIN_SHARES = 2
MAX_SHARES = 262144
# cpu.cfs_period_us range (1 ms .. 1 s) and the smallest quota the kernel accepts.
MIN_CFS_PERIOD = 1000
MAX_CFS_PERIOD = 1000000
MIN_CFS_QUOTA = 1000
# blkio.weight / blkio.leaf_weight range (CFQ and BFQ).
MIN_BLKIO_WEIGHT = 10
MAX_BLKIO_WEIGHT = 1000


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) to cpu.weight (1..10000, default 100); 0 stays unset."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) to io.weight (1..10000); 0 stays unset."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def v2_swap(swap: int | None, limit: int | None) -> int | None:
    """OCI memory.swap (memory+swap total, v1 memsw meaning) to v2 memory.swap.max (swap only).

    Returns None when nothing is to be written, -1 for "max". Raises ValueError when the pair
    cannot be expressed (swap without a memory limit, or a total below the memory limit).
    """
    swap = swap or 0
    limit = limit or 0
    if limit == UNLIMITED and swap == 0:
        # Same compatibility rule as v1: "memory unlimited" means swap unlimited too.
        return UNLIMITED
    if swap == 0:
        return None
    if swap == UNLIMITED:
        return UNLIMITED
    if limit in (0, UNLIMITED):
        raise ValueError("a swap limit needs a memory limit")
    if swap < limit:
        raise ValueError(f"memory+swap ({swap}) must not be below the memory limit ({limit})")
    return swap - limit


def limit_text(value: int) -> str:
    """Integer limit as the unified hierarchy writes it: negative means "max"."""
    return "max" if value < 0 else str(value)


def parse_limit(text: str) -> int:
    """A v2 limit file ("max" or a number) back to an int, -1 meaning unlimited."""
    text = text.strip()
    return UNLIMITED if text == "max" else int(text)


def cpu_max(quota: int | None, period: int | None) -> str | None:
    """cpu.max content for an OCI quota/period pair, or None when neither is set.

    A missing or non-positive quota means "max": this mirrors how v1 treats -1 in cfs_quota_us.
    """
    quota = quota or 0
    period = period or 0
    if quota == 0 and period == 0:
        return None
    text = str(quota) if quota > 0 else "max"
    if period:
        text += f" {period}"
    return text


# Patterns as text, and re imported by the functions that use them: a create whose limits
# need none of them never imports re (~5 ms with the enum and functools it pulls in).
_CPU_LIST = r"\d+(-\d+)?(,\d+(-\d+)?)*"


def parse_cpu_list(text: str) -> list[int]:
    """A cpuset list ("0-2,4") to the sorted list of ids; ValueError if malformed."""
    import re

    text = text.strip()
    if not re.fullmatch(_CPU_LIST, text):
        raise ValueError(f"{text!r} is not a list of ids like 0-2,4")
    ids: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if hi < lo:
            raise ValueError(f"range {part!r} runs backwards")
        ids.update(range(lo, hi + 1))
    return sorted(ids)


def format_cpu_list(ids) -> str:
    """The inverse of parse_cpu_list, with runs compressed ("0-2,4")."""
    ids = sorted(set(ids))
    parts = []
    start = prev = None
    for i in ids:
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


_RAM = r"(?i)(\d+(?:\.\d+)?) ?([kmgtp])?i?b?"
_RAM_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """A human memory size ("512m", "1.5GiB", "4096") to bytes, with binary units.

    This is the syntax runc's update flags accept (docker's units.RAMInBytes).
    """
    import re

    m = re.fullmatch(_RAM, text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a size like 512m, 1g or a number of bytes")
    number, unit = m.groups()
    return int(float(number) * _RAM_UNITS[unit.lower() if unit else None])


_PAGE_SIZE = r"(\d+)([KMG]B)"
_PAGE_UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def hugepage_size_bytes(page_size: str) -> int:
    """OCI hugepage size ("2MB", "1GB") to bytes; ValueError if not in that form."""
    import re

    m = re.fullmatch(_PAGE_SIZE, page_size)
    if not m:
        raise ValueError(f"{page_size!r} is not a page size like 2MB or 1GB")
    return int(m.group(1)) * _PAGE_UNITS[m.group(2)]


def hugepage_size_name(size_bytes: int) -> str:
    """Bytes to the name the hugetlb controller uses in its file names ("2MB", "1GB")."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor}{unit}"
    raise ValueError(f"{size_bytes} is not a whole number of KB")


def host_hugepage_sizes(sysfs: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """Hugepage sizes this kernel supports, in the controller's naming ("2MB", "1GB")."""
    import os

    try:
        entries = os.listdir(sysfs)
    except FileNotFoundError:
        return []
    sizes = sorted(int(entry[len("hugepages-"):-2]) * 1024 for entry in entries
                   if entry.startswith("hugepages-") and entry.endswith("kB"))
    return [hugepage_size_name(size) for size in sizes]
