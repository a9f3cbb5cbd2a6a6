"""CNI error codes and the one exception type of the protocol, on both of its sides.

In the plugin, every failure it can explain becomes a `CniError`; the entry point prints it as
the spec's error object on stdout and exits non-zero. In the runtime side (the conflist runner
and the network hooks) a `CniError` is a plugin's or a configuration's failure as the user reads
it, naming the plugin. Codes 1-99 are the spec's, 100+ are ours.
"""

from __future__ import annotations

from pyruntime.errors import RuntimeUserError

NO_CODE = 0                 # runtime side: a failure the plugin did not give a code for

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50          # STATUS: the plugin cannot serve ADDs right now
NO_ADDRESSES = 100          # IPAM: every address of a range set is taken
PORT_CONFLICT = 101         # another attachment already publishes this host port
CHECK_FAILED = 102          # CHECK found the attachment differs from what ADD made
INTERNAL = 999


class CniError(RuntimeUserError):
    """code, msg and details as the spec's error object has them; plugin: the plugin that
    failed, when the runtime side ran one."""

    def __init__(self, code: int, msg: str, details: str = "", plugin: str | None = None):
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin

    def to_json(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out
