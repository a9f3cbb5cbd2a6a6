"""The network hook with real containers, on the reference CNI plugins (/usr/lib/cni) and on
pyruntime's own bridge plugin: every test runs with both.

Everything a plugin makes (bridge, veths, iptables rules, sysctls) is made inside a throwaway
network namespace that plays the host: the runtime and its hooks run there (`nsenter --net`),
so the machine's own interfaces, routes and rules are never touched. What lands on the real
host (the netns names under /run/netns, the CNI cache, the hosts/resolv.conf files, the IPAM
leases in the test's own dataDir) is checked after every test.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from pyruntime.network.files import FILES_DIR
from pyruntime.network.spec import apply_network
from tests.support import REPO, container_config, make_bundle, repo_env

REFERENCE = "/usr/lib/cni"
HOOK = str(REPO / "hooks" / "pyruntime-network")
CACHE = Path("/var/lib/pyruntime/cni/results")
FILES = Path(FILES_DIR)

pytestmark = pytest.mark.skipif(not all(os.path.exists(f"{REFERENCE}/{p}") for p in
                                        ("bridge", "host-local", "portmap")),
                                reason="reference CNI plugins not installed")

FAIL_PLUGIN = """#!/bin/sh
cat > /dev/null
if [ "$CNI_COMMAND" = ADD ]; then
  printf '{"cniVersion":"1.0.0","code":7,"msg":"refusing on purpose","details":"test plugin"}'
  exit 1
