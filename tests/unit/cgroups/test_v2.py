"""The v2 driver (pyruntime.cgroups.v2) against a fake cgroup2 tree."""

import os

import pytest

from pyruntime.cgroups import saved_manager
from pyruntime.cgroups.v2 import V2Manager
from pyruntime.errors import NotSupported, RuntimeUserError
from tests.unit.cgroups.support import PATH, Recorder

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
    mgr = saved_manager({"mode": "v2", "path": PATH, "root": root})
    assert mgr.is_frozen()
    assert mgr.pids() == [10, 12, 15]
