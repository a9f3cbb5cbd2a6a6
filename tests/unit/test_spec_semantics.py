"""Checks beyond the schema: namespaces, id mappings, hooks on disk, cgroupsPath, seccomp errno..."""

from __future__ import annotations

import os
import stat

import pytest

from pyruntime.errors import ConfigError
from pyruntime.spec import validate_config
from tests.unit.test_schema_config import (  # noqa: F401 (isolated_cache is a fixture)
    DELETE,
    base_config,
    isolated_cache,
    mutate,
    problems_of,
)


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
