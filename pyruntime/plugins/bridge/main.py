"""The pyruntime-bridge CNI plugin's entry point: reads the call, runs the ADD / DEL / CHECK /
GC / STATUS step (steps.py), answers in the protocol.

The executable is installed as `pyruntime-bridge` in a CNI_PATH directory; network configs
name it with `"type": "pyruntime-bridge"`. When another plugin names it as its `ipam.type`,
it acts as a host-local IPAM plugin instead (ipam_plugin.py). This is the boundary where the
host helpers' errors become CNI errors.
"""

from __future__ import annotations

import json
import os
import sys

from pyruntime.cni import errors as cnierr, version as cniver
from pyruntime.cni.errors import INCOMPATIBLE_VERSION, INTERNAL, INVALID_CONFIG, IO_FAILURE, CniError
from pyruntime.cni.request import Request, parse_config, parse_env, read_stdin
from pyruntime.hostnet import errors as hosterr

PLUGIN_TYPE = "pyruntime-bridge"

# What each kind of host failure is in the protocol.
HOST_ERROR_CODES = {
    hosterr.CONFIG: cnierr.INVALID_CONFIG, hosterr.ENVIRONMENT: cnierr.INVALID_ENV,
    hosterr.IO: cnierr.IO_FAILURE, hosterr.PORT_TAKEN: cnierr.PORT_CONFLICT,
    hosterr.EXHAUSTED: cnierr.NO_ADDRESSES, hosterr.BUSY: cnierr.TRY_AGAIN_LATER,
    hosterr.EXISTS: cnierr.INTERNAL,
}


def from_host_error(e: hosterr.HostNetError) -> CniError:
    return CniError(HOST_ERROR_CODES.get(e.kind, INTERNAL), e.msg, e.details)


def our_names() -> set[str]:
    return {PLUGIN_TYPE, os.path.basename(sys.argv[0] or "")}


def main() -> int:
    cni_version = cniver.CURRENT
    try:
        req = parse_env(dict(os.environ))
        raw = read_stdin(sys.stdin.buffer)
        if req.command == "VERSION":
            return _print(version_info(raw))
        conf = parse_config(raw)
        v = conf.get("cniVersion")
        if not isinstance(v, str) or not v:
            raise CniError(INVALID_CONFIG, "cniVersion is missing from the network configuration")
        cni_version = cniver.require_supported(v)
        out = dispatch(req, conf, raw)
        return _print(out) if out is not None else 0
    except CniError as e:
        return _fail(e, cni_version)
    except hosterr.HostNetError as e:
        return _fail(from_host_error(e), cni_version)
    except OSError as e:  # a kernel or file system refusal nothing above turned into a CniError
        where = f": {e.filename}" if e.filename else ""
        return _fail(CniError(IO_FAILURE, "I/O failure", f"{e.strerror or e}{where}"), cni_version)
    except KeyboardInterrupt:
        return _fail(CniError(INTERNAL, "interrupted"), cni_version)
    except Exception as e:  # a bug: still answer in the protocol, never with a traceback
        return _fail(CniError(INTERNAL, "internal error", f"{type(e).__name__}: {e}"), cni_version)


def _fail(err: CniError, cni_version: str) -> int:
    """The spec's error object on stdout, one line for humans on stderr, a non-zero exit."""
    _print(err.to_json(cni_version))
    print(f"pyruntime-bridge: {err}", file=sys.stderr)
    return 1


def _print(obj: dict) -> int:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    return 0


def version_info(raw: bytes) -> dict:
    """VERSION answers whatever its stdin holds: the caller's cniVersion when it is one of ours."""
    from pyruntime import jsondoc
    asked = cniver.CURRENT
    try:
        conf = jsondoc.loads(raw) if raw.strip() else {}
        if isinstance(conf, dict) and conf.get("cniVersion") in cniver.SUPPORTED:
            asked = conf["cniVersion"]
    except jsondoc.JsonDocError:
        pass
    return {"cniVersion": asked, "supportedVersions": list(cniver.SUPPORTED)}


def _require_version(v: str, command: str, minimum: str) -> None:
    if not cniver.at_least(v, minimum):
        raise CniError(INCOMPATIBLE_VERSION, f"{command} needs cniVersion {minimum} or later", f"config is {v}")


def dispatch(req: Request, conf: dict, raw: bytes):
    from pyruntime.plugins.bridge.config import parse_bridge_conf
    v = conf["cniVersion"]
    if req.command == "CHECK":
        _require_version(v, "CHECK", "0.4.0")
    elif req.command in ("GC", "STATUS"):
        _require_version(v, req.command, "1.1.0")
    names = our_names()
    ipam_type = (conf.get("ipam") or {}).get("type") if isinstance(conf.get("ipam"), dict) else None
    if conf.get("type") not in names and ipam_type in names:
        from pyruntime.plugins.bridge import ipam_plugin
        return ipam_plugin.run(req, conf)
    bc = parse_bridge_conf(conf, req.args)
    builtin = bc.ipam is not None and bc.ipam.type in names
    from pyruntime.plugins.bridge import steps
    return {
        "ADD": steps.add, "DEL": steps.delete, "CHECK": steps.check,
        "GC": steps.gc, "STATUS": steps.status,
    }[req.command](req, bc, raw, builtin)


if __name__ == "__main__":
    sys.exit(main())
