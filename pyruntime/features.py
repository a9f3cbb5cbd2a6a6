"""The runtime-spec "features" document: what this build of pyruntime really supports."""

from __future__ import annotations


from pyruntime import OCI_VERSION, __version__
from pyruntime.hooks import PHASES


def features_document() -> dict:
    from pyruntime import cgroups, linux
    from pyruntime.init import process, rootfs, seccomp

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(PHASES),
        "mountOptions": sorted(set(rootfs.MOUNT_OPTIONS) | set(rootfs.PROPAGATION) | {"tmpcopyup"}),
        "linux": {
            "namespaces": sorted(linux.NAMESPACES),
            "capabilities": sorted(process.CAP_NUMBERS),
            "cgroup": cgroups.features(),
            "seccomp": {
                "enabled": True,
                "actions": sorted(["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS",
                                   "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",
                                   "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"]),
                "operators": sorted(seccomp.OPERATORS),
                "archs": sorted(seccomp.ARCHES),
                "knownFlags": sorted(seccomp.FLAGS),
                "supportedFlags": sorted(seccomp.FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {
            "io.github.pyruntime.version": __version__,
        },
    }