fi
[ "$CNI_COMMAND" = VERSION ] && printf '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'
exit 0
"""

SLOW_PLUGIN = """#!/bin/sh
cat > /dev/null
[ "$CNI_COMMAND" = ADD ] && exec sleep 60
exit 0
"""


OUR_PLUGIN = """#!/bin/sh
exec {python} -m pyruntime.plugins.bridge "$@"
"""


class NetLab:
    """A throwaway "host" network namespace, a network of the reference plugins or of ours in
    a private config dir, and the runtime CLI run inside that namespace."""

    def __init__(self, tmp_path: Path, plugins: str = "reference"):
        self.tmp = tmp_path
        self.plugins = plugins
        self.host_ns = f"pyrt-nh-{uuid.uuid4().hex[:8]}"
        self.root = tmp_path / "state"
        self.config_dir = tmp_path / "net.d"
        self.config_dir.mkdir()
        self.bin = tmp_path / "cni-bin"
        self.bin.mkdir()
        for name, text in (("pyrt-fail", FAIL_PLUGIN), ("pyrt-slow", SLOW_PLUGIN),
                           ("pyruntime-bridge", OUR_PLUGIN.format(python=sys.executable))):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.leases = tmp_path / "ipam"
        self.network = f"t{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []
        self.extra_dirs: list[Path] = []
        subprocess.run(["ip", "netns", "add", self.host_ns], check=True)
        self.host("ip", "link", "set", "lo", "up")
        self.write_network(self.network)

    def write_network(self, name: str, extra_plugins=()) -> str:
        ipam = {"dataDir": str(self.leases), "ranges": [[{"subnet": "10.237.3.0/24"}]],
                "routes": [{"dst": "0.0.0.0/0"}]}
        bridge = {"bridge": "pyrtbr0", "isGateway": True, "ipMasq": True, "hairpinMode": True}
        if self.plugins == "reference":
            plugins = [{"type": "bridge", **bridge, "ipam": {"type": "host-local", **ipam}},
                       {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]
        else:  # ours does IPAM and port mapping itself
            plugins = [{"type": "pyruntime-bridge", **bridge, "ipam": {"type": "pyruntime-bridge", **ipam},
                        "capabilities": {"portMappings": True}}]
        conflist = {"cniVersion": "1.0.0", "name": name, "plugins": [*plugins, *extra_plugins]}
        (self.config_dir / f"{name}.conflist").write_text(json.dumps(conflist))
        return name

    # -- running things --------------------------------------------------------------------
    def host(self, *cmd, check=True, timeout=30) -> subprocess.CompletedProcess:
        """A command in the lab's host namespace."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.host_ns}", *cmd], check=check,
                              capture_output=True, text=True, timeout=timeout)

    def runtime(self, *args, timeout=60) -> subprocess.CompletedProcess:
        cmd = ["nsenter", f"--net=/run/netns/{self.host_ns}", sys.executable, "-m", "pyruntime",
               "--root", str(self.root), *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(cmd, env=repo_env(), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=err, timeout=timeout)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(), err.read().decode()
        return proc

    def bundle(self, args, mode="bridge", publish=(), network=None, timeout=60, cni_path=None,
               userns=False):
        mode = f"bridge:{network or self.network}" if mode == "bridge" else mode
        base = container_config(args)
        directory = self.tmp
        if userns:  # container root is host uid 100000: the bundle must be reachable for it
            lx = base["linux"]
            lx["namespaces"].append({"type": "user"})
            lx["uidMappings"] = lx["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            directory = Path(tempfile.mkdtemp(prefix="pyruntime-test-", dir="/var/tmp"))
            directory.chmod(0o755)
            self.extra_dirs.append(directory)
        config = apply_network(base, mode, publish, HOOK, config_dirs=[str(self.config_dir)],
                               cni_path=cni_path or [str(self.bin), REFERENCE], timeout=timeout)
        return make_bundle(directory / uuid.uuid4().hex[:8], config)

    def new_id(self) -> str:
        cid = f"n-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def run_detached(self, args, **bundle_opts) -> str:
        cid = self.new_id()
        proc = self.runtime("run", "-d", "--bundle", str(self.bundle(args, **bundle_opts)), cid)
        assert proc.returncode == 0, proc.stderr
        return cid

    def state(self, cid) -> dict:
        proc = self.runtime("state", cid)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def container_ip(self, cid) -> str:
        out = subprocess.run(["ip", "-n", cid, "-4", "-o", "addr", "show", "eth0"],
                             capture_output=True, text=True, check=True).stdout
        return out.split()[3].split("/")[0]

    def http_get(self, url: str, attempts=50) -> str:
        code = ("import sys, urllib.request\n"
                "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())")
        for _ in range(attempts):
            proc = self.host(sys.executable, "-c", code, url, check=False)
            if proc.returncode == 0:
                return proc.stdout
            time.sleep(0.1)  # httpd may still be starting
        raise AssertionError(f"GET {url} failed: {proc.stderr}")

    # -- what a container leaves -----------------------------------------------------------
    def leftovers(self, cid: str, running: int = 0) -> list[str]:
        """What is left of `cid`'s network; `running`: how many networked containers of the
        lab still run (each owns one host-side veth)."""
        left = []
        if os.path.lexists(f"/run/netns/{cid}"):
            left.append(f"netns name {cid}")
        left += [f"cache {p.name}" for p in CACHE.glob(f"*-{cid}-*")] if CACHE.is_dir() else []
        if (FILES / cid).exists():
            left.append(f"files {FILES / cid}")
        for lease in self.leases.glob("*/*") if self.leases.is_dir() else []:
            if cid in lease.read_text():
                left.append(f"lease {lease.name}")
        rules = self.host("iptables-save").stdout + self.host("iptables-legacy-save", check=False).stdout
        left += [f"rule {line}" for line in rules.splitlines() if cid in line]
        links = self.host("ip", "-o", "link", "show", "type", "veth").stdout.splitlines()
        if len(links) > running:
            left += [f"veth {line.split(':')[1].strip()}" for line in links]
        return left

    def cleanup(self):
        for cid in self.ids:
            self.runtime("delete", "--force", cid)
        subprocess.run(["ip", "netns", "del", self.host_ns], check=False)
        for cid in self.ids:  # if a delete failed, do not leave names on the real host
            if os.path.lexists(f"/run/netns/{cid}"):
                subprocess.run(["umount", "-l", f"/run/netns/{cid}"], check=False)
                os.unlink(f"/run/netns/{cid}")
            for p in CACHE.glob(f"*-{cid}-*") if CACHE.is_dir() else []:
                p.unlink()
            shutil.rmtree(FILES / cid, ignore_errors=True)
        for directory in self.extra_dirs:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["reference", "pyruntime"])
def lab(tmp_path, request):
    lab = NetLab(tmp_path, request.param)
    yield lab
    lab.cleanup()


def test_published_port_and_container_ip_reach_httpd(lab):
    cid = lab.run_detached(["httpd", "-f", "-p", "80", "-h", "/var/www"], publish=["127.0.0.1:18080:80"])
    ip = lab.container_ip(cid)
    assert ip.startswith("10.237.3.")
    assert "hello" in lab.http_get("http://127.0.0.1:18080/")
    assert "hello" in lab.http_get(f"http://{ip}/")
    # the container's /etc/hosts and /etc/resolv.conf come from the network
    pid = lab.state(cid)["pid"]
    hosts = Path(f"/proc/{pid}/root/etc/hosts").read_text()
    assert f"{ip}\tpyruntime-test" in hosts and "127.0.0.1\tlocalhost" in hosts
    assert Path(f"/proc/{pid}/root/etc/resolv.conf").read_text() == \
        (FILES / cid / "resolv.conf").read_text()
    assert (CACHE / f"{lab.network}-{cid}-eth0.json").is_file()
    assert any(ip in p.name for p in (lab.leases / lab.network).iterdir())
    assert cid in lab.host("iptables-save", "-t", "nat").stdout  # the DNAT/masquerade chains
    proc = lab.runtime("delete", "--force", cid)
    assert proc.returncode == 0 and "warn" not in proc.stderr.lower(), proc.stderr
    assert lab.leftovers(cid) == []
    assert not any(ip in p.name for p in (lab.leases / lab.network).iterdir())


def test_two_containers_on_one_bridge_reach_each_other(lab):
    server = lab.run_detached(["httpd", "-f", "-p", "80", "-h", "/var/www"])
    ip = lab.container_ip(server)
    lab.http_get(f"http://{ip}/")  # up
    client = lab.new_id()
    proc = lab.runtime("run", "--bundle", str(lab.bundle(["wget", "-q", "-O", "-", f"http://{ip}/"])), client)
    assert proc.returncode == 0, proc.stderr
    assert "hello" in proc.stdout
    assert lab.leftovers(client, running=1) == []  # a foreground run deletes itself, network included
    assert lab.runtime("delete", "--force", server).returncode == 0
    assert lab.leftovers(server) == []


class OutsideHost:
    """Another machine on the lab host's "uplink": a namespace joined to the lab host by a veth
    pair, 198.51.100.1 (lab host) <-> 198.51.100.2 (outside), nothing else."""

    def __init__(self, lab):
        self.ns = f"pyrt-no-{uuid.uuid4().hex[:8]}"
        self.host_ip, self.ip = "198.51.100.1", "198.51.100.2"
        self.lab = lab
        self.link = link = f"up{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        try:
            lab.host("ip", "link", "add", link, "type", "veth", "peer", "name", "uplink", "netns", self.ns)
            lab.host("ip", "addr", "add", f"{self.host_ip}/24", "dev", link)
            lab.host("ip", "link", "set", link, "up")
            for cmd in (["addr", "add", f"{self.ip}/24", "dev", "uplink"],
                        ["link", "set", "uplink", "up"], ["link", "set", "lo", "up"]):
                subprocess.run(["ip", "-n", self.ns, *cmd], check=True)
        except BaseException:
            self.remove()
            raise

    def run(self, *cmd, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True, text=True,
                              timeout=30, **kwargs)

    def remove(self):
        # Deleting the link at once: a namespace's own teardown is asynchronous.
        self.lab.host("ip", "link", "del", self.link, check=False)
        subprocess.run(["ip", "netns", "del", self.ns], check=False)


PEER_ADDRESS_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000))
s.listen(1)
s.settimeout(20)
print("listening", flush=True)
conn, peer = s.accept()
print(peer[0], flush=True)
conn.close()
"""


def test_outside_host_reaches_published_port_and_sees_snat(lab):
    outside = OutsideHost(lab)
    try:
        cid = lab.run_detached(["httpd", "-f", "-p", "80", "-h", "/var/www"], publish=["18081:80"])
        # DNAT: from another host, through the lab host's address.
        get = ("import sys, time, urllib.request\n"
               "for _ in range(50):\n"
               "    try:\n"
               "        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()); break\n"
               "    except OSError:\n"
               "        time.sleep(0.1)\n")
        proc = outside.run(sys.executable, "-c", get, f"http://{outside.host_ip}:18081/")
        assert "hello" in proc.stdout, proc.stderr
        # SNAT: the container's connection arrives from the lab host's address.
        server = subprocess.Popen(["ip", "netns", "exec", outside.ns, sys.executable, "-c",
                                   PEER_ADDRESS_SERVER, outside.ip], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "listening"
            proc = lab.runtime("exec", cid, "sh", "-c", f"echo hi | nc -w 3 {outside.ip} 9000")
            assert proc.returncode == 0, proc.stderr
            assert server.stdout.readline().strip() == outside.host_ip
        finally:
            server.kill()
            server.wait()
        assert lab.runtime("delete", "--force", cid).returncode == 0
    finally:
        outside.remove()
    assert lab.leftovers(cid) == []


def test_user_namespace_container_gets_the_network(lab):
    server = lab.run_detached(["httpd", "-f", "-p", "80", "-h", "/var/www"])
    ip = lab.container_ip(server)
    lab.http_get(f"http://{ip}/")
    cid = lab.new_id()
    bundle = lab.bundle(["sh", "-c", f"cat /proc/self/uid_map /etc/hosts; wget -q -O - http://{ip}/"],
                        userns=True)
    proc = lab.runtime("run", "--bundle", str(bundle), cid)
    assert proc.returncode == 0, proc.stderr
    assert "100000" in proc.stdout and "\tpyruntime-test" in proc.stdout and "hello" in proc.stdout
    assert lab.leftovers(cid, running=1) == []
    assert lab.runtime("delete", "--force", server).returncode == 0
    assert lab.leftovers(server) == []


def test_none_has_only_loopback(lab):
    cid = lab.new_id()
    proc = lab.runtime("run", "--bundle", str(lab.bundle(["cat", "/proc/net/dev"], mode="none")), cid)
    assert proc.returncode == 0, proc.stderr
    names = [line.split(":")[0].strip() for line in proc.stdout.splitlines() if ":" in line]
    assert names == ["lo"]
    assert lab.leftovers(cid) == []


def test_host_mode_sees_the_hosts_links(lab):
    marker = f"pyrtd{uuid.uuid4().hex[:6]}"
    lab.host("ip", "link", "add", marker, "type", "veth", "peer", "name", marker + "p")
    cid = lab.new_id()
    proc = lab.runtime("run", "--bundle", str(lab.bundle(["cat", "/proc/net/dev", "/etc/resolv.conf"],
                                                          mode="host")), cid)
    assert proc.returncode == 0, proc.stderr
    assert f"{marker}:" in proc.stdout
    assert Path("/etc/resolv.conf").read_text() in proc.stdout
    assert not os.path.lexists(f"/run/netns/{cid}")


def test_container_mode_shares_the_first_ones_address(lab):
    first = lab.run_detached(["httpd", "-f", "-p", "80", "-h", "/var/www"])
    ip = lab.container_ip(first)
    second = lab.new_id()
    bundle = lab.bundle(["sh", "-c", "ip -4 -o addr show eth0; wget -q -O - http://127.0.0.1/; "
                         "cat /etc/hosts"], mode=f"container:{first}")
    proc = lab.runtime("run", "--bundle", str(bundle), second)
    assert proc.returncode == 0, proc.stderr
    assert f"inet {ip}/" in proc.stdout and "hello" in proc.stdout
    assert f"{ip}\tpyruntime-test" in proc.stdout  # the first one's /etc/hosts
    assert lab.runtime("delete", "--force", first).returncode == 0
    assert lab.leftovers(first) == [] and lab.leftovers(second) == []


def test_failing_plugin_mid_add_leaves_nothing(lab):
    name = lab.write_network(f"f{uuid.uuid4().hex[:8]}", [{"type": "pyrt-fail"}])
    cid = lab.new_id()
    bundle = lab.bundle(["true"], network=name, cni_path=[str(lab.bin), REFERENCE])
    proc = lab.runtime("run", "--bundle", str(bundle), cid)
    assert proc.returncode == 1
    assert "pyrt-fail ADD failed: refusing on purpose (test plugin) [code 7]" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert lab.leftovers(cid) == []
    assert not list((lab.leases / name).glob("10.*"))


def test_hook_killed_by_its_timeout_leaves_nothing(lab):
    name = lab.write_network(f"s{uuid.uuid4().hex[:8]}", [{"type": "pyrt-slow"}])
    cid = lab.new_id()
    bundle = lab.bundle(["true"], network=name, cni_path=[str(lab.bin), REFERENCE], timeout=3)
    proc = lab.runtime("run", "--bundle", str(bundle), cid)
    assert proc.returncode == 1 and "timed out after 3s" in proc.stderr, proc.stderr
    assert lab.leftovers(cid) == []
    assert not list((lab.leases / name).glob("10.*"))
    slow = subprocess.run(["pgrep", "-f", str(lab.bin / "pyrt-slow")], capture_output=True, text=True)
    assert slow.stdout == ""  # the plugin died with the hook


def test_container_crashing_before_start_leaves_nothing(lab):
    cid = lab.new_id()
    proc = lab.runtime("create", "--bundle", str(lab.bundle(["sleep", "100"])), cid)
    assert proc.returncode == 0, proc.stderr
    assert os.path.lexists(f"/run/netns/{cid}")
    os.kill(lab.state(cid)["pid"], 9)
    time.sleep(0.2)
    assert lab.state(cid)["status"] == "stopped"
    assert lab.runtime("delete", cid).returncode == 0
    assert lab.leftovers(cid) == []


def test_create_failing_after_the_network_is_up_leaves_nothing(lab):
    cid = lab.new_id()
    proc = lab.runtime("create", "--bundle", str(lab.bundle(["/no/such/program"])), cid)
    assert proc.returncode == 1 and "/no/such/program" in proc.stderr
    assert lab.leftovers(cid) == []
    assert not list((lab.leases / lab.network).glob("10.*"))


def test_unknown_network_is_a_clear_error(lab):
    cid = lab.new_id()
    proc = lab.runtime("run", "--bundle", str(lab.bundle(["true"], network="nosuchnet")), cid)
    assert proc.returncode == 1
    assert "network 'nosuchnet' not found" in proc.stderr and "Traceback" not in proc.stderr
    assert lab.leftovers(cid) == []


def test_shipped_default_network_needs_no_configuration(tmp_path):
    """`bridge` with the default network name and no conflist anywhere: the network that ships
    with pyruntime (pyruntime-bridge, pyruntime0, 10.89.0.0/24) is used, ports included. Its
    leases live in the plugin's default dataDir on the real host, which is cleaned after."""
    from pyruntime.network.modes import DEFAULT_NETWORK

    lab = NetLab(tmp_path, "pyruntime")
    leases = Path("/var/lib/cni/networks") / DEFAULT_NETWORK
    leases_existed = leases.exists()
    try:
        cid = lab.run_detached(["httpd", "-f", "-p", "80", "-h", "/var/www"], network=DEFAULT_NETWORK,
                               publish=["127.0.0.1:18081:80"])
        assert not list(lab.config_dir.glob(f"{DEFAULT_NETWORK}.*"))
        assert lab.container_ip(cid).startswith("10.89.0.")
        assert "pyruntime0" in lab.host("ip", "-o", "link", "show", "type", "bridge").stdout
        assert "hello" in lab.http_get("http://127.0.0.1:18081/")
        assert lab.runtime("delete", "--force", cid).returncode == 0
        assert lab.leftovers(cid) == []
        assert not [p for p in leases.iterdir() if p.name.startswith("10.89.")]
    finally:
        lab.cleanup()
        if not leases_existed:
            shutil.rmtree(leases, ignore_errors=True)


