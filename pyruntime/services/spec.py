"""A service definition as the user writes it: NAME, --vip IP:PORT/PROTO, --backend IP:PORT ...

Plain data and its validation; every error names the argument that is wrong.
"""

from __future__ import annotations

import ipaddress
import re

from pyruntime.errors import RuntimeUserError
from pyruntime.record import Record

PROTOCOLS = ("tcp", "udp", "sctp")
# a DNS label, as Kubernetes names services: it goes into rule comments, which must stay
# parseable (no spaces, no quotes), and it reads well in `iptables-save`
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Endpoint(Record):
    """ip: an ipaddress address; port: 1..65535."""
    __slots__ = ("ip", "port")

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if self.ip.version == 6 else f"{self.ip}:{self.port}"


class Service(Record):
    __slots__ = ("name", "protocol", "vip", "backends")

    @property
    def family(self) -> int:
        return self.vip.ip.version

    def vip_text(self) -> str:
        return f"{self.vip}/{self.protocol}"

    def as_dict(self) -> dict:
        return {"name": self.name, "vip": self.vip_text(), "backends": [str(b) for b in self.backends]}


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise RuntimeUserError(f"service name {name!r}: expected 1-63 lower-case letters, digits "
                               "and '-', starting and ending with a letter or digit")
    return name


def parse_endpoint(text: str, what: str) -> Endpoint:
    """IP:PORT, or [IPv6]:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise RuntimeUserError(f"{what} {text!r}: expected IP:PORT ([IPv6]:PORT)")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise RuntimeUserError(f"{what} {text!r}: {host!r} is not an IP address") from None
    if ip.version == 6 and not bracketed:
        raise RuntimeUserError(f"{what} {text!r}: write an IPv6 address in brackets, [{ip}]:PORT")
    if ip.is_unspecified or ip.is_multicast or (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255")):
        raise RuntimeUserError(f"{what} {text!r}: {ip} cannot be a service address")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise RuntimeUserError(f"{what} {text!r}: port {port!r} is not in 1..65535")
    return Endpoint(ip, int(port))


def parse_vip(text: str) -> tuple[Endpoint, str]:
    """IP:PORT/PROTO (PROTO defaults to tcp)."""
    address, sep, protocol = text.rpartition("/")
    if not sep:
        address, protocol = text, "tcp"
    protocol = protocol.lower()
    if protocol not in PROTOCOLS:
        raise RuntimeUserError(f"--vip {text!r}: protocol {protocol!r} is not tcp, udp or sctp")
    return parse_endpoint(address, "--vip"), protocol


def parse(name: str, vip: str, backends: list[str] | tuple[str, ...]) -> Service:
    check_name(name)
    endpoint, protocol = parse_vip(vip)
    if not backends:
        raise RuntimeUserError("--backend: a service needs at least one backend")
    parsed = []
    for text in backends:
        b = parse_endpoint(text, "--backend")
        if b.ip.version != endpoint.ip.version:
            raise RuntimeUserError(f"--backend {text!r}: not the same IP version as --vip {vip!r}")
        if b in parsed:
            raise RuntimeUserError(f"--backend {text!r}: given twice")
        parsed.append(b)
    return Service(name, protocol, endpoint, parsed)
