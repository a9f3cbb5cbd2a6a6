"""The runtime side of CNI: run a network configuration list's plugins for one attachment.

ADD runs the plugins in order, each getting the previous one's result as `prevResult`; DEL runs
them in reverse with the ADD result; CHECK runs them in order with it. Capabilities a plugin
declares are filled from the caller's capability arguments into its `runtimeConfig`. Any CNI
plugin works here (ours, the reference ones), found by `type` in the plugin path.
"""

from __future__ import annotations

import json
import os
import subprocess

from pyruntime.cni import version as cniver
from pyruntime.cni.errors import DECODE_FAILURE, INTERNAL, INVALID_CONFIG, IO_FAILURE, CniError
from pyruntime.cni.request import check_network_name


def load_conflist(data: dict | str | bytes) -> dict:
    """Validate a conflist (or a single plugin config, which becomes a list of one)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise CniError(DECODE_FAILURE, "failed to decode network configuration list", str(e)) from None
    if not isinstance(data, dict):
        raise CniError(DECODE_FAILURE, "failed to decode network configuration list", "expected an object")
    if "plugins" not in data and "type" in data:
        single = {k: v for k, v in data.items() if k not in ("cniVersion", "name")}
        data = {"cniVersion": data.get("cniVersion"), "name": data.get("name"), "plugins": [single]}
    check_network_name(data)
    cniver.require_supported(data.get("cniVersion") or "")
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins or \
            not all(isinstance(p, dict) and isinstance(p.get("type"), str) and p["type"] for p in plugins):
        raise CniError(INVALID_CONFIG, "invalid network configuration list",
                       "'plugins' must be a non-empty list of objects with a 'type'")
    return data


def plugin_config(conflist: dict, plugin: dict, prev_result: dict | None,
                  capability_args: dict | None = None) -> dict:
    """What one plugin reads on stdin: its own keys plus the list's name and version, the
    runtimeConfig for the capabilities it declares, and the previous result."""
    conf = {k: v for k, v in plugin.items() if k != "capabilities"}
    conf["cniVersion"] = conflist["cniVersion"]
    conf["name"] = conflist["name"]
    wanted = {cap for cap, on in (plugin.get("capabilities") or {}).items() if on}
    runtime = {k: v for k, v in (capability_args or {}).items() if k in wanted}
    if runtime:
        conf["runtimeConfig"] = runtime
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return conf


def find_plugin(plugin_type: str, path: list[str]) -> str:
    for d in path:
        exe = os.path.join(d, plugin_type)
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    raise CniError(INVALID_CONFIG, f"CNI plugin {plugin_type!r} not found", f"searched {':'.join(path) or '(empty path)'}")


def exec_plugin(command: str, conf: dict, container_id: str, netns: str, ifname: str,
                path: list[str], args: str = "") -> dict | None:
    exe = find_plugin(conf["type"], path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS=netns, CNI_IFNAME=ifname,
               CNI_ARGS=args, CNI_PATH=":".join(path))
    try:
        proc = subprocess.run([exe], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CniError(IO_FAILURE, f"cannot run CNI plugin {conf['type']}", str(e)) from None
    out = proc.stdout.strip()
    try:
        data = json.loads(out) if out else None
    except ValueError:
        raise CniError(INTERNAL, f"CNI plugin {conf['type']} wrote invalid JSON",
                       out[:500].decode(errors="replace")) from None
    if proc.returncode != 0:
        if isinstance(data, dict) and "code" in data:
            raise CniError(int(data["code"]), f"{conf['type']}: {data.get('msg', 'failed')}", data.get("details", ""))
        raise CniError(INTERNAL, f"CNI plugin {conf['type']} failed", proc.stderr.decode(errors="replace")[:500])
    return data


def add(conflist: dict, container_id: str, netns: str, ifname: str, path: list[str],
        capability_args: dict | None = None, args: str = "") -> dict | None:
    """ADD every plugin in order; on a failure, DEL the ones already added, then raise."""
    result = None
    done: list[dict] = []
    try:
        for plugin in conflist["plugins"]:
            conf = plugin_config(conflist, plugin, result, capability_args)
            done.append(plugin)
            result = exec_plugin("ADD", conf, container_id, netns, ifname, path, args) or result
    except CniError:
        try:
            delete({**conflist, "plugins": done}, container_id, netns, ifname, path, result, capability_args, args)
        except CniError:
            pass
        raise
    return result


def delete(conflist: dict, container_id: str, netns: str, ifname: str, path: list[str],
           prev_result: dict | None = None, capability_args: dict | None = None, args: str = "") -> None:
    """DEL every plugin in reverse order; all run, the first failure is raised."""
    first = None
    for plugin in reversed(conflist["plugins"]):
        conf = plugin_config(conflist, plugin, prev_result, capability_args)
        try:
            exec_plugin("DEL", conf, container_id, netns, ifname, path, args)
        except CniError as e:
            first = first or e
    if first is not None:
        raise first


def check(conflist: dict, container_id: str, netns: str, ifname: str, path: list[str],
          prev_result: dict, capability_args: dict | None = None, args: str = "") -> None:
    if not cniver.at_least(conflist["cniVersion"], "0.4.0") or conflist.get("disableCheck"):
        return
    for plugin in conflist["plugins"]:
        conf = plugin_config(conflist, plugin, prev_result, capability_args)
        exec_plugin("CHECK", conf, container_id, netns, ifname, path, args)
