"""A throwaway Kubernetes node runtime: a private containerd with the CRI plugin, runtime
handlers for runc and pyruntime, a pyruntime-bridge + portmap pod network and local images.

Everything lives under one base directory (containerd's root and state, the runtimes' state,
the CNI configuration and IPAM leases, pod logs); what cannot (the bridge, portmap's chains,
the pods' cgroups) carries the test's name and is removed by `teardown`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

from tests.e2e.clients import RUNC, CniNetwork, cgroup_dirs_under, remove_cgroup_tree, run_command, stop_daemon
from tests.e2e.cri import messages
from tests.e2e.cri.client import CriClient, CriError
from tests.support import BUSYBOX_ROOTFS

HANDLERS = ("runc", "pyruntime")
IMAGE = "localhost/busybox:cri"
PAUSE_IMAGE = "localhost/pause:cri"
K8S_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin works in
# The sandbox's process: sleeps until told to stop, and as PID 1 of a shared PID namespace
# reaps whatever is re-parented to it (sh reaps its children while it waits).
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"


def runtime_binaries() -> dict[str, str]:
    """The binary each handler's shim runs: runc, and this install's pyruntime (the venv's
    console script beside the interpreter running the tests)."""
    pyruntime = Path(sys.executable).parent / "pyruntime"
    if not pyruntime.exists():
        pyruntime = Path(shutil.which("pyruntime") or "pyruntime")
    return {"runc": RUNC, "pyruntime": str(pyruntime)}


def cri_missing() -> str | None:
    """None when a CRI node can be set up here, else the reason."""
    from tests.e2e.cri.client import grpc_available

    if not shutil.which("containerd") or not shutil.which("ctr"):
        return "containerd/ctr not installed"
    if not BUSYBOX_ROOTFS.is_dir():
        return "no busybox rootfs: run bundles/build-rootfs"
    for plugin in ("portmap", "loopback"):
        if not (Path("/usr/lib/cni") / plugin).exists():
            return f"reference CNI plugin {plugin} missing (package containernetworking-plugins)"
    return grpc_available()


# -- images ------------------------------------------------------------------------------------
def write_docker_archive(path: Path, rootfs: Path, tag: str, entrypoint: list[str],
                         cmd: list[str] | None = None) -> None:
    """A one-layer image of `rootfs` in the docker-archive format `ctr images import` reads:
    the layer tar, the image config naming the layer's digest, and manifest.json."""
    work = path.parent / f"{path.name}.d"
    work.mkdir()
    layer = work / "layer.tar"
    subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(layer), "."], check=True)
    diff_id = "sha256:" + _sha256(layer)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Entrypoint": entrypoint, "Cmd": cmd or [], "WorkingDir": "/",
                         "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    (work / config_name).write_bytes(config_bytes)
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]
    (work / "manifest.json").write_text(json.dumps(manifest))
    with tarfile.open(path, "w") as archive:
        for name in ("manifest.json", config_name, "layer.tar"):
            archive.add(work / name, arcname=name)
    shutil.rmtree(work)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the pod network ---------------------------------------------------------------------------
class PodNetwork(CniNetwork):
    """pyruntime-bridge for the pods' addresses and routes, chained with the reference portmap
    plugin for hostPort (containerd hands portMappings to the plugin that declares the
    capability); leases kept under the node's own directory."""

    def __init__(self, conf_dir: Path, lease_dir: Path):
        super().__init__(conf_dir, "pyruntime-bridge")
        self.lease_dir = lease_dir
        conflist = json.loads(self.path.read_text())
        bridge = conflist["plugins"][0]
        bridge.pop("capabilities", None)
        bridge["ipam"]["dataDir"] = str(lease_dir)
        conflist["cniVersion"] = "1.0.0"
        conflist["plugins"].append({"type": "portmap", "capabilities": {"portMappings": True},
                                    "snat": True})
        self.conflist = conflist
        self.path.write_text(json.dumps(conflist, indent=1))

    def leases(self) -> list[str]:
        """Addresses still leased (IPAM files other than its bookkeeping)."""
        d = self.lease_dir / self.name
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.name[:1].isdigit() or ":" in p.name)


