"""Pure cgroup logic: paths, conversions, resource plans, device rules, host discovery."""

import pytest

from pyruntime.cgroups import convert, devices, mounts, resolve_path
from pyruntime.cgroups.resources import Op, merge, plan_v1, plan_v2
from pyruntime.errors import NotSupported, RuntimeUserError


# ---------------------------------------------------------------- paths

@pytest.mark.parametrize("given,expected", [
    (None, "/pyruntime/ctr1"),
    ("", "/pyruntime/ctr1"),
    ("/machine/ctr1", "/machine/ctr1"),
    ("/a//b/./c/", "/a/b/c"),
    ("mine/ctr", "/pyruntime/mine/ctr"),
])
def test_resolve_path(given, expected):
    assert resolve_path(given, "ctr1") == expected


@pytest.mark.parametrize("bad,needle", [
    ("/a/../../etc", "'..'"),
    ("../escape", "'..'"),
    ("system.slice:pyruntime:ctr1", "systemd"),
    ("/", "root cgroup"),
    ("/a/cgroup.procs", "interface file"),
    ("/a/b\nc", "control characters"),
])
def test_resolve_path_rejects(bad, needle):
    with pytest.raises(RuntimeUserError) as err:
        resolve_path(bad, "ctr1")
    assert needle in str(err.value)
    assert "linux.cgroupsPath" in str(err.value)


def test_resolve_path_rejects_bad_container_id():
    with pytest.raises(RuntimeUserError):
        resolve_path(None, "..")


# ---------------------------------------------------------------- conversions

@pytest.mark.parametrize("shares,weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_shares_to_weight(shares, weight):
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000), (100, 910)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io


def test_v2_swap_semantics():
    mib = 1 << 20
    assert convert.v2_swap(None, None) is None
    assert convert.v2_swap(0, 100 * mib) is None
    assert convert.v2_swap(300 * mib, 100 * mib) == 200 * mib     # total - memory
    assert convert.v2_swap(100 * mib, 100 * mib) == 0              # no swap at all
    assert convert.v2_swap(-1, 100 * mib) == -1
    assert convert.v2_swap(None, -1) == -1                         # unlimited memory: unlimited swap
    with pytest.raises(ValueError):
        convert.v2_swap(50 * mib, 100 * mib)
    with pytest.raises(ValueError):
        convert.v2_swap(50 * mib, None)


def test_cpu_max():
    assert convert.cpu_max(None, None) is None
    assert convert.cpu_max(20000, 100000) == "20000 100000"
    assert convert.cpu_max(-1, 100000) == "max 100000"
    assert convert.cpu_max(50000, None) == "50000"
    assert convert.cpu_max(0, 250000) == "max 250000"


def test_cpu_lists_round_trip():
    assert convert.parse_cpu_list("0-2,4,7-8") == [0, 1, 2, 4, 7, 8]
    assert convert.format_cpu_list([8, 0, 1, 2, 4, 7]) == "0-2,4,7-8"
    assert convert.format_cpu_list([]) == ""
    for bad in ("a", "1-", "3-1", "0,,1", "-1"):
        with pytest.raises(ValueError):
            convert.parse_cpu_list(bad)


@pytest.mark.parametrize("text,value", [
    ("4096", 4096), ("512m", 512 << 20), ("512M", 512 << 20), ("1g", 1 << 30), ("1.5GiB", 3 << 29),
    ("64kb", 64 << 10), ("2 mb", 2 << 20),
])
def test_ram_in_bytes(text, value):
    assert convert.ram_in_bytes(text) == value


@pytest.mark.parametrize("bad", ["", "m", "12x", "-5", "1..2g"])
def test_ram_in_bytes_rejects(bad):
    with pytest.raises(ValueError):
        convert.ram_in_bytes(bad)


def test_hugepage_names():
    assert convert.hugepage_size_bytes("2MB") == 2 << 20
    assert convert.hugepage_size_name(1 << 30) == "1GB"
    assert convert.hugepage_size_name(64 << 10) == "64KB"
    with pytest.raises(ValueError):
        convert.hugepage_size_bytes("2M")


