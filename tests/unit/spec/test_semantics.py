"""Checks beyond the schema (pyruntime.spec.semantics): namespaces, id mappings, hooks on disk,
cgroupsPath, seccomp errno and notify, and the runtime-spec v1.3 fields (linux.memoryPolicy,
process.scheduler, linux.netDevices, linux.timeOffsets)."""

from __future__ import annotations

import os
import stat

import pytest

from pyruntime.errors import ConfigError
from pyruntime.init import seccomp
from pyruntime.spec import validate_config
from tests.unit.spec.support import (  # noqa: F401 (isolated_cache is a fixture)
    DELETE,
    base_config,
    isolated_cache,
    mutate,
    problems_of,
)
from tests.unit.support import NOTIFY_MKDIR


def with_namespaces(config: dict, *types: str) -> dict:
    config["linux"]["namespaces"] = [{"type": t} for t in types]
    return config


SEMANTIC = [
    # (field, value, path, part of the message)
    ("ociVersion", "2.0.0", "ociVersion", "this runtime implements 1.x"),
    ("process.args", DELETE, "process.args", "is required"),
    ("process.env", ["PATH=/bin", "NOEQUALS"], "process.env[1]", "expected KEY=value"),
    ("process.env", ["=value"], "process.env[0]", "expected KEY=value"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
                         {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}],
     "process.rlimits[1].type", "RLIMIT_NOFILE is listed twice (first at process.rlimits[0])"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 1024}],
     "process.rlimits[0].soft", "above the hard limit 1024"),
    ("linux.namespaces[5]", {"type": "pid"}, "linux.namespaces[5].type",
     "namespace type 'pid' is listed twice (first at linux.namespaces[0])"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}], "linux.uidMappings",
     "no user namespace"),
    ("linux.cgroupsPath", "/pyruntime/../escape", "linux.cgroupsPath", "must not contain '..' components"),
    ("linux.cgroupsPath", "..", "linux.cgroupsPath", "must not contain '..' components"),
    ("hooks.prestart[0].path", "/nonexistent/hook", "hooks.prestart[0].path", "does not exist"),
    ("hooks.createRuntime[0].path", "/usr/bin", "hooks.createRuntime[0].path", "is not a file"),
    ("linux.seccomp.syscalls[0].errnoRet", 1, "linux.seccomp.syscalls[0].errnoRet",
     "not allowed with action SCMP_ACT_ALLOW"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}, "linux.seccomp.defaultErrnoRet",
     "not allowed with defaultAction SCMP_ACT_KILL"),
    ("linux.resources.cpu", {"quota": 1000, "burst": 2000}, "linux.resources.cpu.burst", "must not exceed quota"),
    ("mounts[0].options", ["idmap"], "mounts[0].options", "idmap needs"),
    ("linux.timeOffsets", {"monotonic": {"secs": 1}}, "linux.timeOffsets", "new time namespace"),
]


@pytest.mark.parametrize("field,value,path,fragment", SEMANTIC, ids=[c[0] for c in SEMANTIC])
def test_semantic_problem(field, value, path, fragment):
    problems = problems_of(mutate(base_config(), field, value))
    assert problems, "config should have been rejected"
    assert problems[0][0] == path, problems
    assert fragment in problems[0][1], problems


def test_startcontainer_hooks_are_not_looked_up_on_the_host():
    # Their path resolves inside the container.
    validate_config(mutate(base_config(), "hooks.startContainer", [{"path": "/only/in/container"}]))


def test_new_user_namespace_needs_both_mappings():
    config = with_namespaces(base_config(), "pid", "mount", "user", "network", "uts")
    problems = problems_of(config)
    assert problems == [
        ("linux.uidMappings", "a new user namespace needs uidMappings"),
        ("linux.gidMappings", "a new user namespace needs gidMappings"),
    ]
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert [p for p, _ in problems_of(config)] == ["linux.gidMappings"]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert problems_of(config) == []


def test_joined_user_namespace_needs_no_mappings():
    config = base_config()
    config["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    assert problems_of(config) == []


def test_hostname_needs_a_uts_namespace():
    config = with_namespaces(base_config(), "pid", "mount", "network")
    assert problems_of(config) == [("hostname", "can only be set when linux.namespaces has a uts namespace")]
    config["hostname"] = ""
    assert problems_of(config) == []


def test_network_and_ipc_sysctls_need_their_namespaces():
    config = with_namespaces(base_config(), "pid", "mount", "uts")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "9",
                                 "vm.overcommit_memory": "1"}
    assert problems_of(config) == [
        ('linux.sysctl["net.ipv4.ip_forward"]', "network sysctls need a network namespace in linux.namespaces"),
        ('linux.sysctl["kernel.shmmax"]', "ipc sysctls need an ipc namespace in linux.namespaces"),
        ('linux.sysctl["fs.mqueue.msg_max"]', "ipc sysctls need an ipc namespace in linux.namespaces"),
    ]


