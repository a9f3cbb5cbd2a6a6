"""`pyruntime network node-up` / `node-down`: converge one node to what the cluster file says.

Everything acts on the network namespace and files of the calling process: the routes in the
main table marked with plan.ROUTE_PROTO, the nat chain of the masquerade exception (through
the firewall backend the bridge plugin uses, under the xtables lock), the forwarding sysctl,
and the network's conflist in the configuration directory. A record in the state root
(<root>/cluster@node/<network>.json) keeps what node-down must restore: the forwarding value
found before node-up changed it, and the conflist text node-up wrote (a file changed since
is somebody's edit, kept).
"""

from __future__ import annotations

import json
import os
import socket

from pyruntime.cache import write_atomically
from pyruntime.cluster import model, plan
from pyruntime.errors import RuntimeUserError

RECORD_DIR = "cluster@node"     # "@" is no container id character: no container dir can be it
MAIN_TABLE = 254


class NodeError(RuntimeUserError):
    pass


def up(cluster_path: str, node_name: str, config_dir: str, root: str, echo, data_dir: str = "",
       force: bool = False) -> int:
    """Converge; `echo` gets one line per change as it is made. Returns the number of changes."""
    cluster = model.load(cluster_path)
    me = cluster.node(node_name)
    _require_root("node-up")
    record = _read_record(root, cluster.network)
    changes = _each(echo, _write_conflist(cluster, me, config_dir, data_dir, record, force))
    changes += _each(echo, _enable_forwarding(cluster.family, record))
    _save_record(root, cluster.network, record)
    changes += converge_firewall(cluster, echo)
    changes += converge_routes(cluster.family, plan.desired_routes(cluster, me), echo)
    if not changes:
        echo(f"node {me.name}: up to date")
    return changes


def down(cluster_path: str, node_name: str, config_dir: str, root: str, echo) -> int:
    """Remove what up made on this node (see the module docstring)."""
    cluster = model.load(cluster_path)
    me = cluster.node(node_name)
    _require_root("node-down")
    record = _read_record(root, cluster.network)
    changes = converge_routes(cluster.family, [], echo)
    changes += converge_firewall(cluster, echo, wanted=False)
    changes += _each(echo, _restore_forwarding(cluster.family, record))
    changes += _each(echo, _remove_conflist(cluster, me, config_dir, record))
    changes += _each(echo, _remove_idle_bridge(cluster.bridge))
    _remove_record(root, cluster.network)
    if not changes:
        echo(f"node {me.name}: nothing to remove")
    return changes


def _require_root(command: str) -> None:
    # before anything is written: without CAP_NET_ADMIN only the conflist would get through
    if os.geteuid() != 0:
        raise NodeError(f"{command} changes the node's routes, firewall rules and sysctls: run it as root")


def _each(echo, lines: list[str]) -> int:
    for line in lines:
        echo(line)
    return len(lines)


# -- routes ------------------------------------------------------------------------------------

def _ipr():
    from pyroute2 import IPRoute
    return IPRoute()


def read_routes(ipr, family: int) -> tuple[list[plan.Route], list]:
    """(our routes, destinations of the other unicast routes) of the main table."""
    import ipaddress
    ours, others = [], []
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    for m in ipr.route("dump", family=af):
        table = m.get_attr("RTA_TABLE") or m["table"]
        if table != MAIN_TABLE or m["type"] != 1:
            continue
        zero = "0.0.0.0" if family == 4 else "::"
        dst = ipaddress.ip_network(f"{m.get_attr('RTA_DST') or zero}/{m['dst_len']}")
        if m["proto"] == plan.ROUTE_PROTO:
            gw = m.get_attr("RTA_GATEWAY")
            ours.append(plan.Route(dst, ipaddress.ip_address(gw) if gw else None))
        else:
            others.append(dst)
    return ours, others


def converge_routes(family: int, desired: list[plan.Route], echo) -> int:
    from pyroute2.netlink.exceptions import NetlinkError
    done_count, failures = 0, []
    with _ipr() as ipr:
        ours, others = read_routes(ipr, family)
        changes = plan.route_changes(desired, ours, others)
        steps = [("del", r, "removed route") for r in changes.remove]
        steps += [("replace", r, "changed route") for r in changes.replace]
        steps += [("add", r, "added route") for r in changes.add]
        for op, r, done in steps:
            spec = {"dst": str(r.dst), "proto": plan.ROUTE_PROTO, "table": MAIN_TABLE}
            if r.gateway is not None:
                spec["gateway"] = str(r.gateway)
            try:
                ipr.route(op, **spec)
            except NetlinkError as e:
                hint = (" (host-gw needs every node's address on a network this node is directly "
                        "connected to)") if e.code == 101 else ""
                failures.append(f"cannot {op} route {r}: {os.strerror(e.code)}{hint}")
                continue
            echo(f"{done} {r} proto {plan.ROUTE_PROTO}")
            done_count += 1
    failures += changes.conflicts
    if failures:
        raise NodeError("; ".join(failures))
    return done_count


