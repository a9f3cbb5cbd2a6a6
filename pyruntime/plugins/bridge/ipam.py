"""The IPAM step of the bridge plugin: built in (host-local semantics) or delegated to a plugin."""

from __future__ import annotations

import ipaddress
import os

from pyruntime.cni import invoke, result as cniresult
from pyruntime.cni.errors import DECODE_FAILURE, INTERNAL, INVALID_CONFIG, IO_FAILURE, CniError
from pyruntime.cni.request import Request
from pyruntime.plugins.bridge.config import BridgeConf, IpamConf, require_plugin_name

DELEGATE_TIMEOUT = 120.0


def builtin_result(ipam: IpamConf, allocated) -> cniresult.Result:
    res = cniresult.Result()
    for r, ip in allocated:
        res.ips.append(cniresult.IPConfig(ipaddress.ip_interface((ip, r.subnet.prefixlen)), r.gateway))
    res.routes = [cniresult.Route(dst, gw) for dst, gw in ipam.routes]
    dns = ipam.raw.get("dns")
    if isinstance(dns, dict):
        res.dns = dns
    return res


def _store(bc: BridgeConf):
    from pyruntime.hostnet.ipam_store import Store
    return Store(bc.ipam.data_dir, bc.name)


def check_builtin(ipam: IpamConf) -> None:
    if not ipam.range_sets:
        raise CniError(INVALID_CONFIG, "invalid ipam", "no 'subnet' or 'ranges' configured")


def add(req: Request, bc: BridgeConf, raw: bytes, builtin: bool) -> cniresult.Result:
    if builtin:
        check_builtin(bc.ipam)
        allocated = _store(bc).allocate(req.container_id, req.ifname, bc.ipam.range_sets, bc.requested_ips)
        return builtin_result(bc.ipam, allocated)
    return cniresult.parse(delegate(req, bc.ipam.type, raw, "ADD"))


def delete(req: Request, bc: BridgeConf, raw: bytes, builtin: bool) -> list[str]:
    """Release the attachment's addresses; returns them when known (built-in IPAM)."""
    if builtin:
        return _store(bc).release(req.container_id, req.ifname)
    delegate(req, bc.ipam.type, raw, "DEL")
    return []


def find(req: Request, bc: BridgeConf) -> list[str]:
    return _store(bc).find(req.container_id, req.ifname)


def gc(bc: BridgeConf, keep: set[tuple[str, str]], req: Request, raw: bytes, builtin: bool) -> None:
    if builtin:
        _store(bc).gc(keep)
    else:
        delegate(req, bc.ipam.type, raw, "GC")


def delegate(req: Request, plugin: str, raw: bytes, command: str) -> dict | None:
    """Run an IPAM plugin from CNI_PATH the way a runtime would, with our environment."""
    require_plugin_name(plugin)
    exe = invoke.find(plugin, req.path)
    if exe is None:
        raise CniError(INVALID_CONFIG, f"IPAM plugin {plugin!r} not found",
                       f"searched CNI_PATH={':'.join(req.path) or '(empty)'}")
    env = dict(os.environ, CNI_COMMAND=command)
    try:
        outcome = invoke.run(exe, env, raw, DELEGATE_TIMEOUT)
    except OSError as e:
        raise CniError(IO_FAILURE, f"cannot run IPAM plugin {plugin}", e.strerror or str(e)) from None
    if outcome.decode_error:
        raise CniError(DECODE_FAILURE, f"IPAM plugin {plugin} wrote invalid JSON",
                       f"{outcome.decode_error}: {outcome.stdout[:300].decode(errors='replace')}")
    data = outcome.doc
    if outcome.returncode != 0:
        if isinstance(data, dict) and "code" in data:
            raise CniError(int(data["code"]), data.get("msg", f"IPAM plugin {plugin} failed"), data.get("details", ""))
        raise CniError(INTERNAL, f"IPAM plugin {plugin} failed", outcome.stderr.decode(errors="replace")[:500])
    return data
