"""CNI results in every version (pyruntime.cni.result)."""

from __future__ import annotations

import ipaddress

import pytest

from pyruntime.cni import result, version
from pyruntime.cni.errors import CniError

# -- results in every version ----------------------------------------------------------------------

def sample_result():
    return result.Result(
        interfaces=[result.Interface("br0", "aa:aa:aa:aa:aa:aa"), result.Interface("veth", "bb:bb:bb:bb:bb:bb"),
                    result.Interface("eth0", "cc:cc:cc:cc:cc:cc", "/run/netns/x", 1500)],
        ips=[result.IPConfig(ipaddress.ip_interface("10.0.0.2/24"), ipaddress.ip_address("10.0.0.1"), 2),
             result.IPConfig(ipaddress.ip_interface("fd00::2/64"), ipaddress.ip_address("fd00::1"), 2)],
        routes=[result.Route(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("10.0.0.1"))],
        dns={"nameservers": ["10.0.0.1"]})


def test_result_1_1_0_shape():
    out = sample_result().to_json("1.1.0")
    assert out["interfaces"][2] == {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "mtu": 1500, "sandbox": "/run/netns/x"}
    assert out["ips"][0] == {"interface": 2, "address": "10.0.0.2/24", "gateway": "10.0.0.1"}
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
    assert out["dns"] == {"nameservers": ["10.0.0.1"]}


def test_result_0_4_0_and_1_0_0_shape():
    assert sample_result().to_json("0.4.0")["ips"][1]["version"] == "6"
    assert sample_result().to_json("0.4.0")["dns"] == {"nameservers": ["10.0.0.1"]}
    assert "version" not in sample_result().to_json("1.0.0")["ips"][0]
    assert "mtu" not in sample_result().to_json("1.0.0")["interfaces"][2]


def test_result_0_2_0_shape():
    out = sample_result().to_json("0.2.0")
    assert out["ip4"] == {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                          "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]}
    assert out["ip6"] == {"ip": "fd00::2/64", "gateway": "fd00::1"}
    assert "interfaces" not in out


@pytest.mark.parametrize("v", version.SUPPORTED)
def test_result_round_trips_through_every_version(v):
    back = result.parse(sample_result().to_json(v))
    assert [str(i.address) for i in back.ips] == ["10.0.0.2/24", "fd00::2/64"]
    assert back.routes[0].gw == ipaddress.ip_address("10.0.0.1")


def test_result_parse_rejects_garbage():
    with pytest.raises(CniError) as e:
        result.parse({"ips": [{"address": "nope"}]})
    assert e.value.code == 6
