"""The python-iptables backend's rule translation (pyruntime.hostnet.fw_iptables_legacy)."""

from __future__ import annotations

import pytest

from pyruntime.hostnet import rules


def test_iptc_rule_translation():
    iptc = pytest.importorskip("iptc")
    from pyruntime.hostnet import fw_iptables_legacy
    r = fw_iptables_legacy.build_rule(iptc, 4, ("!", "-d", "224.0.0.0/4", "-m", "comment", "--comment",
                                                '"x/y"', "-j", "MASQUERADE"))
    assert r.dst.startswith("!224.0.0.0")
    assert r.matches[0].comment == "x/y"
    assert r.target.name == "MASQUERADE"
    guard = rules.loopback_guard("pyr0", ("-m", "comment", "--comment", '"pyruntime/a/b"'))
    r = fw_iptables_legacy.build_rule(iptc, 4, guard.args)
    assert r.in_interface == "pyr0" and r.dst.startswith("127.0.0.0/255.0.0.0")
    assert r.matches[0].name == "conntrack" and r.matches[0].ctstate == "!RELATED,ESTABLISHED,DNAT"
    assert r.target.name == "DROP"
