"""pyruntime.jsonlite reads and writes exactly what the json package does, without importing
it (nor re and enum): the hot commands' state.json and `state` output go through it."""

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyruntime import jsonlite

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text())
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


def same(a, b) -> bool:
    """Equal as JSON values (NaN equal to itself)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@given(DOCUMENTS)
def test_writes_what_json_writes(document):
    assert jsonlite.dumps_compact(document) == json.dumps(document, separators=(",", ":"))
    assert jsonlite.dumps_indented(document) == json.dumps(document, indent=2)


@given(DOCUMENTS, st.sampled_from(["", " ", "\n", " \t\r\n "]))
def test_reads_what_json_reads(document, blank):
    text = blank + json.dumps(document) + blank
    assert same(jsonlite.loads(text), json.loads(text))
    assert same(jsonlite.loads(text.encode()), json.loads(text.encode()))


@pytest.mark.parametrize("encoded", ['{"a": "\u00e9"}'.encode("utf-16"),
                                     '["x"]'.encode("utf-32-le"),
                                     b'\xef\xbb\xbf{"bom": 1}', bytearray(b"[1, 2]")])
def test_reads_the_encodings_json_detects(encoded):
    assert jsonlite.loads(encoded) == json.loads(encoded)


@pytest.mark.parametrize("text", ["", "  ", "{", "[1] x", '{"a":}', "nul", '"\u00e9', "[1,]",
                                  '{"a" 1}', "01", "\ufeff[1]"])
def test_refuses_what_json_refuses_with_the_same_message(text):
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonlite.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_non_finite_floats_round_trip_as_json_spells_them():
    assert jsonlite.dumps_compact([math.inf, -math.inf]) == "[Infinity,-Infinity]"
    assert math.isnan(jsonlite.loads("NaN"))


def test_what_it_cannot_encode_is_an_error_as_with_json():
    with pytest.raises(TypeError):
        jsonlite.dumps_compact({"a": object()})
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError):
        jsonlite.dumps_compact(loop)
    with pytest.raises(ValueError):
        jsonlite.dumps_indented(loop)


def test_indenting_what_only_json_writes_falls_back_to_it():
    assert jsonlite.dumps_indented({1: (2, 3)}) == json.dumps({1: (2, 3)}, indent=2)


def test_a_state_round_trip_imports_neither_json_nor_re():
    code = ("import sys; from pyruntime import jsonlite; "
            "doc = jsonlite.loads(jsonlite.dumps_compact({'a': [1, 2.5, None, 'x']})); "
            "jsonlite.dumps_indented(doc); "
            "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_parse_constant_is_called_for_the_literals_json_allows():
    import json

    seen = []
    assert jsonlite.loads('[NaN, 1, -Infinity]', parse_constant=lambda n: seen.append(n) or n) \
        == json.loads('[NaN, 1, -Infinity]', parse_constant=lambda n: n)
    assert seen == ["NaN", "-Infinity"]


@pytest.mark.parametrize("text", ["{ not json", '{"a": [1, }', '["\\x"]', "[1,]"])
def test_refuses_broken_documents_in_a_process_that_never_imported_json(text):
    # The C scanner finds its error class in sys.modules only: the test process has json
    # loaded, a command's process does not.
    code = ("import sys; from pyruntime import jsonlite\n"
            "try:\n    jsonlite.loads(sys.argv[1])\n"
            "except ValueError as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True,
                         check=True)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert out.stdout.strip() == f"JSONDecodeError {theirs.value}"
