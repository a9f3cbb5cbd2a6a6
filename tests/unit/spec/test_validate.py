"""Loading and checking documents (pyruntime.spec.validate): config.json against its schema (a table
of broken configs, each naming the exact field and problem), the state and features documents,
and a bundle's config.json read from disk."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyruntime.errors import ConfigError, RuntimeUserError
from pyruntime.spec import (
    default_spec,
    load_config,
    validate_config,
    validate_document,
)
from pyruntime.spec.messages import schema_problems
from tests.unit.spec.strategies import (
    BASES,
    CONFIG_SCHEMA,
    MAPS,
    SETTINGS,
    at,
    containers,
    damaged_configs,
    fast_says_valid,
    json_values,
)
from tests.unit.spec.support import (  # noqa: F401 (isolated_cache is a fixture)
    DELETE,
    base_config,
    isolated_cache,
    mutate,
    podman_config,
    problems_of,
)


def test_base_and_fixture_configs_are_valid():
    validate_config(base_config())
    validate_config(podman_config())


# (field to change, new value, path of the reported problem, part of its message)
BROKEN = [
    # top level
    ("ociVersion", DELETE, "ociVersion", "is required"),
    ("ociVersion", 1, "ociVersion", "expected a SemVer"),
    ("ociVersion", "1.2", "ociVersion", "expected a SemVer"),
    ("ociVersion", "1.2.0\n", "ociVersion", "expected a SemVer"),
    ("root", DELETE, "root", "is required"),
    ("root", "rootfs", "root", "expected an object"),
    ("root.path", DELETE, "root.path", "is required"),
    ("root.path", "", "root.path", "expected a non-empty path"),
    ("root.readonly", "yes", "root.readonly", "expected a boolean"),
    ("hostname", 42, "hostname", "expected a string, got 42"),
    ("domainname", ["a"], "domainname", "expected a string"),
    ("annotations", {"a": 1}, "annotations.a", "expected a string, got 1"),
    ("annotations", {"": "x"}, 'annotations[""]', "non-empty annotation key"),
    ("annotations", ["a=b"], "annotations", "expected an object"),
    # process
    ("process", "sh", "process", "expected an object"),
    ("process.cwd", DELETE, "process.cwd", "is required"),
    ("process.cwd", "tmp", "process.cwd", "expected an absolute path, got \"tmp\""),
    ("process.args", [], "process.args", "expected at least 1 entry"),
    ("process.args", "sh", "process.args", "expected an array"),
    ("process.args", ["sh", 1], "process.args[1]", "expected a string"),
    ("process.env", "PATH=/bin", "process.env", "expected an array"),
    ("process.terminal", "true", "process.terminal", "expected a boolean"),
    ("process.user.uid", "root", "process.user.uid", 'expected an integer >= 0, got "root"'),
    ("process.user.uid", -1, "process.user.uid", "expected an integer between 0 and 4294967295, got -1"),
    ("process.user.gid", 4294967296, "process.user.gid", "between 0 and 4294967295"),
    ("process.user.uid", 1.5, "process.user.uid", "expected an integer"),
    ("process.user.uid", True, "process.user.uid", "expected an integer"),
    ("process.user.uid", DELETE, "process.user.uid", "is required"),
    ("process.user.additionalGids", [0, "wheel"], "process.user.additionalGids[1]", "expected an integer"),
    ("process.user.umask", 1000, "process.user.umask", "between 0 and 511"),
    ("process.consoleSize", {"height": 25}, "process.consoleSize.width", "is required"),
    ("process.rlimits[0].type", "RLIMIT_BOGUS", "process.rlimits[0].type", "expected one of \"RLIMIT_AS\""),
    ("process.rlimits[0].soft", -1, "process.rlimits[0].soft", "between 0 and 18446744073709551615"),
    ("process.rlimits[0].hard", DELETE, "process.rlimits[0].hard", "is required"),
    ("process.capabilities.bounding", ["KILL"], "process.capabilities.bounding[0]", "capability name"),
    ("process.capabilities", ["CAP_KILL"], "process.capabilities", "expected an object"),
    ("process.capabilities.effective", ["CAP_KILL\n"], "process.capabilities.effective[0]", "capability name"),
    ("process.noNewPrivileges", 1, "process.noNewPrivileges", "expected a boolean"),
    ("process.oomScoreAdj", 1001, "process.oomScoreAdj", "between -1000 and 1000"),
    ("process.scheduler", {"policy": "SCHED_FAST"}, "process.scheduler.policy", "expected one of"),
    ("process.scheduler", {"nice": 1}, "process.scheduler.policy", "is required"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority",
     "between 0 and 7"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_X", "priority": 1}, "process.ioPriority.class", "one of"),
    ("process.execCPUAffinity", {"final": "0-3,a"}, "process.execCPUAffinity.final", "CPU/node list"),
    # mounts
    ("mounts", "proc", "mounts", "expected an array"),
    ("mounts[0].destination", DELETE, "mounts[0].destination", "is required"),
    ("mounts[1].destination", "", "mounts[1].destination", "non-empty"),
    ("mounts[2].options", "nosuid", "mounts[2].options", "expected an array of strings"),
    ("mounts[3].type", 5, "mounts[3].type", "expected a string"),
    ("mounts[4].source", None, "mounts[4].source", "expected a string, got null"),
    ("mounts[0].uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}], "mounts[0].gidMappings",
     "is required when uidMappings is set"),
    # hooks
    ("hooks.prestart[0].path", "hook.sh", "hooks.prestart[0].path", "expected an absolute path"),
    ("hooks.poststop[0].timeout", 0, "hooks.poststop[0].timeout", "between 1 and"),
    ("hooks.createRuntime", [{"args": ["x"]}], "hooks.createRuntime[0].path", "is required"),
    ("hooks.poststart", "/bin/true", "hooks.poststart", "expected an array"),
    ("hooks.startContainer", [{"path": 7}], "hooks.startContainer[0].path", "expected an absolute path"),
    ("hooks", "x", "hooks", "expected an object"),
    # namespaces and id mappings
    ("linux.namespaces[0].type", "pidns", "linux.namespaces[0].type", "expected one of \"pid\""),
    ("linux.namespaces[1]", {"path": "/proc/1/ns/net"}, "linux.namespaces[1].type", "is required"),
    ("linux.namespaces[1].path", "proc/1/ns/net", "linux.namespaces[1].path", "absolute path"),
    ("linux.namespaces", {"pid": {}}, "linux.namespaces", "expected an array"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": -5, "size": 1}], "linux.uidMappings[0].hostID",
     "between 0 and 4294967295"),
    ("linux.gidMappings", [{"containerID": 0, "hostID": 0}], "linux.gidMappings[0].size", "is required"),
    # devices
    ("linux.devices", [{"type": "x", "path": "/dev/x", "major": 1, "minor": 1}], "linux.devices[0].type",
     "expected one of \"c\""),
    ("linux.devices", [{"type": "c", "path": "dev/fuse", "major": 10, "minor": 229}], "linux.devices[0].path",
     "absolute path"),
    ("linux.devices", [{"type": "c", "path": "/dev/fuse"}], "linux.devices[0].major", "is required"),
    ("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": -1}],
     "linux.devices[0].fileMode", "between 0 and 4294967295"),
    ("linux.devices", [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "uid": "root"}],
     "linux.devices[0].uid", "expected an integer >= 0"),
    # cgroups
    ("linux.cgroupsPath", 7, "linux.cgroupsPath", "expected a string"),
    ("linux.resources.memory.limit", "1g", "linux.resources.memory.limit", "expected an integer"),
    ("linux.resources.memory.limit", 2**63, "linux.resources.memory.limit",
     "between -9223372036854775808 and 9223372036854775807"),
    ("linux.resources.memory.swappiness", 101, "linux.resources.memory.swappiness", "between 0 and 100"),
    ("linux.resources.memory.disableOOMKiller", "no", "linux.resources.memory.disableOOMKiller", "boolean"),
    ("linux.resources.cpu.shares", -2, "linux.resources.cpu.shares", "between 0 and"),
    ("linux.resources.cpu.cpus", "0-3;7", "linux.resources.cpu.cpus", "CPU/node list"),
    ("linux.resources.cpu.quota", 1.5, "linux.resources.cpu.quota", "expected an integer"),
    ("linux.resources.pids", {}, "linux.resources.pids.limit", "is required"),
    ("linux.resources.pids.limit", "max", "linux.resources.pids.limit", "expected an integer"),
    ("linux.resources.blockIO.weight", 70000, "linux.resources.blockIO.weight", "between 0 and 65535"),
    ("linux.resources.blockIO.weightDevice", [{"major": 8, "minor": 0}], "linux.resources.blockIO.weightDevice[0]",
     "at least one of weight or leafWeight"),
    ("linux.resources.blockIO.throttleReadBpsDevice", [{"major": 8, "minor": 0}],
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate", "is required"),
    ("linux.resources.hugepageLimits", [{"pageSize": "2M", "limit": 1}],
     "linux.resources.hugepageLimits[0].pageSize", "page size"),
    ("linux.resources.hugepageLimits", [{"pageSize": "2MB"}], "linux.resources.hugepageLimits[0].limit",
     "is required"),
    ("linux.resources.network.classID", -1, "linux.resources.network.classID", "between 0 and 4294967295"),
    ("linux.resources.network.priorities", [{"name": "eth0"}], "linux.resources.network.priorities[0].priority",
     "is required"),
    ("linux.resources.rdma", {"mlx5_1": {}}, "linux.resources.rdma.mlx5_1", "at least one of hcaHandles or hcaObjects"),
    ("linux.resources.rdma", {"mlx5_1": {"hcaHandles": -1}}, "linux.resources.rdma.mlx5_1.hcaHandles",
     "between 0 and 4294967295"),
    ("linux.resources.unified", {"memory.max": 100}, 'linux.resources.unified["memory.max"]', "expected a string"),
    ("linux.resources.devices", [{"access": "rwm"}], "linux.resources.devices[0].allow", "is required"),
    ("linux.resources.devices", [{"allow": True, "access": "rwx"}], "linux.resources.devices[0].access",
     "combination of r, w and m"),
    ("linux.resources.devices", [{"allow": True, "type": "z"}], "linux.resources.devices[0].type", "one of"),
    # sysctl
    ("linux.sysctl", {"net.ipv4.ip_forward": 1}, 'linux.sysctl["net.ipv4.ip_forward"]', "expected a string"),
    # seccomp
    ("linux.seccomp", {}, "linux.seccomp.defaultAction", "is required"),
    ("linux.seccomp.defaultAction", "SCMP_ACT_DENY", "linux.seccomp.defaultAction", "expected one of"),
    ("linux.seccomp.architectures", ["x86_64"], "linux.seccomp.architectures[0]", "SCMP_ARCH_X86"),
    ("linux.seccomp.flags", ["SECCOMP_FILTER_FLAG_BOGUS"], "linux.seccomp.flags[0]", "SECCOMP_FILTER_FLAG_TSYNC"),
    ("linux.seccomp.syscalls[0].names", [], "linux.seccomp.syscalls[0].names", "expected at least 1 entry"),
    ("linux.seccomp.syscalls[0].action", DELETE, "linux.seccomp.syscalls[0].action", "is required"),
    ("linux.seccomp.syscalls[0].action", "ALLOW", "linux.seccomp.syscalls[0].action", "SCMP_ACT_ALLOW"),
    ("linux.seccomp.syscalls[0].args[0].index", 6, "linux.seccomp.syscalls[0].args[0].index", "between 0 and 5"),
    ("linux.seccomp.syscalls[0].args[0].op", "SCMP_CMP_IN", "linux.seccomp.syscalls[0].args[0].op", "one of"),
    ("linux.seccomp.syscalls[0].args[0].value", -1, "linux.seccomp.syscalls[0].args[0].value", "between 0 and"),
    ("linux.seccomp.listenerMetadata", "x", "linux.seccomp.listenerPath", "is required when listenerMetadata is set"),
    ("linux.seccomp.errnoRet", None, None, None),  # unknown property: allowed
    # the rest of the linux object
    ("linux.rootfsPropagation", "recursive", "linux.rootfsPropagation", "expected one of"),
    ("linux.maskedPaths", ["proc/kcore"], "linux.maskedPaths[0]", "expected an absolute path"),
    ("linux.readonlyPaths", "/proc/sys", "linux.readonlyPaths", "expected an array"),
    ("linux.mountLabel", 1, "linux.mountLabel", "expected a string"),
    ("linux.personality", {"domain": "LINUX64"}, "linux.personality.domain", "expected one of"),
    ("linux.personality", {}, "linux.personality.domain", "is required"),
    ("linux.intelRdt", {"memBwSchema": "L3:0=7f"}, "linux.intelRdt.memBwSchema", 'starting with "MB:"'),
    ("linux.intelRdt", {"enableCMT": "yes"}, "linux.intelRdt.enableCMT", "boolean"),
    ("linux.timeOffsets", {"realtime": {"secs": 1}}, "linux.timeOffsets.realtime", "is not allowed"),
    ("linux.timeOffsets", {"monotonic": {"nanosecs": -1}}, "linux.timeOffsets.monotonic.nanosecs",
     "between 0 and 4294967295"),
    ("linux", [], "linux", "expected an object"),
]


@pytest.mark.parametrize("field,value,path,fragment", BROKEN, ids=[f"{c[0]}={c[1]!r}"[:60] for c in BROKEN])
def test_broken_config_names_field(field, value, path, fragment):
    problems = problems_of(mutate(base_config(), field, value))
    if path is None:
        assert problems == []
        return
    assert problems, "config should have been rejected"
    first_path, first_message = problems[0]
    assert first_path == path, problems
    assert fragment in first_message, problems


def test_table_is_large_enough():
    assert sum(1 for case in BROKEN if case[2] is not None) >= 60


def test_several_errors_are_reported_together():
    config = base_config()
    config["process"]["user"]["uid"] = "root"
    config["mounts"][2]["destination"] = 5
    del config["process"]["cwd"]
    config["linux"]["namespaces"].append({"type": "bogus"})
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    paths = [path for path, _ in caught.value.problems]
    assert sorted(paths) == sorted([
        "process.user.uid", "mounts[2].destination", "process.cwd", "linux.namespaces[5].type",
    ])
    text = str(caught.value)
    assert text.startswith("invalid config.json (4 problems):")
    assert 'process.user.uid: expected an integer >= 0, got "root"' in text


def test_one_problem_reads_as_one_line():
    with pytest.raises(ConfigError) as caught:
        validate_config(mutate(base_config(), "process.cwd", "tmp"))
    assert str(caught.value) == 'invalid config.json: process.cwd: expected an absolute path, got "tmp"'


def test_document_that_is_not_an_object():
    assert problems_of([]) == [("", "expected an object, got []")]


def test_unknown_properties_are_ignored_everywhere():
    config = base_config()
    config["x-vendor"] = {"anything": [1, 2]}
    config["process"]["x-extra"] = 1
    config["mounts"][0]["x-extra"] = True
    config["linux"]["x-extra"] = "x"
    config["linux"]["resources"]["memory"]["x-extra"] = None
    config["hooks"]["x-extra"] = []
    config["hooks"]["prestart"][0]["x-extra"] = {}
    validate_config(config)


def test_most_relevant_problems_come_first():
    # As jsonschema ranks them: a problem nearer the top of the document (a missing field, a
    # wrong top-level value) explains more than one deep inside it, so it is listed first.
    config = base_config()
    config["linux"]["resources"]["memory"]["limit"] = "lots"
    config["process"]["user"]["uid"] = "root"
    config["hostname"] = 5
    del config["process"]["cwd"]
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    paths = [path for path, _ in caught.value.problems]
    assert set(paths[:2]) == {"hostname", "process.cwd"}
    assert paths[2:] == ["process.user.uid", "linux.resources.memory.limit"]


def test_relative_mount_destination_is_accepted_on_linux_with_a_warning():
    # v1.2: deprecated, but MAY be relative and is then taken relative to "/".
    from pyruntime.spec.semantics import deprecations

    config = mutate(base_config(), "mounts[0].destination", "proc")
    validate_config(config)
    assert deprecations(config) == [
        ("mounts[0].destination", "relative path 'proc' is deprecated; taken as '/proc'")]
    assert deprecations(base_config()) == []


def test_values_at_the_type_limits_are_accepted():
    config = base_config()
    config["process"]["user"]["uid"] = 4294967295
    config["process"]["rlimits"][0]["hard"] = config["process"]["rlimits"][0]["soft"] = 18446744073709551615
    config["linux"]["resources"]["memory"]["limit"] = -9223372036854775808
    config["linux"]["resources"]["cpu"]["quota"] = -1
    config["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "1GB", "limit": 18446744073709551615}]
    validate_config(config)


STATE = {
    "ociVersion": "1.2.0",
    "id": "web-1",
    "pid": 4422,
    "status": "running",
    "bundle": "/containers/web",
    "rootfs": "/containers/web/rootfs",
    "created": "2026-11-23T03:24:32.123456789Z",
    "owner": "",
    "annotations": {"com.example.key": "value"},
}

FEATURES = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.2.0",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec", "rprivate", "idmap"],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
        "capabilities": ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"],
        "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
        "seccomp": {
            "enabled": True,
            "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"],
            "operators": ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"],
            "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "knownFlags": ["SECCOMP_FILTER_FLAG_LOG"],
            "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"],
        },
        "apparmor": {"enabled": False},
        "selinux": {"enabled": False},
        "intelRdt": {"enabled": False},
        "mountExtensions": {"idmap": {"enabled": False}},
    },
    "annotations": {"org.opencontainers.runc.version": "pyruntime"},
    "potentiallyUnsafeConfigAnnotations": [],
}


def problems(doc, kind):
    try:
        validate_document(doc, kind)
    except ConfigError as e:
        assert e.source == f"{kind}.json"
        assert str(e).startswith(f"invalid {kind}.json")
        return e.problems
    return []


@pytest.mark.parametrize("status", ["creating", "created", "running", "stopped"])
def test_state_examples_validate(status):
    doc = dict(STATE, status=status)
    if status == "stopped":
        doc["pid"] = 0
    assert problems(doc, "state") == []


def test_minimal_state_validates():
    assert problems({"ociVersion": "1.2.0", "id": "a", "status": "stopped", "bundle": "/b"}, "state") == []


BROKEN_STATE = [
    ("id", DELETE, "id", "is required"),
    ("id", "", "id", "non-empty container id"),
    ("status", "paused", "status", 'expected one of "creating"'),
    ("pid", DELETE, "pid", "is required"),
    ("pid", -1, "pid", "between 0 and"),
    ("bundle", "containers/web", "bundle", "expected an absolute path"),
    ("ociVersion", "v1", "ociVersion", "SemVer"),
    ("created", "yesterday", "created", "RFC 3339"),
    ("annotations", {"k": 1}, "annotations.k", "expected a string"),
    ("owner", 0, "owner", "expected a string"),
]


@pytest.mark.parametrize("field,value,path,fragment", BROKEN_STATE, ids=[c[0] for c in BROKEN_STATE])
def test_broken_state(field, value, path, fragment):
    found = problems(mutate(STATE, field, value), "state")
    assert found and found[0][0] == path and fragment in found[0][1], found


def test_stopped_state_needs_no_pid():
    doc = copy.deepcopy(STATE)
    doc["status"] = "stopped"
    del doc["pid"]
    assert problems(doc, "state") == []


def test_features_example_validates():
    assert problems(FEATURES, "features") == []
    assert problems({"ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0"}, "features") == []


BROKEN_FEATURES = [
    ("ociVersionMin", DELETE, "ociVersionMin", "is required"),
    ("ociVersionMax", "latest", "ociVersionMax", "SemVer"),
    ("hooks", "prestart", "hooks", "expected an array of strings"),
    ("linux.namespaces", ["pid", "netns"], "linux.namespaces[1]", "expected one of"),
    ("linux.capabilities", ["SYS_ADMIN"], "linux.capabilities[0]", "capability name"),
    ("linux.cgroup.v2", "yes", "linux.cgroup.v2", "boolean"),
    ("linux.seccomp.actions", ["SCMP_ACT_MAYBE"], "linux.seccomp.actions[0]", "expected one of"),
    ("linux.seccomp.archs", ["amd64"], "linux.seccomp.archs[0]", "expected one of"),
    ("linux.seccomp.operators", ["=="], "linux.seccomp.operators[0]", "expected one of"),
    ("linux.apparmor.enabled", 1, "linux.apparmor.enabled", "boolean"),
    ("linux.mountExtensions.idmap", True, "linux.mountExtensions.idmap", "expected an object"),
    ("annotations", {"": "x"}, 'annotations[""]', "non-empty annotation key"),
]


@pytest.mark.parametrize("field,value,path,fragment", BROKEN_FEATURES, ids=[c[0] for c in BROKEN_FEATURES])
def test_broken_features(field, value, path, fragment):
    found = problems(mutate(FEATURES, field, value), "features")
    assert found and found[0][0] == path and fragment in found[0][1], found


def test_unknown_document_kind():
    with pytest.raises(ValueError):
        validate_document({}, "config-ish")


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def make_bundle(path, config) -> str:
    (path / "rootfs").mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(config) if not isinstance(config, str) else config)
    return str(path)


def test_valid_bundle_loads(tmp_path):
    config = default_spec()
    assert load_config(make_bundle(tmp_path, config)) == config


def test_missing_bundle_dir(tmp_path):
    with pytest.raises(RuntimeUserError) as caught:
        load_config(str(tmp_path / "nope"))
    assert str(caught.value) == f"bundle {tmp_path}/nope does not exist"


def test_bundle_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeUserError, match="is not a directory"):
        load_config(str(tmp_path / "file"))


def test_missing_config_json(tmp_path):
    with pytest.raises(RuntimeUserError) as caught:
        load_config(str(tmp_path))
    assert str(caught.value) == f"bundle {tmp_path} has no config.json"
    assert not isinstance(caught.value, ConfigError)


def test_unreadable_config_json(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(RuntimeUserError) as caught:
        load_config(str(tmp_path))
    assert str(caught.value) == f"cannot read {tmp_path}/config.json: Is a directory"


def test_invalid_json_names_line_and_column(tmp_path):
    bundle = make_bundle(tmp_path, '{\n  "ociVersion": "1.2.0",\n  "root": {"path": "rootfs",}\n}\n')
    with pytest.raises(RuntimeUserError) as caught:
        load_config(bundle)
    assert str(caught.value) == (
        "invalid config.json: not valid JSON at line 3 column 29: Expecting property name enclosed in double quotes"
    )


def test_empty_config_json(tmp_path):
    with pytest.raises(RuntimeUserError, match="not valid JSON at line 1 column 1"):
        load_config(make_bundle(tmp_path, ""))


def test_config_json_that_is_not_utf8(tmp_path):
    (tmp_path / "config.json").write_bytes(b'{"ociVersion": "\xff"}')
    with pytest.raises(RuntimeUserError, match="invalid config.json"):
        load_config(str(tmp_path))


def test_schema_problem_is_a_config_error(tmp_path):
    config = default_spec()
    config["process"]["user"]["uid"] = "root"
    with pytest.raises(ConfigError) as caught:
        load_config(make_bundle(tmp_path, config))
    assert caught.value.problems == [("process.user.uid", 'expected an integer >= 0, got "root"')]


def test_missing_rootfs_is_a_config_error(tmp_path):
    bundle = make_bundle(tmp_path, default_spec())
    os.rmdir(tmp_path / "rootfs")
    with pytest.raises(ConfigError) as caught:
        load_config(bundle)
    assert caught.value.problems == [("root.path", f"{tmp_path}/rootfs does not exist")]


def run_fresh(code: str, cache_dir, *args) -> str:
    env = dict(os.environ, PYRUNTIME_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


LOAD_AND_LIST_MODULES = """
import sys
from pyruntime.errors import ConfigError
from pyruntime.spec import load_config
try:
    load_config(sys.argv[1])
    result = "valid"
