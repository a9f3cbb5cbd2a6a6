"""Claims on published host ports, so ADD finds a conflicting publication in O(1).

Searching the nat table for other containers' DNAT rules means dumping it, which grows with
every container on the host (~60 ms at 500 containers). Instead each published
(protocol, host IP, port) is a claim file named after it, holding the claiming attachment's tag,
in a directory per network namespace (the "host" the rules live in). A claim whose owner no longer
has its DNAT chain is stale (a crash between claim and rules, or a rule flush by hand) and is
taken over. All claim changes happen under the xtables lock.
"""

from __future__ import annotations

import os

from pyruntime.record import Record

CLAIMS_ROOT = os.environ.get("PYRUNTIME_CNI_PORTS_DIR", "/run/pyruntime-cni/ports")
ANY = "any"


class PortMapping(Record):
    """host_ip "" means every local address of the family (or of both families)."""
    __slots__ = ("host_port", "container_port", "protocol", "host_ip")
    _defaults = {"protocol": "tcp", "host_ip": ""}


def claim_name(protocol: str, host_ip: str, port: int) -> str:
    ip = ANY if not host_ip or host_ip in ("0.0.0.0", "::") else host_ip
    return f"{protocol}_{ip}_{port}"


def parse_claim_name(name: str) -> tuple[str, str, int] | None:
    parts = name.split("_")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def describe(name: str) -> str:
    proto, ip, port = parse_claim_name(name)
    return f"{proto}/{port}" + ("" if ip == ANY else f" on {ip}")


def clashes(wanted: str, existing: list[str]) -> list[str]:
    """Existing claim names that publish the same protocol and port on an overlapping address.

    "any" covers every address, except that unspecified IPv4 and IPv6 publications are told
    apart by the address family of a specific claim."""
    w = parse_claim_name(wanted)
    out = []
    for name in existing:
        e = parse_claim_name(name)
        if e is None or e[0] != w[0] or e[2] != w[2]:
            continue
        if w[1] == ANY or e[1] == ANY or w[1] == e[1]:
            out.append(name)
    return out


def wanted(port_mappings) -> list[str]:
    return sorted({claim_name(pm.protocol, pm.host_ip, pm.host_port) for pm in port_mappings})


def netns_dir() -> str:
    st = os.stat("/proc/thread-self/ns/net")
    return os.path.join(CLAIMS_ROOT, f"netns-{st.st_dev}-{st.st_ino}")


class Claims:
    def __init__(self, directory: str | None = None):
        self.dir = directory or netns_dir()

    def names(self) -> list[str]:
        try:
            return os.listdir(self.dir)
        except FileNotFoundError:
            return []

    def owner(self, name: str) -> str:
        try:
            with open(os.path.join(self.dir, name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def take(self, names: list[str], tag: str) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        for name in names:
            tmp = os.path.join(self.dir, f".{name}.{tag}")
            with open(tmp, "w") as f:
                f.write(tag)
            os.replace(tmp, os.path.join(self.dir, name))

    def release(self, tag: str) -> None:
        for name in self.names():
            if self.owner(name) == tag:
                try:
                    os.unlink(os.path.join(self.dir, name))
                except FileNotFoundError:
                    pass
        try:
            os.rmdir(self.dir)          # only succeeds once nothing is published any more
        except OSError:
            pass
