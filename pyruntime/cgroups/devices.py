"""Device access rules: OCI linux.resources.devices to what the devices cgroup allows.

The effective list follows runc and crun: the container starts from "deny everything", then
the config's rules apply in order, then the devices every container needs (the runtime-spec's
default devices and the pty multiplexer). The nodes of linux.devices get no rule of their
own: creating a node does not grant access to it, the config's rules do.

On cgroup v1 the kernel keeps a default (allow or deny everything) and a list of exceptions.
`DeviceState` models that list; `emulate` computes the state a rule list leads to, and
`transition` the fewest writes that take a cgroup from what devices.list shows to it, so that
a live cgroup (an update, a cgroup that already holds processes) never passes through "every
device allowed" or "nothing allowed" on the way (runc's devices emulator does the same).
"""

from __future__ import annotations

from pyruntime.errors import RuntimeUserError

FIELD = "linux.resources.devices"

# (type, major, minor, access); None stands for "*".
DEFAULT_ALLOWED: tuple[tuple[str, int | None, int | None, str], ...] = (
    ("c", None, None, "m"),    # mknod of any char device (creation only, not access)
    ("b", None, None, "m"),    # mknod of any block device
    ("c", 1, 3, "rwm"),        # /dev/null
    ("c", 1, 5, "rwm"),        # /dev/zero
    ("c", 1, 7, "rwm"),        # /dev/full
    ("c", 1, 8, "rwm"),        # /dev/random
    ("c", 1, 9, "rwm"),        # /dev/urandom
    ("c", 5, 0, "rwm"),        # /dev/tty
    ("c", 5, 2, "rwm"),        # /dev/ptmx
    ("c", 136, None, "rwm"),   # /dev/pts/*
    ("c", 10, 200, "rwm"),     # /dev/net/tun
)
DEFAULTS_FIELD = f"{FIELD} (the default devices)"


class Rule(tuple):
    """(allow, type, major, minor, access) with None majors/minors meaning any."""

    __slots__ = ()

    def __new__(cls, allow: bool, type_: str, major: int | None, minor: int | None, access: str):
        return super().__new__(cls, (allow, type_, major, minor, access))

    allow = property(lambda self: self[0])
    type = property(lambda self: self[1])
    major = property(lambda self: self[2])
    minor = property(lambda self: self[3])
    access = property(lambda self: self[4])

    def v1_line(self) -> str:
        """The text written to devices.allow / devices.deny ("c 1:3 rwm", "a *:* rwm")."""
        if self.type == "a":
            return "a *:* rwm"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def parse_rule(entry, index: int) -> Rule:
    """Validate one OCI device rule."""
    where = f"{FIELD}[{index}]"
    if not isinstance(entry, dict):
        raise RuntimeUserError(f"{where}: expected an object")
    allow = entry.get("allow")
    if not isinstance(allow, bool):
        raise RuntimeUserError(f"{where}.allow: expected true or false")
    type_ = entry.get("type", "a") or "a"
    if type_ not in ("a", "b", "c"):
        raise RuntimeUserError(f"{where}.type: {type_!r} is not one of a, b, c")
    numbers = []
    for key in ("major", "minor"):
        value = entry.get(key)
        if value is None or value == -1:
            numbers.append(None)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 32:
            numbers.append(value)
        else:
            raise RuntimeUserError(f"{where}.{key}: {value!r} is not a device number (or -1 for any)")
    access = entry.get("access", "rwm")
    if not isinstance(access, str) or not access or set(access) - set("rwm") or len(set(access)) != len(access):
        raise RuntimeUserError(f"{where}.access: {access!r} must be a non-empty combination of r, w, m")
    return Rule(allow, type_, numbers[0], numbers[1], _canonical(access))


def named_rules(resource_devices) -> list[tuple[str, Rule]]:
    """The full ordered rule list, each with the field it comes from: deny all, the config's
    rules, the defaults."""
    rules = [(FIELD, Rule(False, "a", None, None, "rwm"))]
    rules += [(f"{FIELD}[{i}]", parse_rule(entry, i)) for i, entry in enumerate(resource_devices or ())]
    rules += [(DEFAULTS_FIELD, Rule(True, *d)) for d in DEFAULT_ALLOWED]
    return rules


def effective_rules(resource_devices) -> list[Rule]:
    """The full ordered rule list: deny all, config rules, defaults."""
    return [rule for _, rule in named_rules(resource_devices)]


