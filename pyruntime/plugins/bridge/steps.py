"""What each CNI command does for a bridge attachment, in order, with rollback on failure."""

from __future__ import annotations

import ipaddress
import os

from pyruntime.cni import result as cniresult
from pyruntime.cni.errors import CHECK_FAILED, INVALID_CONFIG, NOT_AVAILABLE, CniError
from pyruntime.cni.request import Request
from pyruntime.hostnet import naming
from pyruntime.hostnet.errors import HostNetError
from pyruntime.plugins.bridge import ipam
from pyruntime.plugins.bridge.config import BridgeConf


# -- pure decisions ----------------------------------------------------------------------------

def container_routes(res: cniresult.Result, default_gateway: bool) -> list[cniresult.Route]:
    """Routes to install in the container: IPAM's, plus a default route per family if asked."""
    gateways = {}
    for ip in res.ips:
        if ip.gateway is not None:
            gateways.setdefault(ip.address.version, ip.gateway)
    routes = list(res.routes)
    if default_gateway:
        for family, gw in sorted(gateways.items()):
            dst = ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
            if not any(r.dst == dst for r in routes):
                routes.append(cniresult.Route(dst, gw))
    return [cniresult.Route(r.dst, r.gw if r.gw is not None else gateways.get(r.dst.version)) for r in routes]


def gateway_interfaces(res: cniresult.Result) -> list:
    """The gateway addresses (with the subnet's prefix) the bridge carries when isGateway."""
    out = []
    for ip in res.ips:
        if ip.gateway is not None:
            gw = ipaddress.ip_interface((ip.gateway, ip.address.network.prefixlen))
            if gw not in out:
                out.append(gw)
    return out


def attachment(req: Request, bc: BridgeConf, addresses):
    from pyruntime.hostnet.rules import Attachment
    return Attachment(bc.name, req.container_id, req.ifname, bc.bridge, tuple(addresses),
                      bc.ip_masq, tuple(bc.port_mappings), bc.masq_mark_bit)


def needs_firewall(bc: BridgeConf) -> bool:
    return bc.is_gateway or bc.ip_masq or bool(bc.port_mappings)


def firewall_plans(att) -> list:
    from pyruntime.hostnet import rules
    return [p for p in (rules.plan(att, 4), rules.plan(att, 6)) if p]


def _backend(bc: BridgeConf):
    from pyruntime.hostnet import firewall
    return firewall.backend(firewall.choose(bc.firewall_backend, dict(os.environ)))


# -- ADD ---------------------------------------------------------------------------------------

def add(req: Request, bc: BridgeConf, raw: bytes, builtin: bool) -> dict:
    from pyruntime.hostnet import links
    prev = cniresult.parse(bc.prev_result) if bc.prev_result else None
    netns_fd = links.open_netns(req.netns)
    undo = []
    try:
        host_rt, cont_rt = links.netlink_sockets(netns_fd)
        bridge = links.ensure_bridge(host_rt, bc.bridge, bc.mtu, bc.promisc_mode)
        host_name = naming.veth_name(req.container_id, req.ifname)
        links.create_veth(host_rt, host_name, req.ifname, netns_fd, bc.mtu, bc.mac)
        undo.append(lambda: host_rt.del_link(host_name))
        host_link = links.attach_to_bridge(host_rt, host_name, bridge.index, bc.hairpin_mode)

        res = cniresult.Result()
        if bc.ipam is not None:
            res = ipam.add(req, bc, raw, builtin)
            undo.append(lambda: ipam.delete(req, bc, raw, builtin))
        routes = container_routes(res, bc.is_default_gateway)
        with links.entered(netns_fd):
            cont_link = links.configure_container(cont_rt, req.ifname, [ip.address for ip in res.ips],
                                                  [(r.dst, r.gw) for r in routes])
        families = {ip.address.version for ip in res.ips}
        if bc.is_gateway:
            for gw in gateway_interfaces(res):
                links.ensure_gateway(host_rt, bridge.index, gw, bc.force_address)
        if bc.is_gateway or bc.ip_masq:
            if 4 in families:
                links.write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            if 6 in families:
                links.write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
        if needs_firewall(bc) and res.ips:
            att = attachment(req, bc, [ip.address for ip in res.ips])
            fw = _backend(bc)
            # (when add gave up waiting for the lock it made nothing: no second wait to undo it)
            undo.append(lambda: fw.touched and fw.remove({att.tag}, network=att.network))
            from pyruntime.hostnet import ports
            fw.add(firewall_plans(att), ports.wanted(bc.port_mappings))
        if bc.port_mappings and 4 in families:
            # lets the host reach published ports on 127.0.0.1: the DNATed packet keeps its
            # loopback source until POSTROUTING masquerades it, which the bridge must accept.
            # Only now: the network's loopback guard (rules.loopback_guard), written just
            # above, must be in place before the bridge accepts anything for 127.0.0.0/8
            links.write_sysctl(links.route_localnet_path(bc.bridge), "1")

        bridge = host_rt.get_link(bc.bridge)
        ours = [cniresult.Interface(bridge.name, bridge.mac),
                cniresult.Interface(host_link.name, host_link.mac, mtu=host_link.mtu),
                cniresult.Interface(cont_link.name, cont_link.mac, req.netns, cont_link.mtu)]
        base = len(prev.interfaces) if prev else 0
        for ip in res.ips:
            ip.interface = base + 2
        out = cniresult.Result(interfaces=ours, ips=res.ips, routes=routes, dns=bc.dns or res.dns)
        if prev:
            out = cniresult.Result(prev.interfaces + out.interfaces, prev.ips + out.ips,
                                   prev.routes + out.routes, out.dns or prev.dns)
        host_rt.close()
        cont_rt.close()
        return out.to_json(bc.cni_version)
    except BaseException:
        for step in reversed(undo):
            try:
                step()
            except Exception:
                pass
        raise
    finally:
        os.close(netns_fd)


