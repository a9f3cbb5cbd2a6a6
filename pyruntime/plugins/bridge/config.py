"""The bridge network configuration: decoded, validated and defaulted into plain data."""

from __future__ import annotations

import ipaddress
import re
from pyruntime.cni import plugin_name
from pyruntime.cni.errors import INVALID_CONFIG, UNSUPPORTED_FIELD, CniError
from pyruntime.cni.request import check_network_name
from pyruntime.hostnet.ipam_store import Range
from pyruntime.hostnet.ports import PortMapping
from pyruntime.record import Record

DEFAULT_BRIDGE = "pyr0"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
FIREWALL_BACKENDS = ("auto", "iptables", "nftables")
PROTOCOLS = ("tcp", "udp", "sctp")
_IFNAME = re.compile(r"^[^/:\s]{1,15}$")
_MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


def _invalid(msg: str, details: str = "") -> CniError:
    return CniError(INVALID_CONFIG, msg, details)


class IpamConf(Record):
    """range_sets: list of lists of Range; routes: (dst network, gw or None) pairs."""
    __slots__ = ("type", "range_sets", "routes", "data_dir", "raw")
    _defaults = {"range_sets": list, "routes": list, "data_dir": DEFAULT_DATA_DIR, "raw": dict}


class BridgeConf(Record):
    __slots__ = ("cni_version", "name", "type", "bridge", "mtu", "is_gateway", "is_default_gateway",
                 "force_address", "ip_masq", "hairpin_mode", "promisc_mode", "vlan", "mac",
                 "port_mappings", "requested_ips", "firewall_backend", "masq_mark_bit", "ipam",
                 "dns", "prev_result", "raw")
    _defaults = {"bridge": DEFAULT_BRIDGE, "mtu": 0, "is_gateway": False, "is_default_gateway": False,
                 "force_address": False, "ip_masq": False, "hairpin_mode": False, "promisc_mode": False,
                 "vlan": 0, "mac": "", "port_mappings": list, "requested_ips": list,
                 "firewall_backend": "auto", "masq_mark_bit": 13, "ipam": None, "dns": dict,
                 "prev_result": None, "raw": dict}


def _bool(conf: dict, key: str) -> bool:
    value = conf.get(key, False)
    if not isinstance(value, bool):
        raise _invalid(f"invalid {key}", f"expected true or false, got {value!r}")
    return value


def _int(conf: dict, key: str, lo: int, hi: int, default: int = 0) -> int:
    value = conf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not (value == default or lo <= value <= hi):
        raise _invalid(f"invalid {key}", f"expected an integer in {lo}..{hi}, got {value!r}")
    return value


def _object(conf: dict, key: str, where: str = "") -> dict:
    """conf[key] when it is a JSON object; {} when absent or null."""
    value = conf.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(f"invalid {where}{key}", f"expected an object, got {value!r:.80}")
    return value


