"""What one node of a cluster needs, and what to change to get there: pure functions.

A node needs
- a route to every other node's pod subnet via that node's address (main table, marked
  `proto 167`, ROUTE_PROTO, so that converging touches only the routes node-up made);
- forwarding on (net.ipv4.ip_forward, or net.ipv6.conf.all.forwarding);
- the masquerade exception: nat chain PYR-CL-<tag> holding `-s CIDR -d CIDR -j ACCEPT` (but
  for packets carrying the services' masquerade mark),
  jumped to from the top of POSTROUTING. ACCEPT ends the nat table's traversal for the
  connection's first packet, so the bridge plugin's MASQUERADE further down never sees
  pod-to-pod traffic (a RETURN here would fall through to it); what leaves the cluster cidr is
  masqueraded by the plugin as before. The tag hashes the network name (first 8 digits: which
  chains are this network's) and the cidr (last 8: a changed cidr is a new chain);
- its network's conflist: the bridge plugin allocating from the node's pod subnet.
"""

from __future__ import annotations

import hashlib

from pyruntime.cluster.model import Cluster, Node
from pyruntime.services.plan import mark as service_masq_mark
from pyruntime.record import Record

ROUTE_PROTO = 167             # shown by `ip route` as "proto 167"
CHAIN_PREFIX = "PYR-CL-"
COMMENT_PREFIX = "pyruntime-cluster/"   # not naming.COMMENT_PREFIX: plugin GC must not see it
FORWARDING = {4: "/proc/sys/net/ipv4/ip_forward", 6: "/proc/sys/net/ipv6/conf/all/forwarding"}
SYSCTL_NAMES = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}


class Route(Record):
    """dst: ipaddress network; gateway: ipaddress address."""
    __slots__ = ("dst", "gateway")

    def __str__(self) -> str:
        return f"{self.dst} via {self.gateway}"


class RouteChanges(Record):
    """add / replace / remove: Routes; conflicts: texts for routes of others in the way."""
    __slots__ = ("add", "replace", "remove", "conflicts")
    _defaults = {"add": list, "replace": list, "remove": list, "conflicts": list}

    def __bool__(self) -> bool:
        return bool(self.add or self.replace or self.remove)


def desired_routes(cluster: Cluster, me: Node) -> list[Route]:
    return [Route(n.subnet, n.address) for n in cluster.nodes if n.name != me.name]


def route_changes(desired: list[Route], ours: list[Route], others) -> RouteChanges:
    """ours: routes present with our proto; others: destinations of everybody else's routes
    in the main table (never changed: a conflict is reported instead)."""
    out = RouteChanges()
    wanted = {r.dst: r for r in desired}
    have: dict = {}
    for r in ours:
        if r.dst in wanted and r.dst not in have:
            have[r.dst] = r
        else:
            out.remove.append(r)       # not wanted any more, or a second route to one dst
    for dst, r in wanted.items():
        if dst in have:
            if have[dst].gateway != r.gateway:
                out.replace.append(r)
        elif dst in set(others):
            out.conflicts.append(f"a route to {dst} that node-up did not make is in the way "
                                 f"(left alone; remove it for {r})")
        else:
            out.add.append(r)
    return out


# -- the masquerade exception ------------------------------------------------------------------

def chain_name(network: str, cidr) -> str:
    net = hashlib.sha256(f"cluster\0{network}".encode()).hexdigest()[:8]
    tail = hashlib.sha256(f"cidr\0{cidr}".encode()).hexdigest()[:8]
    return f"{CHAIN_PREFIX}{net}{tail}"


def network_chain_prefix(network: str) -> str:
    return chain_name(network, "")[:len(CHAIN_PREFIX) + 8]


def comment(network: str) -> str:
    return f"{COMMENT_PREFIX}{network}"


def chain_args(cidr) -> tuple[str, ...]:
    # Service traffic marked for masquerading (a pod reaching itself through a service address)
    # must still reach the services' MASQUERADE, wherever it stands in POSTROUTING.
    return ("-s", str(cidr), "-d", str(cidr), "-m", "mark", "!", "--mark", service_masq_mark(),
            "-j", "ACCEPT")


