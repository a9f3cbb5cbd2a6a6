"""What a node needs and the changes to get there (pyruntime.cluster.plan), without root."""

from __future__ import annotations

import ipaddress

from pyruntime.cluster import model, plan
from pyruntime.hostnet import rules
from pyruntime.plugins.bridge import config as bridge_config

net, ip = ipaddress.ip_network, ipaddress.ip_address


def cluster(cidr="10.250.0.0/16", nodes=(("a", "192.0.2.11", "10.250.1.0/24"),
                                         ("b", "192.0.2.12", "10.250.2.0/24"),
                                         ("c", "192.0.2.13", "10.250.3.0/24")), **over):
    d = {"cidr": cidr, "nodes": [{"name": n, "address": a, "podSubnet": s} for n, a, s in nodes]}
    d.update(over)
    return model.parse(d)


def route(dst, gw):
    return plan.Route(net(dst), ip(gw))


# -- routes ------------------------------------------------------------------------------------

def test_routes_to_every_other_node():
    c = cluster()
    assert plan.desired_routes(c, c.node("a")) == [route("10.250.2.0/24", "192.0.2.12"),
                                                  route("10.250.3.0/24", "192.0.2.13")]


def test_route_changes_from_nothing_add_all():
    want = [route("10.250.2.0/24", "192.0.2.12")]
    ch = plan.route_changes(want, [], [net("192.0.2.0/24")])
    assert (ch.add, ch.replace, ch.remove, ch.conflicts) == (want, [], [], [])


def test_route_changes_converged_is_empty():
    want = [route("10.250.2.0/24", "192.0.2.12")]
    assert not plan.route_changes(want, list(want), [])


def test_route_changes_replace_remove_and_duplicates():
    want = [route("10.250.2.0/24", "192.0.2.22"), route("10.250.3.0/24", "192.0.2.13")]
    ours = [route("10.250.2.0/24", "192.0.2.12"), route("10.250.9.0/24", "192.0.2.19"),
            route("10.250.3.0/24", "192.0.2.13"), route("10.250.3.0/24", "192.0.2.14")]
    ch = plan.route_changes(want, ours, [])
    assert ch.add == []
    assert ch.replace == [route("10.250.2.0/24", "192.0.2.22")]
    assert ch.remove == [route("10.250.9.0/24", "192.0.2.19"), route("10.250.3.0/24", "192.0.2.14")]


def test_route_of_somebody_else_is_a_conflict_not_touched():
    want = [route("10.250.2.0/24", "192.0.2.12")]
    ch = plan.route_changes(want, [], [net("10.250.2.0/24")])
    assert not ch and "10.250.2.0/24" in ch.conflicts[0]


def test_down_removes_all_of_ours():
    ours = [route("10.250.2.0/24", "192.0.2.12")]
    assert plan.route_changes([], ours, [net("0.0.0.0/0")]).remove == ours


# -- the masquerade exception ------------------------------------------------------------------

def nat_of(lines_by_chain: dict) -> dict:
    text = "*nat\n:POSTROUTING ACCEPT [0:0]\n"
    text += "".join(f":{c} - [0:0]\n" for c in lines_by_chain if c != "POSTROUTING")
    text += "".join(f"{line}\n" for lines in lines_by_chain.values() for line in lines)
    return rules.parse_save(text + "COMMIT\n")["nat"]


def apply(changes: plan.FirewallChanges, nat: dict) -> dict:
    """What the nat table looks like after the changes (the executor's order)."""
    chains = {c: [r for r in nat["rules"] if r.split(" ")[1] == c] for c in nat["chains"]}
    for line in changes.remove_rules:
        chains[line.split(" ")[1]].remove(line)
    for c in changes.remove_chains:
        chains.pop(c)               # flushed, then deleted
    if changes.add_chain:
        chains[changes.add_chain] = []
    for chain, args, first in changes.add_rules:
        line = " ".join(("-A", chain) + args)
        chains[chain].insert(0, line) if first else chains[chain].append(line)
    return nat_of(chains)


def test_chain_names():
    a = plan.chain_name("pyruntime", net("10.250.0.0/16"))
    b = plan.chain_name("pyruntime", net("10.251.0.0/16"))
    other = plan.chain_name("pods", net("10.250.0.0/16"))
    assert a.startswith("PYR-CL-") and len(a) == 23 and len(a) <= 28   # iptables' limit
    assert a != b and a[:15] == b[:15] == plan.network_chain_prefix("pyruntime")
    assert not other.startswith(plan.network_chain_prefix("pyruntime"))


def test_exception_from_empty_table():
    c = cluster()
    chain = plan.chain_name("pyruntime", c.cidr)
    ch = plan.firewall_changes(c, "pyruntime", nat_of({"POSTROUTING": []}))
    assert ch.add_chain == chain and ch.remove_rules == [] and ch.remove_chains == []
    assert ch.add_rules == [(chain, ("-s", "10.250.0.0/16", "-d", "10.250.0.0/16", "-m", "mark", "!", "--mark", "0x4000/0x4000",
                                "-j", "ACCEPT"), False),
                            ("POSTROUTING", ("-m", "comment", "--comment", '"pyruntime-cluster/pyruntime"',
                                             "-j", chain), True)]
    after = apply(ch, nat_of({"POSTROUTING": []}))
    assert after["rules"][0] == f'-A POSTROUTING -m comment --comment "pyruntime-cluster/pyruntime" -j {chain}'
    assert not plan.firewall_changes(c, "pyruntime", after)          # converged: nothing more


