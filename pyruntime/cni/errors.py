"""CNI error codes and the one exception type the plugin reports failures with.

Every failure the plugin can explain becomes a `CniError`; the entry point prints it as the
spec's error object on stdout and exits non-zero. Codes 1-99 are the spec's, 100+ are ours.
"""

from __future__ import annotations

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


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict:
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg
