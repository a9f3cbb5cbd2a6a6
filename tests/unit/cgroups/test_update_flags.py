"""runc update's flags as OCI resources (cgroups/update_flags.py)."""

import io
import json

import pytest

from pyruntime.cgroups import update_flags
from pyruntime.errors import RuntimeUserError


def test_update_flags_to_resources():
    warnings = []
    res = update_flags.update_from_flags(
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
    assert update_flags.update_from_flags(memory="-1") == {"memory": {"limit": -1, "swap": -1}}
    assert update_flags.update_from_flags(memory="-1", memory_swap="2g") == {"memory": {"limit": -1, "swap": 2 << 30}}


def test_update_zero_flags_change_nothing():
    assert update_flags.update_from_flags(pids_limit=0, blkio_weight=0) == {}
    assert update_flags.update_from_flags(pids_limit=-1) == {"pids": {"limit": -1}}


@pytest.mark.parametrize("flags,needle", [
    ({"memory": "lots"}, "--memory"),
    ({"cpu_share": "-5"}, "--cpu-share"),
    ({"cpu_period": "1.5"}, "--cpu-period"),
    ({"cpu_quota": "x"}, "--cpu-quota"),
    ({"pids_limit": "many"}, "--pids-limit"),
])
def test_update_bad_flags(flags, needle):
    with pytest.raises(RuntimeUserError, match=needle):
        update_flags.update_from_flags(**flags)


def test_update_from_json_file_and_stdin(tmp_path):
    doc = {"memory": {"limit": 1000, "checkBeforeUpdate": True}, "cpu": {"shares": 100}}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(doc))
    # With -r the other flags are ignored, as in runc.
    assert update_flags.update_from_flags(resources=str(f), memory="1g") == doc
    assert update_flags.update_from_flags(resources="-", stdin=io.StringIO(json.dumps(doc))) == doc
    f.write_text("{nope")
    with pytest.raises(RuntimeUserError, match="not valid JSON"):
        update_flags.update_from_flags(resources=str(f))
    with pytest.raises(RuntimeUserError, match="cannot read"):
        update_flags.update_from_flags(resources=str(tmp_path / "missing.json"))
