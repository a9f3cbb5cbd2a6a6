"""The network hook: an OCI hook that puts a container on a CNI network.

    pyruntime-network-hook [options] up      createRuntime (or prestart): name the netns, ADD
    pyruntime-network-hook [options] down    poststop: DEL, remove the netns name and files

The container state arrives on stdin (id, pid, bundle, annotations). The mode comes from the
io.pyruntime.network annotation (else --network, else bridge); only bridge mode has work to
do: host, none and container:<id> are expressed in the config itself (no netns, an unconfigured
netns, a netns joined by path). Exit status 0 on success; 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import json
import os
import sys

from pyruntime.errors import RuntimeUserError

IFNAME = "eth0"


class HookError(RuntimeUserError):
    pass


USAGE = ("usage: pyruntime-network-hook [--network MODE] [--config-dir DIR]... "
         "[--cni-path DIR:DIR] [--cache-dir DIR] [--plugin-timeout S] up|down")
OPTIONS = {"--network": "network", "--config-dir": "config_dir", "--cni-path": "cni_path",
           "--cache-dir": "cache_dir", "--plugin-timeout": "plugin_timeout"}


class Options:
    """The hook's command line. Parsed by hand: argparse alone would add a tenth of the hook's
    start-up, paid twice per container."""

    def __init__(self) -> None:
        self.action = ""
        self.network: str | None = None
        self.config_dir: list[str] = []
        self.cni_path: str | None = None
        self.cache_dir: str | None = None
        self.plugin_timeout: float | None = None


def parse_args(argv: list[str]) -> Options:
    opts = Options()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            raise HookError(USAGE)
        if arg in ("up", "down") and not opts.action:
            opts.action = arg
            continue
        name, eq, value = arg.partition("=")
        if name not in OPTIONS:
            raise HookError(f"unknown argument {arg!r}\n{USAGE}")
        if not eq:
            if not args:
                raise HookError(f"{name} needs a value")
            value = args.pop(0)
        if name == "--config-dir":
            opts.config_dir.append(value)
        elif name == "--plugin-timeout":
            try:
                opts.plugin_timeout = float(value)
            except ValueError:
                raise HookError(f"--plugin-timeout: not a number: {value!r}") from None
        else:
            setattr(opts, OPTIONS[name], value)
    if not opts.action:
        raise HookError(USAGE)
    return opts


def default_cni_path() -> list[str]:
    """The CNI directories (/opt/cni/bin, ...), then the directory of this installation's own
    pyruntime-bridge: a console script beside this hook (see network/locate.py), so a
    pip-installed pyruntime networks containers without a link in /opt/cni/bin. Only that
    one directory is added, and last, so what is in the CNI directories wins for every type
    and a directory such as /usr/local/bin is searched only when it holds our plugin."""
    from pyruntime.cni.runtime import DEFAULT_CNI_PATH
    from pyruntime.network import locate

    path = list(DEFAULT_CNI_PATH)
    own = locate.find_own(locate.PLUGIN)
    if own is not None and os.path.dirname(own) not in path:
        path.append(os.path.dirname(own))
    return path


class NetworkHook:
    def __init__(self, opts: Options, state: dict):
        from pyruntime.cni.runtime import DEFAULT_CACHE_DIR, DEFAULT_PLUGIN_TIMEOUT, CNIRuntime
        from pyruntime.network import modes
        from pyruntime.network.config import DEFAULT_CONFIG_DIRS

        self.state = state
        self.id = state.get("id") or ""
        if not self.id or "/" in self.id or self.id in (".", ".."):
            raise HookError(f"the container state has no usable id: {self.id!r}")
        annotations = state.get("annotations") or {}
        self.mode = modes.parse_mode(annotations.get(modes.NETWORK_ANNOTATION) or opts.network)
        self.publish = modes.parse_publish_list(annotations.get(modes.PUBLISH_ANNOTATION))
        self.config_dirs = opts.config_dir or list(DEFAULT_CONFIG_DIRS)
        cni_path = opts.cni_path.split(":") if opts.cni_path else default_cni_path()
        self.cni = CNIRuntime([d for d in cni_path if d], opts.cache_dir or DEFAULT_CACHE_DIR,
                              opts.plugin_timeout or DEFAULT_PLUGIN_TIMEOUT)

    # -- up --------------------------------------------------------------------------------
    def up(self) -> None:
        from pyruntime.network import netns
        from pyruntime.network import config as netconfig, modes

        if self.mode.kind not in modes.HOOKED:
            return
        pid = int(self.state.get("pid") or 0)
        if pid <= 0:
            raise HookError("the container state has no pid: is this hook at createRuntime/prestart?")
        if _same_netns(pid):
            raise HookError("the container shares the host's network namespace: add a "
                            "\"network\" namespace to linux.namespaces, or use --network host "
                            "without this hook")
        if self.mode.kind == "slirp4netns":
            self._slirp_up(pid)
            return
        if _rootless():
            self._helper_up(pid)
            return
        conflist = netconfig.find_network(self.mode.target, self.config_dirs)
        try:
            path = netns.pin(pid, self.id)
        except netns.NetnsError as e:
            raise HookError(str(e)) from None
        try:
            self._record(conflist)
            result = self.cni.add(conflist, self.id, path, IFNAME,
                                  capability_args={"portMappings": self.publish})
            self._install_files(pid, result)
        except BaseException:
            try:
                self._teardown(conflist, path)
            except RuntimeUserError as e:  # report it, but the first failure is the story
                print(f"pyruntime-network-hook up: while undoing: {e}", file=sys.stderr)
            raise

    def _slirp_up(self, pid: int) -> None:
        from pyruntime.network import files, slirp

        directory = files.make_container_dir(self.id)
        try:
            slirp.start(directory, pid, self.publish)
        except BaseException:
            slirp.stop(directory)
            files.remove_files(self.id)
            raise

    def _helper_up(self, pid: int) -> None:
        """Rootless bridge: pyruntime-netd attaches the namespace; a holder process keeps the
        attachment (its connection) until `down` stops it."""
        from pyruntime.network import files, netd

        directory = files.make_container_dir(self.id)
        conn, _ = netd.attach(self.id, pid, self.mode.target)
        holder = netd.hold(conn)
        _write_holder(directory, holder)

    def _record(self, conflist: dict) -> None:
        """What `down` needs whatever happens to the annotations or the config dirs later."""
        from pyruntime.network import files

        directory = files.make_container_dir(self.id)
        with open(os.path.join(directory, "attachment.json"), "w") as f:
            json.dump({"network": conflist["name"], "ifname": IFNAME, "config": conflist}, f)

    def _install_files(self, pid: int, result: dict) -> None:
        from pyruntime.network import files

        config = _bundle_config(self.state.get("bundle") or "")
        hostname = config.get("hostname") or self.id[:12]
        rootfs = self.state.get("rootfs") or _rootfs_of(self.state.get("bundle") or "", config)
        written = files.write_files(self.id, hostname, result)
        try:
            files.mount_into_container(pid, rootfs, written)
        except OSError as e:
            raise HookError(f"cannot install /etc/hosts and /etc/resolv.conf: {e}") from None

    # -- down ------------------------------------------------------------------------------
    def down(self) -> None:
        from pyruntime.network import netns
        from pyruntime.network import config as netconfig, files

        if self.mode.kind == "slirp4netns":
            from pyruntime.network import slirp

            slirp.stop(files.container_dir(self.id))
            files.remove_files(self.id)
            return
        if _rootless():
            _stop_holder(files.container_dir(self.id))
            files.remove_files(self.id)
            return
        record = files.read_json(os.path.join(files.container_dir(self.id), "attachment.json"))
        if record is None and self.mode.kind != "bridge":
            return
        if record is not None:
            conflist = record.get("config")
        else:
            try:
                conflist = netconfig.find_network(self.mode.target, self.config_dirs)
            except RuntimeUserError:
                conflist = None  # the cache may still know it
        name = (record or {}).get("network") or (conflist or {}).get("name") or self.mode.target
        self._teardown(conflist, netns.path_of(self.id), name)

    def _teardown(self, conflist: dict | None, netns_path: str, name: str | None = None) -> None:
        """DEL (cache first), then the netns name and the files. Every step runs; the first
        failure is raised at the end."""
        from pyruntime.network import netns
        from pyruntime.network import files

        failure = None
        try:
            self.cni.delete(conflist, self.id, netns_path, IFNAME,
                            capability_args={"portMappings": self.publish},
                            network=name or (conflist or {}).get("name"))
        except RuntimeUserError as e:
            failure = e
        netns.unpin(self.id)
        files.remove_files(self.id)
        if failure is not None:
            raise failure


HOLDER_RECORD = "netd-holder.json"


def _rootless() -> bool:
    """No root of the host's here: a bridge attachment is pyruntime-netd's to make."""
    from pyruntime.rootless import is_rootless

    return is_rootless()


def _write_holder(directory: str, pid: int) -> None:
    from pyruntime.state import process_start_time

    with open(os.path.join(directory, HOLDER_RECORD), "w") as f:
        json.dump({"pid": pid, "start_time": process_start_time(pid)}, f)


def _stop_holder(directory: str) -> None:
    """End the connection that holds a rootless attachment: pyruntime-netd then detaches it."""
    import signal

    from pyruntime.network import files
    from pyruntime.state import process_start_time

    record = files.read_json(os.path.join(directory, HOLDER_RECORD)) or {}
    pid = record.get("pid")
    if isinstance(pid, int) and pid > 0 and process_start_time(pid) == record.get("start_time"):
        os.kill(pid, signal.SIGKILL)


def _same_netns(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    except FileNotFoundError:
        raise HookError(f"container process {pid} is gone") from None


def _bundle_config(bundle: str) -> dict:
    from pyruntime.network.files import read_json

    config = read_json(os.path.join(bundle, "config.json"))
    return config if isinstance(config, dict) else {}


def _rootfs_of(bundle: str, config: dict) -> str:
    root = (config.get("root") or {}).get("path") or "rootfs"
    return root if os.path.isabs(root) else os.path.join(bundle, root)


def read_state(stream) -> dict:
    from pyruntime import jsondoc

    try:
        state = jsondoc.loads(jsondoc.read_limited(stream))
    except jsondoc.JsonDocError as e:
        raise HookError(f"the container state on stdin is not JSON: {e}") from None
    if not isinstance(state, dict):
        raise HookError("the container state on stdin is not a JSON object")
    return state


def main(argv: list[str] | None = None) -> int:
    action = ""
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
        action = f" {opts.action}"
        hook = NetworkHook(opts, read_state(getattr(sys.stdin, "buffer", sys.stdin)))  # bytes: UTF-8 is checked
        hook.up() if opts.action == "up" else hook.down()
    except (RuntimeUserError, OSError) as e:
        print(f"pyruntime-network-hook{action}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