def test_plugin_types_that_are_paths_are_refused_and_never_run(lab):
    """A conflist naming a plugin (or its IPAM plugin) by path: one clear error, the file
    never runs, nothing is left."""
    mark = lab.tmp / "evil-ran"
    evil = lab.tmp / "pyrt-evil"                    # beside the lab's CNI_PATH directory
    evil.write_text(f"#!/bin/sh\ntouch {mark}\necho '{{}}'\n")
    evil.chmod(0o755)
    for plugin in ({"type": "../pyrt-evil"}, {"type": str(evil)},
                   {"type": "bridge", "bridge": "pyrtbr0", "ipam": {"type": "../pyrt-evil"}}):
        name = f"t{uuid.uuid4().hex[:8]}"
        (lab.config_dir / f"{name}.conflist").write_text(
            json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}))
        cid = lab.new_id()
        proc = lab.runtime("run", "--bundle", str(lab.bundle(["true"], network=name)), cid)
        assert proc.returncode == 1
        assert "invalid plugin name" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not mark.exists()
        assert lab.leftovers(cid) == []


def test_deeply_nested_conflist_is_one_clear_error(lab):
    name = f"t{uuid.uuid4().hex[:8]}"
    (lab.config_dir / f"{name}.conflist").write_text(
        '{"cniVersion": "1.0.0", "name": "%s", "plugins": [{"type": "bridge", "x": %s}]}'
        % (name, "[" * 100000 + "]" * 100000))
    cid = lab.new_id()
    proc = lab.runtime("run", "--bundle", str(lab.bundle(["true"], network=name)), cid)
    assert proc.returncode == 1
    assert f"{name}.conflist: nested more than 100 levels deep" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert lab.leftovers(cid) == []
