"""Firewall rule plans (pyruntime.hostnet.rules): generation, restore and removal scripts,
save-dump reading, loopback guards, without root."""

from __future__ import annotations

import ipaddress

from pyruntime.hostnet import naming, rules
from pyruntime.plugins.bridge import config

# -- rules -------------------------------------------------------------------------------------------

def attachment(**over):
    kw = dict(network="net1", container_id="cid1", ifname="eth0", bridge="pyr0",
              addresses=(ipaddress.ip_interface("10.88.0.5/16"), ipaddress.ip_interface("fd88::5/64")),
              ip_masq=True, port_mappings=(config.PortMapping(8080, 80, "tcp", ""),
                                           config.PortMapping(5353, 53, "udp", "192.0.2.1")))
    kw.update(over)
    return rules.Attachment(**kw)


def test_plan_v4_masq_and_ports():
    att = attachment()
    p = rules.plan(att, 4)
    tag, ntag = att.tag, naming.network_tag("net1", "pyr0", True, 13)
    sn, dn = f"PYR-SN-{ntag}", f"PYR-DN-{tag}"
    comment = f'-m comment --comment "pyruntime/{tag}/net1/cid1"'
    lines = [r.save_line() for r in p.rules]
    assert p.chains == [("nat", dn)]
    assert f"-A POSTROUTING -s 10.88.0.5/32 {comment} -j {sn}" in lines
    assert f"-A {dn} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80" in lines
    assert f"-A {dn} -d 192.0.2.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.88.0.5:53" in lines
    assert f"-A {dn} -s 127.0.0.0/8 -p tcp -m tcp --dport 8080 -j MARK --set-xmark 0x2000/0x2000" in lines
    assert f"-A PREROUTING -m addrtype --dst-type LOCAL {comment} -j {dn}" in lines
    assert f"-A OUTPUT -m addrtype --dst-type LOCAL {comment} -j {dn}" in lines
    assert not any(r.table == "filter" for r in p.rules)        # nothing per container in filter


def test_network_part_is_shared_by_every_attachment_of_the_network():
    one, two = rules.plan(attachment(), 4), rules.plan(attachment(container_id="cid2"), 4)
    assert one.tag != two.tag and one.shared == two.shared
    shared = one.shared
    ntag = naming.network_tag("net1", "pyr0", True, 13)
    fw, sn = f"PYR-FW-{ntag}", f"PYR-SN-{ntag}"
    comment = f'-m comment --comment "pyruntime/{ntag}/net1"'
    lines = [r.save_line() for r in shared.rules]
    assert shared.tag == ntag and set(shared.chains) == {("filter", fw), ("nat", sn)}
    assert f"-A FORWARD {comment} -j {fw}" in lines
    assert f"-A {fw} -i pyr0 -j ACCEPT" in lines and f"-A {fw} -o pyr0 -j ACCEPT" in lines
    assert lines.index(f"-A {sn} -o pyr0 -j ACCEPT") < lines.index(f"-A {sn} ! -d 224.0.0.0/4 -j MASQUERADE")
    marked = [r for r in shared.rules if r.chain == "POSTROUTING"]
    assert [r.save_line() for r in marked] == [f"-A POSTROUTING -o pyr0 -m mark --mark 0x2000/0x2000 {comment} -j MASQUERADE"]
    assert marked[0].first                      # ahead of every -s jump (hairpin to self)
    assert rules.marker(shared) == ("filter", fw)
    assert naming.network_tag("net2", "pyr0", True, 13) != ntag
    # a network whose settings changed gets a shared part of its own
    assert rules.plan(attachment(bridge="pyr1"), 4).shared.tag != ntag
    assert rules.plan(attachment(ip_masq=False), 4).shared.tag != ntag
    assert rules.plan(attachment(mark_bit=12), 4).shared.tag != ntag


def test_plan_v6_uses_v6_multicast_brackets_and_skips_v4_only_ports():
    p = rules.plan(attachment(), 6)
    lines = [r.save_line() for r in p.rules + p.shared.rules]
    assert any("! -d ff00::/8 -j MASQUERADE" in line for line in lines)
    assert any("--to-destination [fd88::5]:80" in line for line in lines)
    assert not any("5353" in line for line in lines)         # hostIP 192.0.2.1 is IPv4 only
    assert not any("127.0.0.0/8" in line for line in lines)


