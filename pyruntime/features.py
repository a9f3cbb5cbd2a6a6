"""The runtime-spec "features" document: what this build of pyruntime really supports."""

from __future__ import annotations


from pyruntime import OCI_VERSION, __version__
from pyruntime.hooks import PHASES


def features_document() -> dict:
    from pyruntime import cgroups, linux
    from pyruntime.init import mempolicy, mountplan, process, seccomp

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(PHASES),
        "mountOptions": sorted(set(mountplan.MOUNT_OPTIONS) | set(mountplan.PROPAGATION)
                               | {"tmpcopyup"}),
        "linux": {
            "namespaces": sorted(linux.NAMESPACES),
            "capabilities": sorted(process.CAP_NUMBERS),
            "cgroup": cgroups.features(),
            "seccomp": {
                "enabled": True,
                "actions": sorted(seccomp.ACTIONS),
                "operators": sorted(seccomp.OPERATORS),
                "archs": sorted(seccomp.ARCHES),
                "knownFlags": sorted(seccomp.FLAGS),
                "supportedFlags": sorted(seccomp.FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "memoryPolicy": {"modes": sorted(mempolicy.MODES), "flags": sorted(mempolicy.FLAGS)},
            "intelRdt": {"enabled": False},
            # idmap/ridmap binds and mounts with their own uid/gid mappings (init/mountplan.py, init/rootfs.py)
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            "io.github.pyruntime.version": __version__,
        },
    }