# ---------------------------------------------------------------- the v1 kernel's view

def _canonical(access: str) -> str:
    # The kernel's order, so that equal sets compare equal.
    return "".join(c for c in "rwm" if c in access)


def _minus(access: str, taken: str) -> str:
    return "".join(c for c in access if c not in taken)


class DeviceState:
    """A v1 devices cgroup: `default_allow` and the exceptions to it, keyed by (type, major,
    minor) with None for "*", each holding its access letters."""

    def __init__(self, default_allow: bool, exceptions: dict | None = None):
        self.default_allow = default_allow
        self.exceptions: dict[tuple[str, int | None, int | None], str] = dict(exceptions or {})

    def __eq__(self, other) -> bool:
        return (isinstance(other, DeviceState) and self.default_allow == other.default_allow
                and self.exceptions == other.exceptions)

    def __repr__(self) -> str:
        return f"DeviceState(default_allow={self.default_allow}, exceptions={self.exceptions})"

    def copy(self) -> "DeviceState":
        return DeviceState(self.default_allow, self.exceptions)

    def apply(self, rule: Rule) -> None:
        """What the kernel does with one write: an "a" rule sets the default and drops every
        exception; a rule against the default adds to the exception with exactly its key, a
        rule along the default takes access away from that one exception only."""
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        key = (rule.type, rule.major, rule.minor)
        if rule.allow != self.default_allow:
            self.exceptions[key] = _canonical(self.exceptions.get(key, "") + rule.access)
            return
        left = _minus(self.exceptions.get(key, ""), rule.access)
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    def wider_overlap(self, rule: Rule):
        """An exception with a wildcard where `rule` names a number, sharing access with it:
        taking access away from `rule` alone leaves that exception in force."""
        for major, minor in ((None, rule.minor), (rule.major, None), (None, None)):
            key = (rule.type, major, minor)
            if (major, minor) == (rule.major, rule.minor) or key not in self.exceptions:
                continue
            if set(self.exceptions[key]) & set(rule.access):
                return key
        return None

    @classmethod
    def from_list(cls, text: str | None) -> "DeviceState | None":
        """The state a devices.list shows, or None when it cannot be read. A cgroup that allows
        everything lists only "a *:* rwm", whatever it denies: its exceptions are unknown."""
        if text is None:
            return None
        exceptions = {}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) != 3:
                continue
            type_, numbers, access = fields
            if type_ == "a":
                return cls(True)
            major, _, minor = numbers.partition(":")
            key = (type_, None if major == "*" else int(major), None if minor == "*" else int(minor))
            exceptions[key] = _canonical(access)
        return cls(False, exceptions)


def _key_text(key) -> str:
    return Rule(True, *key, "").v1_line().rstrip()


def emulate(rules) -> DeviceState:
    """The state `rules` ((field, Rule) pairs, in order) lead to from any start.

    A rule that would only narrow a wider wildcard exception is refused, naming its field: the
    v1 kernel would accept it and change nothing (runc refuses it the same way)."""
    state = DeviceState(False)
    for where, rule in rules:
        if rule.type != "a" and rule.allow == state.default_allow:
            wider = state.wider_overlap(rule)
            if wider is not None:
                verb = "allow" if rule.allow else "deny"
                raise RuntimeUserError(
                    f"{where}: cannot {verb} {rule.v1_line()} inside the rule {_key_text(wider)} "
                    f"{state.exceptions[wider]}: cgroup v1 cannot punch a hole in a wildcard rule")
        state.apply(rule)
    return state


def transition(current: DeviceState | None, target: DeviceState) -> list[Rule]:
    """The writes that take a cgroup from `current` (None: unknown) to `target`.

    Only a change of default, or a start whose exceptions are unknown, needs the disruptive
    "a" rule; otherwise the exceptions the target lacks are taken away first, then the ones
    it adds are written, so access never exceeds what either side allows."""
    if current is None or current.default_allow or current.default_allow != target.default_allow:
        steps = [Rule(target.default_allow, "a", None, None, "rwm")]
        before: dict = {}
    else:
        steps, before = [], current.exceptions
    for key, access in before.items():
        dropped = _minus(access, target.exceptions.get(key, ""))
        if dropped:
            steps.append(Rule(target.default_allow, *key, dropped))
    for key, access in target.exceptions.items():
        gained = _minus(access, before.get(key, ""))
        if gained:
            steps.append(Rule(not target.default_allow, *key, gained))
    return steps
