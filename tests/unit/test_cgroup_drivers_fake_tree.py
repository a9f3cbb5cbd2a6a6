"""Both drivers against temporary trees that mimic cgroupfs (no root needed).

These check the file formats the drivers write for controllers this machine does not offer
(memory, cpu, io, pids on the unified hierarchy; hugetlb, net_cls, net_prio on v1) and the
mechanics that do not need a kernel: which file, which text, in which order.
"""

import os

import pytest

from pyruntime.cgroups import CgroupManager
from pyruntime.cgroups.v1 import V1Manager
from pyruntime.cgroups.v2 import V2Manager
from pyruntime.errors import NotSupported, RuntimeUserError

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
        import pyruntime.cgroups.manager as manager_mod
        from cgroupspy import controllers

        self.writes = []
        base = str(base)
        real_write_text = manager_mod.write_text

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
        for mod in ("pyruntime.cgroups.manager", "pyruntime.cgroups.v1", "pyruntime.cgroups.v2"):
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


def test_v1_writes_through_controllers(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path)
    mgr = V1Manager(PATH, hierarchies=fake_v1(tmp_path))
    mgr.create({
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 1 << 20, "swappiness": 0},
        "cpu": {"shares": 256, "quota": 50000, "period": 100000, "cpus": "1"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 200, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 4096}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}],
        "network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 3}]},
        "devices": [{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}],
    })
    root = tmp_path / "cpuset"
    # cpuset: the empty middle level and the leaf were filled from the parent before use.
    assert (root / "pyruntime-test" / "cpuset.cpus").read_text() == "0-1"
    assert rec.to("fake/cpuset.cpus") == ["0-1", "1"]
    # From "unlimited", the memory limit can shrink first and memsw follows.
    mem = [p for p, _ in rec.writes if p.startswith("memory/")]
    assert mem[:2] == ["memory/pyruntime-test/fake/memory.limit_in_bytes",
                       "memory/pyruntime-test/fake/memory.memsw.limit_in_bytes"]
    assert rec.to("memory.limit_in_bytes") == [str(64 << 20)]
    assert rec.to("cpu.cfs_quota_us") == ["50000"]
    assert rec.to("pids.max") == ["max"]
    assert rec.to("blkio.bfq.weight") == ["200"]          # no CFQ: the BFQ file takes the weight
    assert rec.to("blkio.bfq.weight_device") == ["8:0 300"]
    assert rec.to("blkio.throttle.write_bps_device") == ["8:0 4096"]
    assert rec.to("hugetlb.2MB.limit_in_bytes") == [str(8 << 20)]
    assert rec.to("net_cls.classid") == ["1048577"]
    assert rec.to("net_prio.ifpriomap") == ["lo 3"]
    assert rec.to("devices.deny")[0] == "a *:* rwm"
    assert rec.to("devices.allow")[0] == "c 1:11 r"


def test_v1_memory_growth_writes_memsw_first(tmp_path, monkeypatch):
    # memory.limit_in_bytes <= memory.memsw.limit_in_bytes must hold after each write: when
    # the new total is above the current limit, memsw has to grow first.
    rec = Recorder(monkeypatch, tmp_path)
    hier = fake_v1(tmp_path)
    (tmp_path / "memory" / PATH.strip("/") / "memory.limit_in_bytes").write_text(str(32 << 20))
    V1Manager(PATH, hierarchies=hier).apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    mem = [p.rsplit("/", 1)[1] for p, _ in rec.writes if p.startswith("memory/")]
    assert mem == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_check_before_update_refuses_below_usage(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path)
    mgr = V1Manager(PATH, hierarchies=fake_v1(tmp_path))
    with pytest.raises(RuntimeUserError, match=r"memory.limit: .*below the current memory usage"):
        mgr.apply({"memory": {"limit": 10 << 20, "checkBeforeUpdate": True}})
    assert rec.to("memory.limit_in_bytes") == []
    mgr.apply({"memory": {"limit": 50 << 20, "checkBeforeUpdate": True}})
    assert rec.to("memory.limit_in_bytes") == [str(50 << 20)]


def test_v1_missing_controller_is_refused_before_anything_is_made(tmp_path):
    hier = {"memory": str(tmp_path / "memory")}
    (tmp_path / "memory").mkdir()
    mgr = V1Manager("/pyruntime-test/new", hierarchies=hier)
    with pytest.raises(NotSupported, match=r"linux.resources.pids.limit: the pids cgroup controller"):
        mgr.create({"pids": {"limit": 5}})
    assert not (tmp_path / "memory" / "pyruntime-test").exists()


