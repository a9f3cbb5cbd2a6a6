"""Where pyruntime's own messages go: the --log file (text or runc's JSON lines), else stderr.

podman and containerd read the last "error" line of the --log file to show the user why the
runtime failed, so errors are always written there in runc's shape: {"level", "msg", "time"}.
"""

from __future__ import annotations

import sys
import time

_path: str | None = None
_format = "text"
_debug = False


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    """Where messages go. A --log file that cannot be opened is an error at once: a client
    that reads the reason for a failure from it would otherwise find nothing."""
    global _path, _format, _debug
    if path:
        try:
            with open(path, "a"):
                pass
        except OSError as e:
            from pyruntime.errors import RuntimeUserError

            _path, _format, _debug = None, fmt, debug
            raise RuntimeUserError(f"--log {path}: cannot open it: {e.strerror}") from None
    _path, _format, _debug = path or None, fmt, debug


def settings() -> tuple[str | None, str, bool]:
    """What configure() was given, for a process that cannot inherit it (a fresh interpreter)."""
    return _path, _format, _debug


def debug_enabled() -> bool:
    return _debug


def _timestamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def write(level: str, msg: str, echo: bool = True) -> None:
    """`echo`: errors also go to stderr (unless the caller already showed them)."""
    if level == "debug" and not _debug:
        return
    if _path:
        if _format == "json":
            import json

            line = json.dumps({"level": level, "msg": msg, "time": _timestamp()})
        else:
            line = f'time="{_timestamp()}" level={level} msg="{msg}"'
        try:
            with open(_path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass
        if level != "error" or not echo:
            return  # errors also go to stderr, for a person watching
    if not echo:
        return
    try:
        print(msg if level == "error" else f"{level}: {msg}", file=sys.stderr)
    except (OSError, ValueError):
        pass


def warn(msg: str) -> None:
    write("warning", msg)


def info(msg: str) -> None:
    write("info", msg)


def error(msg: str) -> None:
    write("error", msg)


def debug(msg: str) -> None:
    write("debug", msg)
