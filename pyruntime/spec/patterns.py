"""Schema patterns matched without the `re` module.

The cached config validator checks a few `pattern`s on every create (ociVersion, capability
names, device access strings, absolute paths). Importing `re` for them costs ~5 ms of CPU on
this project's machine (it pulls in enum, functools and collections): more than the rest of the
schema check. The schemas' patterns use a small part of the regular expression language, so
this module parses that part itself and matches it with a small backtracking matcher, with
exactly `re.search`'s answer for it. A pattern with anything else in it (classes such as \\d
or \\w, flags, lookarounds, lazy or possessive repeats, backreferences) is left to `re`.

Supported: literals and escaped punctuation, \\n \\t \\r, `.`, sets `[...]` of characters and
ranges (optionally negated), groups `(...)` and `(?:...)`, `|`, the repeats `*` `+` `?` `{n}`
`{n,}` `{,m}` `{n,m}` (greedy), and the anchors `^` `$` `\\A` `\\Z`.
"""

from __future__ import annotations

# Escapes that stand for themselves (and the three whitespace ones the schemas may use).
_ESCAPED = {c: c for c in ".^$*+?()[]{}|\\/-"}
_ESCAPED.update({"n": "\n", "t": "\t", "r": "\r"})
_UNBOUNDED = -1


class Unsupported(ValueError):
    """The pattern needs more of the language than this module knows."""


def compile(source: str):   # noqa: A001 - named like re.compile, which it stands in for
    """An object whose `search(text)` is truthy exactly when `re.search(source, text)` is."""
    try:
        return Pattern(source)
    except Unsupported:
        import re

        return re.compile(source)


class Pattern:
    __slots__ = ("_match", "_anchored")

    def __init__(self, source: str):
        tree = _Parser(source).parse()
        self._match = _compile(tree, _accept)
        # every branch starts with ^: no need to try a later start
        self._anchored = all(branch and branch[0][0] == "bol" for branch in tree[1][0][1])

    def search(self, text: str) -> bool:
        if not isinstance(text, str):
            raise TypeError("expected string")
        last = 0 if self._anchored else len(text)
        return any(self._match(text, start) for start in range(last + 1))


