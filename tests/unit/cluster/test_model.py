"""The cluster file (pyruntime.cluster.model): decoding, defaults, and errors naming the field."""

from __future__ import annotations

import ipaddress
import json

import pytest

from pyruntime.cluster import model


def doc(**over):
    d = {"cidr": "10.250.0.0/16",
         "nodes": [{"name": "a", "address": "192.0.2.11", "podSubnet": "10.250.1.0/24"},
                   {"name": "b", "address": "192.0.2.12", "podSubnet": "10.250.2.0/24"}]}
    d.update(over)
    return d


def node(i, **over):
    n = dict(doc()["nodes"][i])
    n.update(over)
    return n


def test_defaults_and_values():
    c = model.parse(doc())
    assert c.cidr == ipaddress.ip_network("10.250.0.0/16")
    assert (c.network, c.bridge, c.firewall_backend, c.family) == ("pyruntime", "pyruntime0", "auto", 4)
    assert c.node("b") == model.Node("b", ipaddress.ip_address("192.0.2.12"),
                                     ipaddress.ip_network("10.250.2.0/24"))


def test_optional_fields():
    c = model.parse(doc(network="pods", bridge="cni9", firewallBackend="iptables"))
    assert (c.network, c.bridge, c.firewall_backend) == ("pods", "cni9", "iptables")


def test_ipv6_cluster():
    c = model.parse({"cidr": "fd50::/48", "nodes": [
        {"name": "a", "address": "fd00::11", "podSubnet": "fd50:0:0:1::/64"}]})
    assert c.family == 6


@pytest.mark.parametrize("d, field", [
    ([], "(top level)"),
    (doc(cidr="10.250.0.1/16"), "cidr"),
    (doc(cidr=None), "cidr"),
    (doc(network="bad name"), "network"),
    (doc(bridge="way-too-long-bridge"), "bridge"),
    (doc(firewallBackend="pf"), "firewallBackend"),
    (doc(nodes=[]), "nodes"),
    (doc(extra=1), "extra"),
    (doc(nodes=["a"]), "nodes[0]"),
    (doc(nodes=[node(0, name="")]), "nodes[0].name"),
    (doc(nodes=[node(0, zone="x")]), "nodes[0].zone"),
    (doc(nodes=[node(0, address="192.0.2.300")]), "nodes[0] (a).address"),
    (doc(nodes=[node(0, address="10.250.9.9")]), "nodes[0] (a).address"),
    (doc(nodes=[node(0, podSubnet="10.251.1.0/24")]), "nodes[0] (a).podSubnet"),
    (doc(nodes=[node(0, podSubnet="10.250.1.0/31")]), "nodes[0] (a).podSubnet"),
    (doc(nodes=[node(0, podSubnet="fd00::/64")]), "nodes[0] (a)"),
    (doc(nodes=[node(0), node(1, name="a")]), "nodes[1].name"),
    (doc(nodes=[node(0), node(1, address="192.0.2.11")]), "nodes[1] (b).address"),
    (doc(nodes=[node(0), node(1, podSubnet="10.250.0.0/23")]), "nodes[1] (b).podSubnet"),
])
def test_errors_name_the_field(d, field):
    with pytest.raises(model.ClusterFileError) as e:
        model.parse(d, "c.json")
    assert str(e.value).startswith(f"c.json: {field}: "), str(e.value)


def test_unknown_node():
    with pytest.raises(model.RuntimeUserError, match="'z' is not in the cluster file \\(nodes: a, b\\)"):
        model.parse(doc()).node("z")


def test_load_reports_unreadable_and_bad_json(tmp_path):
    with pytest.raises(model.ClusterFileError, match="cannot read cluster file"):
        model.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "c.json"
    bad.write_text("{nope")
    with pytest.raises(model.ClusterFileError, match="not JSON"):
        model.load(str(bad))
    bad.write_text(json.dumps(doc()))
    assert [n.name for n in model.load(str(bad)).nodes] == ["a", "b"]
