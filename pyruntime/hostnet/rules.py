"""Which netfilter chains and rules one attachment needs: pure functions over plain data.

Rules are written as iptables arguments in the exact order and spelling `iptables-save`
prints them, so one model serves both backends (python-iptables builds them, iptables-nft-restore
takes them verbatim) and CHECK can compare what should be there with a save dump line by line.

What every attachment of a network shares is made once, by the network's first attachment, and
removed with its last (network tag = hash of the network name and the settings the shared
part is made from: bridge, ipMasq, mark bit). It does not grow with the
number of containers, which matters on legacy x_tables, where every change rewrites the table:

  filter PYR-FW-<ntag>  -i <bridge> -j ACCEPT, -o <bridge> -j ACCEPT
         FORWARD        (first) -j PYR-FW-<ntag>         a FORWARD policy of DROP spares the bridge
         INPUT          (IPv4, first) -d 127.0.0.0/8 -i <bridge>
                        -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
                        publishing a port turns route_localnet on for the bridge (so the host
                        reaches containers through 127.0.0.1), which would also let a container
                        send to services bound to the host's 127.0.0.1 (CVE-2020-8558); only
                        replies and DNATed traffic may arrive from the bridge for 127.0.0.0/8
  nat    PYR-SN-<ntag>  (ipMasq) -o <bridge> -j ACCEPT, then MASQUERADE (not multicast)
         POSTROUTING    (first) -o <bridge> -m mark --mark M -j MASQUERADE
                        traffic DNATed back into the bridge from a container (hairpin) or from
                        the host's loopback leaves with the host's address, or the reply would
                        bypass the NAT

Per attachment (tag = hash of network, container id, ifname), per address family:

  nat    POSTROUTING    (ipMasq) -s <container ip> -j PYR-SN-<ntag>
  nat    PYR-DN-<tag>   per published port: mark hairpin/localhost traffic, DNAT to the container
         PREROUTING     -m addrtype --dst-type LOCAL -j PYR-DN-<tag>    (other hosts)
         OUTPUT         -m addrtype --dst-type LOCAL -j PYR-DN-<tag>    (the host itself)

Every rule in a built-in chain carries a comment: pyruntime/<tag>/<network>/<container id> for an
attachment's, pyruntime/<ntag>/<network> for the network's. The shared part is counted by the
attachments' comments: DEL of the last one takes the shared part with it.
"""

from __future__ import annotations

import ipaddress

from pyruntime.hostnet import naming
from pyruntime.hostnet.ports import PortMapping
from pyruntime.record import Record

MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
LOOPBACK4 = "127.0.0.0/8"


class Rule(Record):
    """args: iptables arguments after the chain; first: insert at the top instead of appending."""
    __slots__ = ("table", "chain", "args", "first")
    _defaults = {"first": False}

    def save_line(self) -> str:
        return " ".join(("-A", self.chain) + self.args)

    def restore_line(self, op: str = "add") -> str:
        if op == "delete":
            return " ".join(("-D", self.chain) + self.args)
        if self.first:
            return " ".join(("-I", self.chain, "1") + self.args)
        return self.save_line()


class Plan(Record):
    """Chains ((table, chain) pairs) and Rules in one address family; an attachment's plan
    carries its network's shared part as `shared` (a Plan itself), written only when missing."""
    __slots__ = ("family", "tag", "chains", "rules", "shared")
    _defaults = {"chains": list, "rules": list, "shared": None}

    def __bool__(self) -> bool:
        return bool(self.rules)


class Attachment(Record):
    """addresses: the container's ipaddress interfaces (ip + subnet); port_mappings: PortMappings."""
    __slots__ = ("network", "container_id", "ifname", "bridge", "addresses", "ip_masq",
                 "port_mappings", "mark_bit")
    _defaults = {"ip_masq": False, "port_mappings": (), "mark_bit": 13}

    @property
    def tag(self) -> str:
        return naming.attachment_tag(self.network, self.container_id, self.ifname)


def host_prefix(ip) -> str:
    return f"{ip}/{ip.max_prefixlen}"


def mark_value(bit: int) -> str:
    m = 1 << bit
    return f"{m:#x}/{m:#x}"


def mappings_for_family(mappings, family: int) -> list[PortMapping]:
    """Which mappings apply to a family: a specific hostIP picks its own, none picks both."""
    out = []
    for pm in mappings:
        if not pm.host_ip:
            out.append(pm)
        elif ipaddress.ip_address(pm.host_ip).version == family:
            out.append(pm)
    return out


def _dest(pm: PortMapping) -> tuple[str, ...]:
    if not pm.host_ip or ipaddress.ip_address(pm.host_ip).is_unspecified:
        return ()
    return ("-d", host_prefix(ipaddress.ip_address(pm.host_ip)))


