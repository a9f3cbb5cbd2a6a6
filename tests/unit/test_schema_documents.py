"""state.json and features.json: what `state` and `features` print must match the schemas."""

from __future__ import annotations

import copy

import pytest

from pyruntime.errors import ConfigError
from pyruntime.spec import validate_document
from tests.unit.test_schema_config import DELETE, isolated_cache, mutate  # noqa: F401 (fixture)

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
