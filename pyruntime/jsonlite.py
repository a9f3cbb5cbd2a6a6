"""JSON for the hot commands, straight from the interpreter's C codec (`_json`).

The `json` package imports `re` (and through it `enum`, `functools`, `collections`) for the
pure-Python fallbacks it compiles at import, ~6 ms of CPU per call on this project's machine:
as much as everything else `state`, `start`, `kill` or `delete` do. The C scanner and encoder
that `json` uses for its own work need none of that, so this module drives them directly and
produces exactly what `json.loads`, `json.dumps(obj, separators=(",", ":"))` and
`json.dumps(obj, indent=2)` would (tests/unit/test_jsonlite.py compares them).

Anything the C codec does not handle here (a value of another type to encode, a dict with
non-string keys to indent) is handed to the `json` package, which then gets imported.
"""

from __future__ import annotations

import _json

_WHITESPACE = " \t\n\r"   # what json's decoder skips around a document


class _DecoderSettings:
    """What `_json.make_scanner` reads from its argument: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__
    memo: dict = {}


def _make_scanner(parse_constant):
    settings = _DecoderSettings()
    settings.parse_constant = parse_constant   # on the instance: a function stays unbound
    return _json.make_scanner(settings)


_scan_once = _make_scanner(_DecoderSettings.parse_constant)
_scanners: dict = {}   # parse_constant -> its scanner


def loads(text: str | bytes, parse_constant=None):
    """json.loads(text, parse_constant=parse_constant): a ValueError (json.JSONDecodeError)
    when it is not JSON. `parse_constant` is called with "NaN", "Infinity" or "-Infinity"
    for those literals (what it raises comes out of loads)."""
    scan_once = _scan_once
    if parse_constant is not None:
        scan_once = _scanners.get(parse_constant) or _scanners.setdefault(
            parse_constant, _make_scanner(parse_constant))
    if not isinstance(text, str):
        if not _plain_utf8(text):
            import json   # UTF-16 or -32, which json detects; or not text at all

            return json.loads(text, parse_constant=parse_constant)
        text = bytes(text[3:] if text[:3] == _UTF8_BOM else text).decode("utf-8", "surrogatepass")
    elif text.startswith("\ufeff"):
        raise _decode_error("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    document = text.lstrip(_WHITESPACE)
    start = len(text) - len(document)
    try:
        value, end = scan_once(text, start)
    except StopIteration as e:
        raise _decode_error("Expecting value", text, e.value) from None
    except SystemError:
        # The C scanner raises its JSONDecodeError only when json.decoder is already in
        # sys.modules (it looks it up there, it does not import it); without it, a document
        # broken inside a value gives this. json itself says what is wrong and where.
        import json

        return json.loads(text, parse_constant=parse_constant)
    rest = len(text) - len(text[end:].lstrip(_WHITESPACE))
    if rest != len(text):
        raise _decode_error("Extra data", text, rest)
    return value


_UTF8_BOM = b"\xef\xbb\xbf"


def _plain_utf8(data) -> bool:
    """What json.loads would decode as UTF-8: bytes with no NUL among the first four (json
    reads those as UTF-16 or -32)."""
    return isinstance(data, (bytes, bytearray)) and b"\x00" not in data[:4]


def _decode_error(message: str, text: str, position: int) -> ValueError:
    from json import JSONDecodeError

    return JSONDecodeError(message, text, position)


def _refuse(value):
    # json.JSONEncoder.default: the C encoder calls it for a value it cannot encode
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_compact = _json.make_encoder({}, _refuse, _json.encode_basestring_ascii, None, ":", ",",
                              False, False, True)


def dumps_compact(value) -> str:
    """json.dumps(value, separators=(",", ":"))."""
    # A fresh markers dict per call, as json does: it is how the encoder finds cycles.
    return "".join(_json.make_encoder({}, _refuse, _json.encode_basestring_ascii, None, ":", ",",
                                      False, False, True)(value, 0))


def _scalar(value) -> str:
    """A value that is neither a dict nor a list, as json.dumps writes it."""
    return "".join(_compact(value, 0))


def dumps_indented(value, indent: int = 2) -> str:
    """json.dumps(value, indent=indent)."""
    parts: list[str] = []
    if not _indent_into(parts, value, "\n", " " * indent, set()):
        import json

        return json.dumps(value, indent=indent)
    return "".join(parts)


def _indent_into(parts: list[str], value, newline: str, step: str, active: set) -> bool:
    """Append `value` at the nesting `newline` gives; False for what only json can write (a
    dict key that is not a str, a tuple or subclass json treats its own way)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        if kind in (str, int, float, bool) or value is None:
            parts.append(_scalar(value))
            return True
        return False
    if not value:
        parts.append("{}" if kind is dict else "[]")
        return True
    if id(value) in active:
        raise ValueError("Circular reference detected")
    active.add(id(value))
    inner = newline + step
    if kind is dict:
        parts.append("{")
        for i, (key, item) in enumerate(value.items()):
            if type(key) is not str:
                return False
            parts.append(("," if i else "") + inner + _scalar(key) + ": ")
            if not _indent_into(parts, item, inner, step, active):
                return False
        parts.append(newline + "}")
    else:
        parts.append("[")
        for i, item in enumerate(value):
            parts.append(("," if i else "") + inner)
            if not _indent_into(parts, item, inner, step, active):
                return False
        parts.append(newline + "]")
    active.discard(id(value))
    return True
