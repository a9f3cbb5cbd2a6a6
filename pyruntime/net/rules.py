"""Which netfilter chains and rules one attachment needs: pure functions over plain data.

Rules are written as iptables arguments in the exact order and spelling `iptables-save`
prints them, so one model serves both backends (python-iptables builds them, iptables-nft-restore
takes them verbatim) and CHECK can compare what should be there with a save dump line by line.

Per attachment (tag = hash of network, container id, ifname), per address family:

  nat   PYR-SN-<tag>   masquerade: ACCEPT to the subnet, MASQUERADE the rest (not multicast)
        POSTROUTING    -s <container ip> -j PYR-SN-<tag>
  nat   PYR-DN-<tag>   per published port: mark hairpin/localhost traffic, DNAT to the container
        PREROUTING     -m addrtype --dst-type LOCAL -j PYR-DN-<tag>    (other hosts)
        OUTPUT         -m addrtype --dst-type LOCAL -j PYR-DN-<tag>    (the host itself)
        POSTROUTING    (first) -d <container ip> -m mark --mark M -j MASQUERADE
  filter FORWARD       (first) -d <container ip> -j ACCEPT, -s <container ip> -j ACCEPT

Every rule in a built-in chain carries the comment pyruntime/<tag>/<network>/<container id>.
"""

from __future__ import annotations

import ipaddress
from pyruntime.cni.config import PortMapping
from pyruntime.cni.record import Record
from pyruntime.net import naming

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
    """Everything one attachment needs in one address family: (table, chain) pairs and Rules."""
    __slots__ = ("family", "tag", "chains", "rules")
    _defaults = {"chains": list, "rules": list}

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


def plan(att: Attachment, family: int) -> Plan:
    out = Plan(family, att.tag)
    addrs = [a for a in att.addresses if a.version == family]
    if not addrs:
        return out
    addr = addrs[0]
    # written quoted, as iptables-save prints any comment holding a '/'
    comment = ("-m", "comment", "--comment", f'"{naming.rule_comment(att.tag, att.network, att.container_id)}"')
    cip = host_prefix(addr.ip)

    out.rules += [
        Rule("filter", "FORWARD", ("-d", cip) + comment + ("-j", "ACCEPT"), first=True),
        Rule("filter", "FORWARD", ("-s", cip) + comment + ("-j", "ACCEPT"), first=True),
    ]

    if att.ip_masq:
        sn = naming.masq_chain(att.tag)
        out.chains.append(("nat", sn))
        out.rules += [
            Rule("nat", sn, ("-d", str(addr.network), "-j", "ACCEPT")),
            Rule("nat", sn, ("!", "-d", MULTICAST[family], "-j", "MASQUERADE")),
            Rule("nat", "POSTROUTING", ("-s", cip) + comment + ("-j", sn)),
        ]

    mappings = mappings_for_family(att.port_mappings, family)
    if mappings:
        dn = naming.dnat_chain(att.tag)
        mark = mark_value(att.mark_bit)
        out.chains.append(("nat", dn))
        for pm in mappings:
            dest = _dest(pm)
            target = f"{addr.ip}:{pm.container_port}" if family == 4 else f"[{addr.ip}]:{pm.container_port}"
            # traffic from the bridge's own subnet (hairpin) and from the host's loopback must
            # leave with the host's address, or the container's reply would bypass the NAT
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
            Rule("nat", "POSTROUTING", ("-d", cip, "-m", "mark", "--mark", mark) + comment
                 + ("-j", "MASQUERADE"), first=True),
        ]
    return out


def restore_script(plans: list[Plan], op: str) -> str:
    """iptables-restore --noflush input that adds (op="add") a plan's chains and rules."""
    tables: dict[str, list[str]] = {}
    for p in plans:
        for table, chain in p.chains:
            tables.setdefault(table, []).append(f":{chain} - [0:0]")
        for r in p.rules:
            tables.setdefault(r.table, []).append(r.restore_line(op))
    out = []
    for table in sorted(tables):
        out.append(f"*{table}")
        out += tables[table]
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


def missing(p: Plan, tables: dict[str, dict]) -> list[str]:
    """What of a plan is not in a save dump (empty when CHECK passes)."""
    out = []
    for table, chain in p.chains:
        if chain not in tables.get(table, {}).get("chains", set()):
            out.append(f"{table} chain {chain}")
    for r in p.rules:
        if r.save_line() not in tables.get(r.table, {}).get("rules", []):
            out.append(f"{r.table} rule {r.save_line()}")
    return out


def tags_of_network(tables: dict[str, dict], network: str) -> set[str]:
    """Tags of the attachments of one network, from the comments on their rules (for GC)."""
    tags = set()
    for content in tables.values():
        for r in content["rules"]:
            i = r.find(f'--comment "{naming.COMMENT_PREFIX}')
            if i < 0:
                continue
            parts = r[i + len('--comment "'):].split('"', 1)[0][len(naming.COMMENT_PREFIX):].split("/")
            if len(parts) >= 2 and parts[1] == network:
                tags.add(parts[0])
    return tags