def _port(pm: PortMapping) -> tuple[str, ...]:
    return ("-p", pm.protocol, "-m", pm.protocol, "--dport", str(pm.host_port))


def _comment(text: str) -> tuple[str, ...]:
    # written quoted, as iptables-save prints any comment holding a '/'
    return ("-m", "comment", "--comment", f'"{text}"')


def network_plan(att: Attachment, family: int) -> Plan:
    """What all attachments of att's network share in one family (see the module docstring)."""
    ntag = naming.network_tag(att.network, att.bridge, att.ip_masq, att.mark_bit)
    out = Plan(family, ntag)
    comment = _comment(naming.network_comment(ntag, att.network))
    fw = naming.forward_chain(ntag)
    out.chains.append(("filter", fw))
    out.rules += [
        Rule("filter", fw, ("-i", att.bridge, "-j", "ACCEPT")),
        Rule("filter", fw, ("-o", att.bridge, "-j", "ACCEPT")),
        Rule("filter", "FORWARD", comment + ("-j", fw), first=True),
    ]
    if family == 4:
        out.rules.append(loopback_guard(att.bridge, comment))
    if att.ip_masq:
        sn = naming.masq_chain(ntag)
        out.chains.append(("nat", sn))
        out.rules += [
            Rule("nat", sn, ("-o", att.bridge, "-j", "ACCEPT")),
            Rule("nat", sn, ("!", "-d", MULTICAST[family], "-j", "MASQUERADE")),
        ]
    out.rules.append(Rule("nat", "POSTROUTING", ("-o", att.bridge, "-m", "mark", "--mark", mark_value(att.mark_bit))
                          + comment + ("-j", "MASQUERADE"), first=True))
    return out


LOOPBACK_GUARD_MATCH = ("-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT")


def loopback_guard(bridge: str, comment: tuple[str, ...]) -> Rule:
    """The filter INPUT rule that drops what a container sends to the host's 127.0.0.0/8.

    First in INPUT: an ACCEPT the host's own firewall puts earlier must not let it through."""
    return Rule("filter", "INPUT", ("-d", LOOPBACK4, "-i", bridge) + LOOPBACK_GUARD_MATCH + comment
                + ("-j", "DROP"), first=True)


def loopback_guarded_bridges(save_lines) -> set[str]:
    """The bridges that our loopback guards among these filter save lines protect."""
    head = f"-A INPUT -d {LOOPBACK4} -i "
    tail = " ".join(LOOPBACK_GUARD_MATCH) + f' -m comment --comment "{naming.COMMENT_PREFIX}'
    out = set()
    for line in save_lines:
        if line.startswith(head) and line.endswith(" -j DROP"):
            bridge, _, rest = line[len(head):].partition(" ")
            if rest.startswith(tail):
                out.add(bridge)
    return out


def marker(shared: Plan) -> tuple[str, str]:
    """The (table, chain) whose presence says a network's shared part is in place: the filter
    chain, written last (legacy commits nat before filter; nftables writes all in one go)."""
    return ("filter", naming.forward_chain(shared.tag))


def plan(att: Attachment, family: int) -> Plan:
    """The attachment's own chains and rules; `.shared` holds its network's shared part."""
    out = Plan(family, att.tag)
    addrs = [a for a in att.addresses if a.version == family]
    if not addrs or not (att.ip_masq or att.port_mappings):
        return out
    addr = addrs[0]
    comment = _comment(naming.rule_comment(att.tag, att.network, att.container_id))
    cip = host_prefix(addr.ip)
    out.shared = network_plan(att, family)

    if att.ip_masq:
        out.rules.append(Rule("nat", "POSTROUTING", ("-s", cip) + comment
                              + ("-j", naming.masq_chain(out.shared.tag))))

    mappings = mappings_for_family(att.port_mappings, family)
    if mappings:
        dn = naming.dnat_chain(att.tag)
        mark = mark_value(att.mark_bit)
        out.chains.append(("nat", dn))
        for pm in mappings:
            dest = _dest(pm)
            target = f"{addr.ip}:{pm.container_port}" if family == 4 else f"[{addr.ip}]:{pm.container_port}"
            # marked: leaves through the shared masquerade (hairpin and the host's loopback)
            out.rules.append(Rule("nat", dn, ("-s", str(addr.network)) + dest + _port(pm)
                                  + ("-j", "MARK", "--set-xmark", mark)))
            if family == 4:
                out.rules.append(Rule("nat", dn, ("-s", LOOPBACK4) + dest + _port(pm)
                                      + ("-j", "MARK", "--set-xmark", mark)))
            out.rules.append(Rule("nat", dn, dest + _port(pm) + ("-j", "DNAT", "--to-destination", target)))
        local = ("-m", "addrtype", "--dst-type", "LOCAL")
        out.rules += [
            Rule("nat", "PREROUTING", local + comment + ("-j", dn)),
            Rule("nat", "OUTPUT", local + comment + ("-j", dn)),
        ]
    return out


