"""Which nat chains and rules a set of services needs, and which services a save dump holds.

Pure functions over plain data (rules.Plan / rules.Rule of pyruntime.hostnet, so both firewall
backends write them). Per address family, for all services of that family together:

  nat  PREROUTING    (first) -j PYR-SERVICES           traffic from containers and other hosts
       OUTPUT        (first) -j PYR-SERVICES           traffic the node itself makes
       POSTROUTING   (first) -m mark --mark M -j MASQUERADE
       PYR-SERVICES  per service: -d VIP -p PROTO --dport PORT -j PYR-SVC-<hash of name>
       PYR-SVC-<h>   -m addrtype --src-type LOCAL -j MARK (node-originated: see below)
                     per backend but the last: -m statistic --mode random --probability 1/k
                     -j PYR-SEP-<h>; the last backend's jump has no condition
       PYR-SEP-<h>   -s BACKEND -j MARK (a backend reaching itself through the VIP)
                     -p PROTO -j DNAT --to-destination BACKEND

The probabilities are kube-proxy's: with n backends the first rule takes 1/n of the new
connections, the second 1/(n-1) of the rest, ..., so each backend gets 1/n. They are written
as the statistic match stores and prints them (a 31-bit fraction, 11 decimals), so that the
rules read back from `iptables-save` compare equal to the plan.

Marked (M, bit 14) connections leave with the address of the interface towards the backend:
- a backend that reaches its own VIP would otherwise get a packet from itself to itself, and
  answer it without the node un-NATting the reply;
- the node picks a source address by routing towards the VIP, which no interface owns; that
  address need not be one the backend can answer (a dummy device, a route with a `src`).

The rules are the store: each rule in a service's chains names the service in its comment
(`pyruntime-service NAME VIP/PROTO` in PYR-SERVICES, `pyruntime-service NAME -> BACKEND` in the
per-service chains), so `list` reads services back from the kernel, and `add`/`del` rewrite
every service chain of the family in one transaction computed from what the kernel holds:
there is no second copy that a crash between two writes could leave disagreeing.
"""

from __future__ import annotations

import hashlib

from pyruntime.errors import RuntimeUserError
from pyruntime.hostnet.rules import Plan, Rule
from pyruntime.services import spec
from pyruntime.services.spec import Endpoint, Service

TOP_CHAIN = "PYR-SERVICES"
SVC_PREFIX = "PYR-SVC-"
SEP_PREFIX = "PYR-SEP-"
MARK_BIT = 14
COMMENT = "pyruntime-service"
PORTALS_COMMENT = "pyruntime-services: service portals"
MASQ_COMMENT = "pyruntime-services: masquerade marked service traffic"
HOST_CHAINS = ("PREROUTING", "OUTPUT", "POSTROUTING")
TAG = "services"


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def service_chain(name: str) -> str:
    return SVC_PREFIX + _hash("service", name).upper()


def endpoint_chain(name: str, protocol: str, backend: Endpoint) -> str:
    return SEP_PREFIX + _hash("endpoint", name, protocol, str(backend)).upper()


def mark() -> str:
    m = 1 << MARK_BIT
    return f"{m:#x}/{m:#x}"


def probability(remaining: int) -> str:
    """1/remaining as the statistic match keeps it (round(p * 2^31) / 2^31) and prints it."""
    stored = round((1 << 31) / remaining)
    return f"{stored / (1 << 31):.11f}"


def _comment(text: str) -> tuple[str, ...]:
    # every comment holds a space, so iptables-save prints it quoted, as written here
    return ("-m", "comment", "--comment", f'"{text}"')


def _host(ip) -> str:
    return f"{ip}/{ip.max_prefixlen}"


def service_comment(svc: Service) -> str:
    return f"{COMMENT} {svc.name} {svc.vip_text()}"


def backend_comment(svc: Service, backend: Endpoint) -> str:
    return f"{COMMENT} {svc.name} -> {backend}"


def service_rules(svc: Service) -> tuple[list[tuple[str, str]], list[Rule]]:
    """One service's chains (PYR-SVC, PYR-SEP) and rules, and its rule in PYR-SERVICES."""
    svc_chain = service_chain(svc.name)
    proto = ("-p", svc.protocol)
    chains = [("nat", svc_chain)]
    out = [Rule("nat", TOP_CHAIN, ("-d", _host(svc.vip.ip)) + proto + _comment(service_comment(svc))
                + ("-m", svc.protocol, "--dport", str(svc.vip.port), "-j", svc_chain)),
           Rule("nat", svc_chain, ("-m", "addrtype", "--src-type", "LOCAL")
                + _comment(f"{COMMENT} {svc.name} node-originated") + ("-j", "MARK", "--set-xmark", mark()))]
    n = len(svc.backends)
    for i, backend in enumerate(svc.backends):
        sep = endpoint_chain(svc.name, svc.protocol, backend)
        comment = _comment(backend_comment(svc, backend))
        chance = ("-m", "statistic", "--mode", "random", "--probability", probability(n - i)) if i < n - 1 else ()
        out.append(Rule("nat", svc_chain, comment + chance + ("-j", sep)))
        chains.append(("nat", sep))
        out += [Rule("nat", sep, ("-s", _host(backend.ip)) + comment + ("-j", "MARK", "--set-xmark", mark())),
                Rule("nat", sep, proto + comment + ("-m", svc.protocol, "-j", "DNAT",
                                                    "--to-destination", str(backend)))]
    return chains, out


