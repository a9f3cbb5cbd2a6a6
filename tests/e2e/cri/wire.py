"""Protocol-buffers wire format (proto3) for plain dicts, driven by small field tables.

A table maps a field name to `(number, kind)`. A kind is a scalar name (`string`, `bytes`,
`bool`, `int32`, `int64`, `uint32`, `enum`), another table (a nested message), `"map"`
(map<string, string>) or `("repeated", kind)`. Fields missing from a dict, or holding the
proto3 default, are left out of the encoding, as every protobuf library does; fields the table
does not know are skipped when decoding, so a newer server's extra fields do no harm.
"""

from __future__ import annotations

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
SCALAR_VARINTS = ("bool", "int32", "int64", "uint32", "enum")


def encode(table: dict, message: dict) -> bytes:
    out = bytearray()
    for name, value in message.items():
        if name not in table:
            raise KeyError(f"no field {name!r} in this message table")
        number, kind = table[name]
        if isinstance(kind, tuple):  # repeated
            for item in value:
                _encode_field(out, number, kind[1], item, keep_default=True)
        elif kind == "map":
            for key, item in value.items():
                entry = _encoded_string(1, key) + _encoded_string(2, item)
                _put_length_delimited(out, number, entry)
        else:
            _encode_field(out, number, kind, value, keep_default=False)
    return bytes(out)


def _encode_field(out: bytearray, number: int, kind, value, keep_default: bool) -> None:
    if isinstance(kind, dict):
        _put_length_delimited(out, number, encode(kind, value))
    elif kind in SCALAR_VARINTS:
        value = int(value)
        if value or keep_default:
            _put_varint(out, number << 3 | VARINT)
            # negative numbers are sign-extended to 64 bits (ten bytes), as the spec says
            _put_varint(out, value & 0xFFFFFFFFFFFFFFFF)
    elif kind in ("string", "bytes"):
        data = value.encode() if isinstance(value, str) else bytes(value)
        if data or keep_default:
            _put_length_delimited(out, number, data)
    else:
        raise TypeError(f"unknown field kind {kind!r}")


def _encoded_string(number: int, text: str) -> bytes:
    out = bytearray()
    _put_length_delimited(out, number, text.encode())
    return bytes(out)


def _put_length_delimited(out: bytearray, number: int, data: bytes) -> None:
    _put_varint(out, number << 3 | LENGTH)
    _put_varint(out, len(data))
    out += data


def _put_varint(out: bytearray, value: int) -> None:
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return


def decode(table: dict, data: bytes) -> dict:
    """The fields of `table` found in `data`; repeated fields and maps always present
    (possibly empty), scalars only when sent (use .get with the proto3 default)."""
    by_number = {number: (name, kind) for name, (number, kind) in table.items()}
    message: dict = {name: [] for name, (_, kind) in table.items() if isinstance(kind, tuple)}
    message.update({name: {} for name, (_, kind) in table.items() if kind == "map"})
    pos = 0
    while pos < len(data):
        key, pos = _get_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        raw, pos = _get_raw(data, pos, wire_type)
        if number not in by_number:
            continue
        name, kind = by_number[number]
        if isinstance(kind, tuple) and kind[1] in SCALAR_VARINTS and wire_type == LENGTH:
            message[name] += _unpacked(kind[1], raw)  # proto3 packs repeated numbers
        elif isinstance(kind, tuple):
            message[name].append(_decode_value(kind[1], raw, wire_type))
        elif kind == "map":
            entry = decode({"key": (1, "string"), "value": (2, "string")}, raw)
            message[name][entry.get("key", "")] = entry.get("value", "")
        else:
            message[name] = _decode_value(kind, raw, wire_type)
    return message


def _unpacked(kind: str, raw: bytes) -> list:
    values, pos = [], 0
    while pos < len(raw):
        value, pos = _get_varint(raw, pos)
        values.append(_decode_value(kind, value, VARINT))
    return values


def _get_raw(data: bytes, pos: int, wire_type: int):
    if wire_type == VARINT:
        return _get_varint(data, pos)
    if wire_type == LENGTH:
        length, pos = _get_varint(data, pos)
        if pos + length > len(data):
            raise ValueError("truncated length-delimited field")
        return data[pos:pos + length], pos + length
    if wire_type == FIXED64:
        return data[pos:pos + 8], pos + 8
    if wire_type == FIXED32:
        return data[pos:pos + 4], pos + 4
    raise ValueError(f"unsupported wire type {wire_type}")


def _decode_value(kind, raw, wire_type: int):
    if isinstance(kind, dict):
        return decode(kind, raw)
    if kind == "string":
        return raw.decode()
    if kind == "bytes":
        return bytes(raw)
    if kind in SCALAR_VARINTS and wire_type == VARINT:
        if kind == "bool":
            return bool(raw)
        if kind in ("int32", "int64", "enum") and raw >= 1 << 63:
            return raw - (1 << 64)
        return raw
    raise ValueError(f"field of kind {kind!r} arrived with wire type {wire_type}")


def _get_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
