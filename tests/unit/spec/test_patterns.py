"""pyruntime.spec.patterns answers every search exactly as re does, for the schemas' own patterns
and for any pattern in the part of the language it knows; it hands the rest to re."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyruntime.spec import patterns, schemas

ALPHABET = "0123456789.-+,:/_abcmrwxyzABCKMPZ\n]^$ "


def schema_patterns() -> list[str]:
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.append(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for entry in schemas.schema_files(schemas.schema_dir()):
        walk(json.loads(schemas.read_bytes(entry)))
    return sorted(set(found))


SCHEMA_PATTERNS = schema_patterns()
# fastjsonschema hands re each pattern with a final `$` turned into `\Z`.
GENERATED = [re.sub(r"\$$", r"\\Z", p).replace("$|", "\\Z|") for p in SCHEMA_PATTERNS]


def agrees(source: str, text: str) -> bool:
    return patterns.compile(source).search(text) == bool(re.search(source, text))


def test_the_schemas_have_patterns_and_all_are_handled_without_re():
    assert len(SCHEMA_PATTERNS) >= 5
    for source in SCHEMA_PATTERNS + GENERATED:
        assert isinstance(patterns.compile(source), patterns.Pattern), source


@pytest.mark.parametrize("source", SCHEMA_PATTERNS + GENERATED)
@settings(max_examples=300)
@given(data=st.data())
def test_schema_patterns_agree_with_re(source, data):
    text = data.draw(st.one_of(st.text(ALPHABET, max_size=12),
                               st.from_regex(source.replace("\\Z", "$"), fullmatch=False)))
    assert agrees(source, text)


@pytest.mark.parametrize("source,text,expected", [
    ("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?\\Z", "1.2.0", True),
    ("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?\\Z", "01.2.0", False),
    ("^CAP_[A-Z0-9_]+\\Z", "CAP_NET_RAW", True),
    ("^CAP_[A-Z0-9_]+\\Z", "CAP_net_raw", False),
    ("^[rwm]*\\Z", "rwm\n", False),
    ("^[rwm]*$", "rwm\n", True),       # `$` also matches before a final newline
    ("^/", "/dev", True),
    ("^/", "dev/", False),
    ("(a|)*b", "aab", True),
    ("x{2,3}y", "xy", False),
    ("[]a]+", "]", True),
    ("[^]a]", "]a", False),
])
def test_known_answers(source, text, expected):
    assert patterns.compile(source).search(text) is expected
    assert bool(re.search(source, text)) is expected


@pytest.mark.parametrize("source", ["\\d+", "(?i)abc", "a*?", "a++", "a(?=b)", "\\w", "(a)\\1",
                                    "a{x}", "(?P<n>a)", "a{}", "\\bword"])
def test_what_it_does_not_know_goes_to_re(source):
    compiled = patterns.compile(source)
    assert not isinstance(compiled, patterns.Pattern)
    for text in ("word aa 12", "", "ab", "a{}", "{x}"):
        assert bool(compiled.search(text)) == bool(re.search(source, text))


def test_a_broken_pattern_is_re_s_error():
    with pytest.raises(re.error):
        patterns.compile("a{3,1}")


# Patterns built from the supported part of the language, compared with re on random text.
_atoms = st.one_of(
    st.sampled_from(list("abc0-.:")).map(lambda c: re.escape(c) if c in ".-" else c),
    st.sampled_from(["[a-c]", "[^a]", "[0-9.-]", "[]b]", ".", "\\n", "\\.", "\\+"]),
)


def _repeat(atom: str) -> st.SearchStrategy[str]:
    return st.sampled_from(["", "*", "+", "?", "{2}", "{1,}", "{,2}", "{1,3}"]).map(
        lambda q: atom + q)


_pieces = st.recursive(
    _atoms.flatmap(_repeat),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map("".join),
        st.lists(inner, min_size=1, max_size=3).map(lambda b: "(" + "|".join(b) + ")").flatmap(
            _repeat),
        st.lists(inner, min_size=1, max_size=2).map(lambda b: "(?:" + "|".join(b) + ")")),
    max_leaves=6)
_patterns = st.tuples(st.sampled_from(["", "^", "\\A"]), _pieces,
                      st.sampled_from(["", "$", "\\Z"])).map("".join)


@settings(max_examples=800, deadline=None)
@given(source=_patterns, text=st.text("abc0.-:\n]x", max_size=10))
def test_random_patterns_agree_with_re(source, text):
    assert isinstance(patterns.compile(source), patterns.Pattern), source
    assert agrees(source, text)