def jump_args(network: str, chain: str) -> tuple[str, ...]:
    # written quoted, as iptables-save prints a comment holding a '/'
    return ("-m", "comment", "--comment", f'"{comment(network)}"', "-j", chain)


class FirewallChanges(Record):
    """remove_rules: save lines ("-A ...") to delete; remove_chains: chain names; add_chain:
    the chain to create (or ""); add_rules: (chain, args, first) to write, in order."""
    __slots__ = ("remove_rules", "remove_chains", "add_chain", "add_rules")
    _defaults = {"remove_rules": list, "remove_chains": list, "add_chain": "", "add_rules": list}

    def __bool__(self) -> bool:
        return bool(self.remove_rules or self.remove_chains or self.add_chain or self.add_rules)


def _line(chain: str, args) -> str:
    return " ".join(("-A", chain) + tuple(args))


def ours_in_nat(nat: dict, network: str) -> tuple[set[str], list[str]]:
    """This network's chains and POSTROUTING jumps in a parsed nat table (rules.parse_save)."""
    prefix = network_chain_prefix(network)
    chains = {c for c in nat.get("chains", ()) if c.startswith(prefix)}
    mark = f'--comment "{comment(network)}" '
    jumps = [r for r in nat.get("rules", []) if r.startswith("-A POSTROUTING ") and mark in r]
    return chains, jumps


def firewall_changes(cluster: Cluster | None, network: str, nat: dict) -> FirewallChanges:
    """From the nat table as it is to the exception `cluster` needs (None: to nothing)."""
    out = FirewallChanges()
    chains, jumps = ours_in_nat(nat, network)
    rules = nat.get("rules", [])
    keep_chain = ""
    if cluster is not None:
        chain = chain_name(network, cluster.cidr)
        want = [_line(chain, chain_args(cluster.cidr))]
        content = [r for r in rules if r.startswith(f"-A {chain} ")]
        if chain in chains and content == want:
            keep_chain = chain
        else:
            out.add_chain = chain
            out.add_rules.append((chain, chain_args(cluster.cidr), False))
    want_jump = _line("POSTROUTING", jump_args(network, keep_chain)) if keep_chain else None
    kept_jump = False
    for j in jumps:
        if j == want_jump and not kept_jump:
            kept_jump = True
        else:
            out.remove_rules.append(j)
    out.remove_chains = sorted(chains - {keep_chain})
    if cluster is not None and not kept_jump:
        out.add_rules.append(("POSTROUTING", jump_args(network, chain_name(network, cluster.cidr)), True))
    return out


# -- the node's network configuration ------------------------------------------------------------

def node_conflist(cluster: Cluster, me: Node, data_dir: str = "") -> dict:
    """The network's configuration list on node `me`: pyruntime's bridge plugin allocating from
    the node's pod subnet (its first address is the bridge's, the pods' gateway)."""
    gateway = me.subnet.network_address + 1
    ipam = {"type": "pyruntime-bridge",
            "ranges": [[{"subnet": str(me.subnet), "gateway": str(gateway)}]],
            "routes": [{"dst": "0.0.0.0/0" if cluster.family == 4 else "::/0"}]}
    if data_dir:
        ipam["dataDir"] = data_dir
    plugin = {"type": "pyruntime-bridge", "bridge": cluster.bridge, "isGateway": True,
              "ipMasq": True, "hairpinMode": True}
    if cluster.firewall_backend != "auto":
        plugin["firewallBackend"] = cluster.firewall_backend
    plugin["ipam"] = ipam
    plugin["capabilities"] = {"portMappings": True}
    return {"cniVersion": "1.0.0", "name": cluster.network, "plugins": [plugin]}


def conflist_text(conflist: dict) -> str:
    import json
    return json.dumps(conflist, indent=2) + "\n"
