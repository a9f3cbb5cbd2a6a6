"""Where a named network's configuration list comes from: the configuration directories
(default /etc/pyruntime/net.d), then the network that ships with pyruntime."""

from __future__ import annotations

import os

from pyruntime.cni.errors import NO_CODE, CniError
from pyruntime.cni.runtime import load_conflist
from pyruntime.network.modes import DEFAULT_NETWORK

DEFAULT_CONFIG_DIRS = ("/etc/pyruntime/net.d",)

# The shipped default: pyruntime's own bridge plugin (its built-in host-local IPAM and port
# mapping), masquerading egress, ports published through the portMappings capability.
DEFAULT_CONFLIST = {
    "cniVersion": "1.0.0",
    "name": DEFAULT_NETWORK,
    "plugins": [{
        "type": "pyruntime-bridge",
        "bridge": "pyruntime0",
        "isGateway": True,
        "ipMasq": True,
        "hairpinMode": True,
        "ipam": {
            "type": "pyruntime-bridge",  # the plugin's own host-local IPAM
            "ranges": [[{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        },
        "capabilities": {"portMappings": True},
    }],
}


def candidate_files(name: str, config_dirs) -> list[str]:
    return [os.path.join(d, f"{name}{ext}") for d in config_dirs for ext in (".conflist", ".conf", ".json")]


def find_network(name: str, config_dirs=DEFAULT_CONFIG_DIRS) -> dict:
    """The configuration list called `name`: a file <dir>/<name>.conflist (or .conf/.json)
    whose "name" is `name`, or the shipped default for the default network name."""
    for path in candidate_files(name, config_dirs):
        if os.path.isfile(path):
            conflist = load_conflist(path)
            if conflist["name"] != name:
                raise CniError(NO_CODE, f"{path}: the network is named {conflist['name']!r}, not {name!r}")
            return conflist
    if name == DEFAULT_NETWORK:
        return DEFAULT_CONFLIST
    raise CniError(NO_CODE, f"network {name!r} not found (looked for {name}.conflist in "
                            f"{', '.join(config_dirs)})")
