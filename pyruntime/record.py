"""A minimal record base class for the plugin's plain data.

The plugin is a short-lived process per CNI call, so start-up time counts: `dataclasses`
pulls in `inspect` (~8 ms) and builds every class at import (~0.8 ms each). A record only
needs slots, defaults, equality and a readable repr, which this gives for almost nothing.
"""

from __future__ import annotations


class Record:
    """Fields are the subclass's __slots__, in order; `_defaults` maps optional fields to a
    default value, or to `list` / `dict` for a fresh empty one."""

    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, *args, **kwargs):
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} fields")
        for name, value in zip(names, args):
            setattr(self, name, value)
        for name in names[len(args):]:
            if name in kwargs:
                setattr(self, name, kwargs.pop(name))
            elif name in self._defaults:
                default = self._defaults[name]
                setattr(self, name, default() if default in (list, dict) else default)
            else:
                raise TypeError(f"{type(self).__name__} needs {name!r}")
        if kwargs:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(kwargs))!r}")

    def _values(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + tuple(
            v if not isinstance(v, (list, dict)) else id(v) for v in self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"
