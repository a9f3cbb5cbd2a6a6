"""What the runtime asked for: the CNI_* environment and the network config on stdin."""

from __future__ import annotations

import re

from pyruntime import jsondoc
from pyruntime.cni.errors import DECODE_FAILURE, INVALID_CONFIG, INVALID_ENV, CniError
from pyruntime.record import Record

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")

# Which variables each command cannot do without (spec section "Parameters").
_REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "VERSION": (),
    "GC": (),
    "STATUS": (),
}

_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class Request(Record):
    __slots__ = ("command", "container_id", "netns", "ifname", "args", "path")
    _defaults = {"container_id": "", "netns": "", "ifname": "", "args": dict, "path": list}


def parse_env(env: dict[str, str]) -> Request:
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(INVALID_ENV, "required env variable CNI_COMMAND is missing")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, "unknown CNI_COMMAND", f"{command!r} is not one of {', '.join(COMMANDS)}")
    for name in _REQUIRED_ENV[command]:
        if not env.get(name):
            raise CniError(INVALID_ENV, f"required env variable {name} is missing")
    req = Request(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        path=[p for p in env.get("CNI_PATH", "").split(":") if p],
    )
    if req.container_id and not _CONTAINER_ID.match(req.container_id):
        raise CniError(INVALID_ENV, "invalid CNI_CONTAINERID",
                       f"{req.container_id!r}: only letters, digits, '_', '.', '-' are allowed")
    if req.ifname:
        check_ifname(req.ifname)
    return req


def check_ifname(name: str) -> None:
    if len(name) > 15 or name in (".", "..") or any(c in name for c in "/: \t\n"):
        raise CniError(INVALID_ENV, "invalid CNI_IFNAME",
                       f"{name!r}: at most 15 characters, no '/', ':' or whitespace")


def parse_cni_args(text: str) -> dict[str, str]:
    """CNI_ARGS is 'K1=V1;K2=V2'."""
    out: dict[str, str] = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENV, "invalid CNI_ARGS", f"{pair!r} is not KEY=VALUE")
        out[key] = value
    return out


DECODE_MSG = "failed to decode network configuration"


def read_stdin(stream) -> bytes:
    """The plugin's stdin, refused (CNI error 6) when larger than any configuration could be."""
    try:
        return jsondoc.read_limited(stream)
    except jsondoc.JsonDocError as e:
        raise CniError(DECODE_FAILURE, DECODE_MSG, f"stdin is {e}") from None


def parse_config(raw: bytes) -> dict:
    """The network configuration from stdin, decoded (not yet validated)."""
    try:
        conf = jsondoc.loads(raw)
    except jsondoc.JsonDocError as e:
        raise CniError(DECODE_FAILURE, DECODE_MSG, f"stdin is {e}") from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, DECODE_MSG,
                       f"expected a JSON object, got {type(conf).__name__}")
    return conf


def check_network_name(conf: dict) -> str:
    name = conf.get("name")
    if not isinstance(name, str) or not _NETWORK_NAME.match(name):
        raise CniError(INVALID_CONFIG, "invalid network name",
                       f"{name!r}: letters, digits, '_', '.', '-', starting with a letter or digit")
    return name