# -- DEL ---------------------------------------------------------------------------------------

def delete(req: Request, bc: BridgeConf, raw: bytes, builtin: bool) -> None:
    """Remove the attachment; whatever is already gone (netns, veth, lease, rules) is fine.

    Every step runs even if an earlier one failed, so one stuck part does not keep the others
    alive; the first failure is reported."""
    from pyruntime.hostnet.rtnl import Rtnl
    released: list[str] = []

    def release_addresses():
        if bc.ipam is not None:
            released.extend(ipam.delete(req, bc, raw, builtin))

    def remove_rules():
        if needs_firewall(bc):
            # rules exist only in the families the attachment had addresses in; when the
            # lease is already gone (or IPAM is external) look in both
            families = sorted({6 if ":" in ip else 4 for ip in released}) or [4, 6]
            _backend(bc).remove({naming.attachment_tag(bc.name, req.container_id, req.ifname)}, families, bc.name)

    def remove_veth():
        with Rtnl() as rt:
            rt.del_link(naming.veth_name(req.container_id, req.ifname))

    first = None
    for step in (release_addresses, remove_rules, remove_veth):
        try:
            step()
        except (CniError, HostNetError) as e:
            first = first or e
    if first is not None:
        raise first
    return None


# -- CHECK -------------------------------------------------------------------------------------

