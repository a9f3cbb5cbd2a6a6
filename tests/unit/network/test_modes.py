"""Network modes and port publications (pyruntime.network.modes)."""

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.network import modes


@pytest.mark.parametrize("text, kind, target", [
    (None, "bridge", "pyruntime"), ("bridge", "bridge", "pyruntime"), ("bridge:lab", "bridge", "lab"),
    ("host", "host", ""), ("none", "none", ""), ("container:web-1", "container", "web-1"),
])
def test_parse_mode(text, kind, target):
    assert modes.parse_mode(text) == modes.NetworkMode(kind, target)


@pytest.mark.parametrize("text", ["bridged", "host:x", "container:", "container:a/b", "bridge:../x"])
def test_parse_mode_rejects(text):
    with pytest.raises(RuntimeUserError):
        modes.parse_mode(text)


@pytest.mark.parametrize("text, mapping", [
    ("8080:80", {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}),
    ("127.0.0.1:8443:443", {"hostPort": 8443, "containerPort": 443, "protocol": "tcp", "hostIP": "127.0.0.1"}),
    ("53:53/UDP", {"hostPort": 53, "containerPort": 53, "protocol": "udp"}),
    ("[::1]:8080:80/tcp", {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "::1"}),
])
def test_parse_publish(text, mapping):
    assert modes.parse_publish(text) == mapping
    assert modes.parse_publish(modes.format_publish(mapping)) == mapping


@pytest.mark.parametrize("text, message", [
    ("80", "expected"), ("0:80", "host port"), ("8080:70000", "container port"),
    ("8080:80/icmp", "protocol"), ("abc:8080:80", "not an IP"), ("1:2:3:4", "expected"),
])
def test_parse_publish_rejects(text, message):
    with pytest.raises(RuntimeUserError, match=message):
        modes.parse_publish(text)


def test_publish_list_from_annotation():
    assert [m["hostPort"] for m in modes.parse_publish_list("1:2, 3:4/udp,")] == [1, 3]
    assert modes.parse_publish_list(None) == []
