"""Names of host resources (pyruntime.hostnet.naming)."""

from __future__ import annotations

from pyruntime.hostnet import naming


def test_names_are_stable_and_short():
    v = naming.veth_name("a" * 64, "eth0")
    assert v.startswith("pyr") and len(v) == 15 and v == naming.veth_name("a" * 64, "eth0")
    assert v != naming.veth_name("a" * 64, "eth1")
    assert len(naming.masq_chain(naming.attachment_tag("n", "c", "eth0"))) <= 28