def restore_script(plans: list[Plan], op: str) -> str:
    """iptables-restore --noflush input that adds (op="add") a plan's chains and rules."""
    chains: dict[str, list[str]] = {}
    lines: dict[str, list[str]] = {}
    for p in plans:
        for table, chain in p.chains:
            chains.setdefault(table, []).append(f":{chain} - [0:0]")
        for r in p.rules:
            lines.setdefault(r.table, []).append(r.restore_line(op))
    out = []
    for table in sorted(chains.keys() | lines.keys()):     # chains declared before any rule
        out.append(f"*{table}")
        out += chains.get(table, []) + lines.get(table, [])
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


# -- reading what is there (iptables-save text) --------------------------------------------------

def parse_save(text: str) -> dict[str, dict]:
    """{table: {"chains": set of names, "rules": list of "-A ..." lines}} from a save dump."""
    tables: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], {"chains": set(), "rules": []})
        elif current is None:
            continue
        elif line.startswith(":"):
            current["chains"].add(line[1:].split(" ", 1)[0])
        elif line.startswith("-A "):
            current["rules"].append(line)
    return tables


def owned_by(tables: dict[str, dict], tag: str) -> dict[str, dict]:
    """The chains and built-in-chain rules of one attachment: what DEL must remove."""
    comment = f'--comment "{naming.COMMENT_PREFIX}{tag}/'
    suffix = f"-{tag}"
    out: dict[str, dict] = {}
    for table, content in tables.items():
        chains = {c for c in content["chains"] if c.startswith(naming.CHAIN_PREFIX) and c.endswith(suffix)}
        rules = [r for r in content["rules"] if comment in r and r.split(" ", 2)[1] not in chains]
        if chains or rules:
            out[table] = {"chains": chains, "rules": rules}
    return out


def removal_script(owned: dict[str, dict]) -> str:
    out = []
    for table in sorted(owned):
        out.append(f"*{table}")
        out += ["-D" + r[2:] for r in owned[table]["rules"]]
        out += [f"-F {c}" for c in sorted(owned[table]["chains"])]
        out += [f"-X {c}" for c in sorted(owned[table]["chains"])]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def replace_script(owned: dict[str, dict], plans: list[Plan]) -> str:
    """iptables-restore --noflush input that removes `owned` and (re)writes the plans in one
    transaction per table: declaring a chain that exists flushes it, so the plans' chains end
    up holding exactly the plans' rules; the removed chains go last, once nothing jumps to them."""
    tables = sorted(set(owned) | {t for p in plans for t, _ in p.chains} | {r.table for p in plans for r in p.rules})
    out = []
    for table in tables:
        out.append(f"*{table}")
        out += [f":{c} - [0:0]" for p in plans for t, c in p.chains if t == table]
        part = owned.get(table, {"chains": (), "rules": ()})
        out += ["-D" + r[2:] for r in part["rules"]]
        out += [r.restore_line() for p in plans for r in p.rules if r.table == table]
        out += [f"-F {c}" for c in sorted(part["chains"])]
        out += [f"-X {c}" for c in sorted(part["chains"])]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def missing(p: Plan, tables: dict[str, dict]) -> list[str]:
    """What of a plan (and its shared part) is not in a save dump (empty when CHECK passes)."""
    out = missing(p.shared, tables) if p.shared is not None else []
    for table, chain in p.chains:
        if chain not in tables.get(table, {}).get("chains", set()):
            out.append(f"{table} chain {chain}")
    for r in p.rules:
        if r.save_line() not in tables.get(r.table, {}).get("rules", []):
            out.append(f"{r.table} rule {r.save_line()}")
    return out


def tags_of_network(tables: dict[str, dict], network: str, shared: bool = False) -> set[str]:
    """Tags of the attachments of one network (comments tag/network/container id): what GC
    sweeps and what keeps the network's shared part alive; with `shared`, the tags of the
    network's shared parts instead (comments tag/network)."""
    tags = set()
    for content in tables.values():
        for r in content["rules"]:
            i = r.find(f'--comment "{naming.COMMENT_PREFIX}')
            if i < 0:
                continue
            parts = r[i + len('--comment "'):].split('"', 1)[0][len(naming.COMMENT_PREFIX):].split("/")
            if len(parts) >= 2 and parts[1] == network and (len(parts) == 2) == shared:
                tags.add(parts[0])
    return tags