def test_v1_kernel_refusal_rolls_back_and_names_field(tmp_path, monkeypatch):
    import errno

    from cgroupspy import controllers

    def refuse(ctrl, filename, value):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(controllers.Controller, "set_property", refuse)
    hier = {"memory": str(tmp_path / "memory")}
    (tmp_path / "memory").mkdir()
    mgr = V1Manager("/pyruntime-test/new", hierarchies=hier)
    with pytest.raises(RuntimeUserError, match=r"^linux.resources.memory.limit: cannot write '1048576' to "
                                               r"memory.limit_in_bytes: the kernel rejected the value"):
        mgr.create({"memory": {"limit": 1 << 20}})
    assert not (tmp_path / "memory" / "pyruntime-test").exists()


def test_v1_round_trip_through_dict(tmp_path):
    hier = fake_v1(tmp_path)
    mgr = V1Manager(PATH, hierarchies=hier, unified_mount=str(tmp_path / "unified"))
    again = CgroupManager.from_dict(mgr.to_dict())
    assert again.mode == "hybrid" and again.path == PATH
    assert again.directories() == mgr.directories()
    assert again.directories()[-1] == str(tmp_path / "unified" / "pyruntime-test" / "fake")


# ---------------------------------------------------------------- v2

V2_FILES = ["cgroup.procs", "cgroup.freeze", "cgroup.events", "cgroup.subtree_control", "memory.max",
            "memory.swap.max", "memory.low", "memory.current", "cpu.weight", "cpu.max", "cpu.max.burst",
            "cpuset.cpus", "cpuset.mems", "pids.max", "io.weight", "io.max", "hugetlb.2MB.max",
            "memory.high", "memory.events"]


def fake_v2(tmp_path, controllers="cpuset cpu io memory hugetlb pids"):
    root = tmp_path / "unified"
    leaf = root / PATH.strip("/")
    leaf.mkdir(parents=True)
    for d in (root, root / "pyruntime-test"):
        (d / "cgroup.controllers").write_text(controllers + "\n")
        (d / "cgroup.subtree_control").write_text("")
    for f in V2_FILES:
        (leaf / f).write_text("")
    (leaf / "memory.current").write_text(str(30 << 20) + "\n")
    return str(root), leaf


def test_v2_writes(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path)
    attached = []
    monkeypatch.setattr("pyruntime.cgroups.ebpf.attach", lambda d, rules: attached.append((d, rules)))
    root, leaf = fake_v2(tmp_path)
    mgr = V2Manager(PATH, root=root)
    mgr.create({
        "memory": {"limit": 100 << 20, "swap": 150 << 20},
        "cpu": {"shares": 2048, "quota": 25000, "period": 50000, "cpus": "0"},
        "pids": {"limit": 32},
        "blockIO": {"weight": 1000, "throttleReadIOPSDevice": [{"major": 254, "minor": 0, "rate": 50}]},
        "unified": {"memory.high": "80M"},
        "devices": [{"allow": False, "access": "rwm"}],
    })
    assert (leaf / "memory.max").read_text() == str(100 << 20)
    assert (leaf / "memory.swap.max").read_text() == str(50 << 20)
    assert (leaf / "cpu.weight").read_text() == "79"
    assert (leaf / "cpu.max").read_text() == "25000 50000"
    assert (leaf / "pids.max").read_text() == "32"
    assert (leaf / "io.weight").read_text() == "10000"
    assert (leaf / "io.max").read_text() == "254:0 riops=50"
    assert (leaf / "memory.high").read_text() == "80M"
    # Every available controller is enabled from the root down to the parent.
    enabled = [v for p, v in rec.writes if p.endswith("cgroup.subtree_control")]
    assert len(enabled) == 2 and all("+memory" in v and "+pids" in v for v in enabled)
    # Device rules become one eBPF filter on the cgroup: deny all first, defaults after.
    assert len(attached) == 1 and attached[0][0] == str(leaf)
    assert attached[0][1][0].v1_line() == "a *:* rwm" and not attached[0][1][0].allow


def test_v2_bfq_takes_blkio_scale(tmp_path):
    root, leaf = fake_v2(tmp_path)
    (leaf / "io.bfq.weight").write_text("")
    V2Manager(PATH, root=root).apply({"blockIO": {"weight": 500}})
    assert (leaf / "io.bfq.weight").read_text() == "500"
    assert (leaf / "io.weight").read_text() == ""


def test_v2_check_before_update(tmp_path):
    root, leaf = fake_v2(tmp_path)
    mgr = V2Manager(PATH, root=root)
    with pytest.raises(RuntimeUserError, match="checkBeforeUpdate"):
        mgr.apply({"memory": {"limit": 20 << 20, "checkBeforeUpdate": True}})
    assert (leaf / "memory.max").read_text() == ""


