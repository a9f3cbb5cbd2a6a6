"""The cluster file: decoded and validated into plain data, every error naming the bad field.

    {"cidr": "10.250.0.0/16",                  every pod subnet lies inside it
     "network": "pyruntime",                   optional: the network name containers use
     "bridge": "pyruntime0",                   optional: the bridge on every node
     "firewallBackend": "auto",                optional: auto, iptables or nftables
     "nodes": [{"name": "a", "address": "192.0.2.11", "podSubnet": "10.250.1.0/24"}, ...]}
"""

from __future__ import annotations

import ipaddress
import json
import re

from pyruntime.errors import RuntimeUserError
from pyruntime.network.modes import DEFAULT_NETWORK
from pyruntime.record import Record

DEFAULT_BRIDGE = "pyruntime0"
FIREWALL_BACKENDS = ("auto", "iptables", "nftables")
_NETWORK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_IFNAME = re.compile(r"^[^/:\s]{1,15}$")
_KNOWN = {"cidr", "network", "bridge", "firewallBackend", "nodes"}
_NODE_KNOWN = {"name", "address", "podSubnet"}


class Node(Record):
    __slots__ = ("name", "address", "subnet")


class Cluster(Record):
    __slots__ = ("cidr", "network", "bridge", "firewall_backend", "nodes")

    @property
    def family(self) -> int:
        return self.cidr.version

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise RuntimeUserError(f"node {name!r} is not in the cluster file (nodes: "
                               f"{', '.join(n.name for n in self.nodes)})")


class ClusterFileError(RuntimeUserError):
    pass


def load(path: str) -> Cluster:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ClusterFileError(f"cannot read cluster file {path}: {e.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ClusterFileError(f"{path}: not JSON: {e}") from None
    return parse(doc, path)


def parse(doc, source: str = "cluster file") -> Cluster:
    def bad(field: str, why: str) -> ClusterFileError:
        return ClusterFileError(f"{source}: {field}: {why}")

    if not isinstance(doc, dict):
        raise bad("(top level)", "expected a JSON object")
    unknown = sorted(set(doc) - _KNOWN)
    if unknown:
        raise bad(unknown[0], f"unknown field (known: {', '.join(sorted(_KNOWN))})")
    cidr = _network(doc.get("cidr"), "cidr", bad)
    network = doc.get("network", DEFAULT_NETWORK)
    if not isinstance(network, str) or not _NETWORK.match(network):
        raise bad("network", f"{network!r} is not a network name (letters, digits, '_', '.', '-')")
    bridge = doc.get("bridge", DEFAULT_BRIDGE)
    if not isinstance(bridge, str) or not _IFNAME.match(bridge):
        raise bad("bridge", f"{bridge!r}: 1-15 characters, no '/', ':' or whitespace")
    backend = doc.get("firewallBackend", "auto")
    if backend not in FIREWALL_BACKENDS:
        raise bad("firewallBackend", f"{backend!r} is not one of {', '.join(FIREWALL_BACKENDS)}")
    items = doc.get("nodes")
    if not isinstance(items, list) or not items:
        raise bad("nodes", "expected a non-empty list of nodes")
    nodes = [_node(item, i, cidr, bad) for i, item in enumerate(items)]
    _check_unique(nodes, bad)
    return Cluster(cidr, network, bridge, backend, nodes)


def _network(value, field: str, bad):
    if not isinstance(value, str):
        raise bad(field, f"expected a CIDR like 10.250.0.0/16, got {value!r}")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise bad(field, f"{value!r} is not a network CIDR ({e})") from None
    return net


def _node(item, i: int, cidr, bad) -> Node:
    where = f"nodes[{i}]"
    if not isinstance(item, dict):
        raise bad(where, "expected an object with name, address and podSubnet")
    unknown = sorted(set(item) - _NODE_KNOWN)
    if unknown:
        raise bad(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(_NODE_KNOWN))})")
    name = item.get("name")
    if not isinstance(name, str) or not _NETWORK.match(name):
        raise bad(f"{where}.name", f"{name!r} is not a node name (letters, digits, '_', '.', '-')")
    where = f"nodes[{i}] ({name})"
    try:
        address = ipaddress.ip_address(item.get("address"))
    except ValueError:
        raise bad(f"{where}.address", f"{item.get('address')!r} is not an IP address") from None
    subnet = _network(item.get("podSubnet"), f"{where}.podSubnet", bad)
    if address.version != cidr.version or subnet.version != cidr.version:
        raise bad(where, f"address and podSubnet must be IPv{cidr.version}, like cidr {cidr}")
    if not subnet.subnet_of(cidr):
        raise bad(f"{where}.podSubnet", f"{subnet} is not inside the cluster cidr {cidr}")
    if subnet.num_addresses < (4 if subnet.version == 4 else 2):
        raise bad(f"{where}.podSubnet", f"{subnet} is too small to hold a gateway and a pod")
    if address in cidr:
        # the node's own traffic would then count as pod traffic and pass unmasqueraded
        raise bad(f"{where}.address", f"{address} is inside the cluster cidr {cidr}: nodes need an "
                                      "address on their own network (the underlay)")
    return Node(name, address, subnet)


def _check_unique(nodes: list[Node], bad) -> None:
    for i, a in enumerate(nodes):
        for j, b in enumerate(nodes[:i]):
            if a.name == b.name:
                raise bad(f"nodes[{i}].name", f"{a.name!r} is also nodes[{j}]")
            if a.address == b.address:
                raise bad(f"nodes[{i}] ({a.name}).address", f"{a.address} is also the address of {b.name}")
            if a.subnet.overlaps(b.subnet):
                raise bad(f"nodes[{i}] ({a.name}).podSubnet", f"{a.subnet} overlaps {b.name}'s {b.subnet}")
