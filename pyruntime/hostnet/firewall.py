"""Firewall backends behind one interface, and the choice between them.

Both backends take the same `rules.Plan`s. They differ only in how they write:

- "iptables" (`fw_iptables_legacy.py`): legacy x_tables through python-iptables (libiptc),
  for hosts whose `iptables` is iptables-legacy.
- "nftables" (`fw_iptables_nft.py`; the name is what configs say, the tool is iptables-nft, not
  `nft`): for hosts whose `iptables` is iptables-nft (Debian 12's default). The rules go in
  through `iptables-nft-restore --noflush`: one atomic nf_tables transaction per change, in the
  same `ip nat` / `ip filter` tables iptables-nft uses, so they show in `iptables-nft-save` and
  `nft list ruleset`, and they share the built-in chains (and a FORWARD policy of DROP) with
  whatever else manages the host's firewall instead of living in a table of their own where an
  ACCEPT could not overrule another table's DROP.

Both read the current state with the matching `*-save` tool, whose text is what CHECK compares
and DEL/GC search. Every change runs under the xtables lock so plugin processes (and iptables
commands) never interleave a read-check-write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager

from pyruntime.hostnet import locks, rules
from pyruntime.hostnet.errors import CONFIG, IO, PORT_TAKEN, HostNetError

ENV_OVERRIDE = "PYRUNTIME_CNI_FIREWALL"
XTABLES_LOCK = os.environ.get("XTABLES_LOCKFILE", "/run/xtables.lock")


def choose(configured: str, env: dict[str, str]) -> str:
    """The backend to use: the env override, else the config's, else what the host uses."""
    wanted = env.get(ENV_OVERRIDE) or configured or "auto"
    if wanted not in ("auto", "iptables", "nftables"):
        raise HostNetError(CONFIG, f"invalid {ENV_OVERRIDE}", f"{wanted!r} is not auto, iptables or nftables")
    if wanted != "auto":
        return wanted
    return detect(_iptables_flavour(), _legacy_tables_in_use())


def detect(iptables_flavour: str, legacy_in_use: bool) -> str:
    """Pure rule: follow the `iptables` alternative; without one, follow existing legacy rules."""
    if iptables_flavour == "nft":
        return "nftables"
    if iptables_flavour == "legacy":
        return "iptables"
    return "iptables" if legacy_in_use else "nftables"


def _iptables_flavour() -> str:
    path = shutil.which("iptables")
    if not path:
        return ""
    # follow the alternatives chain link by link: the last hop still says -nft / -legacy
    for _ in range(8):
        name = os.path.basename(path)
        if "nft" in name:
            return "nft"
        if "legacy" in name:
            return "legacy"
        if not os.path.islink(path):
            return ""
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return ""


def _legacy_tables_in_use() -> bool:
    try:
        with open("/proc/net/ip_tables_names") as f:
            return bool(f.read().strip())
    except OSError:
        return False


@contextmanager
def xtables_lock():
    fd = os.open(XTABLES_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        locks.acquire(fd, f"the xtables lock {XTABLES_LOCK}")
        yield
    finally:
        os.close(fd)


def run_tool(argv: list[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise HostNetError(IO, f"{argv[0]} not found", "install the iptables package") from None
    if proc.returncode != 0:
        raise HostNetError(IO, f"{argv[0]} failed", (proc.stderr or proc.stdout).strip()[:2000])
    return proc.stdout


class Backend:
    name = ""
    save_tools = {4: "", 6: ""}
    # set once add() holds the lock: before that it has changed nothing a rollback must undo
    touched = False

    def dump(self, family: int) -> dict[str, dict]:
        return rules.parse_save(run_tool([self.save_tools[family]]))

    def write(self, plans: list[rules.Plan]) -> None:
        raise NotImplementedError

    def delete(self, family: int, owned: dict[str, dict]) -> None:
        raise NotImplementedError

    def replace(self, family: int, owned: dict[str, dict], plans: list[rules.Plan]) -> None:
        """Remove `owned` and flush and rewrite the plans' chains in one transaction per table
        (rules.replace_script); the caller holds the xtables lock."""
        raise NotImplementedError

    # -- the operations the plugin uses --------------------------------------------------
    def chain_exists(self, table: str, chain: str) -> bool:
        return any(chain in self.dump(family).get(table, {}).get("chains", ()) for family in (4, 6))

    def add(self, plans: list[rules.Plan], claims: list[str] = ()) -> None:
        """Write the plans; first claim the published ports `claims` (see ports.py)."""
        from pyruntime.hostnet import naming, ports
        plans = [p for p in plans if p]
        if not plans:
            return
        tag = plans[0].tag
        with xtables_lock():
            self.touched = True
            if claims:
                store = ports.Claims()
                existing = store.names()
                taken = []
                for name in claims:
                    for other in ports.clashes(name, existing):
                        owner = store.owner(other)
                        if owner and owner != tag and self.chain_exists("nat", naming.dnat_chain(owner)):
                            taken.append(ports.describe(other))
                if taken:
                    raise HostNetError(PORT_TAKEN, "host port already published by another container",
                                       ", ".join(sorted(set(taken))))
                store.take(list(claims), tag)
            self.write(plans)

    def remove(self, tags: set[str], families=(4, 6), network: str | None = None) -> None:
        """Remove the attachments `tags`, and `network`'s shared part when no attachment of
        it is left in a family."""
        from pyruntime.hostnet import ports
        with xtables_lock():
            store = ports.Claims()
            for tag in tags:
                store.release(tag)
            for family in families:
                tables = self.dump(family)
                doomed = set(tags)
                if network is not None and not rules.tags_of_network(tables, network) - doomed:
                    doomed |= rules.tags_of_network(tables, network, shared=True)
                owned: dict[str, dict] = {}
                for tag in doomed:
                    for table, part in rules.owned_by(tables, tag).items():
                        slot = owned.setdefault(table, {"chains": set(), "rules": []})
                        slot["chains"] |= part["chains"]
                        slot["rules"] += part["rules"]
                if owned:
                    self.delete(family, owned)
                    if family == 4:
                        close_unguarded_bridges(tables, owned)

    def missing(self, plans: list[rules.Plan]) -> list[str]:
        out = []
        for p in plans:
            if p:
                out += rules.missing(p, self.dump(p.family))
        return out


def close_unguarded_bridges(tables: dict[str, dict], removed: dict[str, dict]) -> None:
    """Turn route_localnet off again on bridges whose last loopback guard was just removed.

    ADD turns it on only after writing the guard; were it left on, a later attachment that
    needs no firewall rules (hence no guard) would let its container reach the host's
    127.0.0.1. Runs under the xtables lock, so no other ADD is writing a guard meanwhile."""
    from pyruntime.hostnet import links
    gone = removed.get("filter", {}).get("rules", [])
    left = [r for r in tables.get("filter", {}).get("rules", []) if r not in gone]
    for bridge in rules.loopback_guarded_bridges(gone) - rules.loopback_guarded_bridges(left):
        path = links.route_localnet_path(bridge)
        if os.path.exists(path):        # the bridge may be gone already
            links.write_sysctl(path, "0")


def backend(name: str) -> Backend:
    """The backend called `name` ("nftables" or "iptables", as configs and the environment
    spell them); each lives in a module named for the tool it drives."""
    if name == "nftables":
        from pyruntime.hostnet.fw_iptables_nft import IptablesNftBackend
        return IptablesNftBackend()
    from pyruntime.hostnet.fw_iptables_legacy import IptablesLegacyBackend
    return IptablesLegacyBackend()
