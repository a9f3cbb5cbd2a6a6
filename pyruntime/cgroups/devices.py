"""Device access rules: OCI linux.resources.devices to the cgroup's ordered allow/deny list.

The effective list follows runc: the container starts from "deny everything", then the
config's rules apply in order, then the devices every container needs (the runtime-spec's
default devices and the pty multiplexer), then an allow for each device listed in linux.devices
so that the nodes the runtime creates are usable.
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
    # Keep the kernel's canonical order so equal rules compare equal.
    access = "".join(c for c in "rwm" if c in access)
    return Rule(allow, type_, numbers[0], numbers[1], access)


def linux_device_rules(linux_devices) -> list[Rule]:
    """Allow rules for the device nodes of config.json's linux.devices."""
    rules = []
    for i, dev in enumerate(linux_devices or ()):
        kind = dev.get("type")
        if kind in ("c", "u"):
            kind = "c"
        elif kind != "b":
            continue  # FIFOs ("p") need no device access rule
        try:
            rules.append(Rule(True, kind, int(dev["major"]), int(dev["minor"]), "rwm"))
        except (KeyError, TypeError, ValueError):
            raise RuntimeUserError(f"linux.devices[{i}]: major and minor numbers are required") from None
    return rules


def effective_rules(resource_devices, linux_devices=()) -> list[Rule]:
    """The full ordered rule list: deny all, config rules, defaults, linux.devices."""
    rules = [Rule(False, "a", None, None, "rwm")]
    rules += [parse_rule(entry, i) for i, entry in enumerate(resource_devices or ())]
    rules += [Rule(True, *d) for d in DEFAULT_ALLOWED]
    rules += linux_device_rules(linux_devices)
    return rules
