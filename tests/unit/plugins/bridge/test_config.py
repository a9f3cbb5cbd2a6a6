"""The bridge plugin's configuration (pyruntime.plugins.bridge.config): defaults, runtimeConfig,
IPAM ranges, port mappings."""

from __future__ import annotations

import ipaddress

import pytest

from pyruntime.cni.errors import CniError
from pyruntime.plugins.bridge import config
from tests.unit.plugins.bridge.support import conf


def test_bridge_conf_defaults_and_runtime_config():
    bc = config.parse_bridge_conf(conf(isDefaultGateway=True, runtimeConfig={
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "UDP", "hostIP": "0.0.0.0"}],
        "mac": "02:AA:bb:cc:dd:ee", "ips": ["10.123.0.9/24"]}), {"IP": "10.123.0.10"})
    assert bc.is_gateway and bc.is_default_gateway
    assert bc.port_mappings == [config.PortMapping(8080, 80, "udp", "0.0.0.0")]
    assert bc.mac == "02:aa:bb:cc:dd:ee"
    assert bc.requested_ips == [ipaddress.ip_address("10.123.0.9"), ipaddress.ip_address("10.123.0.10")]
    r = bc.ipam.range_sets[0][0]
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.123.0.1", "10.123.0.254", "10.123.0.1")


def test_ipam_ranges_v6_and_overlap():
    ipam = config.parse_ipam_conf({"type": "x", "ranges": [
        [{"subnet": "10.5.0.0/16", "rangeStart": "10.5.1.10", "rangeEnd": "10.5.1.20", "gateway": "10.5.0.1"}],
        [{"subnet": "fd00:5::/64"}]]}, "n")
    v6 = ipam.range_sets[1][0]
    assert str(v6.start) == "fd00:5::1" and str(v6.end) == "fd00:5::ffff:ffff:ffff:ffff"
    with pytest.raises(CniError) as e:
        config.parse_ipam_conf({"type": "x", "ranges": [[{"subnet": "10.5.0.0/24"}, {"subnet": "10.5.0.0/25"}]]}, "n")
    assert e.value.code == 7


def test_duplicate_port_mapping_rejected():
    with pytest.raises(CniError):
        config.parse_port_mappings([{"hostPort": 1, "containerPort": 2}, {"hostPort": 1, "containerPort": 3}])
