"""The firewall backend choice and guard clean-up (pyruntime.hostnet.firewall)."""

from __future__ import annotations

import pytest

from pyruntime.hostnet import firewall, rules
from pyruntime.hostnet.errors import HostNetError


def test_removing_the_last_guard_of_a_bridge_turns_route_localnet_off(monkeypatch, tmp_path):
    from pyruntime.hostnet import links
    sysctl = {name: tmp_path / name for name in ("pyr0", "pyr1")}
    for path in sysctl.values():
        path.write_text("1\n")
    monkeypatch.setattr(links, "route_localnet_path", lambda bridge: str(sysctl.get(bridge, tmp_path / "gone")))
    comment = ("-m", "comment", "--comment")
    guard = {b: rules.loopback_guard(b, comment + (f'"pyruntime/{t}/{n}"',)).save_line()
             for b, t, n in (("pyr0", "a", "n1"), ("pyr1", "b", "n2"), ("gone", "c", "n3"))}
    second = rules.loopback_guard("pyr1", comment + ('"pyruntime/d/n4"',)).save_line()
    tables = {"filter": {"chains": set(), "rules": list(guard.values()) + [second]}}
    removed = {"filter": {"chains": set(), "rules": [guard["pyr0"], guard["pyr1"], guard["gone"]]}}
    firewall.close_unguarded_bridges(tables, removed)
    assert sysctl["pyr0"].read_text() == "0"             # its only guard went
    assert sysctl["pyr1"].read_text() == "1\n"          # network n4 still guards it


def test_backend_detection():
    assert firewall.detect("nft", True) == "nftables"
    assert firewall.detect("legacy", False) == "iptables"
    assert firewall.detect("", True) == "iptables"
    assert firewall.detect("", False) == "nftables"
    assert firewall.choose("iptables", {}) == "iptables"
    assert firewall.choose("auto", {firewall.ENV_OVERRIDE: "nftables"}) == "nftables"
    with pytest.raises(HostNetError):
        firewall.choose("auto", {firewall.ENV_OVERRIDE: "pf"})
