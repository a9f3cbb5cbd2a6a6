"""Logic behind update / events / ps / kill --all, without a kernel."""

import io
import json

import pytest

from pyruntime.cgroups import commands, features, stats
from pyruntime.errors import RuntimeUserError


def test_update_flags_to_resources():
    warnings = []
    res = commands.update_from_flags(
        memory="512m", memory_swap="1g", memory_reservation="256M", kernel_memory="10m",
        kernel_memory_tcp="1m",
        cpu_quota="-1", cpu_period="100000", cpu_share="512", cpu_burst="0", cpu_rt_period="1000000",
        cpu_rt_runtime="950000", cpuset_cpus="0-1", cpuset_mems="0", cpu_idle="1", pids_limit=100,
        blkio_weight=300, warn=warnings.append)
    assert res == {
        "memory": {"limit": 512 << 20, "swap": 1 << 30, "reservation": 256 << 20, "kernelTCP": 1 << 20},
        "cpu": {"quota": -1, "period": 100000, "shares": 512, "burst": 0, "realtimePeriod": 1000000,
                "realtimeRuntime": 950000, "cpus": "0-1", "mems": "0", "idle": 1},
        "pids": {"limit": 100},
        "blockIO": {"weight": 300},
    }
    assert len(warnings) == 1 and "--kernel-memory" in warnings[0]


def test_update_memory_unlimited_also_lifts_swap():
    assert commands.update_from_flags(memory="-1") == {"memory": {"limit": -1, "swap": -1}}
    assert commands.update_from_flags(memory="-1", memory_swap="2g") == {"memory": {"limit": -1, "swap": 2 << 30}}


def test_update_zero_flags_change_nothing():
    assert commands.update_from_flags(pids_limit=0, blkio_weight=0) == {}
    assert commands.update_from_flags(pids_limit=-1) == {"pids": {"limit": -1}}


@pytest.mark.parametrize("flags,needle", [
    ({"memory": "lots"}, "--memory"),
    ({"cpu_share": "-5"}, "--cpu-share"),
    ({"cpu_period": "1.5"}, "--cpu-period"),
    ({"cpu_quota": "x"}, "--cpu-quota"),
    ({"pids_limit": "many"}, "--pids-limit"),
])
def test_update_bad_flags(flags, needle):
    with pytest.raises(RuntimeUserError, match=needle):
        commands.update_from_flags(**flags)


def test_update_from_json_file_and_stdin(tmp_path):
    doc = {"memory": {"limit": 1000, "checkBeforeUpdate": True}, "cpu": {"shares": 100}}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(doc))
    # With -r the other flags are ignored, as in runc.
    assert commands.update_from_flags(resources=str(f), memory="1g") == doc
    assert commands.update_from_flags(resources="-", stdin=io.StringIO(json.dumps(doc))) == doc
    f.write_text("{nope")
    with pytest.raises(RuntimeUserError, match="not valid JSON"):
        commands.update_from_flags(resources=str(f))
    with pytest.raises(RuntimeUserError, match="cannot read"):
        commands.update_from_flags(resources=str(tmp_path / "missing.json"))


