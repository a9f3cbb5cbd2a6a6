"""Running without root: how it is detected and where its state lives.

A caller is rootless (runc's `--rootless auto`) when it is not uid 0, or when it is uid 0 only
inside a user namespace that is not the host's (rootless podman calls the runtime so). Such a
caller has no say over the host: its state lives in a directory of its own, its container's
user namespace maps only the ids it was given (idmap.py), and cgroups are used only where it
may write them.
"""

from __future__ import annotations

import os

from pyruntime.errors import RuntimeUserError

ROOT_STATE_DIR = "/run/pyruntime"
# The uid_map of the host's (initial) user namespace: every id maps to itself.
_INITIAL_MAP = ["0", "0", "4294967295"]


def in_initial_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == _INITIAL_MAP
    except OSError:
        return True


_setting = "auto"


def configure(setting: str | None) -> None:
    """The global `--rootless true|false|auto` flag."""
    global _setting
    _setting = (setting or "auto").lower()
    is_rootless()   # an invalid value is a usage error at once


def is_rootless() -> bool:
    setting = _setting
    if setting in ("true", "1", "yes"):
        return True
    if setting in ("false", "0", "no"):
        return False
    if setting != "auto":
        raise RuntimeUserError(f"--rootless: expected true, false or auto, not {setting!r}")
    return os.geteuid() != 0 or not in_initial_userns()


def default_state_root() -> str:
    """/run/pyruntime for root; $XDG_RUNTIME_DIR/pyruntime for anyone else (runc's
    $XDG_RUNTIME_DIR/runc), else a directory of the user's own under /tmp."""
    if os.geteuid() == 0 and in_initial_userns():
        return ROOT_STATE_DIR
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isabs(runtime_dir):
        return os.path.join(runtime_dir, "pyruntime")
    return f"/tmp/pyruntime-{os.geteuid()}"


def check_private_root(root: str) -> None:
    """A non-root caller's state directory must be its own and closed to everyone else: in a
    shared place such as /tmp another user could have made it first, to read or plant state."""
    if os.geteuid() == 0:
        return
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise RuntimeUserError(f"--root {root}: it must belong to you (uid {os.geteuid()}) and be "
                               f"closed to others (mode 0700); it is uid {st.st_uid}, mode "
                               f"{st.st_mode & 0o7777:04o}")
