"""Realtime runtime (pyruntime.cgroups.rt): the least runtime reaching a ratio, room made in the
parents top down, and the v1 driver's retry after a refused write."""

import errno

import pytest

from pyruntime.cgroups import rt
from pyruntime.cgroups.v1 import V1Manager
from pyruntime.errors import RuntimeUserError
from tests.unit.cgroups.support import PATH, Recorder, fake_v1

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
