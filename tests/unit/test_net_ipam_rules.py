"""host-local allocation, rule generation and save-dump reading, without root."""

from __future__ import annotations

import ipaddress
import multiprocessing

import pytest

from pyruntime.cni import config
from pyruntime.cni.errors import CniError
from pyruntime.net import firewall, ipam, naming, ports, rules


def rset(*ranges):
    return [config.parse_range(r) for r in ranges]


# -- IPAM --------------------------------------------------------------------------------------------

def test_candidates_rotate_from_last_reserved_and_skip_gateway():
    rs = rset({"subnet": "10.0.0.0/29"})            # usable .1-.6, gateway .1
    assert [str(i) for i in ipam.candidates(rs)] == [f"10.0.0.{n}" for n in (2, 3, 4, 5, 6)]
    after = [str(i) for i in ipam.candidates(rs, ipaddress.ip_address("10.0.0.4"))]
    assert after == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_candidates_walk_every_range_of_a_set():
    rs = rset({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.11"},
              {"subnet": "10.0.1.0/24", "rangeStart": "10.0.1.10", "rangeEnd": "10.0.1.11"})
    got = [str(i) for i in ipam.candidates(rs, ipaddress.ip_address("10.0.0.11"))]
    assert got == ["10.0.1.10", "10.0.1.11", "10.0.0.10", "10.0.0.11"]


def test_store_allocates_releases_and_exhausts(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    sets = [rset({"subnet": "10.0.0.0/29"}), rset({"subnet": "fd00::/126"})]
    got = store.allocate("c1", "eth0", sets)
    assert [str(ip) for _, ip in got] == ["10.0.0.2", "fd00::2"]
    lease = (tmp_path / "net" / "10.0.0.2").read_bytes()
    assert lease == b"c1\r\neth0"                            # the reference host-local format
    assert str(store.allocate("c2", "eth0", sets)[0][1]) == "10.0.0.3"
    assert sorted(store.release("c1", "eth0")) == ["10.0.0.2", "fd00::2"]
    # rotation: the freed .2 is not handed out before .4-.6
    assert str(store.allocate("c3", "eth0", sets[:1])[0][1]) == "10.0.0.4"
    assert store.release("nobody", "eth0") == []


def test_exhaustion_is_a_clear_error(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    small = [rset({"subnet": "10.0.0.0/29", "rangeEnd": "10.0.0.3"})]      # .2 and .3 (.1 is the gateway)
    store.allocate("a", "eth0", small)
    store.allocate("b", "eth0", small)
    with pytest.raises(CniError) as e:
        store.allocate("c", "eth0", small)
    assert e.value.code == 100 and "10.0.0.1-10.0.0.3" in e.value.details


def test_requested_ip_taken_or_outside(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    sets = [rset({"subnet": "10.0.0.0/24"})]
    assert str(store.allocate("a", "eth0", sets, [ipaddress.ip_address("10.0.0.50")])[0][1]) == "10.0.0.50"
    with pytest.raises(CniError):
        store.allocate("b", "eth0", sets, [ipaddress.ip_address("10.0.0.50")])
    with pytest.raises(CniError):
        store.allocate("b", "eth0", sets, [ipaddress.ip_address("10.9.0.50")])
    assert store.find("b", "eth0") == []                      # failed allocations leave nothing


def test_gc_keeps_only_valid(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    sets = [rset({"subnet": "10.0.0.0/24"})]
    for cid in ("a", "b", "c"):
        store.allocate(cid, "eth0", sets)
    store.gc({("b", "eth0")})
    assert [cid for _, cid, _ in store.leases()] == ["b"]


def _grab(args):
    data_dir, n = args
    store = ipam.Store(data_dir, "net")
    return str(store.allocate(f"c{n}", "eth0", [rset({"subnet": "10.0.0.0/24"})])[0][1])


def test_concurrent_allocations_are_distinct(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        got = pool.map(_grab, [(str(tmp_path), n) for n in range(80)])
    assert len(set(got)) == 80


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


def test_removing_the_last_guard_of_a_bridge_turns_route_localnet_off(monkeypatch, tmp_path):
    from pyruntime.net import links
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


def test_names_are_stable_and_short():
    v = naming.veth_name("a" * 64, "eth0")
    assert v.startswith("pyr") and len(v) == 15 and v == naming.veth_name("a" * 64, "eth0")
    assert v != naming.veth_name("a" * 64, "eth1")
    assert len(naming.masq_chain(naming.attachment_tag("n", "c", "eth0"))) <= 28


def test_backend_detection():
    assert firewall.detect("nft", True) == "nftables"
    assert firewall.detect("legacy", False) == "iptables"
    assert firewall.detect("", True) == "iptables"
    assert firewall.detect("", False) == "nftables"
    assert firewall.choose("iptables", {}) == "iptables"
    assert firewall.choose("auto", {firewall.ENV_OVERRIDE: "nftables"}) == "nftables"
    with pytest.raises(CniError):
        firewall.choose("auto", {firewall.ENV_OVERRIDE: "pf"})


def test_iptc_rule_translation():
    iptc = pytest.importorskip("iptc")
    from pyruntime.net import fw_iptc
    r = fw_iptc.build_rule(iptc, 4, ("!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", '"x/y"',
                                     "-j", "MASQUERADE"))
    assert r.dst.startswith("!224.0.0.0")
    assert r.matches[0].comment == "x/y"
    assert r.target.name == "MASQUERADE"
    guard = rules.loopback_guard("pyr0", ("-m", "comment", "--comment", '"pyruntime/a/b"'))
    r = fw_iptc.build_rule(iptc, 4, guard.args)
    assert r.in_interface == "pyr0" and r.dst.startswith("127.0.0.0/255.0.0.0")
    assert r.matches[0].name == "conntrack" and r.matches[0].ctstate == "!RELATED,ESTABLISHED,DNAT"
    assert r.target.name == "DROP"
