"""cgroup v1 controller objects: cgroupspy's, completed where it stops.

cgroupspy models a controller as a class whose attributes are file interfaces (descriptors
that parse and format one cgroup file). It covers cpu, cpuacct, cpuset, memory, devices, blkio,
net_cls and net_prio, but has no pids, freezer or hugetlb controller, names the blkio throttle
write files with a trailing space, and predates BFQ (blkio.bfq.weight) and cpu.cfs_burst_us.
The classes below fill those gaps in cgroupspy's own shape, so the v1 driver drives every
controller the same way: `setattr(controller, key, value)`.

This module imports cgroupspy and is only loaded when resources are applied.
"""

from __future__ import annotations

import os

from cgroupspy import controllers as cs
from cgroupspy.contenttypes import DeviceThrottle
from cgroupspy.interfaces import BaseFileInterface, IntegerFile, TypedFile


class MaxIntegerFile(BaseFileInterface):
    """A limit that reads and writes "max" for unlimited (pids.max); None means unlimited."""

    def sanitize_get(self, value):
        return None if value.strip() == "max" else int(value)

    def sanitize_set(self, value):
        return "max" if value is None or int(value) < 0 else int(value)


class PlainFile(BaseFileInterface):
    """Text written and read as is (freezer.state, net_prio.ifpriomap lines)."""

    def sanitize_get(self, value):
        return value.strip()

    def sanitize_set(self, value):
        return str(value)


class FirstExistingFile(BaseFileInterface):
    """One setting that lives in one of several files depending on the kernel.

    blkio.weight belonged to the CFQ scheduler; with blk-mq the same knob is blkio.bfq.weight.
    """

    def __init__(self, *filenames, contenttype=None):
        super().__init__(filenames[0])
        self.filenames = [f.encode() for f in filenames]
        self.contenttype = contenttype

    def _pick(self, instance) -> bytes:
        for name in self.filenames:
            if os.path.exists(instance.filepath(name)):
                return name
        return self.filenames[0]  # the write then fails with ENOENT, which names the first file

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return instance.get_property(self._pick(instance)).strip()

    def __set__(self, instance, value):
        if self.contenttype is not None and isinstance(value, str):
            value = str(self.contenttype.from_string(value))
        return instance.set_property(self._pick(instance), str(value))

    def filename_for(self, instance) -> str:
        return self._pick(instance).decode()


class Cpu(cs.CpuController):
    cfs_burst_us = IntegerFile("cpu.cfs_burst_us")
    idle = IntegerFile("cpu.idle")


class Memory(cs.MemoryController):
    pass


class BlkIO(cs.BlkIOController):
    weight = FirstExistingFile("blkio.weight", "blkio.bfq.weight")
    weight_device = FirstExistingFile("blkio.weight_device", "blkio.bfq.weight_device",
                                      contenttype=DeviceThrottle)
    leaf_weight_device = TypedFile("blkio.leaf_weight_device", contenttype=DeviceThrottle)
    # One "major:minor rate" line per write: the kernel parses a single device at a time.
    throttle_read_bps_device = TypedFile("blkio.throttle.read_bps_device", contenttype=DeviceThrottle)
    throttle_write_bps_device = TypedFile("blkio.throttle.write_bps_device", contenttype=DeviceThrottle)
    throttle_read_iops_device = TypedFile("blkio.throttle.read_iops_device", contenttype=DeviceThrottle)
    throttle_write_iops_device = TypedFile("blkio.throttle.write_iops_device", contenttype=DeviceThrottle)


class NetPrio(cs.NetPrioController):
    ifpriomap = PlainFile("net_prio.ifpriomap")


class Pids(cs.Controller):
    max = MaxIntegerFile("pids.max")
    current = IntegerFile("pids.current", readonly=True)


class Freezer(cs.Controller):
    state = PlainFile("freezer.state")


class Hugetlb(cs.Controller):
    """Per page size files: hugetlb.<size>.limit_in_bytes; set with set_limit(size, bytes)."""

    def set_limit(self, size: str, limit: int) -> None:
        self.set_property(f"hugetlb.{size}.limit_in_bytes".encode(), str(limit))
        # Reservations have their own limit on kernels since 5.7: keep it equal.
        reserved = f"hugetlb.{size}.rsvd.limit_in_bytes".encode()
        if os.path.exists(self.filepath(reserved)):
            self.set_property(reserved, str(limit))


CLASSES = {
    "cpu": Cpu,
    "cpuacct": cs.CpuAcctController,
    "cpuset": cs.CpuSetController,
    "memory": Memory,
    "devices": cs.DevicesController,
    "blkio": BlkIO,
    "net_cls": cs.NetClsController,
    "net_prio": NetPrio,
    "pids": Pids,
    "freezer": Freezer,
    "hugetlb": Hugetlb,
}


class _Node:
    """The part of a cgroupspy Node a controller needs: where the cgroup directory is."""

    def __init__(self, directory: str):
        self.full_path = directory.encode()


def controller(name: str, directory: str):
    """The controller object for `name` acting on the cgroup at `directory`."""
    return CLASSES[name](_Node(directory))


def filename(ctrl, key: str) -> str:
    """Which file a controller attribute writes, for error messages."""
    for klass in type(ctrl).__mro__:
        iface = klass.__dict__.get(key)
        if isinstance(iface, FirstExistingFile):
            return iface.filename_for(ctrl)
        if isinstance(iface, BaseFileInterface):
            name = iface.filename
            return (name.decode() if isinstance(name, bytes) else name).strip()
    return key