PS = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 01:27 ?        00:00:01 /sbin/init
root         120       1  0 01:27 ?        00:00:00 sleep 100
root         121     120  0 01:27 ?        00:00:00 sh -c x
"""


def test_filter_ps_output():
    assert commands.filter_ps_output(PS, [120, 121]).splitlines() == [PS.splitlines()[0], PS.splitlines()[2],
                                                                      PS.splitlines()[3]]
    with pytest.raises(RuntimeUserError, match="PID field"):
        commands.filter_ps_output("USER COMMAND\nroot x\n", [1])


class FakeManager:
    def __init__(self, counts, data=None):
        self.counts = list(counts)
        self.data = data or {"pids": {"current": 1}}
        self.polls = 0

    def oom_count(self):
        self.polls += 1
        return self.counts[min(self.polls - 1, len(self.counts) - 1)]

    def stats(self):
        return self.data

    def exists(self):
        return self.polls < len(self.counts)


def test_oom_events_one_per_kill():
    mgr = FakeManager([1, 1, 3, 3, 4])  # one kill before the stream started: not reported
    events = list(commands.oom_events(mgr, "c1", poll=0, sleep=lambda s: None))
    assert events == [{"type": "oom", "id": "c1"}] * 3


def test_event_stream_interleaves_stats_and_oom():
    clock = iter(range(100))
    mgr = FakeManager([0, 0, 1, 1, 1])
    events = list(commands.event_stream(mgr, "c1", interval=2, poll=0, clock=lambda: next(clock),
                                        sleep=lambda s: None))
    kinds = [e["type"] for e in events]
    assert kinds.count("oom") == 1
    assert kinds[0] == "stats" and events[0] == {"type": "stats", "id": "c1", "data": {"pids": {"current": 1}}}


def test_stats_event_shape():
    assert commands.stats_event(FakeManager([0]), "x") == {"type": "stats", "id": "x", "data": {"pids": {"current": 1}}}


def test_features_document():
    f = features()
    assert f["v1"] is True and f["v2"] is True and f["systemd"] is False and f["systemdUser"] is False


def test_v1_stats_from_recorded_files():
    files = {
        ("cpuacct", "cpuacct.usage"): "3000\n",
        ("cpuacct", "cpuacct.usage_percpu"): "1000 2000 \n",
        ("cpuacct", "cpuacct.stat"): "user 2\nsystem 1\n",
        ("cpu", "cpu.stat"): "nr_periods 10\nnr_throttled 4\nthrottled_time 999\n",
        ("memory", "memory.stat"): "cache 4096\nrss 8192\n",
        ("memory", "memory.usage_in_bytes"): "12288\n",
        ("memory", "memory.limit_in_bytes"): "67108864\n",
        ("memory", "memory.failcnt"): "5\n",
        ("memory", "memory.oom_control"): "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        ("pids", "pids.current"): "4\n",
        ("pids", "pids.max"): "max\n",
        ("blkio", "blkio.throttle.io_service_bytes_recursive"): "254:0 Read 512\n254:0 Write 0\nTotal 512\n",
        ("cpuset", "cpuset.cpus"): "0\n",
        ("cpuset", "cpuset.mems"): "0\n",
    }
    data = stats.v1_stats(lambda c, n: files.get((c, n)), ["2MB"])
    tick = stats._NS_PER_TICK
    assert data["cpu"]["usage"] == {"total": 3000, "percpu": [1000, 2000], "kernel": tick, "user": 2 * tick}
    assert data["cpu"]["throttling"] == {"periods": 10, "throttledPeriods": 4, "throttledTime": 999}
    assert data["memory"]["cache"] == 4096
    assert data["memory"]["usage"] == {"limit": 67108864, "usage": 12288, "failcnt": 5}
    assert data["memory"]["event_count"] == {"oom_kill": 2}
    assert data["pids"] == {"current": 4}
    assert data["blkio"]["ioServiceBytesRecursive"] == [{"major": 254, "op": "Read", "value": 512},
                                                        {"major": 254, "op": "Write"}]
    assert data["cpuset"]["cpus"] == [0]
    assert data["hugetlb"] == {"2MB": {"failcnt": 0}}
    json.dumps(data)  # the event must be serialisable as is


def test_hot_paths_stay_light(tmp_path):
    """state/kill/delete only read files: no cgroupspy, no planning code gets imported."""
    import subprocess
    import sys

    from tests.support import repo_env

    leaf = tmp_path / "memory" / "pyruntime-test" / "c"
    leaf.mkdir(parents=True)
    code = f"""
import sys
from pyruntime.cgroups import CgroupManager
m = CgroupManager.from_dict({{"mode": "hybrid", "path": "/pyruntime-test/c", "root": "/x",
                              "hierarchies": {{"memory": {str(tmp_path / "memory")!r}}},
                              "unified": {str(tmp_path / "unified")!r}}})
assert m.pids() == [] and m.is_frozen() is False
m.destroy()
heavy = [n for n in ("cgroupspy", "pyruntime.cgroups.resources", "pyruntime.cgroups.stats",
                     "pyruntime.cgroups.v1_controllers", "logging", "json") if n in sys.modules]
print(heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=repo_env(), check=True)
    assert out.stdout.strip() == "[]"
    assert not leaf.exists()