def test_v2_controller_missing(tmp_path):
    root, leaf = fake_v2(tmp_path, controllers="hugetlb")
    with pytest.raises(NotSupported, match=r"^linux.resources.memory.limit: the memory controller is not available"):
        V2Manager("/pyruntime-test/other", root=root).create({"memory": {"limit": 1 << 20}})
    assert not os.path.exists(os.path.join(root, "pyruntime-test", "other"))


def test_v2_stats_and_oom_count_from_files(tmp_path):
    root, leaf = fake_v2(tmp_path)
    (leaf / "memory.events").write_text("low 0\nhigh 2\nmax 7\noom 3\noom_kill 2\n")
    (leaf / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\n"
                                   "nr_throttled 1\nthrottled_usec 20\n")
    (leaf / "memory.max").write_text("max\n")
    (leaf / "pids.max").write_text("max\n")
    (leaf / "pids.current").write_text("3\n")
    (leaf / "io.stat").write_text("254:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
    (leaf / "hugetlb.2MB.current").write_text("0\n")
    (leaf / "hugetlb.2MB.events").write_text("max 1\n")
    mgr = V2Manager(PATH, root=root)
    assert mgr.oom_count() == 2
    data = mgr.stats()
    assert data["cpu"]["usage"] == {"total": 1500000, "kernel": 500000, "user": 1000000}
    assert data["cpu"]["throttling"] == {"periods": 4, "throttledPeriods": 1, "throttledTime": 20000}
    assert data["memory"]["usage"]["usage"] == 30 << 20
    assert data["memory"]["usage"]["limit"] == (1 << 64) - 1
    assert data["memory"]["usage"]["failcnt"] == 7
    assert data["memory"]["event_count"] == {"high": 2, "max": 7, "oom": 3, "oom_kill": 2}
    assert data["pids"] == {"current": 3}
    assert data["blkio"]["ioServiceBytesRecursive"] == [{"major": 254, "op": "Read", "value": 4096},
                                                        {"major": 254, "op": "Write"}, {"major": 254, "op": "Discard"}]


def test_v2_is_frozen_and_pids_read_plain_files(tmp_path):
    root, leaf = fake_v2(tmp_path)
    (leaf / "cgroup.freeze").write_text("1\n")
    (leaf / "cgroup.procs").write_text("10\n12\n")
    (leaf / "child").mkdir()
    (leaf / "child" / "cgroup.procs").write_text("15\n")
    mgr = CgroupManager.from_dict({"mode": "v2", "path": PATH, "root": root})
    assert mgr.is_frozen()
    assert mgr.pids() == [10, 12, 15]


def test_destroy_retries_busy_then_gives_a_clear_error(tmp_path, monkeypatch):
    import errno

    from pyruntime.cgroups import manager

    d = tmp_path / "cg" / "child"
    d.mkdir(parents=True)
    real_rmdir = os.rmdir
    busy = {"left": 3}

    def flaky_rmdir(path):
        if busy["left"] > 0:
            busy["left"] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_rmdir(path)

    monkeypatch.setattr(manager.os, "rmdir", flaky_rmdir)
    manager.remove_cgroup_dir(str(tmp_path / "cg"))
    assert not (tmp_path / "cg").exists()
    manager.remove_cgroup_dir(str(tmp_path / "cg"))  # already gone: fine

    d.mkdir(parents=True)
    busy["left"] = 10 ** 6
    with pytest.raises(RuntimeUserError, match=r"cannot remove cgroup .*processes still in it"):
        manager.remove_cgroup_dir(str(tmp_path / "cg"), timeout=0.1)


def test_rollback_spares_a_sibling_made_meanwhile(tmp_path):
    from pyruntime.cgroups.manager import make_dirs, rollback

    made = []
    make_dirs(str(tmp_path / "parent" / "mine"), made)
    assert made == [str(tmp_path / "parent"), str(tmp_path / "parent" / "mine")]
    (tmp_path / "parent" / "theirs").mkdir()  # another container, same new parent
    rollback(made)
    assert not (tmp_path / "parent" / "mine").exists()
    assert (tmp_path / "parent" / "theirs").is_dir()


def test_undo_create_removes_only_what_create_made(tmp_path):
    from pyruntime.cgroups.manager import make_dirs

    mgr = V1Manager(PATH, hierarchies={c: str(tmp_path / c) for c in ("memory", "freezer")})
    theirs = tmp_path / "memory" / PATH.strip("/")
    theirs.mkdir(parents=True)                      # the caller's cgroup, there before
    made = []
    for d in mgr.directories():
        make_dirs(d, made)
    mgr.made = made
    mgr.undo_create()
    assert theirs.is_dir()
    assert not (tmp_path / "freezer" / PATH.strip("/")).exists()
    assert (tmp_path / "freezer" / "pyruntime-test").is_dir()   # a parent others may share
    mgr.undo_create()                                           # nothing left to undo
