"""What a plugin `type` (or `ipam.type`) may be: a bare file name, looked up in CNI_PATH only.

The spec says a type "must not contain characters disallowed in file paths"; libcni refuses
one holding a path separator ("invalid plugin name"). Anything else would let whoever writes a
network configuration (or a cached copy of one) run any file on the host as root: "/tmp/x" is
an absolute path once joined to a CNI_PATH directory, "../x" walks out of it. Standard library
only: the network hooks import this too.
"""

from __future__ import annotations

INVALID = "invalid plugin name"
NAME_MAX = 255          # bytes in one path component (Linux)


def problem(name) -> str:
    """Why `name` cannot be a plugin's file name in CNI_PATH; "" when it can."""
    if not isinstance(name, str) or not name:
        return "no plugin name provided"
    if "/" in name:
        return "a plugin type is a file name found in CNI_PATH, not a path"
    if name in (".", ".."):
        return "'.' and '..' are not file names"
    if "\0" in name:
        return "it contains a NUL character"
    if len(name.encode(errors="surrogateescape")) > NAME_MAX:
        return f"longer than {NAME_MAX} bytes"
    return ""
