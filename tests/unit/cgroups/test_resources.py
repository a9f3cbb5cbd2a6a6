"""Resource plans (pyruntime.cgroups.resources): what v1 and v2 write for linux.resources, and how
an update merges with what was set."""


import pytest

from pyruntime.cgroups import devices
from pyruntime.cgroups.resources import Op, merge, plan_v1, plan_v2
from pyruntime.errors import NotSupported, RuntimeUserError

# ---------------------------------------------------------------- v1 plans

def keys(ops):
    return [(op.controller, op.key, op.value) for op in ops]


def test_plan_v1_full():
    res = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20, "swappiness": 10,
                   "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000, "realtimePeriod": 1000000,
                "realtimeRuntime": 950000, "cpus": "0-1", "mems": "0", "idle": 1},
        "pids": {"limit": 64},
        "blockIO": {"weight": 300, "leafWeight": 200,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 400, "leafWeight": 100}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]},
    }
    assert keys(plan_v1(res, host_hugepage_sizes=["2MB"])) == [
        ("memory", "limit_and_swap", (64 << 20, 128 << 20)),
        ("memory", "soft_limit_in_bytes", 32 << 20),
        ("memory", "swappiness", 10),
        ("memory", "oom_control", 1),
        ("cpu", "shares", 512),
        ("cpu", "period_and_quota", (100000, 20000)),
        ("cpu", "cfs_burst_us", 1000),
        ("cpu", "rt_period_us", 1000000),
        ("cpu", "rt_runtime", (950000, 1000000)),
        ("cpu", "idle", 1),
        ("cpuset", "cpus", {0, 1}),
        ("cpuset", "mems", {0}),
        ("pids", "max", 64),
        ("blkio", "weight", 300),
        ("blkio", "leaf_weight", 200),
        ("blkio", "weight_device", "8:0 400"),
        ("blkio", "leaf_weight_device", "8:0 100"),
        ("blkio", "throttle_read_bps_device", "8:0 1048576"),
        ("blkio", "throttle_write_iops_device", "8:16 100"),
        ("hugetlb", "limit:2MB", 4 << 20),
        ("net_cls", "class_id", 0x100001),
        ("net_prio", "ifpriomap", "eth0 5"),
    ]


def test_plan_v1_memory_unlimited_lifts_swap_and_pids_max():
    ops = plan_v1({"memory": {"limit": -1}, "pids": {"limit": -1}})
    assert keys(ops) == [("memory", "limit_and_swap", (-1, -1)), ("pids", "max", None)]


def test_plan_v1_zero_values_leave_settings_alone():
    assert plan_v1({"memory": {"limit": 0}, "cpu": {"shares": 0, "quota": 0}, "pids": {"limit": 0},
                    "blockIO": {"weight": 0}}) == []


def test_plan_v1_check_before_update_comes_first():
    ops = plan_v1({"memory": {"limit": 1 << 20, "checkBeforeUpdate": True}})
    assert keys(ops)[0] == ("memory", "check_usage", 1 << 20)
    assert ops[0].field == "linux.resources.memory.limit"


