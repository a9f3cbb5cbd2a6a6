"""The pure plans behind the runc cgroup behaviours (device rule transitions, realtime room in
the parents, exec --cgroup paths) and the v1 driver's steps against fake cgroupfs trees."""

import errno
import itertools

import pytest

from pyruntime.cgroups import devices, rt, subcgroups
from pyruntime.cgroups.devices import DeviceState, Rule
from pyruntime.cgroups.resources import plan_v1, plan_v2
from pyruntime.cgroups.v1 import V1Manager
from pyruntime.cgroups.v2 import V2Manager
from pyruntime.errors import RuntimeUserError
from tests.unit.test_cgroup_drivers_fake_tree import PATH, Recorder, fake_v1


def state_of(resource_devices) -> DeviceState:
    return devices.emulate(devices.named_rules(resource_devices))


def step_through(start: DeviceState, steps) -> list[DeviceState]:
    """The kernel's state after each write."""
    states, state = [], start.copy()
    for rule in steps:
        state.apply(rule)
        states.append(state.copy())
    return states


def within(state: DeviceState, *bounds: DeviceState) -> bool:
    """Nothing allowed in `state` that none of `bounds` allows (all of them deny by default)."""
    if state.default_allow:
        return False
    return all(set(access) <= set().union(*(set(b.exceptions.get(key, "")) for b in bounds))
               for key, access in state.exceptions.items())


# ---------------------------------------------------------------- devices

KMSG_W = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}
FUSE = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
NULL_R_ONLY = {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}

RULE_SETS = [[], [KMSG_W], [FUSE], [KMSG_W, FUSE], [{**KMSG_W, "access": "rw"}],
             [{"allow": True, "type": "b", "major": 8, "access": "rm"}]]


@pytest.mark.parametrize("before,after", list(itertools.permutations(RULE_SETS, 2)))
def test_device_update_passes_through_nothing_wider_than_either_end(before, after):
    old, new = state_of(before), state_of(after)
    steps = devices.transition(old, new)
    assert all(rule.type != "a" for rule in steps)          # never "allow all", never "deny all"
    states = step_through(old, steps)
    assert all(within(s, old, new) for s in states), steps
    assert (states[-1] if states else old) == new
    # the defaults (/dev/null, ptys, mknod) stay allowed at every step
    for s in [old] + states:
        assert s.exceptions[("c", 1, 3)] == "rwm" and s.exceptions[("c", 136, None)] == "rwm"


def test_device_update_writes_only_the_difference():
    old, new = state_of([KMSG_W, FUSE]), state_of([{**KMSG_W, "access": "rw"}])
    assert devices.transition(old, new) == [Rule(False, "c", 10, 229, "rwm"), Rule(True, "c", 1, 11, "r")]
    assert devices.transition(new, new) == []


def test_device_rules_start_with_deny_all_where_the_current_exceptions_are_unknown():
    new = state_of([KMSG_W])
    for current in (None, DeviceState.from_list("a *:* rwm\n")):
        steps = devices.transition(current, new)
        assert steps[0] == Rule(False, "a", None, None, "rwm")
        assert step_through(DeviceState(True), steps)[-1] == new


def test_devices_list_is_read_as_the_kernel_shows_it():
    text = "c *:* m\nb *:* m\nc 1:3 rwm\nc 136:* rwm\nb 8:0 r\n"
    assert DeviceState.from_list(text) == DeviceState(False, {
        ("c", None, None): "m", ("b", None, None): "m", ("c", 1, 3): "rwm", ("c", 136, None): "rwm",
        ("b", 8, 0): "r"})
    assert DeviceState.from_list("") == DeviceState(False)
    assert DeviceState.from_list("a *:* rwm\n").default_allow is True
    assert DeviceState.from_list(None) is None


