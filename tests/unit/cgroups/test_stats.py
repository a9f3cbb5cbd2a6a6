"""Statistics in runc's shape from recorded cgroup files (cgroups/stats.py)."""

import json

from pyruntime.cgroups import stats


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
