"""runtime-spec v1.3 fields without a container: schema and semantic checks of linux.memoryPolicy,
linux.netDevices, process.scheduler and linux.timeOffsets, the node list and interface name
rules, the features document, and the two new syscall wrappers on this very process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyruntime.features import features_document
from pyruntime.init import mempolicy
from pyruntime.net import netdevices
from pyruntime.spec import validate_document
from tests.support import repo_env
from tests.unit.test_schema_config import (  # noqa: F401 (isolated_cache is a fixture)
    DELETE,
    base_config,
    isolated_cache,
    mutate,
    problems_of,
)


def first_problem(field, value, config=None):
    problems = problems_of(mutate(config or base_config(), field, value))
    assert problems, f"{field}={value!r} should have been refused"
    return problems[0]


# -- linux.memoryPolicy ------------------------------------------------------------------------
REFUSED_POLICIES = [
    ({"nodes": "0"}, "linux.memoryPolicy.mode", "is required"),
    ({"mode": "MPOL_RANDOM"}, "linux.memoryPolicy.mode", "expected one of"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_LAZY"]}, "linux.memoryPolicy.flags[0]", "expected one of"),
    ({"mode": "MPOL_BIND", "nodes": "zero"}, "linux.memoryPolicy.nodes", "node list"),
    ({"mode": "MPOL_BIND", "nodes": "3-1"}, "linux.memoryPolicy.nodes", "runs backwards"),
    ({"mode": "MPOL_BIND", "nodes": "4096"}, "linux.memoryPolicy.nodes", "above the highest node number 4095"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes", "must be empty for MPOL_DEFAULT"),
    ({"mode": "MPOL_LOCAL", "nodes": "0-1"}, "linux.memoryPolicy.nodes", "must be empty for MPOL_LOCAL"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes", "MPOL_BIND needs at least one node"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": ""}, "linux.memoryPolicy.nodes", "needs at least one node"),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE"}, "linux.memoryPolicy.nodes", "needs at least one node"),
    ({"mode": "MPOL_PREFERRED_MANY"}, "linux.memoryPolicy.nodes", "needs at least one node"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy.flags", "exclude each other"),
    ({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_RELATIVE_NODES"]}, "linux.memoryPolicy.flags", "MPOL_LOCAL takes no node flags"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
     "linux.memoryPolicy.flags", "MPOL_F_NUMA_BALANCING needs MPOL_BIND or MPOL_PREFERRED_MANY"),
]


@pytest.mark.parametrize("policy,path,fragment", REFUSED_POLICIES, ids=[str(p) for p, _, _ in REFUSED_POLICIES])
def test_memory_policy_refused(policy, path, fragment):
    where, message = first_problem("linux.memoryPolicy", policy)
    assert where == path and fragment in message, (where, message)


@pytest.mark.parametrize("policy", [
    {"mode": "MPOL_DEFAULT"},
    {"mode": "MPOL_LOCAL", "nodes": ""},
    {"mode": "MPOL_PREFERRED"},                       # no node: local allocation
    {"mode": "MPOL_PREFERRED", "nodes": "1"},
    {"mode": "MPOL_BIND", "nodes": "0-1,3", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_NUMA_BALANCING"]},
    {"mode": "MPOL_PREFERRED_MANY", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
    {"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0-3", "flags": ["MPOL_F_RELATIVE_NODES"]},
])
def test_memory_policy_accepted(policy):
    assert problems_of(mutate(base_config(), "linux.memoryPolicy", policy)) == []


def test_node_lists_and_masks():
    assert mempolicy.parse_nodes("0-1,3, 5") == {0, 1, 3, 5}
    assert mempolicy.parse_nodes("") == set()
    assert mempolicy.nodemask(set()) == b""
    assert mempolicy.nodemask({0, 2}) == b"\x05" + b"\0" * 7
    mask = mempolicy.nodemask({1, 64})
    assert len(mask) == 16 and mask[0] == 0x02 and mask[8] == 0x01
    for bad in ("1-", "-1", "1,,2", "a"):
        with pytest.raises(ValueError):
            mempolicy.parse_nodes(bad)


# -- process.scheduler -------------------------------------------------------------------------
REFUSED_SCHEDULERS = [
    ({"policy": "SCHED_FAST"}, "process.scheduler.policy", "expected one of"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_FAST"]}, "process.scheduler.flags[0]", "expected one of"),
    ({"policy": "SCHED_OTHER", "nice": -21}, "process.scheduler.nice", "must be from -20 to 19 for SCHED_OTHER"),
    ({"policy": "SCHED_BATCH", "nice": 20}, "process.scheduler.nice", "for SCHED_BATCH, got 20"),
    ({"policy": "SCHED_IDLE", "priority": 1}, "process.scheduler.priority", "only be set for SCHED_FIFO or SCHED_RR"),
    ({"policy": "SCHED_FIFO"}, "process.scheduler.priority", "must be from 1 to 99 for SCHED_FIFO, got 0"),
    ({"policy": "SCHED_RR", "priority": 100}, "process.scheduler.priority", "for SCHED_RR, got 100"),
    ({"policy": "SCHED_RR", "priority": 5, "runtime": 1}, "process.scheduler.runtime",
     "only be set for SCHED_DEADLINE, not SCHED_RR"),
    ({"policy": "SCHED_OTHER", "period": 10}, "process.scheduler.period", "only be set for SCHED_DEADLINE"),
    ({"policy": "SCHED_DEADLINE", "priority": 1, "runtime": 2048, "deadline": 4096},
     "process.scheduler.priority", "not SCHED_DEADLINE"),
    ({"policy": "SCHED_DEADLINE"}, "process.scheduler.runtime", "at least 1024 ns"),
    ({"policy": "SCHED_DEADLINE", "runtime": 1023, "deadline": 2048}, "process.scheduler.runtime", "got 1023"),
    ({"policy": "SCHED_DEADLINE", "runtime": 4096}, "process.scheduler.deadline", "at least the runtime (4096 ns)"),
    ({"policy": "SCHED_DEADLINE", "runtime": 4096, "deadline": 8192, "period": 5000},
     "process.scheduler.period", "at least the deadline (8192 ns), got 5000"),
    ({"policy": "SCHED_DEADLINE", "runtime": 4096, "deadline": 2**63}, "process.scheduler.deadline", "below 2^63"),
]


@pytest.mark.parametrize("scheduler,path,fragment", REFUSED_SCHEDULERS, ids=[str(s) for s, _, _ in REFUSED_SCHEDULERS])
def test_scheduler_refused(scheduler, path, fragment):
    where, message = first_problem("process.scheduler", scheduler)
    assert where == path and fragment in message, (where, message)


@pytest.mark.parametrize("scheduler", [
    {"policy": "SCHED_OTHER", "nice": -20},
    {"policy": "SCHED_FIFO", "priority": 99, "nice": 100},     # nice means nothing to SCHED_FIFO (runc)
    {"policy": "SCHED_RR", "priority": 1, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
    {"policy": "SCHED_IDLE"},
    {"policy": "SCHED_ISO"},                                   # in the spec; the kernel has the last word
    {"policy": "SCHED_DEADLINE", "runtime": 1024, "deadline": 1024},
    {"policy": "SCHED_DEADLINE", "runtime": 10**6, "deadline": 10**7, "period": 10**8},
    {"policy": "SCHED_DEADLINE", "flags": ["SCHED_FLAG_KEEP_PARAMS"]},
])
def test_scheduler_accepted(scheduler):
    assert problems_of(mutate(base_config(), "process.scheduler", scheduler)) == []


# -- linux.netDevices --------------------------------------------------------------------------
@pytest.mark.parametrize("name,template,problem", [
    ("eth0", False, None),
    ("a" * 15, False, None),
    ("a" * 16, False, "longer than 15 bytes"),
    ("", True, "is empty"),
    (".", False, "not a device name"),
    ("..", True, "not a device name"),
    ("dev/null", False, "contains '/', ':' or white space"),
    ("eth0:1", True, "contains"),
    ("eth 0", True, "contains"),
    ("eth%d", True, None),
    ("eth%d", False, "may hold '%' only"),
    ("e%d%d", True, "may hold '%' only"),
    ("e%s", True, "may hold '%' only"),
])
def test_interface_names(name, template, problem):
    found = netdevices.name_problem(name, template)
    assert (found is None) if problem is None else (problem in found), found


def test_net_devices_need_a_network_namespace():
    config = base_config()
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    assert first_problem("linux.netDevices", {"eth1": {}}, config) == \
        ("linux.netDevices", "moving network devices needs a network namespace in linux.namespaces")


def test_net_devices_into_a_joined_namespace_are_accepted():
    config = base_config()
    config["linux"]["namespaces"] = [ns if ns["type"] != "network" else
                                     {"type": "network", "path": "/run/netns/blue"}
                                     for ns in config["linux"]["namespaces"]]
    assert problems_of(mutate(config, "linux.netDevices", {"eth1": {"name": "c0"}, "eth2": {}})) == []


@pytest.mark.parametrize("devices,path,fragment", [
    ({"eth1": {"name": 7}}, 'linux.netDevices.eth1.name', "expected a string"),
    ({"eth1": "c0"}, "linux.netDevices.eth1", "expected an object"),
    ({"bad name": {}}, 'linux.netDevices["bad name"]', "host device name 'bad name' contains"),
    ({"eth%d": {}}, 'linux.netDevices["eth%d"]', "may hold '%' only"),
    ({"eth1": {"name": "x" * 16}}, "linux.netDevices.eth1.name", "longer than 15 bytes"),
    ({"eth1": {"name": "c0"}, "eth2": {"name": "c0"}}, "linux.netDevices.eth2.name",
     "linux.netDevices.eth1 is also named 'c0'"),
    ({"eth1": {"name": "eth2"}, "eth2": {}}, "linux.netDevices.eth2", "is also named 'eth2'"),
])
def test_net_devices_refused(devices, path, fragment):
    where, message = first_problem("linux.netDevices", devices)
    assert where == path and fragment in message, (where, message)


def test_net_devices_may_share_a_template():
    devices = {"eth1": {"name": "ctr%d"}, "eth2": {"name": "ctr%d"}, "eth3": {"name": ""}}
    assert problems_of(mutate(base_config(), "linux.netDevices", devices)) == []


# -- linux.timeOffsets -------------------------------------------------------------------------
def test_time_offset_nanoseconds_below_a_second():
    config = base_config()
    config["linux"]["namespaces"].append({"type": "time"})
    offsets = {"monotonic": {"secs": -5, "nanosecs": 999_999_999}, "boottime": {"nanosecs": 10**9}}
    assert problems_of(mutate(config, "linux.timeOffsets", offsets)) == [
        ("linux.timeOffsets.boottime.nanosecs",
         "must be below 1000000000 (put whole seconds in secs), got 1000000000")]


# -- features ----------------------------------------------------------------------------------
def test_features_document_is_1_3_and_valid():
    doc = features_document()
    validate_document(doc, "features")
    assert doc["ociVersionMax"] == "1.3.0"
    assert doc["linux"]["memoryPolicy"] == {"modes": sorted(mempolicy.MODES), "flags": sorted(mempolicy.FLAGS)}
    assert doc["linux"]["netDevices"] == {"enabled": True}
    assert doc["linux"]["mountExtensions"]["idmap"] == {"enabled": True}


@pytest.mark.parametrize("field,value,path", [
    ("linux.memoryPolicy.modes", ["MPOL_RANDOM"], "linux.memoryPolicy.modes[0]"),
    ("linux.memoryPolicy.flags", "MPOL_F_STATIC_NODES", "linux.memoryPolicy.flags"),
    ("linux.netDevices.enabled", "yes", "linux.netDevices.enabled"),
    ("linux.intelRdt.schemata", 1, "linux.intelRdt.schemata"),
])
def test_features_schema_knows_the_1_3_fields(field, value, path):
    from pyruntime.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        validate_document(mutate(features_document(), field, value), "features")
    assert caught.value.problems[0][0] == path


# -- the syscall wrappers, on a process of our own (no root needed) ----------------------------
def in_child(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=repo_env(), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_set_mempolicy_reaches_the_kernel():
    out = in_child(
        "from pyruntime import linux\n"
        "from pyruntime.init import mempolicy as m\n"
        "linux.set_mempolicy(m.MODES['MPOL_INTERLEAVE'] | m.FLAGS['MPOL_F_STATIC_NODES'], m.nodemask({0}))\n"
        "print(open('/proc/self/numa_maps').readline())\n")
    assert out.split()[1] == "interleave=static:0"


def test_sched_setattr_reaches_the_kernel():
    out = in_child(
        "from pyruntime import linux\n"
        "from pyruntime.init import scheduler as s\n"
        "linux.sched_setattr(s.POLICIES['SCHED_BATCH'], s.FLAGS['SCHED_FLAG_RESET_ON_FORK'], nice=3)\n"
        "import os\n"
        "p = os.sched_getscheduler(0)\n"
        "print(p & ~os.SCHED_RESET_ON_FORK == os.SCHED_BATCH, bool(p & os.SCHED_RESET_ON_FORK), os.getpriority(os.PRIO_PROCESS, 0))\n")
    assert out.split() == ["True", "True", "3"]
