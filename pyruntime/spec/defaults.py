"""The config.json that `spec` writes: runc's example spec, under this runtime's name."""

from __future__ import annotations

import os

from pyruntime import OCI_VERSION

_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
    "/sys/devices/virtual/tpm",
]

_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def cgroup2_unified() -> bool:
    """True when /sys/fs/cgroup is a pure cgroup v2 hierarchy (only then is it namespaced)."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _to_rootless(spec: dict, uid: int, gid: int) -> None:
    # The same conversion runc applies for `spec --rootless`: a user namespace mapping the
    # caller to root, no network namespace (an unprivileged user cannot wire it), sysfs bound
    # from the host instead of mounted, no uid=/gid= mount options, no cgroup limits.
    linux = spec["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")]
    namespaces.append({"type": "user"})
    linux["namespaces"] = namespaces
    linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
    mounts = []
    for mount in spec["mounts"]:
        if os.path.normpath(mount["destination"]) == "/sys":
            mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
            continue
        if "options" in mount:
            mount["options"] = [o for o in mount["options"] if not o.startswith(("uid=", "gid="))]
        mounts.append(mount)
    spec["mounts"] = mounts
    del linux["resources"]


def default_spec(rootless: bool = False, *, cgroup_ns: bool | None = None) -> dict:
    """A fresh default config.json as a dict (`spec`, `spec --rootless`).

    `cgroup_ns` forces whether a cgroup namespace is listed; by default it is, as with runc,
    only on a pure cgroup v2 host.
    """
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": list(_CAPABILITIES),
                "effective": list(_CAPABILITIES),
                "permitted": list(_CAPABILITIES),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyruntime",
        "mounts": _mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS),
        },
    }
    if cgroup2_unified() if cgroup_ns is None else cgroup_ns:
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    if rootless:
        _to_rootless(spec, os.geteuid(), os.getegid())
    return spec
