"""`pyruntime service add/del/list` against the kernel, through pyruntime.hostnet's backends.

Every change reads the family's nat table, computes the transaction (plan.transaction) from
the services found there plus the change, and hands it to the backend as one replace, all
under the xtables lock so that two commands never interleave a read and a write.
"""

from __future__ import annotations

import os

from pyruntime.errors import RuntimeUserError
from pyruntime.services import plan
from pyruntime.services.spec import Service, check_name

FAMILIES = (4, 6)


def backend(firewall: str):
    """The firewall backend: an explicit choice wins, "auto" honours PYRUNTIME_CNI_FIREWALL
    and otherwise follows the host's `iptables`."""
    from pyruntime.hostnet import firewall as fw
    from pyruntime.hostnet.errors import HostNetError
    try:
        name = fw.choose(firewall, {} if firewall != "auto" else os.environ)
    except HostNetError as e:
        raise RuntimeUserError(f"--firewall {firewall!r}: {e}") from None
    return fw.backend(name)


def _dump(b, family: int) -> dict:
    if b.name == "iptables" and not _legacy_tables(family):
        return {}          # no legacy table yet: nothing to read (and the save tool would fail)
    return b.dump(family)


def _legacy_tables(family: int) -> bool:
    try:
        with open("/proc/net/ip_tables_names" if family == 4 else "/proc/net/ip6_tables_names") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def _apply(b, family: int, tables: dict, services: list[Service]) -> None:
    remove, write = plan.transaction(tables, services, family)
    if remove or write.chains or write.rules:
        b.replace(family, remove, [write])


def _guarded(fn):
    """HostNetError (a tool or the kernel refused) as the one-line user error."""
    from pyruntime.hostnet.errors import HostNetError
    try:
        return fn()
    except HostNetError as e:
        raise RuntimeUserError(f"firewall: {e}") from None


def add(svc: Service, firewall: str = "auto") -> None:
    """Create the service, or replace an existing one of that name (its backends, its VIP)."""
    from pyruntime.hostnet.firewall import xtables_lock
    b = backend(firewall)

    def run():
        with xtables_lock():
            for family in FAMILIES:
                tables = _dump(b, family)
                current = plan.services_in(tables)
                others = [s for s in current if s.name != svc.name]
                if family == svc.family:
                    for other in others:
                        if other.vip == svc.vip and other.protocol == svc.protocol:
                            raise RuntimeUserError(f"--vip {svc.vip_text()!r}: already the address of "
                                                   f"service {other.name!r}")
                    _apply(b, family, tables, others + [svc])
                elif len(others) != len(current):    # the name moves to the other family
                    _apply(b, family, tables, others)
    _guarded(run)


def delete(name: str, firewall: str = "auto") -> None:
    from pyruntime.hostnet.firewall import xtables_lock
    check_name(name)
    b = backend(firewall)

    def run():
        found = False
        with xtables_lock():
            for family in FAMILIES:
                tables = _dump(b, family)
                current = plan.services_in(tables)
                others = [s for s in current if s.name != name]
                if len(others) != len(current):
                    found = True
                    _apply(b, family, tables, others)
        if not found:
            raise RuntimeUserError(f"service {name!r}: no such service")
    _guarded(run)


def list_services(firewall: str = "auto") -> list[Service]:
    b = backend(firewall)
    return _guarded(lambda: sorted((s for family in FAMILIES for s in plan.services_in(_dump(b, family))),
                                   key=lambda s: s.name))


def table_text(services: list[Service]) -> str:
    rows = [("NAME", "VIP", "BACKENDS")] + [(s.name, s.vip_text(), ",".join(str(b) for b in s.backends))
                                             for s in services]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() + "\n" for r in rows)
