"""`pyruntime spec --network MODE --publish P`: turn a config into a networked one, as a pure
function over the config dict.

  bridge[:name]   own network namespace; the network hook at createRuntime (ADD) and poststop
                  (DEL); annotations tell the hook the network and the published ports
  host            no network namespace: the container uses the host's stack; the host's
                  /etc/hosts and /etc/resolv.conf are bound read-only
  slirp4netns     own network namespace, wired by slirp4netns, which the hook starts at
                  createRuntime and stops at poststop: what a rootless user can have alone
  none            own network namespace with loopback only; no hook
  container:<id>  joins the namespace named /run/netns/<id>, which the network hook made for
                  that (bridge) container, and binds that container's /etc/hosts and
                  /etc/resolv.conf (read-only); no hook
Applying it again replaces whatever an earlier application added.
"""

from __future__ import annotations

import copy
import os

from pyruntime.errors import RuntimeUserError
from pyruntime.network import modes
from pyruntime.network.netns import NETNS_DIR
from pyruntime.network.files import FILES_DIR

HOOK_MARKER = "PYRUNTIME_NETWORK_HOOK=1"
HOOK_TIMEOUT = 60
HOST_FILES = ("/etc/hosts", "/etc/resolv.conf")
HOOK_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def default_hook_path() -> str:
    """The console script of this installation (beside the running pyruntime, see
    network/locate.py), else one on PATH, else this checkout's hooks/ script."""
    import shutil

    from pyruntime.network import locate

    beside = locate.find_own(locate.HOOK)
    if beside is not None:
        return beside
    found = shutil.which(locate.HOOK)
    if found:
        return os.path.abspath(found)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(here, "hooks", "pyruntime-network")


def apply_network(config: dict, mode: str, publish=(), hook_path: str | None = None, *,
                  config_dirs=(), cni_path=(), timeout: int = HOOK_TIMEOUT) -> dict:
    """A copy of `config` set up for network `mode` ("bridge", "bridge:<name>", "host",
    "none", "container:<id>") with `publish` ("[hostIP:]hostPort:containerPort[/proto]"
    strings). `hook_path` must be absolute; `config_dirs`/`cni_path` become hook options."""
    network = modes.parse_mode(mode)
    mappings = [modes.parse_publish(p) for p in publish]
    if mappings and network.kind not in modes.HOOKED:
        raise RuntimeUserError(f"--publish needs a bridge or slirp4netns network, not {network}")
    config = copy.deepcopy(config)
    _forget_previous(config)
    annotations = config.setdefault("annotations", {})
    annotations[modes.NETWORK_ANNOTATION] = str(network)
    if network.kind == "host":
        _set_netns(config, None, present=False)
        _bind_files(config, "/etc")
    elif network.kind == "none":
        _set_netns(config, None, present=True)
    elif network.kind == "container":
        _set_netns(config, os.path.join(NETNS_DIR, network.target), present=True)
        _bind_files(config, os.path.join(FILES_DIR, network.target))
    else:
        _set_netns(config, None, present=True)
        if mappings:
            annotations[modes.PUBLISH_ANNOTATION] = ",".join(modes.format_publish(m) for m in mappings)
        path = hook_path or default_hook_path()
        if not os.path.isabs(path):
            raise RuntimeUserError(f"the network hook path must be absolute: {path!r}")
        options = [f"--config-dir={d}" for d in config_dirs]
        if cni_path:
            options.append("--cni-path=" + ":".join(cni_path))
        hooks = config.setdefault("hooks", {})
        for phase, action in (("createRuntime", "up"), ("poststop", "down")):
            hooks.setdefault(phase, []).append({
                "path": path, "args": [os.path.basename(path), *options, action],
                "env": [HOOK_PATH_ENV, HOOK_MARKER], "timeout": timeout})
    return config


def _forget_previous(config: dict) -> None:
    annotations = config.get("annotations") or {}
    for key in (modes.NETWORK_ANNOTATION, modes.PUBLISH_ANNOTATION):
        annotations.pop(key, None)
    hooks = config.get("hooks") or {}
    for phase in list(hooks):
        hooks[phase] = [h for h in hooks[phase] if HOOK_MARKER not in (h.get("env") or [])]
        if not hooks[phase]:
            del hooks[phase]
    if "hooks" in config and not config["hooks"]:
        del config["hooks"]
    config["mounts"] = [m for m in config.get("mounts") or [] if not _is_ours(m)]


def _is_ours(mount: dict) -> bool:
    source = mount.get("source") or ""
    return (mount.get("type") == "bind" and mount.get("destination") in HOST_FILES
            and (source in HOST_FILES or source.startswith(FILES_DIR + "/")))


def _set_netns(config: dict, path: str | None, present: bool) -> None:
    namespaces = config.setdefault("linux", {}).setdefault("namespaces", [])
    namespaces[:] = [ns for ns in namespaces if ns.get("type") != "network"]
    if present:
        namespaces.append({"type": "network", "path": path} if path else {"type": "network"})


def _bind_files(config: dict, directory: str) -> None:
    """/etc/hosts and /etc/resolv.conf from `directory` (the host's /etc, or the files the
    network hook wrote for another container), read-only."""
    mounts = config.setdefault("mounts", [])
    for path in HOST_FILES:
        mounts.append({"destination": path, "type": "bind",
                       "source": os.path.join(directory, os.path.basename(path)),
                       "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]})