# -- the daemon --------------------------------------------------------------------------------
class CriNode:
    def __init__(self, base: Path, cgroup_parent: str | None = None):
        self.base = base
        self.socket = base / "containerd.sock"
        self.cgroup_parent = cgroup_parent or f"/pyruntime-e2e-cri-{uuid.uuid4().hex[:8]}"
        self.binaries = runtime_binaries()
        self.runtime_roots = {h: base / "runtime-root" / h for h in HANDLERS}
        self.log_dir = base / "pod-logs"
        self.cni_bin = base / "cni-bin"
        self.cni_conf = base / "cni-conf"
        for d in (self.cni_bin, self.cni_conf, self.log_dir):
            d.mkdir(parents=True)
        self._link_plugins()
        self.network = PodNetwork(self.cni_conf, base / "cni-leases")
        self.config = base / "config.toml"
        self.config.write_text(self.config_text())
        self.proc: subprocess.Popen | None = None
        self.client: CriClient | None = None

    def _link_plugins(self) -> None:
        bridge = Path(self.binaries["pyruntime"]).parent / "pyruntime-bridge"
        if not bridge.exists():
            bridge = Path(shutil.which("pyruntime-bridge") or "/opt/cni/bin/pyruntime-bridge")
        (self.cni_bin / "pyruntime-bridge").symlink_to(bridge)
        for plugin in ("portmap", "loopback"):
            (self.cni_bin / plugin).symlink_to(Path("/usr/lib/cni") / plugin)

    def config_text(self) -> str:
        """containerd's config.toml: the CRI plugin with one runtime handler per runtime (the
        runc v2 shim, its BinaryName pointing at the runtime), cgroupfs, local images only."""
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        disabled = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
        lines = [
            "version = 2",
            f'root = "{self.base / "root"}"',
            f'state = "{self.base / "state"}"',
            "disabled_plugins = [" + ", ".join(f'"{p}"' for p in disabled) + "]",
            f'[grpc]\n  address = "{self.socket}"',
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"',
            '[debug]\n  address = ""',
            '[metrics]\n  address = ""',
            f"[{cri}]",
            f'  sandbox_image = "{PAUSE_IMAGE}"',
            '  stream_server_address = "127.0.0.1"',
            '  stream_server_port = "0"',
            # root on this kind of host may lack CAP_SYS_RESOURCE: never ask for a lower score
            "  restrict_oom_score_adj = true",
            "  systemd_cgroup = false",
            "  netns_mounts_under_state_dir = true",
            f"[{cri}.containerd]",
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
        ]
        for handler in HANDLERS:
            lines += [
                f"[{cri}.containerd.runtimes.{handler}]",
                '  runtime_type = "io.containerd.runc.v2"',
                f"[{cri}.containerd.runtimes.{handler}.options]",
                f'  BinaryName = "{self.binaries[handler]}"',
                f'  Root = "{self.runtime_roots[handler]}"',
                "  SystemdCgroup = false",
            ]
        lines += [
            f"[{cri}.cni]",
            f'  bin_dir = "{self.cni_bin}"',
            f'  conf_dir = "{self.cni_conf}"',
            "  max_conf_num = 1",
        ]
        return "\n".join(lines) + "\n"

    # -- life ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.log = open(self.base / "containerd.log", "wb")
        self.proc = subprocess.Popen(["containerd", "--config", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd=self.base)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            self._check_alive(deadline)
            time.sleep(0.05)
        self.client = CriClient(str(self.socket))
        while True:
            try:
                self.client.version()
                break
            except CriError:  # the socket is there before the CRI service is
                self._check_alive(deadline)
                time.sleep(0.1)
        self._import_images()
        self._warm_up()

    def _warm_up(self) -> None:
        """One pod with a hostPort, run and removed: what the network keeps for all pods (the
        bridge, portmap's shared chains) exists from here on, as on a node that has run pods."""
        from tests.support import free_port

        pod = Pod(self, "runc", "warm-up", port_mappings=[{"container_port": 80,
                                                            "host_port": free_port()}])
        try:
            pod.container("c", ["true"])
        finally:
            pod.remove()
            remove_cgroup_tree(pod.config["linux"]["cgroup_parent"])

    def _check_alive(self, deadline: float) -> None:
        if time.monotonic() > deadline or self.proc.poll() is not None:
            raise RuntimeError("containerd with the CRI plugin did not start: "
                               + (self.base / "containerd.log").read_text()[-3000:])

    def ctr(self, *args: str, **kwargs):
        return run_command(["ctr", "-a", str(self.socket), "-n", K8S_NAMESPACE, *args], **kwargs)

    def _import_images(self) -> None:
        images = self.base / "images"
        images.mkdir()
        for tag, entrypoint in ((IMAGE, ["/bin/sh"]), (PAUSE_IMAGE, ["/bin/sh", "-c", PAUSE_SCRIPT])):
            archive = images / (tag.rsplit("/", 1)[1].replace(":", "-") + ".tar")
            write_docker_archive(archive, BUSYBOX_ROOTFS, tag, entrypoint)
            r = self.ctr("images", "import", "--snapshotter", "overlayfs", str(archive))
            assert r.rc == 0, str(r)
        deadline = time.monotonic() + 20
        while not all(self.client.image_status(i) for i in (IMAGE, PAUSE_IMAGE)):
            assert time.monotonic() < deadline, "the CRI plugin never saw the imported images"
            time.sleep(0.1)
        shutil.rmtree(images)

    def remove_all_pods(self) -> None:
        """What the kubelet does when a node is drained: stop and remove every sandbox (which
        takes its containers with it)."""
        for pod in self.client.list_pod_sandboxes():
            self.client.stop_pod_sandbox(pod["id"])
            self.client.remove_pod_sandbox(pod["id"])

    def shim_pids(self) -> list[int]:
        """containerd-shim processes serving this daemon (found by its socket address)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") \
                    and str(self.socket).encode() in cmdline:
                pids.append(int(entry))
        return pids

    def left_behind(self) -> dict[str, list[str]]:
        """What the node's pods still hold on the host after they were removed."""
        mounts = [m for m in _mount_points() if m.startswith(str(self.base))]
        return {k: v for k, v in {
            "shims": [str(p) for p in self.shim_pids()],
            "cgroups": sorted(cgroup_dirs_under(self.cgroup_parent)),
            "mounts": mounts,
            "leases": self.network.leases(),
        }.items() if v}

    def teardown(self) -> None:
        try:
            if self.client and self.proc and self.proc.poll() is None:
                self.remove_all_pods()
        finally:
            self._stop_daemon()
            for pid in self.shim_pids():  # only if a pod could not be removed
                os.kill(pid, signal.SIGKILL)
            for mount in sorted((m for m in _mount_points() if m.startswith(str(self.base))),
                                key=len, reverse=True):
                subprocess.run(["umount", "-l", mount], capture_output=True)
            self.network.remove()
            shutil.rmtree(self.base, ignore_errors=True)
            remove_cgroup_tree(self.cgroup_parent)

    def _stop_daemon(self) -> None:
        if self.client:
            self.client.close()
        if not self.proc:
            return
        stop_daemon(self.proc)
        self.log.close()


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


# -- pods as the kubelet describes them ---------------------------------------------------------
class Pod:
    """A pod sandbox on `node` with the given handler; its containers share the pod's network
    and PID namespaces (what `shareProcessNamespace: true` asks of the runtime)."""

    def __init__(self, node: CriNode, handler: str, name: str, port_mappings: list[dict] = ()):
        self.node = node
        self.handler = handler
        uid = uuid.uuid4().hex
        self.log_dir = node.log_dir / f"default_{name}_{uid}"
        self.log_dir.mkdir()
        shared = {"network": 0, "pid": 0, "ipc": 0}  # NamespaceMode POD
        self.config = {
            "metadata": {"name": name, "uid": uid, "namespace": "default"},
            "hostname": name,
            "log_directory": str(self.log_dir),
            "port_mappings": list(port_mappings),
            "linux": {"cgroup_parent": f"{node.cgroup_parent}/pod{uid[:12]}",
                      "security_context": {"namespace_options": shared}},
        }
        self.id = node.client.run_pod_sandbox(self.config, handler)
        self.containers: dict[str, str] = {}
        self.made_by_handler: dict[str, bool] = {}

    @property
    def ip(self) -> str:
        return self.node.client.pod_sandbox_status(self.id)["status"]["network"]["ip"]

    def container(self, name: str, command: list[str], resources: dict | None = None,
                  start: bool = True) -> str:
        linux = {"security_context": {"namespace_options": {"network": 0, "pid": 0, "ipc": 0}}}
        if resources:
            linux["resources"] = resources
        config = {"metadata": {"name": name}, "image": {"image": IMAGE}, "command": command,
                  "log_path": f"{name}.log", "linux": linux}
        cid = self.node.client.create_container(self.id, config, self.config)
        self.containers[name] = cid
        if start:
            self.node.client.start_container(cid)
            # the handler's runtime holds the started container's state under the shim's Root:
            # proof that the runtime this pod names is the one that made it
            # (a container that has already exited may have lost its state: not counted)
            state = self.node.runtime_roots[self.handler] / K8S_NAMESPACE / cid
            seen = state.is_dir()
            if seen or self.node.client.container_status(cid)["status"].get("state") \
                    == messages.CONTAINER_RUNNING:
                self.made_by_handler[cid] = seen
        return cid

    def log_lines(self, name: str) -> list[tuple[str, str]]:
        """(stream, text) per line of the container's CRI log ("<time> <stream> <tag> <text>")."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return []
        lines = []
        for line in path.read_text().splitlines():
            parts = line.split(" ", 3)
            lines.append((parts[1], parts[3] if len(parts) > 3 else ""))
        return lines

    def remove(self) -> None:
        self.node.client.stop_pod_sandbox(self.id)
        self.node.client.remove_pod_sandbox(self.id)