def host_rules() -> list[Rule]:
    """The rules in built-in chains, there while the family has at least one service."""
    portal = _comment(PORTALS_COMMENT) + ("-j", TOP_CHAIN)
    return [Rule("nat", "PREROUTING", portal, first=True),
            Rule("nat", "OUTPUT", portal, first=True),
            Rule("nat", "POSTROUTING", ("-m", "mark", "--mark", mark()) + _comment(MASQ_COMMENT)
                 + ("-j", "MASQUERADE"), first=True)]


def build(services: list[Service], family: int) -> Plan:
    """Everything the family's services need (empty when it has none)."""
    out = Plan(family, TAG)
    mine = sorted((s for s in services if s.family == family), key=lambda s: s.name)
    if not mine:
        return out
    out.chains.append(("nat", TOP_CHAIN))
    for svc in mine:
        chains, rules = service_rules(svc)
        out.chains += chains
        out.rules += rules
    # PYR-SERVICES' rules first, then the chains they jump to: the order iptables-save prints
    out.rules.sort(key=lambda r: (r.chain != TOP_CHAIN,))
    out.rules += host_rules()
    return out


# -- reading services back from a save dump (rules.parse_save output) ----------------------------

def is_ours(chain: str) -> bool:
    return chain == TOP_CHAIN or chain.startswith((SVC_PREFIX, SEP_PREFIX))


def comment_of(line: str) -> str:
    i = line.find('--comment "')
    if i < 0:
        return ""
    return line[i + len('--comment "'):].split('"', 1)[0]


def target_of(line: str) -> str:
    words = line.split(" ")
    return words[words.index("-j") + 1] if "-j" in words else ""


def _host_rule(line: str) -> bool:
    return line.split(" ", 2)[1] in HOST_CHAINS and comment_of(line) in (PORTALS_COMMENT, MASQ_COMMENT)


def owned(tables: dict[str, dict]) -> dict:
    """All our nat chains and our rules in built-in chains, in a dump's shape."""
    nat = tables.get("nat", {"chains": set(), "rules": []})
    return {"chains": {c for c in nat["chains"] if is_ours(c)},
            "rules": [r for r in nat["rules"] if _host_rule(r)]}


def services_in(tables: dict[str, dict]) -> list[Service]:
    """The services a dump holds, read from the comments of PYR-SERVICES and PYR-SVC-* rules
    (a comment edited into something else is no service: its chains count as leftovers)."""
    rules = tables.get("nat", {}).get("rules", [])
    by_chain: dict[str, list[str]] = {}
    for line in rules:
        by_chain.setdefault(line.split(" ", 2)[1], []).append(line)
    out = []
    for line in by_chain.get(TOP_CHAIN, []):
        words = comment_of(line).split(" ")
        if len(words) != 3 or words[0] != COMMENT:
            continue
        name, vip_text = words[1], words[2]
        if any(s.name == name for s in out):
            continue
        prefix = f"{COMMENT} {name} -> "
        backends = [comment_of(r)[len(prefix):] for r in by_chain.get(target_of(line), [])
                    if comment_of(r).startswith(prefix) and target_of(r).startswith(SEP_PREFIX)]
        if not backends:         # its chain emptied by hand: nothing to balance over
            continue
        try:
            vip, protocol = spec.parse_vip(vip_text)
            out.append(Service(spec.check_name(name), protocol, vip,
                               [spec.parse_endpoint(b, "backend") for b in backends]))
        except RuntimeUserError:
            continue
    return out


def transaction(tables: dict[str, dict], services: list[Service], family: int) -> tuple[dict, Plan]:
    """What turns the family's dump into exactly `services`: (what to remove, in removal
    shape {table: {"chains", "rules"}}, and the Plan whose chains are flushed and rewritten).

    Every service chain is rewritten, not only the changed service's: the result depends on
    nothing but the wanted services, whatever a crash or a hand edit left behind."""
    want = build(services, family)
    have = owned(tables)
    wanted_chains = {c for _, c in want.chains}
    wanted_host = {r.save_line() for r in want.rules if r.chain in HOST_CHAINS}
    stale_rules, seen = [], set()
    for r in have["rules"]:
        if r not in wanted_host or r in seen:     # a copy left twice goes too
            stale_rules.append(r)
        seen.add(r)
    write = Plan(family, TAG, list(want.chains),
                 [r for r in want.rules if r.chain not in HOST_CHAINS or r.save_line() not in have["rules"]])
    remove = {"nat": {"chains": have["chains"] - wanted_chains, "rules": stale_rules}}
    if not remove["nat"]["chains"] and not stale_rules:
        remove = {}
    return remove, write