def test_a_deny_inside_a_wildcard_allow_is_refused_naming_the_rule():
    # runc refuses this list too: the v1 kernel would keep c 1:11 allowed through c *:*
    with pytest.raises(RuntimeUserError) as err:
        state_of([{"allow": True, "type": "c", "access": "rwm"},
                  {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rw"}])
    assert str(err.value).startswith("linux.resources.devices[1]: cannot deny c 1:11 rw inside the rule c *:* rwm")
    # the same deny before the wildcard, or of access the wildcard lacks, is fine
    state_of([{"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rw"},
              {"allow": True, "type": "c", "access": "rwm"}])
    state_of([{"allow": False, "type": "c", "major": 1, "minor": 11, "access": "r"}])


def test_linux_devices_get_no_rule_of_their_own(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path)
    mgr = V1Manager(PATH, hierarchies=fake_v1(tmp_path))
    mgr.create({"devices": [{"allow": False, "access": "rwm"}]},
               linux_devices=[{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}])
    written = rec.to("devices.allow") + rec.to("devices.deny")
    assert "c 1:3 rwm" in written and not any("1:11" in line for line in written)
    assert not any(r.v1_line().startswith("c 1:11") for r in devices.effective_rules([]))


def test_update_with_devices_reads_devices_list_and_writes_the_transition(tmp_path, monkeypatch):
    hier = fake_v1(tmp_path)
    listing = tmp_path / "devices" / PATH.strip("/") / "devices.list"
    listing.write_text("".join(r.v1_line() + "\n" for r in devices.transition(None, state_of([KMSG_W]))[1:]))
    rec = Recorder(monkeypatch, tmp_path)
    stored = {"devices": [KMSG_W], "pids": {"limit": 5}}
    merged = V1Manager(PATH, hierarchies=hier).update(stored, {"devices": []})
    assert merged == {"devices": [], "pids": {"limit": 5}}
    assert rec.to("devices.deny") == ["c 1:11 w"] and rec.to("devices.allow") == []
    # an update that does not name devices leaves them alone
    rec.writes.clear()
    V1Manager(PATH, hierarchies=hier).update(stored, {"pids": {"limit": 7}})
    assert not rec.to("devices.allow") and not rec.to("devices.deny")


# ---------------------------------------------------------------- realtime runtime

def test_runtime_for_is_the_least_runtime_reaching_a_ratio():
    for period in (1000, 999_999, 1_000_000):
        for runtime in (0, 1, 777, 20000, 950000):
            if runtime > period:
                continue
            needed = rt.ratio(period, runtime)
            least = rt.runtime_for(period, needed)
            assert rt.ratio(period, least) >= needed and (least == 0 or rt.ratio(period, least - 1) < needed)


def test_parents_are_raised_top_down_just_enough():
    levels = [rt.Level("/c/pyruntime/pod", 1_000_000, 0, 0),
              rt.Level("/c/pyruntime", 1_000_000, 5000, rt.ratio(1_000_000, 5000))]
    plan = rt.raises(1_000_000, 20000, levels, (1_000_000, 950000), "f")
    assert [d for d, _ in plan] == ["/c/pyruntime", "/c/pyruntime/pod"]
    (_, top), (_, pod) = plan
    assert pod == 20000
    # room for the pod and for the sibling's 5000, in the kernel's fixed point (which rounds
    # each share down, so the sum may need a microsecond less than 25000)
    needed = rt.ratio(1_000_000, 20000) + rt.ratio(1_000_000, 5000)
    assert rt.ratio(1_000_000, top) >= needed > rt.ratio(1_000_000, top - 1) and top in (24999, 25000)
    # a parent with room stops the climb
    roomy = [rt.Level("/c/p", 500_000, 100_000, 0), rt.Level("/c", 1_000_000, 0, 0)]
    assert rt.raises(1_000_000, 20000, roomy, (1_000_000, 950000), "f") == []
    # a different period in the parent: the same share of its own period
    assert rt.raises(1_000_000, 20000, [rt.Level("/c/p", 500_000, 0, 0)], (1_000_000, 950000), "f") == \
        [("/c/p", 10000)]


@pytest.mark.parametrize("levels,root,needle", [
    ([rt.Level("/c/p", 1_000_000, 0, 0)], (1_000_000, 10000), "kernel.sched_rt_runtime_us"),
    ([rt.Level("/c/p", 10000, 0, rt.ratio(10000, 2000))], (1_000_000, 950000), "more than its period"),
])
def test_parents_that_cannot_make_room_are_a_clear_error(levels, root, needle):
    with pytest.raises(RuntimeUserError, match=rf"^linux.resources.cpu.realtimeRuntime: .*{needle}"):
        rt.raises(1_000_000, 900000, levels, root, "linux.resources.cpu.realtimeRuntime")


def test_v1_realtime_write_refused_raises_the_parent_and_retries(tmp_path, monkeypatch):
    hier = fake_v1(tmp_path)
    cpu = tmp_path / "cpu"
    for d in (cpu, cpu / "pyruntime-test"):
        (d / "cpu.rt_period_us").write_text("1000000\n")
        (d / "cpu.rt_runtime_us").write_text("950000\n" if d == cpu else "0\n")
    leaf = cpu / PATH.strip("/")
    (leaf / "cpu.rt_period_us").write_text("1000000\n")
    (leaf / "cpu.rt_runtime_us").write_text("0\n")
    rec = Recorder(monkeypatch, tmp_path)
    import pyruntime.cgroups.v1 as v1_mod

    recording = v1_mod.write_text
    refused = []

    def kernel(path, value):
        parent = (cpu / "pyruntime-test" / "cpu.rt_runtime_us").read_text().strip()
        if path == str(leaf / "cpu.rt_runtime_us") and int(parent) < int(value):
            refused.append(value)
            raise OSError(errno.EINVAL, "Invalid argument")
        recording(path, value)

    monkeypatch.setattr(v1_mod, "write_text", kernel)
    V1Manager(PATH, hierarchies=hier).apply({"cpu": {"realtimeRuntime": 30000}})
    assert refused == ["30000"]
    assert [p for p, _ in rec.writes if "rt_runtime" in p] == [
        "cpu/pyruntime-test/cpu.rt_runtime_us", "cpu/pyruntime-test/fake/cpu.rt_runtime_us"]
    assert rec.to("pyruntime-test/cpu.rt_runtime_us") == ["30000"]
    assert rec.to("fake/cpu.rt_runtime_us") == ["30000"]
    assert (cpu / "cpu.rt_runtime_us").read_text() == "950000\n"   # the root is never written


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


# ---------------------------------------------------------------- exec --cgroup

@pytest.mark.parametrize("args,expected", [
    (["sub"], {"": "sub"}),
    (["/a/./b/"], {"": "a/b"}),
    ([""], {"": ""}),
    (["pids,memory:sub", "cpu:other"], {"pids": "sub", "memory": "sub", "cpu": "other"}),
    (["name=systemd:/x"], {"name=systemd": "x"}),
])
def test_exec_cgroup_arguments(args, expected):
    assert subcgroups.parse(args) == expected


@pytest.mark.parametrize("args,needle", [
    (["../x"], "is not a sub-cgroup"),
    (["pids:a/../../x"], "is not a sub-cgroup"),
    (["a", "b"], "missing <controller>: prefix"),
    (["a:b:c"], "expected [controller:]path"),
    ([":x"], "empty <controller> prefix"),
    (["pids:a", "pids,memory:b"], "controller pids specified multiple times"),
])
def test_exec_cgroup_arguments_refused(args, needle):
    with pytest.raises(RuntimeUserError) as err:
        subcgroups.parse(args)
    assert needle in str(err.value)


def test_exec_cgroup_per_hierarchy():
    hier = {"cpu": "/m/cpu,cpuacct", "cpuacct": "/m/cpu,cpuacct", "pids": "/m/pids"}
    assert subcgroups.for_hierarchies({"": "s"}, hier) == {"/m/cpu,cpuacct": "s", "/m/pids": "s"}
    assert subcgroups.for_hierarchies({"cpu": "s"}, hier) == {"/m/cpu,cpuacct": "s"}
    with pytest.raises(RuntimeUserError, match="cpu, cpuacct share one hierarchy"):
        subcgroups.for_hierarchies({"cpu": "s", "cpuacct": "t"}, hier)
    with pytest.raises(RuntimeUserError, match="unknown controller rdma"):
        subcgroups.for_hierarchies({"rdma": "s"}, hier)


def test_v1_process_joins_the_sub_cgroups(tmp_path, monkeypatch):
    hier = fake_v1(tmp_path)
    for ctrl in ("pids", "cpuset"):
        sub = tmp_path / ctrl / PATH.strip("/") / "sub"
        sub.mkdir()
        for name in ("cgroup.procs", "cpuset.cpus", "cpuset.mems") if ctrl == "cpuset" else ("cgroup.procs",):
            (sub / name).write_text("")
    (tmp_path / "cpuset" / PATH.strip("/") / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / PATH.strip("/") / "cpuset.mems").write_text("0\n")
    rec = Recorder(monkeypatch, tmp_path)
    mgr = V1Manager(PATH, hierarchies={k: hier[k] for k in ("pids", "cpuset", "memory")})
    mgr.add_process(4242, {"pids": "sub", "cpuset": "sub"})
    procs = sorted(p for p, v in rec.writes if p.endswith("cgroup.procs"))
    assert procs == ["cpuset/pyruntime-test/fake/sub/cgroup.procs", "memory/pyruntime-test/fake/cgroup.procs",
                     "pids/pyruntime-test/fake/sub/cgroup.procs"]
    # the new cpuset took its parent's cpus and mems before the move
    assert rec.to("fake/sub/cpuset.cpus") == ["0-1"]
    with pytest.raises(RuntimeUserError, match=r"--cgroup: .*memory/pyruntime-test/fake/sub does not exist"):
        mgr.add_process(4242, {"": "sub"})


def test_v2_process_joins_one_sub_cgroup_without_controllers(tmp_path):
    (tmp_path / PATH.strip("/") / "sub").mkdir(parents=True)
    (tmp_path / PATH.strip("/") / "sub" / "cgroup.procs").write_text("")
    mgr = V2Manager(PATH, root=str(tmp_path))
    mgr.add_process(4242, {"": "sub"})
    assert (tmp_path / PATH.strip("/") / "sub" / "cgroup.procs").read_text() == "4242"
    with pytest.raises(RuntimeUserError, match="controller prefixes apply to cgroup v1 only"):
        mgr.add_process(4242, {"pids": "sub"})
