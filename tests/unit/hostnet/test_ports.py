"""Port claims (pyruntime.hostnet.ports)."""

from __future__ import annotations

from pyruntime.hostnet import ports
from pyruntime.plugins.bridge import config


def test_port_claims_clash_on_protocol_port_and_overlapping_address(tmp_path):
    want = ports.wanted([config.PortMapping(8080, 80, "tcp", ""), config.PortMapping(53, 53, "udp", "192.0.2.1")])
    assert want == ["tcp_any_8080", "udp_192.0.2.1_53"]
    existing = ["tcp_10.0.0.1_8080", "udp_any_8080", "tcp_any_8081", "udp_192.0.2.2_53"]
    assert ports.clashes("tcp_any_8080", existing) == ["tcp_10.0.0.1_8080"]
    assert ports.clashes("udp_192.0.2.1_53", existing) == []
    assert ports.clashes("udp_192.0.2.1_8080", existing) == ["udp_any_8080"]
    store = ports.Claims(str(tmp_path / "ns"))
    store.take(want, "tagA")
    assert sorted(store.names()) == want and store.owner("tcp_any_8080") == "tagA"
    store.release("tagB")
    assert sorted(store.names()) == want
    store.release("tagA")
    assert not (tmp_path / "ns").exists()
