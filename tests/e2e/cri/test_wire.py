"""The CRI client's protobuf codec against encodings fixed by the wire format itself."""

from tests.e2e.cri import wire

SCALARS = {"id": (1, "int32"), "name": (2, "string"), "big": (3, "int64"), "on": (4, "bool")}


def test_varint_and_string_encodings():
    # 150 as field 1 is the wire format's own example: key 0x08, then 0x96 0x01
    assert wire.encode(SCALARS, {"id": 150}) == bytes([0x08, 0x96, 0x01])
    assert wire.encode(SCALARS, {"name": "testing"}) == b"\x12\x07testing"


def test_negative_numbers_take_ten_bytes_and_come_back():
    data = wire.encode(SCALARS, {"big": -2})
    assert len(data) == 11
    assert wire.decode(SCALARS, data) == {"big": -2}


def test_proto3_defaults_are_not_sent():
    assert wire.encode(SCALARS, {"id": 0, "name": "", "on": False}) == b""


def test_nested_repeated_and_map_fields_round_trip():
    inner = {"key": (1, "string"), "count": (2, "uint32")}
    outer = {"items": (1, ("repeated", inner)), "labels": (2, "map"), "tags": (3, ("repeated", "string")),
             "child": (4, inner)}
    message = {"items": [{"key": "a", "count": 1}, {"key": "b"}], "labels": {"app": "web", "tier": ""},
               "tags": ["x", ""], "child": {"key": "c", "count": 300}}
    assert wire.decode(outer, wire.encode(outer, message)) == message


def test_packed_repeated_numbers_are_read():
    table = {"gids": (1, ("repeated", "int64"))}
    packed = bytes([0x0A, 0x04, 0x01, 0x96, 0x01, 0x03])   # field 1, length 4: 1, 150, 3
    assert wire.decode(table, packed) == {"gids": [1, 150, 3]}


def test_unknown_fields_are_skipped():
    newer = {"id": (1, "int32"), "extra": (9, "string"), "wide": (10, "int64")}
    data = wire.encode(newer, {"id": 7, "extra": "later", "wide": 1 << 40})
    assert wire.decode({"id": (1, "int32")}, data) == {"id": 7}
