"""JSON paths that name a field the way a user reads config.json: `mounts[2].destination`."""

from __future__ import annotations

TYPE_CHECKING = False   # typing itself is not imported on the hot path
if TYPE_CHECKING:
    from collections.abc import Iterable

_IDENTIFIER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _is_identifier(key: str) -> bool:
    return bool(key) and not key[0].isdigit() and all(c in _IDENTIFIER_CHARS for c in key)


def join(parts: Iterable[str | int]) -> str:
    """Dotted path with [index] for list items and ["key"] for keys that are not identifiers.

    Annotation and sysctl keys contain dots, so they are quoted to keep the path unambiguous:
    ``annotations["com.example.key"]``, ``linux.sysctl["net.ipv4.ip_forward"]``.
    """
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _is_identifier(part):
            out.append(f".{part}" if out else part)
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{escaped}"]')
    return "".join(out)


def child(path: str, key: str | int) -> str:
    """`path` extended by one key or index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _is_identifier(key):
        return f"{path}.{key}" if path else key
    return path + join([key])
