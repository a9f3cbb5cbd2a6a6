"""The plugin acting as an IPAM plugin (host-local semantics) for another main plugin.

A config such as {"type": "bridge", "ipam": {"type": "pyruntime-bridge", ...}} makes the
reference bridge run us for addresses; we answer with ips/routes/dns only.
"""

from __future__ import annotations

from pyruntime.cni.errors import CHECK_FAILED, CniError
from pyruntime.cni.request import Request, check_network_name
from pyruntime.hostnet.ipam_store import Store
from pyruntime.plugins.bridge import ipam
from pyruntime.plugins.bridge.config import parse_ipam_conf, parse_requested_ips


def run(req: Request, conf: dict):
    name = check_network_name(conf)
    ipam_conf = parse_ipam_conf(conf["ipam"], name)
    store = Store(ipam_conf.data_dir, name)
    if req.command == "ADD":
        ipam.check_builtin(ipam_conf)
        runtime = conf.get("runtimeConfig") or {}
        wanted = parse_requested_ips(conf, runtime if isinstance(runtime, dict) else {}, req.args)
        allocated = store.allocate(req.container_id, req.ifname, ipam_conf.range_sets, wanted)
        return ipam.builtin_result(ipam_conf, allocated).to_json(conf["cniVersion"])
    if req.command == "DEL":
        store.release(req.container_id, req.ifname)
        return None
    if req.command == "CHECK":
        if not store.find(req.container_id, req.ifname):
            raise CniError(CHECK_FAILED, "no IPAM lease for this attachment",
                           f"{req.container_id}/{req.ifname} in {store.dir}")
        return None
    if req.command == "GC":
        from pyruntime.plugins.bridge.steps import valid_attachments
        store.gc(valid_attachments(conf))
        return None
    # STATUS
    if not store.writable():
        from pyruntime.cni.errors import NOT_AVAILABLE
        raise CniError(NOT_AVAILABLE, "IPAM data directory is not writable", store.dir)
    return None
