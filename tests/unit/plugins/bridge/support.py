"""What the bridge plugin's tests share: a network configuration to vary."""

from __future__ import annotations


def conf(**over):
    c = {"cniVersion": "1.1.0", "name": "unitnet", "type": "pyruntime-bridge", "bridge": "pyrunit0",
         "ipam": {"type": "pyruntime-bridge", "subnet": "10.123.0.0/24", "dataDir": "/nonexistent/pyr"}}
    c.update(over)
    return c
