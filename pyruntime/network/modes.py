"""The network modes and port publications a container asks for, as plain data.

Annotations on the container config carry the choice to the hook:
  io.pyruntime.network  bridge | bridge:<network> | slirp4netns | host | none | container:<id>
  io.pyruntime.publish  [hostIP:]hostPort:containerPort[/proto], comma separated
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pyruntime.errors import RuntimeUserError

NETWORK_ANNOTATION = "io.pyruntime.network"
PUBLISH_ANNOTATION = "io.pyruntime.publish"
DEFAULT_NETWORK = "pyruntime"
PROTOCOLS = ("tcp", "udp", "sctp")

_ID = re.compile(r"^[A-Za-z0-9_+.-]+$")
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# Modes the network hook does the work of (the others are expressed in the config alone).
HOOKED = ("bridge", "slirp4netns")


class NetworkMode(NamedTuple):
    kind: str               # "bridge", "slirp4netns", "host", "none" or "container"
    target: str = ""        # the network name (bridge) or the container id (container)

    def __str__(self) -> str:
        if self.kind == "bridge" and self.target == DEFAULT_NETWORK:
            return "bridge"
        return f"{self.kind}:{self.target}" if self.target else self.kind


def parse_mode(text: str | None) -> NetworkMode:
    text = (text or "bridge").strip()
    kind, _, target = text.partition(":")
    if kind == "bridge":
        target = target or DEFAULT_NETWORK
        if not _NETWORK_NAME.match(target):
            raise RuntimeUserError(f"network {text!r}: invalid network name {target!r}")
        return NetworkMode("bridge", target)
    if kind in ("host", "none", "slirp4netns"):
        if target:
            raise RuntimeUserError(f"network {text!r}: {kind} takes no argument")
        return NetworkMode(kind)
    if kind == "container":
        if not target or not _ID.match(target) or target in (".", ".."):
            raise RuntimeUserError(f"network {text!r}: expected container:<id>")
        return NetworkMode("container", target)
    raise RuntimeUserError(
        f"network {text!r}: expected bridge, bridge:<name>, slirp4netns, host, none or container:<id>")


def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise RuntimeUserError(f"publish {spec!r}: {what} {text!r} is not a port number (1-65535)")
    return int(text)


def parse_publish(spec: str) -> dict:
    """`[hostIP:]hostPort:containerPort[/proto]` → a CNI portMappings entry. An IPv6 host
    address goes in brackets: `[::1]:8080:80`."""
    text = spec.strip()
    body, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise RuntimeUserError(f"publish {spec!r}: protocol must be one of {', '.join(PROTOCOLS)}")
    host_ip = ""
    if body.startswith("["):
        host_ip, sep, body = body[1:].partition("]:")
        if not sep:
            raise RuntimeUserError(f"publish {spec!r}: expected [IPv6]:hostPort:containerPort")
    else:
        parts = body.split(":")
        if len(parts) == 3:
            host_ip, body = parts[0], ":".join(parts[1:])
        elif len(parts) != 2:
            raise RuntimeUserError(f"publish {spec!r}: expected [hostIP:]hostPort:containerPort[/proto]")
    host_port, _, container_port = body.partition(":")
    mapping = {"hostPort": _port(host_port, "host port", spec),
               "containerPort": _port(container_port, "container port", spec),
               "protocol": proto}
    if host_ip:
        import ipaddress

        try:
            mapping["hostIP"] = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise RuntimeUserError(f"publish {spec!r}: {host_ip!r} is not an IP address") from None
    return mapping


def parse_publish_list(text: str | None) -> list[dict]:
    return [parse_publish(item) for item in (text or "").split(",") if item.strip()]


def format_publish(mapping: dict) -> str:
    host_ip = mapping.get("hostIP", "")
    if ":" in host_ip:
        host_ip = f"[{host_ip}]"
    prefix = f"{host_ip}:" if host_ip else ""
    return f"{prefix}{mapping['hostPort']}:{mapping['containerPort']}/{mapping['protocol']}"