def _strings(value, what: str) -> list[str]:
    """A JSON list of strings (absent or null: empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"invalid {what}", f"expected a list of strings, got {value!r:.80}")
    return value


def parse_bridge_conf(conf: dict, cni_args: dict[str, str] | None = None) -> BridgeConf:
    name = check_network_name(conf)
    bridge = conf.get("bridge", DEFAULT_BRIDGE)
    if not isinstance(bridge, str) or not _IFNAME.match(bridge):
        raise _invalid("invalid bridge name", f"{bridge!r}: 1-15 characters, no '/', ':' or whitespace")
    out = BridgeConf(
        cni_version=conf["cniVersion"], name=name, type=conf.get("type", ""), bridge=bridge,
        mtu=_int(conf, "mtu", 68, 65535),
        is_gateway=_bool(conf, "isGateway"),
        is_default_gateway=_bool(conf, "isDefaultGateway"),
        force_address=_bool(conf, "forceAddress"),
        ip_masq=_bool(conf, "ipMasq"),
        hairpin_mode=_bool(conf, "hairpinMode"),
        promisc_mode=_bool(conf, "promiscMode"),
        vlan=_int(conf, "vlan", 1, 4094),
        masq_mark_bit=_int(conf, "masqMarkBit", 0, 31, 13),
        dns=_object(conf, "dns"),
        prev_result=conf.get("prevResult"),
        raw=conf,
    )
    if out.is_default_gateway:
        out.is_gateway = True
    if out.vlan:
        raise CniError(UNSUPPORTED_FIELD, "vlan is not supported by this plugin",
                       "remove 'vlan' or use a bridge per VLAN")
    backend = conf.get("firewallBackend", "auto")
    if backend not in FIREWALL_BACKENDS:
        raise _invalid("invalid firewallBackend", f"{backend!r} is not one of {', '.join(FIREWALL_BACKENDS)}")
    out.firewall_backend = backend

    runtime = _object(conf, "runtimeConfig")
    out.port_mappings = parse_port_mappings(runtime.get("portMappings") or [])
    args = cni_args or {}
    mac = runtime.get("mac") or args.get("MAC") or conf.get("mac") or ""
    if mac and (not isinstance(mac, str) or not _MAC.match(mac)):
        raise _invalid("invalid mac", f"{mac!r} is not a MAC address like 02:42:ac:11:00:02")
    out.mac = mac.lower()
    out.requested_ips = parse_requested_ips(conf, runtime, args)
    if "ipam" in conf and conf["ipam"]:
        out.ipam = parse_ipam_conf(conf["ipam"], name)
    return out


def parse_requested_ips(conf: dict, runtime: dict, args: dict[str, str]) -> list:
    texts: list[str] = []
    texts += _strings(runtime.get("ips"), "runtimeConfig.ips")
    texts += _strings(_object(_object(conf, "args"), "cni", "args.").get("ips"), "args.cni.ips")
    if args.get("IP"):
        texts += args["IP"].split(",")
    out = []
    for t in texts:
        try:
            out.append(ipaddress.ip_interface(t).ip)
        except (ValueError, TypeError):
            raise _invalid("invalid requested IP", f"{t!r} is not an IP address") from None
    return out


def parse_port_mappings(items) -> list[PortMapping]:
    if not isinstance(items, list):
        raise _invalid("invalid portMappings", "expected a list")
    out: list[PortMapping] = []
    for item in items:
        if not isinstance(item, dict):
            raise _invalid("invalid portMappings entry", f"{item!r} is not an object")
        host_port = item.get("hostPort")
        container_port = item.get("containerPort")
        for key, port in (("hostPort", host_port), ("containerPort", container_port)):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise _invalid(f"invalid {key} in portMappings", f"{port!r} is not a port in 1..65535")
        proto = (item.get("protocol") or "tcp").lower()
        if proto not in PROTOCOLS:
            raise _invalid("invalid protocol in portMappings", f"{proto!r} is not one of tcp, udp, sctp")
        host_ip = item.get("hostIP") or ""
        if host_ip:
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                raise _invalid("invalid hostIP in portMappings", f"{host_ip!r} is not an IP address") from None
        if host_ip in ("0.0.0.0", "::"):
            # the unspecified address means "any address of that family"
            host_ip = "0.0.0.0" if host_ip == "0.0.0.0" else "::"
        out.append(PortMapping(host_port, container_port, proto, host_ip))
    seen: set = set()
    for pm in out:
        key = (pm.host_port, pm.protocol, pm.host_ip)
        if key in seen:
            raise _invalid("duplicate portMappings entry", f"{pm.protocol}/{pm.host_port} is published twice")
        seen.add(key)
    return out


def require_plugin_name(name) -> None:
    """A plugin type is a bare file name in CNI_PATH (see plugin_name.py)."""
    why = plugin_name.problem(name)
    if why:
        raise _invalid(plugin_name.INVALID, f"{name!r}: {why}")


def parse_ipam_conf(ipam: dict, network: str) -> IpamConf:
    if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str) or not ipam["type"]:
        raise _invalid("invalid ipam", "expected an object with a 'type'")
    # before anything is made: ADD creates the veth pair before it runs the IPAM plugin
    require_plugin_name(ipam["type"])
    out = IpamConf(type=ipam["type"], raw=ipam)
    out.data_dir = ipam.get("dataDir") or DEFAULT_DATA_DIR
    sets = ipam.get("ranges")
    if sets is None and ipam.get("subnet"):
        sets = [[{k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if k in ipam}]]
    if sets is not None:
        if not isinstance(sets, list) or not sets:
            raise _invalid("invalid ipam ranges", "expected a non-empty list of range sets")
        for rs in sets:
            if not isinstance(rs, list) or not rs:
                raise _invalid("invalid ipam ranges", "each range set is a non-empty list of ranges")
            out.range_sets.append([parse_range(r) for r in rs])
        check_overlaps(out.range_sets)
    routes = ipam.get("routes") or []
    if not isinstance(routes, list):
        raise _invalid("invalid ipam routes", f"expected a list, got {routes!r:.80}")
    for r in routes:
        try:
            dst = ipaddress.ip_network(r["dst"], strict=False)
            gw = ipaddress.ip_address(r["gw"]) if r.get("gw") else None
        except (KeyError, TypeError, ValueError):
            raise _invalid("invalid ipam route", f"{r!r}: expected {{'dst': CIDR, 'gw'?: IP}}") from None
        out.routes.append((dst, gw))
    return out


def parse_range(r: dict) -> Range:
    if not isinstance(r, dict) or "subnet" not in r:
        raise _invalid("invalid ipam range", f"{r!r}: 'subnet' is required")
    try:
        subnet = ipaddress.ip_network(r["subnet"], strict=False)
    except (TypeError, ValueError):
        raise _invalid("invalid subnet", f"{r.get('subnet')!r} is not a CIDR like 10.88.0.0/16") from None
    v4 = subnet.version == 4
    if subnet.num_addresses < (4 if v4 else 2):
        raise _invalid("invalid subnet", f"{subnet} is too small to hold a container address")
    first = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if v4 else subnet.broadcast_address

    def addr(key, default):
        if not r.get(key):
            return default
        try:
            ip = ipaddress.ip_address(r[key])
        except ValueError:
            raise _invalid(f"invalid {key}", f"{r[key]!r} is not an IP address") from None
        if ip not in subnet:
            raise _invalid(f"invalid {key}", f"{ip} is not in {subnet}")
        return ip

    start = addr("rangeStart", first)
    end = addr("rangeEnd", last)
    gateway = addr("gateway", first)
    if start > end:
        raise _invalid("invalid ipam range", f"rangeStart {start} is after rangeEnd {end}")
    return Range(subnet, start, end, gateway)


def check_overlaps(range_sets: list[list[Range]]) -> None:
    flat = [r for rs in range_sets for r in rs]
    for i, a in enumerate(flat):
        for b in flat[i + 1:]:
            if a.start.version == b.start.version and a.start <= b.end and b.start <= a.end:
                raise _invalid("invalid ipam ranges", f"{a.start}-{a.end} overlaps {b.start}-{b.end}")