def _remove_idle_bridge(name: str) -> list[str]:
    """The bridge the plugin made for the network's pods, once no pod is attached to it (the
    plugin itself keeps a bridge for the next ADD)."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return []
        link = ipr.get_links(found[0])[0]
        info = link.get_attr("IFLA_LINKINFO")
        if info is None or info.get_attr("IFLA_INFO_KIND") != "bridge":
            return [f"{name} is not a bridge: left alone"]
        ports = [p for p in ipr.get_links() if p.get_attr("IFLA_MASTER") == found[0]]
        if ports:
            return [f"bridge {name} kept: {len(ports)} interface(s) still attached"]
        ipr.link("del", index=found[0])
    return [f"removed bridge {name}"]


# -- the masquerade exception --------------------------------------------------------------------

def _chosen_backend(cluster_backend: str) -> str:
    from pyruntime.hostnet import firewall
    from pyruntime.hostnet.errors import HostNetError
    try:
        return firewall.choose(cluster_backend, dict(os.environ))
    except HostNetError as e:       # a bad PYRUNTIME_CNI_FIREWALL
        raise NodeError(_hostnet_message(e)) from None


def _hostnet_message(e) -> str:
    msg, details = getattr(e, "msg", str(e)), getattr(e, "details", "")
    return f"{msg}: {details}" if details else msg


def converge_firewall(cluster: model.Cluster, echo, wanted: bool = True) -> int:
    """The exception in the cluster's family through the chosen backend (wanted), nothing
    anywhere else: not in the other family (an earlier cidr's), not through the other backend
    (an earlier firewallBackend's), and with wanted=False (node-down) nowhere at all."""
    from pyruntime.hostnet import firewall
    from pyruntime.hostnet.errors import HostNetError
    chosen = _chosen_backend(cluster.firewall_backend)
    count = 0
    for name in ("iptables", "nftables"):
        fw = firewall.backend(name)
        try:
            with firewall.xtables_lock():
                for family in (4, 6):
                    target = cluster if wanted and name == chosen and family == cluster.family else None
                    if target is None and not _tables_in_use(fw, family):
                        continue
                    nat = fw.dump(family).get("nat", {})
                    count += _apply_firewall(fw, family, plan.firewall_changes(target, cluster.network, nat), echo)
        except HostNetError as e:
            raise NodeError(f"firewall ({fw.name}): {_hostnet_message(e)}") from None
        except OSError as e:            # the xtables lock
            raise NodeError(f"firewall ({fw.name}): {e.strerror}: {e.filename}") from None
    return count


def _apply_firewall(fw, family: int, changes: plan.FirewallChanges, echo) -> int:
    """The new exception goes in before the old one goes (no moment without one), unless
    the chain is rebuilt under its own name (tampered with): then it must go first."""
    if changes.add_chain and changes.add_chain in changes.remove_chains:
        _remove_parts(fw, family, changes, echo)
        _add_parts(fw, family, changes, echo)
    else:
        _add_parts(fw, family, changes, echo)
        _remove_parts(fw, family, changes, echo)
    return (len(changes.remove_rules) + len(changes.remove_chains) + bool(changes.add_chain)
            + len(changes.add_rules))


def _remove_parts(fw, family: int, changes: plan.FirewallChanges, echo) -> None:
    if not (changes.remove_rules or changes.remove_chains):
        return
    fw.delete(family, {"nat": {"chains": set(changes.remove_chains), "rules": list(changes.remove_rules)}})
    for line in changes.remove_rules:
        echo(f"removed nat rule {line}")
    for chain in changes.remove_chains:
        echo(f"removed nat chain {chain}")


def _add_parts(fw, family: int, changes: plan.FirewallChanges, echo) -> None:
    from pyruntime.hostnet import rules
    if not (changes.add_chain or changes.add_rules):
        return
    p = rules.Plan(family, changes.add_chain or "cluster")
    if changes.add_chain:
        p.chains.append(("nat", changes.add_chain))
    p.rules += [rules.Rule("nat", chain, args, first=first) for chain, args, first in changes.add_rules]
    fw.write([p])
    if changes.add_chain:
        echo(f"added nat chain {changes.add_chain}")
    for r in p.rules:
        echo(f"added nat rule {r.save_line()}")


def _tables_in_use(fw, family: int) -> bool:
    """Whether a nat table may hold something of ours and can be read without making it (a
    dump of legacy tables that are not there yet would create them)."""
    import shutil
    if shutil.which(fw.save_tools[family]) is None:
        return False
    if fw.name == "iptables":
        names = "/proc/net/ip_tables_names" if family == 4 else "/proc/net/ip6_tables_names"
        try:
            with open(names) as f:
                return "nat" in f.read().split()
        except OSError:
            return False
    return True


# -- forwarding --------------------------------------------------------------------------------

def _read_sysctl(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise NodeError(f"cannot read {path}: {e.strerror}") from None


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise NodeError(f"cannot write {path}: {e.strerror}") from None


def _enable_forwarding(family: int, record: dict) -> list[str]:
    path = plan.FORWARDING[family]
    now = _read_sysctl(path)
    if now == "1":
        return []
    _write_sysctl(path, "1")
    # the value before the first node-up is the one to restore, whatever came in between
    record.setdefault("forwarding", {"path": path, "previous": now})
    return [f"{plan.SYSCTL_NAMES[family]}: {now} -> 1"]


def _restore_forwarding(family: int, record: dict) -> list[str]:
    saved = record.get("forwarding")
    if not saved:
        return []
    path, previous = saved["path"], saved["previous"]
    now = _read_sysctl(path)
    if now != "1" or previous == now:
        return []
    _write_sysctl(path, previous)
    return [f"{plan.SYSCTL_NAMES[family]}: 1 -> {previous} (as before node-up)"]


# -- the conflist -------------------------------------------------------------------------------

def conflist_path(config_dir: str, network: str) -> str:
    return os.path.join(config_dir, f"{network}.conflist")


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise NodeError(f"cannot read {path}: {e.strerror}") from None


def _write_conflist(cluster, me, config_dir: str, data_dir: str, record: dict, force: bool) -> list[str]:
    path = conflist_path(config_dir, cluster.network)
    text = plan.conflist_text(plan.node_conflist(cluster, me, data_dir))
    present = _read_text(path)
    if present == text:
        record["conflist"] = {"path": path, "text": text}
        return []
    written_by_us = (record.get("conflist") or {}).get("text")
    if present is not None and present != written_by_us and not force:
        raise NodeError(f"{path} exists and is not the file node-up wrote (or was changed since): "
                        "--force replaces it")
    try:
        write_atomically(path, text.encode())   # the hook reads the old or the new file, never half
    except OSError as e:
        raise NodeError(f"cannot write {path}: {e.strerror or e}") from None
    record["conflist"] = {"path": path, "text": text}
    what = "updated" if present is not None else "wrote"
    return [f"{what} {path} (network {cluster.network}: pods from {me.subnet})"]


def _remove_conflist(cluster, me, config_dir: str, record: dict) -> list[str]:
    path = conflist_path(config_dir, cluster.network)
    present = _read_text(path)
    if present is None:
        return []
    ours = (record.get("conflist") or {}).get("text")
    if ours is None:
        # no record (state root lost, e.g. a reboot): ours if it is what node-up writes, with
        # whatever dataDir it was given
        ours = present if _is_node_conflist(present, cluster, me) else None
    if present != ours:
        return [f"{path}: changed since node-up, kept"]
    try:
        os.unlink(path)
    except OSError as e:
        raise NodeError(f"cannot remove {path}: {e.strerror}") from None
    return [f"removed {path}"]


def _is_node_conflist(text: str, cluster, me) -> bool:
    try:
        doc = json.loads(text)
        data_dir = doc["plugins"][0]["ipam"].get("dataDir", "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False
    return isinstance(data_dir, str) and text == plan.conflist_text(plan.node_conflist(cluster, me, data_dir))


# -- the record ---------------------------------------------------------------------------------

def record_path(root: str, network: str) -> str:
    return os.path.join(root, RECORD_DIR, f"{network}.json")


def _read_record(root: str, network: str) -> dict:
    text = _read_text(record_path(root, network))
    if text is None:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _save_record(root: str, network: str, record: dict) -> None:
    path = record_path(root, network)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_atomically(path, json.dumps(record).encode())
    except OSError as e:
        raise NodeError(f"cannot write {path}: {e.strerror or e}") from None


def _remove_record(root: str, network: str) -> None:
    path = record_path(root, network)
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except FileNotFoundError:
        pass
    except OSError:
        pass                        # another network's record keeps the directory
