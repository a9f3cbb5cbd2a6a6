"""A CNI runtime: runs a network configuration list's plugins the way the CNI specification
asks a container runtime to.

ADD runs the plugins in order, each one receiving the previous one's result as `prevResult`;
the final result and the list it came from are cached on disk. DEL runs the plugins in reverse
order with the cached result as `prevResult`, and still runs them when the cache or the
network namespace is gone, so that addresses, links and rules are released whatever happened.
CHECK runs them in order against the cached result.

Everything here is standard library only: the hooks that use it start in a few tens of ms.
"""

from __future__ import annotations

import json
import os
import subprocess

from pyruntime import jsondoc
from pyruntime.cni import invoke, plugin_name
from pyruntime.cni.errors import DECODE_FAILURE, INVALID_CONFIG, IO_FAILURE, NO_CODE, CniError

DEFAULT_CNI_PATH = ("/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni")
DEFAULT_CACHE_DIR = "/var/lib/pyruntime/cni/results"
DEFAULT_PLUGIN_TIMEOUT = 20.0
# Plugins call iptables, ip, modprobe...: they need a PATH even when the hook got none.
SANE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# -- network configuration lists -------------------------------------------------------------
def parse_conflist(data: dict | str | bytes, source: str = "network configuration") -> dict:
    """Check the shape a runtime relies on: cniVersion, name, a non-empty plugins list, each
    plugin naming its `type`. A single network config (no `plugins`) becomes a one-plugin list."""
    try:
        if isinstance(data, (str, bytes)):
            data = jsondoc.loads(data)
        else:
            jsondoc.check(data)     # a deep list would fail later, in json.dumps for a plugin
    except jsondoc.JsonDocError as e:
        raise CniError(INVALID_CONFIG, f"{source}: {e}") from None
    if not isinstance(data, dict):
        raise CniError(INVALID_CONFIG, f"{source}: expected a JSON object")
    if "plugins" not in data and "type" in data:
        single = dict(data)
        data = {"cniVersion": single.pop("cniVersion", None), "name": single.pop("name", None),
                "plugins": [single]}
    for key in ("cniVersion", "name"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise CniError(INVALID_CONFIG, f"{source}: {key!r} must be a non-empty string")
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise CniError(INVALID_CONFIG, f"{source}: 'plugins' must be a non-empty list")
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise CniError(INVALID_CONFIG, f"{source}: plugins[{index}] needs a 'type'")
        check_plugin_name(plugin["type"], f"{source}: plugins[{index}].type")
        # the plugin runs its IPAM plugin itself, but not every plugin checks the name first
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and "type" in ipam:
            check_plugin_name(ipam["type"], f"{source}: plugins[{index}].ipam.type")
    return data


def check_plugin_name(name, where: str) -> None:
    why = plugin_name.problem(name)
    if why:
        raise CniError(INVALID_CONFIG, f"{where}: {plugin_name.INVALID}: {name!r}", why)


def load_conflist(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return parse_conflist(jsondoc.read_limited(f), path)
    except jsondoc.JsonDocError as e:
        raise CniError(INVALID_CONFIG, f"{path}: {e}") from None
    except OSError as e:
        raise CniError(IO_FAILURE, f"{path}: {e.strerror}") from None


# -- what each plugin receives (pure) --------------------------------------------------------
def plugin_config(conflist: dict, plugin: dict, prev_result: dict | None,
                  capability_args: dict | None) -> dict:
    """The stdin of one plugin: its own config plus the list's name and cniVersion, the
    previous result, and `runtimeConfig` holding only the capabilities it declares."""
    conf = {k: v for k, v in plugin.items() if k not in ("capabilities", "runtimeConfig")}
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist["cniVersion"]
    if "capabilities" in plugin:
        conf["capabilities"] = plugin["capabilities"]
    runtime_config = dict(plugin.get("runtimeConfig") or {})
    for capability, enabled in (plugin.get("capabilities") or {}).items():
        if enabled and capability_args and capability in capability_args:
            runtime_config[capability] = capability_args[capability]
    if runtime_config:
        conf["runtimeConfig"] = runtime_config
    if prev_result is not None:
        conf["prevResult"] = prev_result
    return conf


def plugin_env(command: str, container_id: str, netns: str, ifname: str,
               cni_path: list[str], args: str = "", base: dict | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("PATH", SANE_PATH)
    env.update(CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS=netns,
               CNI_IFNAME=ifname, CNI_ARGS=args, CNI_PATH=os.pathsep.join(cni_path))
    return env


def cache_name(network: str, container_id: str, ifname: str) -> str:
    return f"{network}-{container_id}-{ifname}.json"


def format_plugin_error(plugin: str, command: str, doc: dict) -> str:
    msg = str(doc.get("msg") or "unknown error")
    details = doc.get("details")
    text = f"CNI plugin {plugin} {command} failed: {msg}"
    if details and details != msg:
        text += f" ({details})"
    if doc.get("code"):
        text += f" [code {doc['code']}]"
    return text


# -- execution -------------------------------------------------------------------------------
def find_plugin(plugin_type: str, cni_path: list[str]) -> str:
    """The executable called `plugin_type` in a CNI_PATH directory. Checked here, not only
    when a list is parsed: DEL runs the list cached on disk at ADD time."""
    check_plugin_name(plugin_type, "CNI plugin")
    found = invoke.find(plugin_type, cni_path)
    if found is None:
        raise CniError(IO_FAILURE, f"CNI plugin {plugin_type!r} not found in {os.pathsep.join(cni_path)}",
                       plugin=plugin_type)
    return found


def exec_plugin(path: str, command: str, env: dict[str, str], conf: dict, timeout: float) -> dict | None:
    """Run one plugin; its parsed stdout, or CniError with the plugin's own error message."""
    plugin = os.path.basename(path)
    try:
        outcome = invoke.run(path, env, json.dumps(conf).encode(), timeout, tied_to_caller=True)
    except OSError as e:
        raise CniError(IO_FAILURE, f"CNI plugin {plugin} could not be run: {e.strerror}", plugin=plugin) from None
    except subprocess.TimeoutExpired:
        raise CniError(IO_FAILURE, f"CNI plugin {plugin} {command} timed out after {timeout:g}s",
                       plugin=plugin) from None
    return _answer(plugin, command, outcome)


def _answer(plugin: str, command: str, outcome: invoke.Outcome) -> dict | None:
    doc = outcome.doc
    text = outcome.stdout.decode(errors="replace")
    if outcome.returncode != 0:
        if isinstance(doc, dict) and "msg" in doc:
            raise CniError(int(doc.get("code") or 0), format_plugin_error(plugin, command, doc),
                           plugin=plugin)
        detail = (outcome.stderr.decode(errors="replace").strip() or text
                  or f"exit status {outcome.returncode}")
        raise CniError(NO_CODE, f"CNI plugin {plugin} {command} failed: {detail}", plugin=plugin)
    if text and not isinstance(doc, dict):
        raise CniError(DECODE_FAILURE, f"CNI plugin {plugin} {command} printed something that is "
                       f"not a JSON object: {text[:200]}", plugin=plugin)
    return doc


class CNIRuntime:
    """Runs network configuration lists for one container attachment at a time."""

    def __init__(self, cni_path: list[str] | None = None, cache_dir: str = DEFAULT_CACHE_DIR,
                 timeout: float = DEFAULT_PLUGIN_TIMEOUT, log=None):
        self.cni_path = list(cni_path) if cni_path else list(DEFAULT_CNI_PATH)
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.log = log or (lambda message: None)

    # -- cache ---------------------------------------------------------------------------
    def cache_path(self, network: str, container_id: str, ifname: str) -> str:
        return os.path.join(self.cache_dir, cache_name(network, container_id, ifname))

    def cached(self, network: str, container_id: str, ifname: str) -> dict | None:
        """{"config": conflist, "result": result, "netns": ..., ...} as written by add()."""
        try:
            with open(self.cache_path(network, container_id, ifname), "rb") as f:
                doc = jsondoc.loads(jsondoc.read_limited(f))
        except (OSError, jsondoc.JsonDocError):
            return None
        return doc if isinstance(doc, dict) else None

    def _write_cache(self, network: str, container_id: str, ifname: str, doc: dict) -> None:
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        path = self.cache_path(network, container_id, ifname)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, path)

    def _remove_cache(self, network: str, container_id: str, ifname: str) -> None:
        try:
            os.unlink(self.cache_path(network, container_id, ifname))
        except FileNotFoundError:
            pass

    # -- commands ------------------------------------------------------------------------
    def _invoke(self, command: str, conflist: dict, plugin: dict, container_id: str, netns: str,
                ifname: str, args: str, prev_result: dict | None, capability_args: dict | None):
        path = find_plugin(plugin["type"], self.cni_path)
        env = plugin_env(command, container_id, netns, ifname, self.cni_path, args)
        conf = plugin_config(conflist, plugin, prev_result, capability_args)
        self.log(f"{command} {conflist['name']}: {plugin['type']}")
        return exec_plugin(path, command, env, conf, self.timeout)

    def add(self, conflist: dict, container_id: str, netns: str, ifname: str = "eth0",
            args: str = "", capability_args: dict | None = None) -> dict:
        """ADD every plugin in order; on any failure, DEL the whole list (plugins must accept
        a DEL for what they never made) so a failed ADD leaves nothing, then raise."""
        result: dict | None = None
        try:
            for plugin in conflist["plugins"]:
                result = self._invoke("ADD", conflist, plugin, container_id, netns, ifname,
                                      args, result, capability_args)
            if result is None:
                raise CniError(NO_CODE, f"network {conflist['name']}: the last plugin returned no result")
            self._write_cache(conflist["name"], container_id, ifname, {
                "kind": "cniCacheV1", "containerId": container_id, "ifName": ifname,
                "networkName": conflist["name"], "netns": netns, "cniArgs": args,
                "capabilityArgs": capability_args or {}, "config": conflist, "result": result})
            return result
        except BaseException:
            self._rollback(conflist, container_id, netns, ifname, args, result, capability_args)
            raise

    def _rollback(self, conflist, container_id, netns, ifname, args, result, capability_args):
        try:
            self.delete(conflist, container_id, netns, ifname, args, capability_args,
                        prev_result=result)
        except CniError as e:
            self.log(f"rollback of network {conflist['name']}: {e}")

    def delete(self, conflist: dict | None, container_id: str, netns: str, ifname: str = "eth0",
               args: str = "", capability_args: dict | None = None, *,
               network: str | None = None, prev_result: dict | None = None) -> None:
        """DEL in reverse order. The cached list and result win over what the caller passes
        (the list on disk may have changed since ADD); every plugin runs even if one fails,
        and the first failure is raised at the end. The cache goes once all succeeded."""
        name = network or (conflist or {}).get("name")
        if name is None:
            raise CniError(NO_CODE, "DEL needs a network configuration or a network name")
        cache = self.cached(name, container_id, ifname)
        if cache is not None:
            conflist = cache.get("config") or conflist
            prev_result = cache.get("result", prev_result)
            if capability_args is None:
                capability_args = cache.get("capabilityArgs")
            args = args or cache.get("cniArgs", "")
        if conflist is None:
            self.log(f"DEL {name}: no cached configuration, nothing to run")
            return
        if netns and not os.path.exists(netns):
            netns = ""  # the specification allows an empty CNI_NETNS on DEL
        first_error: CniError | None = None
        for plugin in reversed(conflist["plugins"]):
            try:
                self._invoke("DEL", conflist, plugin, container_id, netns, ifname, args,
                             prev_result, capability_args)
            except CniError as e:
                self.log(str(e))
                first_error = first_error or e
        if first_error is not None:
            raise first_error
        self._remove_cache(name, container_id, ifname)

    def check(self, conflist: dict, container_id: str, netns: str, ifname: str = "eth0",
              args: str = "") -> None:
        cache = self.cached(conflist["name"], container_id, ifname)
        if cache is None:
            raise CniError(NO_CODE, f"CHECK {conflist['name']}: no cached result for {container_id}/{ifname}")
        for plugin in conflist["plugins"]:
            self._invoke("CHECK", conflist, plugin, container_id, netns, ifname, args,
                         cache.get("result"), cache.get("capabilityArgs"))
