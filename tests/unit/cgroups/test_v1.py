"""The v1 driver (pyruntime.cgroups.v1) against temporary trees that mimic cgroupfs (no root
needed).

These check the file formats the drivers write for controllers this machine does not offer
(memory, cpu, io, pids on the unified hierarchy; hugetlb, net_cls, net_prio on v1) and the
mechanics that do not need a kernel: which file, which text, in which order.
"""


import errno

import pytest

from pyruntime.cgroups import saved_manager
from pyruntime.cgroups.v1 import V1Manager
from pyruntime.errors import NotSupported, RuntimeUserError
from tests.unit.cgroups.support import PATH, Recorder, fake_v1


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
    again = saved_manager(mgr.to_dict())
    assert again.mode == "hybrid" and again.path == PATH
    assert again.directories() == mgr.directories()
    assert again.directories()[-1] == str(tmp_path / "unified" / "pyruntime-test" / "fake")


# ---------------------------------------------------------------- period and quota

def test_v1_period_refused_goes_again_after_the_quota(tmp_path, monkeypatch):
    from cgroupspy import controllers

    rec = Recorder(monkeypatch, tmp_path)
    hier = fake_v1(tmp_path)
    recording = controllers.Controller.set_property
    attempts = []

    def kernel(ctrl, filename, value):
        attempts.append(filename.decode())
        # like a pod at half a CPU: the period may only shrink once the quota has
        if filename == b"cpu.cfs_period_us" and b"cpu.cfs_quota_us" not in [a.encode() for a in attempts]:
            raise OSError(errno.EINVAL, "Invalid argument")
        return recording(ctrl, filename, value)

    monkeypatch.setattr(controllers.Controller, "set_property", kernel)
    V1Manager(PATH, hierarchies=hier).apply({"cpu": {"period": 50000, "quota": 20000}})
    assert attempts == ["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_period_us"]
    assert rec.to("cpu.cfs_period_us") == ["50000"] and rec.to("cpu.cfs_quota_us") == ["20000"]


def test_v1_period_and_quota_accepted_at_once_are_written_once(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path)
    V1Manager(PATH, hierarchies=fake_v1(tmp_path)).apply({"cpu": {"period": 50000, "quota": 20000}})
    assert [p.rsplit("/", 1)[1] for p, _ in rec.writes if "/cpu.cfs" in p] == ["cpu.cfs_period_us",
                                                                              "cpu.cfs_quota_us"]


def test_v1_quota_refusal_names_the_quota(tmp_path, monkeypatch):
    from cgroupspy import controllers

    def kernel(ctrl, filename, value):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(controllers.Controller, "set_property", kernel)
    with pytest.raises(RuntimeUserError, match=r"^linux.resources.cpu.quota: cannot write '20000'"):
        V1Manager(PATH, hierarchies=fake_v1(tmp_path)).apply({"cpu": {"period": 50000, "quota": 20000}})


def test_v1_kernel_tcp_written_where_the_file_exists_else_a_warning(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr("pyruntime.log.warn", warnings.append)
    hier = fake_v1(tmp_path)
    rec = Recorder(monkeypatch, tmp_path)
    V1Manager(PATH, hierarchies=hier).apply({"memory": {"kernelTCP": 1 << 20}})
    assert rec.writes == [] and warnings == [
        "linux.resources.memory.kernelTCP: ignored, this kernel has no memory.kmem.tcp.limit_in_bytes"]
    (tmp_path / "memory" / PATH.strip("/") / "memory.kmem.tcp.limit_in_bytes").write_text("")
    V1Manager(PATH, hierarchies=hier).apply({"memory": {"kernelTCP": 1 << 20}})
    assert rec.to("memory.kmem.tcp.limit_in_bytes") == [str(1 << 20)]
