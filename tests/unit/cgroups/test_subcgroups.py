"""exec --cgroup (pyruntime.cgroups.subcgroups): the arguments, and joining a sub-cgroup on v1 and
v2."""

import pytest

from pyruntime.cgroups import subcgroups
from pyruntime.cgroups.v1 import V1Manager
from pyruntime.cgroups.v2 import V2Manager
from pyruntime.errors import RuntimeUserError
from tests.unit.cgroups.support import PATH, Recorder, fake_v1

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
