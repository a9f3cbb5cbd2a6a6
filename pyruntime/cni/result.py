"""The CNI result: one model, read from and written in every spec version we speak."""

from __future__ import annotations

import ipaddress

from pyruntime.cni import version as cniver
from pyruntime.cni.errors import DECODE_FAILURE, CniError
from pyruntime.record import Record


class Interface(Record):
    __slots__ = ("name", "mac", "sandbox", "mtu")
    _defaults = {"mac": "", "sandbox": "", "mtu": 0}

    def to_json(self, v: str) -> dict:
        out: dict = {"name": self.name}
        if self.mac:
            out["mac"] = self.mac
        if self.mtu and cniver.at_least(v, "1.1.0"):
            out["mtu"] = self.mtu
        if self.sandbox:
            out["sandbox"] = self.sandbox
        return out


class IPConfig(Record):
    """address: an ipaddress interface (ip + prefix); gateway: an address or None;
    interface: index into the result's interfaces, or None."""
    __slots__ = ("address", "gateway", "interface")
    _defaults = {"gateway": None, "interface": None}

    def to_json(self, v: str) -> dict:
        out: dict = {}
        if not cniver.at_least(v, "1.0.0"):
            out["version"] = str(self.address.version)
        if self.interface is not None:
            out["interface"] = self.interface
        out["address"] = str(self.address)
        if self.gateway is not None:
            out["gateway"] = str(self.gateway)
        return out


class Route(Record):
    """dst: an ipaddress network; gw: an address or None (the interface's gateway)."""
    __slots__ = ("dst", "gw")
    _defaults = {"gw": None}

    def to_json(self) -> dict:
        out = {"dst": str(self.dst)}
        if self.gw is not None:
            out["gw"] = str(self.gw)
        return out


class Result(Record):
    __slots__ = ("interfaces", "ips", "routes", "dns")
    _defaults = {"interfaces": list, "ips": list, "routes": list, "dns": dict}

    def to_json(self, v: str) -> dict:
        if cniver.at_least(v, "0.3.0"):
            out: dict = {"cniVersion": v}
            if self.interfaces:
                out["interfaces"] = [i.to_json(v) for i in self.interfaces]
            out["ips"] = [ip.to_json(v) for ip in self.ips]
            if self.routes:
                out["routes"] = [r.to_json() for r in self.routes]
            out["dns"] = dict(self.dns)
            return out
        # 0.1.0 / 0.2.0: one ip4 and one ip6 block, routes split by family, no interfaces.
        out = {"cniVersion": v}
        for family in (4, 6):
            ips = [ip for ip in self.ips if ip.address.version == family]
            if not ips:
                continue
            block: dict = {"ip": str(ips[0].address)}
            if ips[0].gateway is not None:
                block["gateway"] = str(ips[0].gateway)
            routes = [r.to_json() for r in self.routes if r.dst.version == family]
            if routes:
                block["routes"] = routes
            out[f"ip{family}"] = block
        out["dns"] = dict(self.dns)
        return out


def _bad(what: str) -> CniError:
    return CniError(DECODE_FAILURE, "failed to decode result", what)


def parse(data: dict) -> Result:
    """Read a result (prevResult, an IPAM plugin's output) written in any supported version."""
    if not isinstance(data, dict):
        raise _bad("expected a JSON object")
    try:
        res = Result(dns=dict(data.get("dns") or {}))
        if "ip4" in data or "ip6" in data:
            for key in ("ip4", "ip6"):
                block = data.get(key)
                if not block:
                    continue
                gw = block.get("gateway")
                res.ips.append(IPConfig(ipaddress.ip_interface(block["ip"]),
                                        ipaddress.ip_address(gw) if gw else None))
                res.routes += [_route(r) for r in block.get("routes") or []]
            return res
        for i in data.get("interfaces") or []:
            res.interfaces.append(Interface(i["name"], i.get("mac", ""), i.get("sandbox", ""),
                                            int(i.get("mtu", 0) or 0)))
        for ip in data.get("ips") or []:
            gw = ip.get("gateway")
            idx = ip.get("interface")
            res.ips.append(IPConfig(ipaddress.ip_interface(ip["address"]),
                                    ipaddress.ip_address(gw) if gw else None,
                                    int(idx) if idx is not None else None))
        res.routes = [_route(r) for r in data.get("routes") or []]
        return res
    except (KeyError, TypeError, ValueError, AttributeError) as e:   # a part of the wrong JSON type
        raise _bad(f"{type(e).__name__}: {e}") from None


def _route(r: dict) -> Route:
    gw = r.get("gw")
    return Route(ipaddress.ip_network(r["dst"], strict=False), ipaddress.ip_address(gw) if gw else None)