def check(req: Request, bc: BridgeConf, raw: bytes, builtin: bool) -> None:
    from pyruntime.hostnet import links
    if bc.prev_result is None:
        raise CniError(INVALID_CONFIG, "CHECK needs prevResult", "pass the result of ADD as prevResult")
    prev = cniresult.parse(bc.prev_result)
    problems: list[str] = []
    ours = [ip for ip in prev.ips if ip.interface is None
            or (ip.interface < len(prev.interfaces) and prev.interfaces[ip.interface].name == req.ifname
                and prev.interfaces[ip.interface].sandbox)]
    addresses = [ip.address for ip in ours]

    netns_fd = links.open_netns(req.netns)
    try:
        host_rt, cont_rt = links.netlink_sockets(netns_fd)
    finally:
        os.close(netns_fd)
    with host_rt, cont_rt:
        bridge = host_rt.get_link(bc.bridge)
        host_name = naming.veth_name(req.container_id, req.ifname)
        veth = host_rt.get_link(host_name)
        if bridge is None:
            problems.append(f"bridge {bc.bridge} is missing")
        if veth is None:
            problems.append(f"host veth {host_name} is missing")
        elif bridge is not None and veth.master != bridge.index:
            problems.append(f"host veth {host_name} is not attached to {bc.bridge}")
        elif bc.hairpin_mode and not host_rt.hairpin(veth.index):
            problems.append(f"hairpin mode is off on {host_name}")
        link = cont_rt.get_link(req.ifname)
        if link is None:
            problems.append(f"{req.ifname} is missing in the container")
        else:
            if not link.up:
                problems.append(f"{req.ifname} is down in the container")
            present = cont_rt.addresses(link.index)
            problems += [f"{a} is missing from {req.ifname}" for a in addresses if a not in present]
            import socket
            have = {(d, g) for fam in (socket.AF_INET, socket.AF_INET6) for d, g, oif in cont_rt.routes(fam)
                    if oif == link.index}
            for r in container_routes(cniresult.Result(ips=ours, routes=[]), bc.is_default_gateway):
                if (r.dst, r.gw) not in have:
                    problems.append(f"route {r.dst} via {r.gw} is missing in the container")
        if bc.is_gateway and bridge is not None:
            present = host_rt.addresses(bridge.index)
            problems += [f"gateway {gw} is missing from {bc.bridge}"
                         for gw in gateway_interfaces(cniresult.Result(ips=ours)) if gw not in present]
    if bc.ipam is not None and builtin:
        leased = set(ipam.find(req, bc))
        problems += [f"no IPAM lease for {a.ip}" for a in addresses if str(a.ip) not in leased]
    elif bc.ipam is not None:
        ipam.delegate(req, bc.ipam.type, raw, "CHECK")
    if needs_firewall(bc) and addresses:
        problems += _backend(bc).missing(firewall_plans(attachment(req, bc, addresses)))
    if problems:
        raise CniError(CHECK_FAILED, "attachment does not match its configuration", "; ".join(problems))
    return None


# -- GC / STATUS -------------------------------------------------------------------------------

def valid_attachments(conf: dict) -> set[tuple[str, str]]:
    items = conf.get("cni.dev/valid-attachments", [])
    if not isinstance(items, list):
        raise CniError(INVALID_CONFIG, "invalid cni.dev/valid-attachments", "expected a list")
    keep = set()
    for a in items:
        if not isinstance(a, dict) or not isinstance(a.get("containerID"), str) or not isinstance(a.get("ifname"), str):
            raise CniError(INVALID_CONFIG, "invalid cni.dev/valid-attachments entry",
                           f"{a!r}: expected {{'containerID': ..., 'ifname': ...}}")
        keep.add((a["containerID"], a["ifname"]))
    return keep


def gc(req: Request, bc: BridgeConf, raw: bytes, builtin: bool) -> None:
    """Remove leases, rules and host veths of attachments the runtime no longer knows."""
    from pyruntime.hostnet import rules
    from pyruntime.hostnet.rtnl import Rtnl
    keep = valid_attachments(bc.raw)
    if bc.ipam is not None:
        ipam.gc(bc, keep, req, raw, builtin)
    if needs_firewall(bc):
        fw = _backend(bc)
        wanted = {naming.attachment_tag(bc.name, cid, ifn) for cid, ifn in keep}
        present = set()
        for family in (4, 6):
            present |= rules.tags_of_network(fw.dump(family), bc.name)
        # also when nothing is stale: a shared part left without attachments goes too
        fw.remove(present - wanted, network=bc.name)
    keep_veths = {naming.veth_name(cid, ifn) for cid, ifn in keep}
    with Rtnl() as rt:
        bridge = rt.get_link(bc.bridge)
        if bridge is not None:
            for link in rt.links():
                if link.master == bridge.index and link.name.startswith(naming.VETH_PREFIX) \
                        and link.name not in keep_veths:
                    rt.del_link(link.index)
    return None


def status(req: Request, bc: BridgeConf, raw: bytes, builtin: bool) -> None:
    if bc.ipam is not None and builtin:
        from pyruntime.hostnet.ipam_store import Store
        store = Store(bc.ipam.data_dir, bc.name)
        if not store.writable():
            raise CniError(NOT_AVAILABLE, "IPAM data directory is not writable", store.dir)
    elif bc.ipam is not None:
        ipam.delegate(req, bc.ipam.type, raw, "STATUS")
    if needs_firewall(bc):
        import shutil
        fw = _backend(bc)
        for tool in fw.save_tools.values():
            if shutil.which(tool) is None:
                raise CniError(NOT_AVAILABLE, f"{tool} is not installed", f"the {fw.name} backend needs it")
    return None
