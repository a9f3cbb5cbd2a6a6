"""The file side of node-up/node-down (pyruntime.cluster.node): the conflist it writes and
keeps track of, the forwarding value it records and restores, the record itself. Sysctls are
files in a temporary directory here; routes and rules are the integration test's."""

from __future__ import annotations

import json

import pytest

from pyruntime.cluster import model, node, plan


def cluster(subnet="10.250.1.0/24"):
    return model.parse({"cidr": "10.250.0.0/16", "network": "pods", "nodes": [
        {"name": "a", "address": "192.0.2.11", "podSubnet": subnet},
        {"name": "b", "address": "192.0.2.12", "podSubnet": "10.250.2.0/24"}]})


def test_conflist_written_updated_and_removed(tmp_path):
    c, record = cluster(), {}
    d = str(tmp_path / "net.d")
    assert node._write_conflist(c, c.node("a"), d, "/leases", record, False)[0].startswith("wrote ")
    path = tmp_path / "net.d" / "pods.conflist"
    doc = json.loads(path.read_text())
    assert doc["plugins"][0]["ipam"]["dataDir"] == "/leases"
    assert node._write_conflist(c, c.node("a"), d, "/leases", record, False) == []     # unchanged
    c2 = cluster("10.250.9.0/24")
    assert node._write_conflist(c2, c2.node("a"), d, "/leases", record, False)[0].startswith("updated ")
    assert "10.250.9.0/24" in path.read_text()
    assert node._remove_conflist(c2, c2.node("a"), d, record) == [f"removed {path}"]
    assert not path.exists()


def test_conflist_of_somebody_else_needs_force_and_an_edit_is_kept(tmp_path):
    c, record = cluster(), {}
    path = tmp_path / "pods.conflist"
    path.write_text("theirs\n")
    with pytest.raises(node.NodeError, match="--force"):
        node._write_conflist(c, c.node("a"), str(tmp_path), "", record, False)
    assert path.read_text() == "theirs\n"
    node._write_conflist(c, c.node("a"), str(tmp_path), "", record, True)
    path.write_text(path.read_text().replace("true", "false"))      # edited after node-up
    assert node._remove_conflist(c, c.node("a"), str(tmp_path), record) == [f"{path}: changed since node-up, kept"]
    assert path.exists()


def test_conflist_without_record_removed_only_when_it_is_node_ups(tmp_path):
    c = cluster()
    node._write_conflist(c, c.node("a"), str(tmp_path), "/some/leases", {}, False)
    assert node._remove_conflist(c, c.node("a"), str(tmp_path), {})[0].startswith("removed ")
    path = tmp_path / "pods.conflist"
    path.write_text('{"plugins": [{"ipam": {}}]}\n')
    assert node._remove_conflist(c, c.node("a"), str(tmp_path), {}) == [f"{path}: changed since node-up, kept"]


def test_forwarding_recorded_once_and_restored(tmp_path, monkeypatch):
    sysctl = tmp_path / "ip_forward"
    sysctl.write_text("0\n")
    monkeypatch.setitem(plan.FORWARDING, 4, str(sysctl))
    record: dict = {}
    assert node._enable_forwarding(4, record) == ["net.ipv4.ip_forward: 0 -> 1"]
    assert sysctl.read_text() == "1" and record["forwarding"]["previous"] == "0"
    assert node._enable_forwarding(4, record) == []                 # a re-run keeps the first value
    assert record["forwarding"]["previous"] == "0"
    assert node._restore_forwarding(4, record) == ["net.ipv4.ip_forward: 1 -> 0 (as before node-up)"]
    assert sysctl.read_text() == "0"


def test_forwarding_already_on_is_left_on(tmp_path, monkeypatch):
    sysctl = tmp_path / "ip_forward"
    sysctl.write_text("1\n")
    monkeypatch.setitem(plan.FORWARDING, 4, str(sysctl))
    record: dict = {}
    assert node._enable_forwarding(4, record) == [] and "forwarding" not in record
    assert node._restore_forwarding(4, record) == [] and sysctl.read_text() == "1\n"


def test_record_round_trip_outside_container_ids(tmp_path):
    node._save_record(str(tmp_path), "pods", {"x": 1})
    assert node._read_record(str(tmp_path), "pods") == {"x": 1}
    assert node.record_path(str(tmp_path), "pods").startswith(str(tmp_path / node.RECORD_DIR))
    node._remove_record(str(tmp_path), "pods")
    assert node._read_record(str(tmp_path), "pods") == {} and not (tmp_path / node.RECORD_DIR).exists()


def test_commands_need_root_before_anything_is_written(tmp_path, monkeypatch):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"cidr": "10.250.0.0/16", "nodes": [
        {"name": "a", "address": "192.0.2.11", "podSubnet": "10.250.1.0/24"}]}))
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    for run in (lambda: node.up(str(f), "a", str(tmp_path / "net.d"), str(tmp_path), print),
                lambda: node.down(str(f), "a", str(tmp_path / "net.d"), str(tmp_path), print)):
        with pytest.raises(node.NodeError, match="run it as root"):
            run()
    assert not (tmp_path / "net.d").exists() and not (tmp_path / node.RECORD_DIR).exists()
