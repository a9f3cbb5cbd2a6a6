"""Drivers for the real clients (podman, containerd's ctr) used by the end-to-end suite.

Every client gets, per runtime, a small shell shim as its runtime binary: it appends its argv
to a trace file and execs either runc or this checkout's pyruntime. Both runtimes therefore go
through the same shim and the clients see the same kind of path; the traces tell which runtime
commands and flags each client really uses (docs/compatibility.md).
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support import BUSYBOX_ROOTFS, REPO

RUNC = "/usr/sbin/runc"
RUNTIMES = ("runc", "pyruntime")
IMAGE = "localhost/busybox:latest"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.rc}\nstdout: {self.out!r}\nstderr: {self.err!r}"


def run_command(cmd: list[str], input: str | None = None, timeout: float = 60,
                env: dict | None = None, cwd: str | os.PathLike | None = None) -> Result:
    """Run a client command; stdout/stderr go through files, since a container or conmon may
    inherit them and keep a pipe open long after the client returned."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, input=input.encode() if input is not None else None,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              stdout=out, stderr=err, timeout=timeout, env=env, cwd=cwd)
        out.seek(0)
        err.seek(0)
        return Result(proc.returncode, out.read().decode(errors="replace"),
                      err.read().decode(errors="replace"))


def run_in_pty(cmd: list[str], timeout: float = 60, env: dict | None = None,
               input: bytes = b"") -> Result:
    """Run a client whose stdin/stdout must be a terminal (`ctr task exec -t` refuses
    anything else); returns what it wrote to the terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    if input:
        os.write(master, input)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: every slave end closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise subprocess.TimeoutExpired(cmd, timeout)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(rc, b"".join(chunks).decode(errors="replace"), "")


def write_shim(path: Path, runtime: str, trace: Path, package_dir: Path = REPO) -> Path:
    """An executable named like the runtime that logs its argv, then execs the runtime
    (pyruntime imported from `package_dir`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if runtime == "runc":
        target = f'exec {RUNC} "$@"'
    else:
        target = f'PYTHONPATH={package_dir} exec {sys.executable} -m pyruntime "$@"'
    path.write_text("#!/bin/sh\n"
                    f"printf '%s\\n' \"$*\" >> {trace}\n"
                    f"{target}\n")
    path.chmod(0o755)
    return path


def runtime_supports(command: str) -> bool:
    """Whether this checkout's pyruntime has `command` (capability check, not a guess)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pyruntime", command, "--help"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return proc.returncode == 0


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, named ones, the unified mount)."""
    hierarchies = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                hierarchies.append(Path(fields[4]))
    return hierarchies


def cgroup_dirs_under(parent: str) -> set[str]:
    found = set()
    for hierarchy in cgroup_hierarchies():
        base = hierarchy / parent.lstrip("/")
        if base.is_dir():
            found.update(str(p.relative_to(hierarchy)) for p in base.rglob("*") if p.is_dir())
    return found


def stop_daemon(proc: subprocess.Popen, timeout: float = 20) -> None:
    """TERM a daemon the test started, KILL it if it outlives `timeout`, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remove_cgroup_tree(parent: str) -> None:
    """rmdir a cgroup subtree bottom-up in every hierarchy (all must be empty by now)."""
    for hierarchy in cgroup_hierarchies():
        base = hierarchy / parent.lstrip("/")
        if not base.is_dir():
            continue
        for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            d.rmdir()
        base.rmdir()


class PodmanEnv:
    """A private podman: its own containers.conf, storage (vfs), cgroup parent and shims."""

    def __init__(self, base: Path):
        self.base = base
        self.cgroup_parent = f"/pyruntime-e2e-{uuid.uuid4().hex[:8]}"
        self.traces = {rt: base / f"trace-podman-{rt}.log" for rt in RUNTIMES}
        self.runtimes = {rt: write_shim(base / "shims" / rt / rt, rt, self.traces[rt])
                         for rt in RUNTIMES}
        self.conf = base / "containers.conf"
        self.network_dir = base / "cni"
        self.network_dir.mkdir()
        # This checkout's CNI plugin, under its type name, beside the reference plugins.
        self.plugin_dir = base / "cni-bin"
        self.plugin_dir.mkdir()
        plugin = self.plugin_dir / "pyruntime-bridge"
        plugin.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m pyruntime.plugins.bridge \"$@\"\n")
        plugin.chmod(0o755)
        self.conf.write_text(
            "[containers]\n"
            # root here lacks CAP_SYS_RESOURCE: podman's default 1048576 limits cannot be set
            'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            'runtime_supports_json = ["runc", "crun", "pyruntime"]\n'
            "[engine.runtimes]\n"
            + "".join(f'{rt} = ["{path}"]\n' for rt, path in self.runtimes.items())
            + "[network]\n"
            'network_backend = "cni"\n'
            f'cni_plugin_dirs = ["{self.plugin_dir}", "/usr/lib/cni"]\n'
            f'network_config_dir = "{self.network_dir}"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.conf))
        self.global_flags = ["--root", str(base / "root"), "--runroot", str(base / "runroot"),
                             "--storage-driver", "vfs", "--tmpdir", str(base / "tmp"),
                             "--events-backend", "file"]

    def __call__(self, *args: str, runtime: str | None = None, **kwargs) -> Result:
        cmd = ["podman", *self.global_flags]
        if runtime:
            cmd += ["--runtime", str(self.runtimes[runtime])]
        # conmon writes files such as `oom` into its working directory
        return run_command(cmd + list(args), env=self.env, cwd=self.base, **kwargs)

    def import_image(self) -> None:
        tar = subprocess.Popen(["tar", "-C", str(BUSYBOX_ROOTFS), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", *self.global_flags, "import", "-", IMAGE], stdin=tar.stdout,
                       env=self.env, cwd=self.base, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tar.stdout.close()
        assert tar.wait() == 0

    def container_ids(self) -> set[str]:
        r = self("ps", "-a", "-q", "--no-trunc")
        return set(r.out.split())

    def existing_names(self, names: list[str]) -> list[str]:
        present = set(self("ps", "-a", "--format", "{{.Names}}").out.split())
        return [n for n in names if n in present]

    def teardown(self) -> None:
        ids = self.container_ids()
        if ids:
            self("rm", "-f", "-t", "0", *ids)
        self("system", "reset", "--force")
        shutil.rmtree(self.base, ignore_errors=True)
        remove_cgroup_tree(self.cgroup_parent)


class Podman:
    """podman bound to one runtime; remembers the containers it named and removes them."""

    def __init__(self, env: PodmanEnv, runtime: str):
        self.env = env
        self.runtime = runtime
        self.names: list[str] = []

    def __call__(self, *args: str, **kwargs) -> Result:
        return self.env(*args, runtime=self.runtime, **kwargs)

    def new_name(self) -> str:
        name = f"e2e-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return name

    def container_flags(self, network: str = "none") -> list[str]:
        return ["--name", self.new_name(), "--cgroup-parent", self.env.cgroup_parent,
                "--network", network]

    def run(self, *args: str, image_args: tuple[str, ...] = (), network: str = "none",
            **kwargs) -> Result:
        """`podman run [args] IMAGE image_args...`, named and in the test's cgroup parent."""
        return self("run", *self.container_flags(network), *args, IMAGE, *image_args, **kwargs)

    def create(self, *args: str, image_args: tuple[str, ...] = ()) -> str:
        r = self("create", *self.container_flags(), *args, IMAGE, *image_args)
        assert r.rc == 0, str(r)
        return self.names[-1]

    def start_detached(self, *args: str, image_args: tuple[str, ...] = ("sleep", "600"),
                       network: str = "none") -> str:
        r = self.run("-d", *args, image_args=image_args, network=network)
        assert r.rc == 0, str(r)
        return self.names[-1]

    def inspect(self, name: str, template: str) -> str:
        r = self("inspect", "-f", template, name)
        assert r.rc == 0, str(r)
        return r.out.strip()

    def host_pid(self, name: str) -> int:
        return int(self.inspect(name, "{{.State.Pid}}"))

    def cleanup(self) -> None:
        existing = self.env.existing_names(self.names) if self.names else []
        if existing:
            r = self("rm", "-f", "-t", "0", *existing)
            assert r.rc == 0, str(r)


def host_cgroup_file(pid: int, controller: str, filename: str) -> str:
    """Read a cgroup v1 file of a host process's cgroup in `controller`."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                mount = next(h for h in cgroup_hierarchies()
                             if controller in h.name.split(","))
                return (mount / path.lstrip("/") / filename).read_text().strip()
    raise LookupError(f"{controller} not in /proc/{pid}/cgroup")


class Containerd:
    """A private containerd daemon (own root, state, socket, namespace) and ctr against it."""

    def __init__(self, base: Path, podman_env: PodmanEnv):
        self.base = base
        self.namespace = f"e2e-{uuid.uuid4().hex[:8]}"
        self.cgroup_parent = podman_env.cgroup_parent + "-ctd"
        self.socket = base / "containerd.sock"
        self.traces = {rt: base / f"trace-containerd-{rt}.log" for rt in RUNTIMES}
        self.runtimes = {rt: write_shim(base / "shims" / rt / rt, rt, self.traces[rt])
                         for rt in RUNTIMES}
        self.fifo_dir = base / "fifo"
        config = base / "config.toml"
        disabled = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt",
                    "io.containerd.tracing.processor.v1.otlp"]
        config.write_text(
            "version = 2\n"
            f'root = "{base / "root"}"\n'
            f'state = "{base / "state"}"\n'
            f"disabled_plugins = {disabled!r}\n".replace("'", '"')
            + f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n')
        self.log = open(base / "containerd.log", "wb")
        self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd=base)
        deadline = time.monotonic() + 20
        while not self.ctr("version").rc == 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("containerd did not start: "
                                   + (base / "containerd.log").read_text()[-2000:])
            time.sleep(0.1)
        archive = base / "busybox.tar"
        r = podman_env("save", "--format", "docker-archive", "-o", str(archive), IMAGE)
        assert r.rc == 0, str(r)
        r = self.ctr("images", "import", "--snapshotter", "native", str(archive))
        assert r.rc == 0, str(r)

    def ctr(self, *args: str, **kwargs) -> Result:
        return run_command(["ctr", "-a", str(self.socket), "-n", self.namespace, *args], **kwargs)

    def ctr_pty(self, *args: str, **kwargs) -> Result:
        return run_in_pty(["ctr", "-a", str(self.socket), "-n", self.namespace, *args], **kwargs)

    def container_ids(self) -> list[str]:
        return self.ctr("containers", "ls", "-q").out.split()

    def remove(self, cid: str) -> None:
        """Kill and delete a task if there is one, then the container and its snapshot."""
        if self.ctr("task", "kill", "-s", "KILL", cid).rc == 0:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "STOPPED" not in self.task_status(cid):
                time.sleep(0.05)
        self.ctr("task", "delete", "-f", cid)
        r = self.ctr("containers", "delete", cid)
        assert r.rc == 0 or "not found" in r.err, str(r)

    def task_status(self, cid: str) -> str:
        for line in self.ctr("task", "ls").out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return ""

    def teardown(self) -> None:
        for cid in self.container_ids():
            self.remove(cid)
        for image in self.ctr("images", "ls", "-q").out.split():
            self.ctr("images", "rm", "--sync", image)
        self.ctr("namespaces", "remove", self.namespace)
        stop_daemon(self.proc)
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)
        # the shim's runtime root: /run/containerd/runc/<namespace>
        shutil.rmtree(f"/run/containerd/runc/{self.namespace}", ignore_errors=True)
        remove_cgroup_tree(self.cgroup_parent)


class Ctr:
    """ctr bound to one runtime; names containers and removes them afterwards."""

    def __init__(self, daemon: Containerd, runtime: str):
        self.daemon = daemon
        self.runtime = runtime
        self.ids: list[str] = []

    def new_id(self) -> str:
        cid = f"e2e-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def run_flags(self, cid: str) -> list[str]:
        return ["--snapshotter", "native", "--runc-binary", str(self.daemon.runtimes[self.runtime]),
                "--cgroup", f"{self.daemon.cgroup_parent}/{cid}",
                "--fifo-dir", str(self.daemon.fifo_dir)]

    def run(self, *args: str, image_args: tuple[str, ...], tty: bool = False, **kwargs) -> Result:
        cid = self.new_id()
        cmd = ["run", *self.run_flags(cid), *args, IMAGE, cid, *image_args]
        if tty:
            return self.daemon.ctr_pty(*cmd, **kwargs)
        return self.daemon.ctr(*cmd, **kwargs)

    def start_detached(self, *args: str, image_args: tuple[str, ...] = ("sleep", "600")) -> str:
        r = self.run("-d", *args, image_args=image_args)
        assert r.rc == 0, str(r)
        return self.ids[-1]

    def __call__(self, *args: str, **kwargs) -> Result:
        return self.daemon.ctr(*args, **kwargs)

    def cleanup(self) -> None:
        present = set(self.daemon.container_ids())
        for cid in self.ids:
            if cid in present:
                self.daemon.remove(cid)


class CniNetwork:
    """A podman CNI network with its own bridge and subnet, of the reference plugins (bridge +
    host-local + portmap) or of pyruntime-bridge alone (its own IPAM and port mapping);
    removes what the plugins leave behind on purpose (the bridge, the IPAM directory,
    portmap's shared chains when this network created them)."""

    HOSTPORT_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")

    def __init__(self, network_dir: Path, plugins: str = "reference"):
        import ipaddress
        import json
        import random

        suffix = uuid.uuid4().hex[:6]
        self.name = f"pe2e-{suffix}"
        self.bridge = f"pe2e{suffix}"
        used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                              text=True).stdout
        while True:
            self.subnet = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
            if str(self.subnet.network_address)[:-1] not in used:
                break
        self.nat_before = self._nat_rules()
        self.nat_table_existed = self._nat_table_exists()
        gateway = str(self.subnet.network_address + 1)
        bridge = {"bridge": self.bridge, "isGateway": True, "ipMasq": True}
        ranges = {"routes": [{"dst": "0.0.0.0/0"}],
                  "ranges": [[{"subnet": str(self.subnet), "gateway": gateway}]]}
        if plugins == "reference":
            chain = [{"type": "bridge", **bridge, "ipam": {"type": "host-local", **ranges}},
                     {"type": "portmap", "capabilities": {"portMappings": True}}]
        else:
            chain = [{"type": "pyruntime-bridge", **bridge, "ipam": {"type": "pyruntime-bridge", **ranges},
                      "capabilities": {"portMappings": True}}]
        conflist = {"cniVersion": "0.4.0", "name": self.name, "plugins": chain}
        self.path = network_dir / f"{self.name}.conflist"
        self.path.write_text(json.dumps(conflist, indent=1))

    @staticmethod
    def _nat_rules() -> list[str]:
        return subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True,
                              text=True).stdout.splitlines()

    @staticmethod
    def _nat_table_exists() -> bool:
        return subprocess.run(["nft", "list", "table", "ip", "nat"], capture_output=True).returncode == 0

    def remove(self) -> None:
        import shlex

        self.path.unlink(missing_ok=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(f"/var/lib/cni/networks/{self.name}", ignore_errors=True)
        rules = self._nat_rules()
        ours = [c for c in self.HOSTPORT_CHAINS if f"-N {c}" not in self.nat_before]
        if ours and not any(r.startswith("-A CNI-HOSTPORT-DNAT ") for r in rules):
            for rule in rules:
                args = shlex.split(rule)
                if args[0] == "-A" and args[-1] in ours and args[-2] == "-j":
                    subprocess.run(["iptables", "-t", "nat", "-D", *args[1:]], check=True)
            for chain in ours:
                subprocess.run(["iptables", "-t", "nat", "-F", chain], capture_output=True)
                subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)
        if not self.nat_table_existed and self._nat_table_exists() \
                and not any(r.startswith("-A ") for r in self._nat_rules()):
            subprocess.run(["nft", "delete", "table", "ip", "nat"], capture_output=True)