def test_host_hugepage_sizes(tmp_path):
    (tmp_path / "hugepages-2048kB").mkdir()
    (tmp_path / "hugepages-1048576kB").mkdir()
    assert convert.host_hugepage_sizes(str(tmp_path)) == ["2MB", "1GB"]
    assert convert.host_hugepage_sizes(str(tmp_path / "missing")) == []


def test_limits_text():
    assert convert.limit_text(-1) == "max"
    assert convert.limit_text(1234) == "1234"
    assert convert.parse_limit("max\n") == -1
    assert convert.parse_limit("77\n") == 77


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


# ---------------------------------------------------------------- devices

def test_effective_device_rules_order():
    rules = devices.effective_rules(
        [{"allow": False, "access": "rwm"}, {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "mr"}])
    lines = [(r.allow, r.v1_line()) for r in rules]
    assert lines[0] == (False, "a *:* rwm")
    assert lines[1] == (False, "a *:* rwm")
    assert lines[2] == (True, "b 8:* rm")
    assert (True, "c 1:3 rwm") in lines and (True, "c 136:* rwm") in lines
    assert lines[-1] == (True, "c 10:200 rwm")


# ---------------------------------------------------------------- host discovery

MOUNTINFO = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw shared:14 - cgroup cgroup rw,net_cls,net_prio
31 1 0:28 / /mnt/other rw shared:15 - cgroup cgroup rw,pids
"""
PROC_CGROUPS = """\
#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	3	1
cpu	1	3	1
cpuacct	1	3	1
memory	4	18	1
net_cls	5	1	1
net_prio	5	1	1
pids	8	3	1
"""


def test_v1_hierarchies_from_mountinfo():
    known = [c for c, on in mounts.parse_proc_cgroups(PROC_CGROUPS).items() if on]
    assert mounts.v1_hierarchies_from(MOUNTINFO, known) == {
        "name=systemd": "/sys/fs/cgroup/systemd",
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "net_cls": "/sys/fs/cgroup/net_cls,net_prio",
        "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
    }


def test_detect_mode(tmp_path):
    assert mounts.detect_mode(str(tmp_path)) == "v1"
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert mounts.detect_mode(str(tmp_path)) == "hybrid"
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert mounts.detect_mode(str(tmp_path)) == "v2"


def test_op_is_plain_data():
    assert Op("f", "memory", "memory.max", "1")._asdict() == {"field": "f", "controller": "memory",
                                                              "key": "memory.max", "value": "1"}


def test_warmup_finds_a_cgroup_the_process_is_in(tmp_path):
    from pyruntime.cgroups import warmup

    def make(*parts):
        d = tmp_path.joinpath(*parts)
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
        return str(d / "cgroup.procs")

    # hybrid host: the first line whose hierarchy is mounted wins, in /proc/self/cgroup order
    text = "12:pids:/user.slice\n4:cpu,cpuacct:/svc\n1:name=systemd:/svc\n0::/svc\n"
    assert warmup.own_procs_file(text, str(tmp_path)) is None
    systemd = make("systemd", "svc")
    assert warmup.own_procs_file(text, str(tmp_path)) == systemd
    co_mounted = make("cpu,cpuacct", "svc")
    assert warmup.own_procs_file(text, str(tmp_path)) == co_mounted
    assert warmup.own_procs_file("0::/svc\n", str(tmp_path)) is None
    unified = make("unified", "svc")
    assert warmup.own_procs_file("0::/svc\n", str(tmp_path)) == unified
    # pure v2: the unified hierarchy is the root itself
    v2 = tmp_path / "v2"
    (v2 / "ctr").mkdir(parents=True)
    (v2 / "ctr" / "cgroup.procs").write_text("")
    assert warmup.own_procs_file("0::/ctr\n", str(v2)) == str(v2 / "ctr" / "cgroup.procs")
    assert warmup.own_procs_file("garbage\n", str(tmp_path)) is None
