"""default_spec: runc's `spec` / `spec --rootless` output, under this runtime's name, valid."""

from __future__ import annotations

import os

import pytest

from pyruntime import OCI_VERSION
from pyruntime.spec import default_spec, validate_config
from pyruntime.spec.defaults import cgroup2_unified
from tests.unit.spec.support import isolated_cache  # noqa: F401 (fixture)


@pytest.mark.parametrize("rootless", [False, True])
@pytest.mark.parametrize("cgroup_ns", [False, True, None])
def test_default_spec_validates(rootless, cgroup_ns):
    validate_config(default_spec(rootless, cgroup_ns=cgroup_ns))


def test_default_spec_matches_runc_example():
    spec = default_spec(cgroup_ns=False)
    assert spec["ociVersion"] == OCI_VERSION
    process = spec["process"]
    assert process["terminal"] is True
    assert process["args"] == ["sh"]
    assert process["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]
    assert process["cwd"] == "/"
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["noNewPrivileges"] is True
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert process["capabilities"] == {"bounding": caps, "effective": caps, "permitted": caps}
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["hostname"] == "pyruntime"
    assert [(m["destination"], m["type"], m["source"]) for m in spec["mounts"]] == [
        ("/proc", "proc", "proc"), ("/dev", "tmpfs", "tmpfs"), ("/dev/pts", "devpts", "devpts"),
        ("/dev/shm", "tmpfs", "shm"), ("/dev/mqueue", "mqueue", "mqueue"), ("/sys", "sysfs", "sysfs"),
        ("/sys/fs/cgroup", "cgroup", "cgroup"),
    ]
    assert "options" not in spec["mounts"][0]
    assert spec["mounts"][2]["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    linux = spec["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "network", "ipc", "uts", "mount"]
    assert linux["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def test_cgroup_namespace_follows_the_host_hierarchy():
    assert [ns["type"] for ns in default_spec(cgroup_ns=True)["linux"]["namespaces"]][-1] == "cgroup"
    detected = [ns["type"] for ns in default_spec()["linux"]["namespaces"]]
    assert ("cgroup" in detected) == os.path.exists("/sys/fs/cgroup/cgroup.controllers") == cgroup2_unified()


def test_rootless_spec_is_runc_rootless_conversion():
    spec = default_spec(rootless=True, cgroup_ns=True)
    linux = spec["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "cgroup", "user"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    sys_mount = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert sys_mount == {"destination": "/sys", "type": "none", "source": "/sys",
                         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    devpts = next(m for m in spec["mounts"] if m["destination"] == "/dev/pts")
    assert devpts["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]


def test_each_call_returns_a_fresh_document():
    first = default_spec()
    first["mounts"].clear()
    first["linux"]["maskedPaths"].append("/x")
    second = default_spec()
    assert len(second["mounts"]) == 7 and "/x" not in second["linux"]["maskedPaths"]