def test_v4_shared_part_drops_what_the_bridge_sends_to_the_hosts_loopback():
    ntag = naming.network_tag("net1", "pyr0", True, 13)
    for att in (attachment(), attachment(ip_masq=False), attachment(port_mappings=())):
        shared = rules.plan(att, 4).shared
        guard = [r for r in shared.rules if r.chain == "INPUT"]
        tag = shared.tag
        assert [r.save_line() for r in guard] == [
            "-A INPUT -d 127.0.0.0/8 -i pyr0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
            f'-m comment --comment "pyruntime/{tag}/net1" -j DROP']
        assert guard[0].table == "filter" and guard[0].first     # ahead of the host's own ACCEPTs
    # the guard goes with the network's shared part: found by its comment, like the rest of it
    shared = rules.plan(attachment(), 4).shared
    dump = rules.parse_save("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n"
                            + "".join(r.save_line() + "\n" for r in shared.rules if r.table == "filter")
                            + "COMMIT\n")
    owned = rules.owned_by(dump, ntag)["filter"]["rules"]
    assert any(line.startswith("-A INPUT -d 127.0.0.0/8") for line in owned)
    assert "-A INPUT -i lo -j ACCEPT" not in owned
    # IPv6 has no route_localnet: ::1 never arrives from another interface
    assert not any(r.chain == "INPUT" for r in rules.plan(attachment(), 6).shared.rules)


def test_loopback_guarded_bridges_counts_only_our_guards():
    ours = rules.loopback_guard("pyr0", ("-m", "comment", "--comment", '"pyruntime/abc/net1"')).save_line()
    theirs = ("-A INPUT -d 127.0.0.0/8 -i pyr1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
              "-m comment --comment \"kube\" -j DROP")
    assert rules.loopback_guarded_bridges([ours, theirs, "-A INPUT -i pyr2 -j DROP"]) == {"pyr0"}


def test_plan_without_masq_or_ports_is_empty():
    p = rules.plan(attachment(ip_masq=False, port_mappings=()), 4)
    assert not p and p.chains == [] and p.shared is None


def test_plan_with_ports_only_shares_no_masquerade_chain():
    p = rules.plan(attachment(ip_masq=False), 4)
    assert [c for c in p.shared.chains if c[0] == "nat"] == []
    assert not any(r.chain == "POSTROUTING" and "-s" in r.args for r in p.rules)


def test_restore_and_removal_scripts_round_trip():
    att = attachment()
    p = rules.plan(att, 4)
    add = rules.restore_script([p.shared, p], "add")
    head, _, rest = add.partition("*nat\n")
    assert head.startswith("*filter\n:PYR-FW-") and "\n-I FORWARD 1 " in head and add.endswith("COMMIT\n")
    nat_lines = rest.splitlines()
    declared = [i for i, line in enumerate(nat_lines) if line.startswith(":")]
    assert declared == list(range(len(declared))) == [0, 1]     # every chain before any rule
    # a save dump holding our rules plus somebody else's
    both = p.shared.chains + p.chains
    dump = "*nat\n:POSTROUTING ACCEPT [0:0]\n" + "".join(f":{c} - [0:0]\n" for t, c in both if t == "nat") \
        + "".join(r.save_line() + "\n" for r in p.shared.rules + p.rules if r.table == "nat") \
        + "-A POSTROUTING -s 10.1.0.0/16 -j MASQUERADE\nCOMMIT\n"
    tables = rules.parse_save(dump)
    fw = naming.forward_chain(p.shared.tag)
    assert rules.missing(p, tables) == [f"filter chain {fw}"] + [
        f"filter rule {r.save_line()}" for r in p.shared.rules if r.table == "filter"]
    owned = rules.owned_by(tables, att.tag)
    script = rules.removal_script(owned)
    assert "-D POSTROUTING -s 10.88.0.5/32" in script and f"-X PYR-DN-{att.tag}" in script
    assert "10.1.0.0/16" not in script and "PYR-SN-" not in script.replace("-j PYR-SN-", "")
    shared = rules.removal_script(rules.owned_by(tables, p.shared.tag))
    assert f"-X PYR-SN-{p.shared.tag}" in shared and "-D POSTROUTING -o pyr0 -m mark" in shared
    assert "10.88.0.5" not in shared
    # the network's own rules do not count as an attachment of it
    assert rules.tags_of_network(tables, "net1") == {att.tag} and rules.tags_of_network(tables, "other") == set()
    assert rules.tags_of_network(tables, "net1", shared=True) == {p.shared.tag}
