"""Parsing and validating service definitions (pyruntime.services.spec)."""

from __future__ import annotations

import ipaddress

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.services import spec


def test_parse_ipv4_service():
    svc = spec.parse("web", "10.96.0.10:80/TCP", ["10.0.0.2:8080", "10.0.0.3:8080"])
    assert svc.name == "web" and svc.protocol == "tcp" and svc.family == 4
    assert svc.vip == spec.Endpoint(ipaddress.ip_address("10.96.0.10"), 80)
    assert [str(b) for b in svc.backends] == ["10.0.0.2:8080", "10.0.0.3:8080"]
    assert svc.as_dict() == {"name": "web", "vip": "10.96.0.10:80/tcp",
                             "backends": ["10.0.0.2:8080", "10.0.0.3:8080"]}


def test_protocol_defaults_to_tcp_and_ipv6_needs_brackets():
    assert spec.parse("a", "10.96.0.10:53", ["10.0.0.2:53"]).protocol == "tcp"
    svc = spec.parse("a", "[fd00::10]:53/udp", ["[fd00:1::2]:5353"])
    assert svc.family == 6 and svc.vip_text() == "[fd00::10]:53/udp"
    assert str(svc.backends[0]) == "[fd00:1::2]:5353"


@pytest.mark.parametrize("name, vip, backends, named", [
    ("Web", "10.96.0.10:80", ["10.0.0.2:80"], "service name 'Web'"),
    ("-web", "10.96.0.10:80", ["10.0.0.2:80"], "service name '-web'"),
    ("a" * 64, "10.96.0.10:80", ["10.0.0.2:80"], "service name"),
    ("web", "10.96.0.10:80/icmp", ["10.0.0.2:80"], "--vip '10.96.0.10:80/icmp'"),
    ("web", "10.96.0.10", ["10.0.0.2:80"], "--vip '10.96.0.10'"),
    ("web", "nothost:80", ["10.0.0.2:80"], "--vip 'nothost:80'"),
    ("web", "fd00::10:80", ["[fd00::2]:80"], "--vip 'fd00::10:80'"),
    ("web", "0.0.0.0:80", ["10.0.0.2:80"], "--vip '0.0.0.0:80'"),
    ("web", "10.96.0.10:0", ["10.0.0.2:80"], "--vip '10.96.0.10:0'"),
    ("web", "10.96.0.10:80", ["10.0.0.2:65536"], "--backend '10.0.0.2:65536'"),
    ("web", "10.96.0.10:80", ["[fd00::2]:80"], "--backend '[fd00::2]:80': not the same IP version"),
    ("web", "10.96.0.10:80", ["10.0.0.2:80", "10.0.0.2:80"], "--backend '10.0.0.2:80': given twice"),
    ("web", "10.96.0.10:80", [], "--backend: a service needs at least one backend"),
])
def test_errors_name_the_argument(name, vip, backends, named):
    with pytest.raises(RuntimeUserError) as e:
        spec.parse(name, vip, backends)
    assert named in str(e.value) and "\n" not in str(e.value)