def test_exception_goes_before_existing_postrouting_rules():
    c = cluster()
    plugin = '-A POSTROUTING -s 10.250.1.5/32 -m comment --comment "pyruntime/x/pyruntime/cid" -j PYR-SN-y'
    after = apply(plan.firewall_changes(c, "pyruntime", nat_of({"POSTROUTING": [plugin]})),
                  nat_of({"POSTROUTING": [plugin]}))
    assert after["rules"][0].endswith(plan.chain_name("pyruntime", c.cidr)) and after["rules"][1] == plugin


def test_cidr_change_replaces_chain_and_jump():
    old, new = cluster(), cluster("10.240.0.0/12", (("a", "192.0.2.11", "10.240.1.0/24"),))
    start = apply(plan.firewall_changes(old, "pyruntime", nat_of({"POSTROUTING": []})), nat_of({"POSTROUTING": []}))
    ch = plan.firewall_changes(new, "pyruntime", start)
    old_chain, new_chain = plan.chain_name("pyruntime", old.cidr), plan.chain_name("pyruntime", new.cidr)
    assert ch.remove_chains == [old_chain] and ch.remove_rules[0].endswith(old_chain)
    assert ch.add_chain == new_chain
    after = apply(ch, start)
    assert old_chain not in after["chains"] and not plan.firewall_changes(new, "pyruntime", after)


def test_tampered_chain_and_duplicate_jump_are_repaired():
    c = cluster()
    chain = plan.chain_name("pyruntime", c.cidr)
    jump = f'-A POSTROUTING -m comment --comment "pyruntime-cluster/pyruntime" -j {chain}'
    nat = nat_of({"POSTROUTING": [jump, jump], chain: [f"-A {chain} -j ACCEPT"]})
    ch = plan.firewall_changes(c, "pyruntime", nat)
    assert ch.remove_rules == [jump, jump] and ch.remove_chains == [chain] and ch.add_chain == chain
    # a good chain with a duplicated jump: only the second jump goes
    good = nat_of({"POSTROUTING": [jump, jump], chain: [f"-A {chain} -s 10.250.0.0/16 -d 10.250.0.0/16 -m mark ! --mark 0x4000/0x4000 -j ACCEPT"]})
    ch = plan.firewall_changes(c, "pyruntime", good)
    assert ch.remove_rules == [jump] and not ch.remove_chains and not ch.add_chain and not ch.add_rules


def test_down_removes_only_this_networks_parts():
    c = cluster()
    mine = apply(plan.firewall_changes(c, "pyruntime", nat_of({"POSTROUTING": []})), nat_of({"POSTROUTING": []}))
    other_chain = plan.chain_name("pods", c.cidr)
    other_jump = f'-A POSTROUTING -m comment --comment "pyruntime-cluster/pods" -j {other_chain}'
    foreign = "-A POSTROUTING -o eth0 -j MASQUERADE"
    lines = {"POSTROUTING": [r for r in mine["rules"] if r.startswith("-A POSTROUTING")] + [other_jump, foreign],
             other_chain: [], **{ch: [r for r in mine["rules"] if r.startswith(f"-A {ch} ")]
                                 for ch in mine["chains"] if ch != "POSTROUTING"}}
    ch = plan.firewall_changes(None, "pyruntime", nat_of(lines))
    assert ch.remove_chains == [plan.chain_name("pyruntime", c.cidr)]
    assert len(ch.remove_rules) == 1 and "pyruntime-cluster/pyruntime" in ch.remove_rules[0]
    assert not ch.add_chain and not ch.add_rules


# -- the conflist ------------------------------------------------------------------------------

def test_node_conflist_is_a_valid_bridge_conf_on_the_node_subnet():
    c = cluster(network="pods", bridge="cni7", firewallBackend="nftables")
    conflist = plan.node_conflist(c, c.node("b"), "/var/lib/x")
    assert conflist["name"] == "pods"
    conf = dict(conflist["plugins"][0], cniVersion=conflist["cniVersion"], name=conflist["name"])
    bc = bridge_config.parse_bridge_conf(conf)
    assert (bc.bridge, bc.ip_masq, bc.is_gateway, bc.firewall_backend) == ("cni7", True, True, "nftables")
    (rng,), = bc.ipam.range_sets
    assert rng.subnet == net("10.250.2.0/24") and rng.gateway == ip("10.250.2.1")
    assert bc.ipam.data_dir == "/var/lib/x"


def test_node_conflist_defaults():
    c = cluster()
    plugin = plan.node_conflist(c, c.node("a"))["plugins"][0]
    assert "firewallBackend" not in plugin and "dataDir" not in plugin["ipam"]
    assert plan.conflist_text(plan.node_conflist(c, c.node("a"))).endswith("}\n")