def test_a_hostname_sysctl_may_not_contradict_hostname():
    config = with_namespaces(base_config(), "pid", "mount", "uts")
    config["hostname"] = "box"
    config["linux"]["sysctl"] = {"kernel.hostname": "other"}
    assert problems_of(config) == [('linux.sysctl["kernel.hostname"]', "'other' conflicts with hostname 'box'")]
    config["linux"]["sysctl"] = {"kernel.hostname": "box"}
    assert problems_of(config) == []


def test_io_priority_needs_only_its_class():
    from pyruntime.spec import validate_config

    config = with_namespaces(base_config(), "pid", "mount", "uts")
    config["linux"].pop("sysctl", None)
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    validate_config(config)


def test_idmap_mount_is_fine_with_its_own_mappings():
    config = base_config()
    mapping = [{"containerID": 0, "hostID": 1000, "size": 1}]
    config["mounts"].append({"destination": "/data", "type": "none", "source": "/srv", "options": ["rbind", "idmap"],
                             "uidMappings": mapping, "gidMappings": mapping})
    assert problems_of(config) == []


def test_several_semantic_problems_come_together():
    config = base_config()
    config["linux"]["namespaces"].append({"type": "ipc"})
    config["linux"]["cgroupsPath"] = "a/../b"
    del config["process"]["args"]
    paths = [p for p, _ in problems_of(config)]
    assert paths == ["process.args", "linux.namespaces[5].type", "linux.cgroupsPath"]


def test_hook_made_executable_passes(tmp_path):
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o644)
    config = mutate(base_config(), "hooks.prestart[0].path", str(hook))
    assert problems_of(config) == [("hooks.prestart[0].path", f"{hook} is not executable")]
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    validate_config(config)


def test_root_path_is_checked_against_the_bundle(tmp_path):
    config = base_config()
    with pytest.raises(ConfigError) as caught:
        validate_config(config, str(tmp_path))
    assert caught.value.problems == [("root.path", f"{tmp_path}/rootfs does not exist")]
    (tmp_path / "rootfs").write_text("")
    with pytest.raises(ConfigError) as caught:
        validate_config(config, str(tmp_path))
    assert caught.value.problems == [("root.path", f"{tmp_path}/rootfs is not a directory")]
    os.unlink(tmp_path / "rootfs")
    (tmp_path / "rootfs").mkdir()
    validate_config(config, str(tmp_path))
    # An absolute root.path is taken as is, not joined to the bundle.
    config["root"]["path"] = str(tmp_path / "rootfs")
    validate_config(config, "/nonexistent-bundle")


def with_seccomp(**profile) -> dict:
    return mutate(base_config(), "linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", **profile})


def test_a_profile_with_notify_and_a_listener_path_is_valid():
    assert problems_of(with_seccomp(syscalls=[NOTIFY_MKDIR], listenerPath="/run/agent.sock",
                                    listenerMetadata="opaque")) == []


@pytest.mark.parametrize("profile,path,fragment", [
    ({"syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ALLOW"}, NOTIFY_MKDIR]},
     "linux.seccomp.listenerPath", "is required: linux.seccomp.syscalls[1] uses SCMP_ACT_NOTIFY"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"},
     "linux.seccomp.defaultAction", "cannot be the default action"),
    ({"syscalls": [{"names": ["recvmsg", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}],
      "listenerPath": "/run/agent.sock"},
     "linux.seccomp.syscalls[0].names", "cannot be used for sendmsg"),
    ({"listenerMetadata": "opaque"}, "linux.seccomp.listenerPath", "required when listenerMetadata"),
], ids=["no-listener-path", "notify-default", "notify-sendmsg", "metadata-without-path"])
def test_notify_profiles_the_runtime_refuses(profile, path, fragment):
    problems = problems_of(with_seccomp(**profile))
    assert problems and problems[0][0] == path, problems
    assert fragment in problems[0][1], problems


def test_a_listener_path_without_notify_is_ignored():
    assert problems_of(with_seccomp(listenerPath="/run/agent.sock")) == []
    assert seccomp.notifies({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}) is False


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
