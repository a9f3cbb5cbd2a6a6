"""runc update's flags as the OCI linux.resources to change.

The CLI passes the flag values as given (text); this turns them into the resources dict
CgroupManager.update() merges, with runc's units, special values and messages.
"""

from __future__ import annotations

from collections.abc import Callable

from pyruntime.errors import RuntimeUserError

from . import convert


def _uint(flag: str, text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise RuntimeUserError(f"invalid value for --{flag}: {text!r} is not a whole number") from None
    if value < 0:
        raise RuntimeUserError(f"invalid value for --{flag}: {text!r} must not be negative")
    return value


def _int(flag: str, text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise RuntimeUserError(f"invalid value for --{flag}: {text!r} is not an integer") from None


def _bytes(flag: str, text: str) -> int:
    if text.strip() == "-1":
        return -1
    try:
        return convert.ram_in_bytes(text)
    except ValueError as e:
        raise RuntimeUserError(f"invalid value for --{flag}: {e}") from None


def load_resources_json(source: str, stdin=None) -> dict:
    """`update -r FILE` / `-r -`: an OCI linux.resources object from a file or stdin."""
    import json

    try:
        if source == "-":
            text = (stdin if stdin is not None else __import__("sys").stdin).read()
        else:
            with open(source) as f:
                text = f.read()
        data = json.loads(text)
    except OSError as e:
        raise RuntimeUserError(f"cannot read resources from {source}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RuntimeUserError(f"resources in {source} are not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise RuntimeUserError(f"resources in {source} must be a JSON object")
    return data


def update_from_flags(*, resources: str | None = None, stdin=None,
                      memory: str | None = None, memory_swap: str | None = None,
                      memory_reservation: str | None = None, kernel_memory: str | None = None,
                      kernel_memory_tcp: str | None = None,
                      cpu_period: str | None = None, cpu_quota: str | None = None,
                      cpu_burst: str | None = None, cpu_share: str | None = None,
                      cpu_rt_period: str | None = None, cpu_rt_runtime: str | None = None,
                      cpuset_cpus: str | None = None, cpuset_mems: str | None = None,
                      cpu_idle: str | None = None, pids_limit: int | str | None = None,
                      blkio_weight: int | str | None = None,
                      warn: Callable[[str], None] | None = None) -> dict:
    """runc update's flags as the OCI resources to change (only what was given).

    As in runc: with `resources` (-r FILE or -r -) every other flag is ignored; memory sizes
    take units ("512m", "1g") or -1 for unlimited; --memory -1 without --memory-swap also
    lifts the swap limit; --kernel-memory-tcp sets memory.kernelTCP (applied where the v1
    kernel has the file), --kernel-memory is accepted and ignored with a warning;
    a zero --blkio-weight or --pids-limit means "leave as is".
    """
    if resources:
        return load_resources_json(resources, stdin)
    if warn is None:
        from .resources import _warn as warn

    out: dict = {}

    def put(section: str, key: str, value) -> None:
        out.setdefault(section, {})[key] = value

    if blkio_weight not in (None, "", 0, "0"):
        weight = _uint("blkio-weight", str(blkio_weight))
        if weight > 65535:
            raise RuntimeUserError(f"invalid value for --blkio-weight: {weight} is too large")
        put("blockIO", "weight", weight)
    if cpuset_cpus:
        put("cpu", "cpus", cpuset_cpus)
    if cpuset_mems:
        put("cpu", "mems", cpuset_mems)
    if cpu_idle:
        put("cpu", "idle", _int("cpu-idle", cpu_idle))
    for flag, key, text in (("cpu-burst", "burst", cpu_burst), ("cpu-period", "period", cpu_period),
                            ("cpu-rt-period", "realtimePeriod", cpu_rt_period),
                            ("cpu-share", "shares", cpu_share)):
        if text:
            put("cpu", key, _uint(flag, text))
    for flag, key, text in (("cpu-quota", "quota", cpu_quota), ("cpu-rt-runtime", "realtimeRuntime", cpu_rt_runtime)):
        if text:
            put("cpu", key, _int(flag, text))
    for flag, key, text in (("memory", "limit", memory), ("memory-swap", "swap", memory_swap),
                            ("memory-reservation", "reservation", memory_reservation),
                            ("kernel-memory-tcp", "kernelTCP", kernel_memory_tcp)):
        if text:
            put("memory", key, _bytes(flag, text))
    if kernel_memory:
        warn("setting --kernel-memory is ignored: kernel memory is no longer limited separately")
    if out.get("memory", {}).get("limit") == -1 and "swap" not in out["memory"]:
        put("memory", "swap", -1)
    if pids_limit not in (None, ""):
        limit = _int("pids-limit", str(pids_limit))
        if limit:
            put("pids", "limit", limit)
    return out
