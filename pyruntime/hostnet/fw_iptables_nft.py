"""The "nftables" firewall backend: the iptables-nft tools, which write nf_tables rules in the
tables iptables-nft keeps (see firewall.py for why these rather than a table of our own)."""

from __future__ import annotations

import subprocess

from pyruntime.hostnet import rules
from pyruntime.hostnet.errors import IO, HostNetError
from pyruntime.hostnet.firewall import Backend, run_tool


class IptablesNftBackend(Backend):
    name = "nftables"
    save_tools = {4: "iptables-nft-save", 6: "ip6tables-nft-save"}
    list_tools = {4: "iptables-nft", 6: "ip6tables-nft"}
    restore_tools = {4: "iptables-nft-restore", 6: "ip6tables-nft-restore"}

    def chain_exists(self, table: str, chain: str) -> bool:
        return any(self._listed(family, table, chain) for family in self.list_tools)

    def _listed(self, family: int, table: str, chain: str) -> bool:
        # listing one chain reads only that chain, unlike a dump of the whole table; the nft
        # variant takes no xtables lock, so it can run while we hold it
        try:
            return subprocess.run([self.list_tools[family], "-t", table, "-S", chain],
                                  capture_output=True).returncode == 0
        except FileNotFoundError:
            raise HostNetError(IO, f"{self.list_tools[family]} not found", "install the iptables package") from None

    def write(self, plans: list[rules.Plan]) -> None:
        for family in (4, 6):
            own = [p for p in plans if p.family == family]
            shared = {p.shared.tag: p.shared for p in own if p.shared is not None}
            missing = [s for s in shared.values() if not self._listed(family, *rules.marker(s))]
            script = rules.restore_script(missing + own, "add")
            if script:
                run_tool([self.restore_tools[family], "--noflush"], script)

    def delete(self, family: int, owned: dict[str, dict]) -> None:
        run_tool([self.restore_tools[family], "--noflush"], rules.removal_script(owned))

    def replace(self, family: int, owned: dict[str, dict], plans: list[rules.Plan]) -> None:
        script = rules.replace_script(owned, plans)
        if script:
            run_tool([self.restore_tools[family], "--noflush"], script)