def test_plan_v1_device_rules_are_one_step_with_the_state_they_lead_to():
    ops = plan_v1({"devices": [{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"},
                               {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]},
                  with_devices=True)
    assert [(op.controller, op.key) for op in ops] == [("devices", "rules")]
    state = ops[0].value
    assert state.default_allow is False
    # the deny came before the default allow of /dev/null, which therefore stays whole
    assert state.exceptions[("c", 1, 11)] == "r" and state.exceptions[("c", 1, 3)] == "rwm"
    assert state.exceptions[("c", 136, None)] == "rwm" and state.exceptions[("c", None, None)] == "m"


@pytest.mark.parametrize("res,field", [
    ({"memory": {"limit": -5}}, "linux.resources.memory.limit"),
    ({"memory": {"limit": "1g"}}, "linux.resources.memory.limit"),
    ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
    ({"memory": {"limit": 100 << 20, "swap": 50 << 20}}, "linux.resources.memory.swap"),
    ({"memory": {"disableOOMKiller": "yes"}}, "linux.resources.memory.disableOOMKiller"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
    ({"cpu": {"shares": 300000}}, "linux.resources.cpu.shares"),
    ({"cpu": {"quota": 10}}, "linux.resources.cpu.quota"),
    ({"cpu": {"period": 5000000}}, "linux.resources.cpu.period"),
    ({"cpu": {"cpus": "0-a"}}, "linux.resources.cpu.cpus"),
    ({"cpu": {"idle": 2}}, "linux.resources.cpu.idle"),
    ({"pids": {"limit": True}}, "linux.resources.pids.limit"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}}, "linux.resources.blockIO.throttleReadBpsDevice[0]"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "linux.resources.hugepageLimits[0].pageSize"),
    ({"network": {"classID": -1}}, "linux.resources.network.classID"),
    ({"devices": [{"allow": True, "access": "rwx"}]}, "linux.resources.devices[0].access"),
    ({"devices": [{"allow": True, "type": "p", "access": "r"}]}, "linux.resources.devices[0].type"),
    ({"devices": [{"access": "r"}]}, "linux.resources.devices[0].allow"),
    ({"memory": []}, "linux.resources.memory"),
])
def test_plan_rejects_bad_values_naming_the_field(res, field):
    for plan in (lambda r: plan_v1(r, with_devices=True),
                 lambda r: (devices.effective_rules(r.get("devices")), plan_v2(r))):
        with pytest.raises(RuntimeUserError) as err:
            plan(res)
        assert str(err.value).startswith(field), str(err.value)


def test_unified_rejected_on_v1():
    with pytest.raises(NotSupported) as err:
        plan_v1({"unified": {"memory.high": "1G"}})
    assert str(err.value) == "invalid configuration: linux.resources.unified: cannot use unified on cgroup v1"


def test_hugepage_size_the_host_lacks():
    with pytest.raises(NotSupported, match=r"hugepageLimits\[0\].pageSize.*16GB"):
        plan_v1({"hugepageLimits": [{"pageSize": "16GB", "limit": 0}]}, host_hugepage_sizes=["2MB", "1GB"])


# ---------------------------------------------------------------- v2 plans

def test_plan_v2_full():
    res = {
        "memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 50 << 20},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 5000, "cpus": "0", "mems": "0",
                "idle": 0},
        "pids": {"limit": -1},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 20}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": -1}],
        "unified": {"memory.high": "90M", "cgroup.max.descendants": "10"},
    }
    assert keys(plan_v2(res)) == [
        ("memory", "memory.swap.max", str(200 << 20)),
        ("memory", "memory.max", str(100 << 20)),
        ("memory", "memory.low", str(50 << 20)),
        ("cpu", "cpu.weight", "39"),
        ("cpu", "cpu.max", "20000 100000"),
        ("cpu", "cpu.max.burst", "5000"),
        ("cpu", "cpu.idle", "0"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "max"),
        ("io", "io.weight", (None, 500)),
        ("io", "io.weight", ("8:0", 100)),
        ("io", "io.max", "8:0 rbps=1000"),
        ("io", "io.max", "8:0 wbps=max"),
        ("io", "io.max", "8:0 riops=10"),
        ("io", "io.max", "8:0 wiops=20"),
        ("hugetlb", "hugetlb.2MB.max", "max"),
        ("memory", "memory.high", "90M"),
        ("cgroup", "cgroup.max.descendants", "10"),
    ]


@pytest.mark.parametrize("res,field", [
    ({"memory": {"swappiness": 60}}, "linux.resources.memory.swappiness"),
    ({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
    ({"memory": {"swap": 100}}, "linux.resources.memory.swap"),
    ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime"),
    ({"blockIO": {"leafWeight": 100}}, "linux.resources.blockIO.leafWeight"),
    ({"network": {"classID": 1}}, "linux.resources.network"),
    ({"unified": {"../memory.max": "1"}}, "linux.resources.unified.../memory.max"),
    ({"unified": {"cgroup.procs": "1"}}, "linux.resources.unified.cgroup.procs"),
    ({"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, "linux.resources.rdma"),
])
def test_plan_v2_rejects(res, field):
    with pytest.raises(RuntimeUserError) as err:
        plan_v2(res)
    assert str(err.value).startswith(field), str(err.value)


def test_merge_keeps_what_update_does_not_name():
    base = {"memory": {"limit": 100, "swap": 200}, "cpu": {"quota": 1000, "period": 2000}, "devices": [1]}
    merged = merge(base, {"memory": {"limit": 150}, "pids": {"limit": 5}})
    assert merged == {"memory": {"limit": 150, "swap": 200}, "cpu": {"quota": 1000, "period": 2000},
                      "devices": [1], "pids": {"limit": 5}}
    assert base["memory"]["limit"] == 100


def test_op_is_plain_data():
    assert Op("f", "memory", "memory.max", "1")._asdict() == {"field": "f", "controller": "memory",
                                                              "key": "memory.max", "value": "1"}


# ---------------------------------------------------------------- kernelTCP

def test_kernel_tcp_plans(monkeypatch):
    warnings = []
    monkeypatch.setattr("pyruntime.log.warn", warnings.append)
    ops = plan_v1({"memory": {"kernelTCP": 1 << 20, "kernel": 1 << 20}})
    assert [(op.field, op.key, op.value) for op in ops] == [
        ("linux.resources.memory.kernelTCP", "kernel_tcp", 1 << 20)]
    assert warnings == ["linux.resources.memory.kernel: kernel memory settings are ignored "
                        "(the kernel no longer limits them separately)"]
    assert plan_v2({"memory": {"kernelTCP": 1 << 20}}) == []
    assert "kernelTCP: ignored" in warnings[-1]
    with pytest.raises(RuntimeUserError, match=r"^linux.resources.memory.kernelTCP: -2 is out of range"):
        plan_v1({"memory": {"kernelTCP": -2}})