# The tree: ("seq", nodes), ("alt", [nodes, ...]), ("char", included, ((low, high), ...)) for
# one character inside (or, included False, outside) the ranges, ("rep", node, min, max) with
# max -1 for unbounded, and the anchors ("bol",), ("eol",) ($) and ("eos",) (\Z).


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.pos = 0

    def parse(self):
        tree = self._alternatives()
        if self.pos != len(self.source):
            raise Unsupported(f"unbalanced ')' at {self.pos}")
        return ("seq", [tree])

    def _peek(self) -> str:
        return self.source[self.pos] if self.pos < len(self.source) else ""

    def _take(self) -> str:
        char = self._peek()
        if not char:
            raise Unsupported("unexpected end of pattern")
        self.pos += 1
        return char

    def _alternatives(self):
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        return ("alt", branches)

    def _sequence(self) -> list:
        nodes: list = []
        while self._peek() not in ("", "|", ")"):
            atom = self._atom()
            nodes.append(self._repeat(atom))
        return nodes

    def _atom(self):
        char = self._take()
        if char == "(":
            if self.source.startswith("?:", self.pos):
                self.pos += 2
            elif self._peek() == "?":
                raise Unsupported("group extension")
            inner = self._alternatives()
            if self._take() != ")":
                raise Unsupported("unclosed group")
            return ("seq", [inner])
        if char == "[":
            return self._set()
        if char == ".":
            return ("char", False, (("\n", "\n"),))   # anything but a newline
        if char == "^":
            return ("bol",)
        if char == "$":
            return ("eol",)
        if char == "\\":
            escaped = self._take()
            if escaped == "A":
                return ("bol",)
            if escaped == "Z":
                return ("eos",)
            return _literal(_escape(escaped))
        if char in "*+?{)":
            raise Unsupported(f"nothing to repeat or unbalanced {char!r}")
        return _literal(char)

    def _set(self):
        negated = self._peek() == "^"
        if negated:
            self.pos += 1
        ranges = []
        first = True
        while True:
            char = self._take()
            if char == "]" and not first:
                break
            first = False
            if char == "[" or (char in "&~|" and self._peek() == char) or (
                    char == "-" and self._peek() == "-"):
                raise Unsupported("set syntax re warns about")
            low = _escape(self._take()) if char == "\\" else char
            if self._peek() == "-" and self.source[self.pos + 1:self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self._take()
                high = _escape(self._take()) if end == "\\" else end
                if high < low:
                    raise Unsupported("bad character range")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        return ("char", not negated, tuple(ranges))

    def _repeat(self, atom):
        char = self._peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            low, high = {"*": (0, _UNBOUNDED), "+": (1, _UNBOUNDED), "?": (0, 1)}[char]
        elif char == "{":
            low, high = self._bounds()
        else:
            return atom
        if self._peek() in ("?", "+", "*", "{"):
            raise Unsupported("lazy, possessive or repeated repeat")
        if atom[0] in ("bol", "eol", "eos"):
            raise Unsupported("repeated anchor")
        return ("rep", atom, low, high)

    def _bounds(self) -> tuple[int, int]:
        """{n}, {n,}, {,m} or {n,m}; any other '{' is left to re (which reads it as a literal)."""
        close = self.source.find("}", self.pos)
        low, comma, high = self.source[self.pos + 1:close].partition(",") if close > 0 else ("x", "", "")
        if not (_digits(low) or (comma and low == "")) or not (_digits(high) or high == "") \
                or (not comma and high):
            raise Unsupported("'{' that is not a repeat")
        if not low and not high:
            raise Unsupported("'{,}'")
        self.pos = close + 1
        low_n = int(low) if low else 0
        high_n = (int(high) if high else _UNBOUNDED) if comma else low_n
        if high_n != _UNBOUNDED and high_n < low_n:
            raise Unsupported("min repeat greater than max repeat")
        return low_n, high_n


def _digits(text: str) -> bool:
    return bool(text) and all(c in "0123456789" for c in text)


def _escape(char: str) -> str:
    if char not in _ESCAPED:
        raise Unsupported(f"escape \\{char}")
    return _ESCAPED[char]


def _literal(char: str):
    return ("char", True, ((char, char),))


# Matching: each node becomes a function (text, pos, then) -> bool, where `then` is what must
# match from the position the node ends at (continuation-passing, for backtracking).


def _accept(text: str, pos: int) -> bool:
    return True


def _compile(node, then):
    kind = node[0]
    if kind == "seq":
        for item in reversed(node[1]):
            then = _compile(item, then)
        return then
    if kind == "alt":
        branches = [_compile(("seq", branch), then) for branch in node[1]]
        return lambda text, pos: any(branch(text, pos) for branch in branches)
    if kind == "char":
        inside = _char_test(node[1], node[2])
        return lambda text, pos: pos < len(text) and inside(text[pos]) and then(text, pos + 1)
    if kind == "bol":
        return lambda text, pos: pos == 0 and then(text, pos)
    if kind == "eos":
        return lambda text, pos: pos == len(text) and then(text, pos)
    if kind == "eol":   # the end, or just before a newline that ends the text
        return lambda text, pos: (pos == len(text) or (pos == len(text) - 1 and text[pos] == "\n")
                                  ) and then(text, pos)
    return _compile_repeat(node, then)


def _char_test(included: bool, ranges):
    def test(char: str) -> bool:
        return any(low <= char <= high for low, high in ranges) == included
    return test


def _compile_repeat(node, then):
    _, atom, low, high = node
    if atom[0] == "char":   # one character at a time: count greedily, then give back
        inside = _char_test(atom[1], atom[2])

        def repeat_chars(text: str, pos: int) -> bool:
            end = pos
            limit = len(text) if high == _UNBOUNDED else min(len(text), pos + high)
            while end < limit and inside(text[end]):
                end += 1
            for stop in range(end, pos + low - 1, -1):
                if then(text, stop):
                    return True
            return False
        return repeat_chars

    # Any number of rounds of a longer atom. Only whether some match exists matters (search
    # answers yes or no), so the order rounds are tried in is free; a round that matches
    # nothing is only worth taking while the minimum is not reached, which also keeps an atom
    # that can match nothing from looping.
    def repeat(text: str, pos: int, count: int = 0) -> bool:
        if high == _UNBOUNDED or count < high:
            def next_round(text: str, end: int) -> bool:
                return (end != pos or count < low) and repeat(text, end, count + 1)
            if _compile(atom, next_round)(text, pos):
                return True
        return count >= low and then(text, pos)
    return repeat
