"""JSON documents from outside (the plugin's stdin, a plugin's output, a hook's state, a
conflist file) decoded into plain data within limits, failing with one clear message.

The json module recurses once per nesting level: a document like `[[[[...]]]]` 100000 deep
raises RecursionError, not ValueError, and a few hundred levels that do decode can still make
a later json.dumps of the same data hit the interpreter's recursion limit. Real network
configurations nest a handful of levels, so anything deeper than MAX_DEPTH is refused up
front. Standard library only: the network hooks import this too.
"""

from __future__ import annotations

from pyruntime import jsonlite

MAX_BYTES = 16 * 1024 * 1024     # far above any real configuration, result or state
MAX_DEPTH = 100                  # levels of arrays and objects


class JsonDocError(ValueError):
    """Why a document was refused; str() is one line for humans."""


def read_limited(stream, limit: int = MAX_BYTES):
    """All of `stream` (bytes or text), refusing more than `limit` bytes or characters
    without reading the rest into memory."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise JsonDocError(f"larger than {limit} bytes")
    return data


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH):
    """The decoded document: UTF-8 only, standard JSON only (no NaN or Infinity), at most
    `max_depth` levels of nesting, no lone UTF-16 surrogates in its strings."""
    if len(raw) > MAX_BYTES:
        raise JsonDocError(f"larger than {MAX_BYTES} bytes")
    text = _utf8(raw) if isinstance(raw, (bytes, bytearray)) else raw
    try:
        doc = jsonlite.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonDocError(f"nested more than {max_depth} levels deep") from None
    except JsonDocError:
        raise
    except ValueError as e:
        raise JsonDocError(f"not valid JSON: {e}") from None
    check(doc, max_depth)
    return doc


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonDocError(f"not UTF-8: invalid byte {raw[e.start]:#04x} at offset {e.start}") from None


def _refuse_constant(name: str):
    raise JsonDocError(f"not valid JSON: {name} is not a JSON value")


def check(doc, max_depth: int = MAX_DEPTH) -> None:
    """Refuse data nested deeper than `max_depth` or holding strings that cannot be encoded
    (a lone surrogate from a "\\ud800" escape would fail later, in a file name or a log line).
    A loop, not recursion: it must not fail the way it guards against."""
    pending = [(doc, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, str):
            _require_encodable(node)
            continue
        if isinstance(node, dict):
            children = list(node.values())
            for key in node:
                _require_encodable(key)
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            raise JsonDocError(f"nested more than {max_depth} levels deep")
        pending.extend((child, depth + 1) for child in children)


def _require_encodable(text) -> None:
    if isinstance(text, str) and not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonDocError("a string holds a lone UTF-16 surrogate") from None
