"""A cgroup tree in a temporary directory for the drivers' tests, and a recorder of what they
write."""

import os

PATH = "/pyruntime-test/fake"

V1_FILES = {
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.swappiness", "memory.oom_control", "memory.usage_in_bytes", "cgroup.procs"],
    "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us", "cpu.rt_period_us",
            "cpu.rt_runtime_us", "cpu.idle", "cgroup.procs"],
    "cpuset": ["cpuset.cpus", "cpuset.mems", "cgroup.procs"],
    "pids": ["pids.max", "cgroup.procs"],
    "blkio": ["blkio.bfq.weight", "blkio.bfq.weight_device", "blkio.throttle.read_bps_device",
              "blkio.throttle.write_bps_device", "blkio.throttle.read_iops_device",
              "blkio.throttle.write_iops_device", "cgroup.procs"],
    "hugetlb": ["hugetlb.2MB.limit_in_bytes", "cgroup.procs"],
    "net_cls": ["net_cls.classid", "cgroup.procs"],
    "net_prio": ["net_prio.ifpriomap", "cgroup.procs"],
    "devices": ["devices.allow", "devices.deny", "cgroup.procs"],
    "freezer": ["freezer.state", "cgroup.procs"],
}


class Recorder:
    """Turns each file of the fake tree into a log of the writes it received."""

    def __init__(self, monkeypatch, base):
        from cgroupspy import controllers

        import pyruntime.cgroups.files as files_mod

        self.writes = []
        base = str(base)
        real_write_text = files_mod.write_text

        def record(path, value):
            if str(path).startswith(base):
                self.writes.append((os.path.relpath(path, base), value))
            real_write_text(path, value)

        real_set = controllers.Controller.set_property

        def set_property(ctrl, filename, value):
            path = ctrl.filepath(filename)
            path = path.decode() if isinstance(path, bytes) else path
            self.writes.append((os.path.relpath(path, base), str(value)))
            return real_set(ctrl, filename, value)

        monkeypatch.setattr(controllers.Controller, "set_property", set_property)
        for mod in ("pyruntime.cgroups.files", "pyruntime.cgroups.v1", "pyruntime.cgroups.v2"):
            monkeypatch.setattr(f"{mod}.write_text", record)

    def to(self, suffix):
        return [v for p, v in self.writes if p.endswith(suffix)]


def fake_v1(tmp_path, cpus="0-1"):
    hierarchies = {}
    for ctrl, files in V1_FILES.items():
        mount = tmp_path / ctrl
        leaf = mount / PATH.strip("/")
        leaf.mkdir(parents=True)
        for f in files:
            (leaf / f).write_text("")
        if ctrl == "cpuset":
            for d in (mount, mount / "pyruntime-test"):
                (d / "cpuset.cpus").write_text(cpus + "\n")
                (d / "cpuset.mems").write_text("0\n")
            (mount / "pyruntime-test" / "cpuset.cpus").write_text("\n")  # an empty middle level
        if ctrl == "memory":
            (leaf / "memory.limit_in_bytes").write_text("9223372036854771712\n")
            (leaf / "memory.usage_in_bytes").write_text(str(40 << 20) + "\n")
        hierarchies[ctrl] = str(mount)
    return hierarchies