except ConfigError as e:
    result = "invalid:" + e.problems[0][0]
heavy = sorted(m for m in ("jsonschema", "fastjsonschema", "decimal", "pathlib", "typing") if m in sys.modules)
print(result, ",".join(heavy) or "-")
"""


def test_valid_config_with_warm_cache_imports_no_schema_library(tmp_path):
    bundle = make_bundle(tmp_path, default_spec())
    cache = tmp_path / "cache"
    first = run_fresh(LOAD_AND_LIST_MODULES, cache, bundle)
    assert first.startswith("valid ")
    assert os.listdir(cache), "the compiled validator was not cached"
    assert run_fresh(LOAD_AND_LIST_MODULES, cache, bundle) == "valid -"


def test_invalid_config_is_explained_by_jsonschema(tmp_path):
    config = default_spec()
    config["mounts"][1]["destination"] = 3
    bundle = make_bundle(tmp_path, config)
    out = run_fresh(LOAD_AND_LIST_MODULES, tmp_path / "cache", bundle)
    result, modules = out.split(" ")
    assert result == "invalid:mounts[1].destination"
    assert "jsonschema" in modules.split(",")


@SETTINGS
@given(damaged_configs())
def test_damage_only_ever_raises_config_error(config):
    try:
        validate_config(config)
    except ConfigError as e:
        assert e.problems
        for path, message in e.problems:
            assert isinstance(path, str) and isinstance(message, str) and message


@SETTINGS
@given(damaged_configs())
def test_fast_check_agrees_with_jsonschema(config):
    assert fast_says_valid(config) == (schema_problems(config, CONFIG_SCHEMA) == [])


@SETTINGS
@given(st.sampled_from(BASES), st.data())
def test_unknown_fields_never_make_a_config_invalid(base, data):
    config = copy.deepcopy(base)
    spots = [p for p in containers(config) if isinstance(at(config, p), dict) and (not p or p[-1] not in MAPS)]
    path = data.draw(st.sampled_from(spots))
    key = "x-" + data.draw(st.text(max_size=8))
    at(config, path)[key] = data.draw(json_values)
    validate_config(config)


@SETTINGS
@given(json_values)
def test_any_json_document_is_judged_without_crashing(doc):
    try:
        validate_config(doc)
    except ConfigError:
        pass
    assert fast_says_valid(doc) == (schema_problems(doc, CONFIG_SCHEMA) == [])