class RootlessPodmanEnv:
    """podman run by a throwaway unprivileged user, as most people run it: podman makes the
    user namespace (from the user's /etc/subuid range) and calls the runtime inside it. The
    user gets its own storage, its own copy of pyruntime (the checkout may be root's only)
    and shims that trace the runtime's calls; all of it goes with the user."""

    def __init__(self):
        import pwd

        self.user = f"pe2e{uuid.uuid4().hex[:8]}"
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", self.user], check=True, capture_output=True)
        entry = pwd.getpwnam(self.user)
        self.uid, self.home = entry.pw_uid, Path(entry.pw_dir)
        self.base = self.home / "e2e"
        lib = self.base / "lib"
        shutil.copytree(REPO / "pyruntime", lib / "pyruntime", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "oci-schemas", lib / "oci-schemas")
        self.traces = {rt: self.base / f"trace-rootless-podman-{rt}.log" for rt in RUNTIMES}
        self.runtimes = {rt: write_shim(self.base / "shims" / rt / rt, rt, self.traces[rt], lib)
                         for rt in RUNTIMES}
        for trace in self.traces.values():
            trace.touch()
        subprocess.run(["chown", "-R", f"{self.user}:{self.user}", str(self.base)], check=True)
        self.env = {"HOME": str(self.home), "USER": self.user, "LOGNAME": self.user,
                    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
        self.global_flags = ["--root", str(self.base / "root"), "--runroot", str(self.base / "runroot"),
                             "--storage-driver", "vfs", "--tmpdir", str(self.base / "tmp"),
                             "--events-backend", "file", "--cgroup-manager", "cgroupfs"]

    def command(self, *args: str, runtime: str | None = None) -> list[str]:
        cmd = ["runuser", "-u", self.user, "--", "podman", *self.global_flags]
        if runtime:
            cmd += ["--runtime", str(self.runtimes[runtime])]
        return cmd + list(args)

    def __call__(self, *args: str, runtime: str | None = None, **kwargs) -> Result:
        return run_command(self.command(*args, runtime=runtime), env=self.env, cwd=self.base, **kwargs)

    def import_image(self) -> None:
        archive = self.base / "busybox.tar"
        subprocess.run(["tar", "-C", str(BUSYBOX_ROOTFS), "-cf", str(archive), "."], check=True)
        os.chmod(archive, 0o644)
        r = self("import", str(archive), IMAGE)
        assert r.rc == 0, str(r)

    container_ids = PodmanEnv.container_ids
    existing_names = PodmanEnv.existing_names

    def teardown(self) -> None:
        ids = self.container_ids()
        if ids:
            self("rm", "-f", "-t", "0", *ids)
        self("system", "reset", "--force")
        subprocess.run(["pkill", "-KILL", "-u", self.user], capture_output=True)
        for _ in range(100):
            if subprocess.run(["pgrep", "-u", self.user], capture_output=True).returncode != 0:
                break
            time.sleep(0.05)
        shutil.rmtree(f"/tmp/podman-run-{self.uid}", ignore_errors=True)
        shutil.rmtree(f"/tmp/containers-user-{self.uid}", ignore_errors=True)
        subprocess.run(["userdel", "-r", "-f", self.user], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)
        for path in ("/etc/subuid", "/etc/subgid"):
            lines = Path(path).read_text().splitlines(True)
            Path(path).write_text("".join(l for l in lines if not l.startswith(self.user + ":")))


class RootlessPodman(Podman):
    """Podman's client, rootless: no cgroup parent (this host's v1 cgroups are root's)."""

    def container_flags(self, network: str = "none") -> list[str]:
        return ["--name", self.new_name(), "--network", network]
