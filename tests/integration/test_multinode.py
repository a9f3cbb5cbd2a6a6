"""Multi-node pod networking (`pyruntime network node-up` / `node-down`) on simulated nodes.

Every "node" is a network namespace with its own state root, configuration directory and IPAM
leases; an "underlay" namespace holds a bridge that joins the nodes' uplinks (192.0.2.0/24)
and an "outside" host (192.0.2.100) that is in no cluster. The CLI, the network hook and the
bridge plugin run inside a node's namespace through `nsenter --net` (not `ip netns exec`: that
one gives the command a mount namespace of its own, and the names the hook mounts under
/run/netns would vanish with it). No packet leaves these namespaces.
"""

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from pyruntime.cluster import node as cluster_node, plan
from pyruntime.network.spec import apply_network
from tests.support import REPO, container_config, make_bundle, repo_env

HOOK = str(REPO / "hooks" / "pyruntime-network")
PLUGIN_WRAPPER = "#!/bin/sh\nexec {python} -m pyruntime.plugins.bridge \"$@\"\n"
CIDR = "10.250.0.0/16"
OUTSIDE = "192.0.2.100"
NODES = {"a": ("192.0.2.11", "10.250.1.0/24"), "b": ("192.0.2.12", "10.250.2.0/24"),
         "c": ("192.0.2.13", "10.250.3.0/24")}

# prints the address a connection came from, then ends
PEER_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000))
s.listen(1)
s.settimeout(30)
print("listening", flush=True)
conn, peer = s.accept()
print(peer[0], flush=True)
conn.close()
"""

# busybox httpd runs it for GET /cgi-bin/peer: the answer is the client's address as the
# server saw it
PEER_CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "peer=$REMOTE_ADDR"\n'


def run(*cmd, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check, **kw)


class SimNode:
    def __init__(self, lab, name: str):
        self.lab, self.name = lab, name
        self.address, self.subnet = NODES[name]
        self.ns = f"pyrt-mn-{lab.tag}-{name}"
        self.dir = lab.tmp / name
        self.root, self.config_dir, self.leases = self.dir / "state", self.dir / "net.d", self.dir / "ipam"
        self.dir.mkdir()
        self.ids: list[str] = []
        run("ip", "netns", "add", self.ns)
        self.lab.netns.append(self.ns)
        lan_end = f"lan{lab.tag[:6]}{name}"
        run("ip", "-n", lab.lan, "link", "add", lan_end, "type", "veth", "peer", "name", "up0", "netns", self.ns)
        run("ip", "-n", lab.lan, "link", "set", lan_end, "master", "lan0", "up")
        self.ip("addr", "add", f"{self.address}/24", "dev", "up0")
        self.ip("link", "set", "up0", "up")
        self.ip("link", "set", "lo", "up")
        # forwarding off at first, so that node-up has something to turn on and node-down to restore
        self.sh("sysctl", "-qw", "net.ipv4.ip_forward=0")

    def ip(self, *args) -> str:
        return run("ip", "-n", self.ns, *args).stdout

    def sh(self, *cmd, check=True) -> subprocess.CompletedProcess:
        return run("nsenter", f"--net=/run/netns/{self.ns}", *cmd, check=check)

    def pyruntime(self, *args, timeout=90) -> subprocess.CompletedProcess:
        cmd = ["nsenter", f"--net=/run/netns/{self.ns}", sys.executable, "-m", "pyruntime",
               "--root", str(self.root), *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # files, not pipes: a detached container's init inherits the caller's stdio
            proc = subprocess.run(cmd, env=repo_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  timeout=timeout, check=False)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(), err.read().decode()
        return proc

    def node_up(self, cluster_file=None) -> list[str]:
        proc = self.pyruntime("network", "node-up", "--cluster", str(cluster_file or self.lab.cluster_file),
                              "--node", self.name, "--config-dir", str(self.config_dir),
                              "--ipam-data-dir", str(self.leases))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    def node_down(self, cluster_file=None) -> list[str]:
        proc = self.pyruntime("network", "node-down", "--cluster", str(cluster_file or self.lab.cluster_file),
                              "--node", self.name, "--config-dir", str(self.config_dir))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    # -- what is there ---------------------------------------------------------------------
    def our_routes(self) -> list[str]:
        lines = [" ".join(line.split()) for line in self.ip("route").splitlines()]
        return [line for line in lines if f" proto {plan.ROUTE_PROTO}" in line]

    def forwarding(self) -> str:
        return self.sh("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()

    def nat(self, backend: str) -> str:
        tool = "iptables-nft-save" if backend == "nftables" else "iptables-legacy-save"
        return self.sh(tool, "-t", "nat", check=False).stdout

    def nat_rules(self, backend: str) -> list[str]:
        """The chains and rules of a nat table, without counters and time stamps."""
        return [line.split(" ")[0] if line.startswith(":") else line
                for line in self.nat(backend).splitlines() if line.startswith((":", "-A"))]

    def cluster_rules(self) -> list[str]:
        """Every line of ours in either backend's nat table, and in `nft list ruleset`."""
        lines = []
        for backend in ("nftables", "iptables"):
            lines += [f"{backend}: {line}" for line in self.nat(backend).splitlines()
                      if plan.CHAIN_PREFIX in line or plan.COMMENT_PREFIX in line]
        nft = self.sh("nft", "list", "ruleset", check=False).stdout
        lines += [f"nft: {line.strip()}" for line in nft.splitlines()
                  if plan.CHAIN_PREFIX in line or plan.COMMENT_PREFIX in line]
        return lines

    # -- containers ------------------------------------------------------------------------
    def bundle(self, args, cgi=False) -> Path:
        config = apply_network(container_config(args), f"bridge:{self.lab.network}", (), HOOK,
                               config_dirs=[str(self.config_dir)], cni_path=[str(self.lab.bin)])
        bundle = make_bundle(self.dir / f"b-{uuid.uuid4().hex[:8]}", config)
        if cgi:
            script = bundle / "rootfs" / "var" / "www" / "cgi-bin" / "peer"
            script.parent.mkdir(parents=True)
            script.write_text(PEER_CGI)
            script.chmod(0o755)
        return bundle

    def start(self, args, cgi=False) -> str:
        cid = f"mn-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        proc = self.pyruntime("run", "-d", "--bundle", str(self.bundle(args, cgi)), cid)
        assert proc.returncode == 0, proc.stderr
        return cid

    def pod_ip(self, cid: str) -> str:
        out = run("ip", "-n", cid, "-4", "-o", "addr", "show", "eth0").stdout
        return out.split()[3].split("/")[0]

    def exec(self, cid: str, script: str) -> subprocess.CompletedProcess:
        return self.pyruntime("exec", cid, "sh", "-c", script)

    def delete_containers(self):
        for cid in self.ids:
            self.pyruntime("delete", "--force", cid)
        self.ids.clear()


class MultiNodeLab:
    def __init__(self, tmp: Path, backend: str):
        self.tmp, self.backend = tmp, backend
        self.tag = uuid.uuid4().hex[:6]
        self.network = f"mn{self.tag}"
        self.netns: list[str] = []
        self.nodes: dict[str, SimNode] = {}
        self.bin = tmp / "cni-bin"
        self.bin.mkdir()
        (self.bin / "pyruntime-bridge").write_text(PLUGIN_WRAPPER.format(python=sys.executable))
        (self.bin / "pyruntime-bridge").chmod(0o755)
        self.lan = f"pyrt-mn-{self.tag}-lan"
        run("ip", "netns", "add", self.lan)
        self.netns.append(self.lan)
        run("ip", "-n", self.lan, "link", "add", "lan0", "type", "bridge")
        run("ip", "-n", self.lan, "link", "set", "lan0", "up")
        self.outside = f"pyrt-mn-{self.tag}-out"
        run("ip", "netns", "add", self.outside)
        self.netns.append(self.outside)
        run("ip", "-n", self.lan, "link", "add", f"lan{self.tag[:6]}o", "type", "veth", "peer", "name", "up0",
            "netns", self.outside)
        run("ip", "-n", self.lan, "link", "set", f"lan{self.tag[:6]}o", "master", "lan0", "up")
        for cmd in (["addr", "add", f"{OUTSIDE}/24", "dev", "up0"], ["link", "set", "up0", "up"],
                    ["link", "set", "lo", "up"]):
            run("ip", "-n", self.outside, *cmd)
        self.cluster_file = tmp / "cluster.json"

    def add_node(self, name: str) -> SimNode:
        self.nodes[name] = SimNode(self, name)
        return self.nodes[name]

    def write_cluster(self, names, path=None, cidr=CIDR) -> Path:
        doc = {"cidr": cidr, "network": self.network, "firewallBackend": self.backend,
               "nodes": [{"name": n, "address": NODES[n][0], "podSubnet": NODES[n][1]} for n in names]}
        path = path or self.cluster_file
        path.write_text(json.dumps(doc, indent=1))
        return path

    def cleanup(self):
        for node in self.nodes.values():
            node.delete_containers()
            node.pyruntime("network", "node-down", "--cluster", str(self.cluster_file), "--node", node.name,
                           "--config-dir", str(node.config_dir))
        for ns in reversed(self.netns):
            run("ip", "netns", "del", ns, check=False)


@pytest.fixture(params=["nftables", "iptables"])
def lab(tmp_path, request):
    lab = MultiNodeLab(tmp_path, request.param)
    try:
        yield lab
    finally:
        lab.cleanup()


def fetch_peer(node: SimNode, cid: str, server_ip: str) -> str:
    """What B's server says the client's address was (busybox wget, retried while httpd starts)."""
    script = (f"for i in $(seq 50); do timeout 3 wget -q -O - http://{server_ip}/cgi-bin/peer && exit 0; "
              "sleep 0.2; done; exit 1")
    proc = node.exec(cid, script)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_pods_reach_each_other_unmasqueraded_and_leave_masqueraded(lab):
    host_forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    a, b, c = lab.add_node("a"), lab.add_node("b"), lab.add_node("c")
    lab.write_cluster(["a", "b"])

    out_a = a.node_up()
    assert f"added route 10.250.2.0/24 via 192.0.2.12 proto {plan.ROUTE_PROTO}" in out_a
    assert "net.ipv4.ip_forward: 0 -> 1" in out_a
    b.node_up()
    assert a.our_routes() == [f"10.250.2.0/24 via 192.0.2.12 dev up0 proto {plan.ROUTE_PROTO}"]
    assert b.our_routes() == [f"10.250.1.0/24 via 192.0.2.11 dev up0 proto {plan.ROUTE_PROTO}"]
    assert a.forwarding() == b.forwarding() == "1"
    record = json.loads((a.root / cluster_node.RECORD_DIR / f"{lab.network}.json").read_text())
    assert record["forwarding"]["previous"] == "0"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forwarding   # per netns
    chain = plan.chain_name(lab.network, CIDR)
    other = "iptables" if lab.backend == "nftables" else "nftables"
    assert f"-A {chain} -s {CIDR} -d {CIDR} -m mark ! --mark 0x4000/0x4000 -j ACCEPT" in a.nat(lab.backend)
    assert f"-j {chain}" in a.nat(lab.backend).split("-A POSTROUTING", 2)[1]      # first in POSTROUTING
    assert chain not in a.nat(other)
    conflist = json.loads((a.config_dir / f"{lab.network}.conflist").read_text())
    assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.250.1.0/24", "gateway": "10.250.1.1"}]]

    # A's pod reaches B's pod by its address; B's server sees A's pod address (no NAT)
    server_b = b.start(["httpd", "-f", "-p", "0.0.0.0:80", "-h", "/var/www"], cgi=True)
    client_a = a.start(["sleep", "300"])
    ip_b, ip_a = b.pod_ip(server_b), a.pod_ip(client_a)
    assert ip_b.startswith("10.250.2.") and ip_a.startswith("10.250.1.")
    assert fetch_peer(a, client_a, ip_b) == f"peer={ip_a}"

    # egress leaving the cluster cidr is masqueraded to the node's address
    server = subprocess.Popen(["ip", "netns", "exec", lab.outside, sys.executable, "-c", PEER_SERVER, OUTSIDE],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        proc = a.exec(client_a, f"echo hi | nc -w 3 {OUTSIDE} 9000")
        assert proc.returncode == 0, proc.stderr
        assert server.stdout.readline().strip() == NODES["a"][0]
    finally:
        server.kill()
        server.wait()

    # a re-run with the same file changes nothing
    before = (a.ip("route"), a.nat_rules(lab.backend), a.nat_rules(other))
    assert a.node_up() == ["node a: up to date"]
    assert (a.ip("route"), a.nat_rules(lab.backend), a.nat_rules(other)) == before

    # without the exception the same request arrives masqueraded; a re-run puts it back
    tool = "iptables-nft" if lab.backend == "nftables" else "iptables-legacy"
    a.sh(tool, "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment",
         f"{plan.COMMENT_PREFIX}{lab.network}", "-j", chain)
    assert fetch_peer(a, client_a, ip_b) == f"peer={NODES['a'][0]}"
    assert a.node_up() == [f'added nat rule -A POSTROUTING -m comment --comment "{plan.COMMENT_PREFIX}'
                           f'{lab.network}" -j {chain}']
    assert fetch_peer(a, client_a, ip_b) == f"peer={ip_a}"

    # the file changes: C joins, B leaves; A converges, C comes up
    lab.write_cluster(["a", "c"])
    out_a = a.node_up()
    assert sorted(out_a) == sorted([f"removed route 10.250.2.0/24 via 192.0.2.12 proto {plan.ROUTE_PROTO}",
                                    f"added route 10.250.3.0/24 via 192.0.2.13 proto {plan.ROUTE_PROTO}"])
    c.node_up()
    assert a.our_routes() == [f"10.250.3.0/24 via 192.0.2.13 dev up0 proto {plan.ROUTE_PROTO}"]
    assert a.nat(lab.backend).count(f"-j {chain}") == 1                    # never duplicated
    server_c = c.start(["httpd", "-f", "-p", "0.0.0.0:80", "-h", "/var/www"], cgi=True)
    assert fetch_peer(a, client_a, c.pod_ip(server_c)) == f"peer={ip_a}"
    proc = a.exec(client_a, f"timeout 3 wget -q -O - http://{ip_b}/cgi-bin/peer")
    assert proc.returncode != 0                        # B's pods are no longer routed from A

    # a wider cidr: a new exception chain replaces the old one, for running pods too
    wider = "10.240.0.0/12"
    lab.write_cluster(["a", "c"], cidr=wider)
    new_chain = plan.chain_name(lab.network, wider)
    out_a = a.node_up()
    assert f"added nat chain {new_chain}" in out_a and f"removed nat chain {chain}" in out_a
    rules_a = a.nat_rules(lab.backend)
    assert f"-A {new_chain} -s {wider} -d {wider} -m mark ! --mark 0x4000/0x4000 -j ACCEPT" in rules_a
    assert not any(chain in r for r in rules_a)
    assert [r for r in rules_a if plan.COMMENT_PREFIX in r] == \
        [f'-A POSTROUTING -m comment --comment "{plan.COMMENT_PREFIX}{lab.network}" -j {new_chain}']
    c.node_up()
    assert fetch_peer(a, client_a, c.pod_ip(server_c)) == f"peer={ip_a}"

    # node-down removes exactly what node-up made, and restores forwarding
    for node in (a, b, c):
        node.delete_containers()
    old = lab.write_cluster(["a", "b"], lab.tmp / "old-cluster.json")
    out_b = b.node_down(old)
    assert "net.ipv4.ip_forward: 1 -> 0 (as before node-up)" in out_b
    for node in (a, c):
        node.node_down()
    for node in (a, b, c):
        assert node.our_routes() == []
        assert node.cluster_rules() == []
        assert node.forwarding() == "0"
        assert not (node.config_dir / f"{lab.network}.conflist").exists()
        assert not (node.root / cluster_node.RECORD_DIR).exists()
        assert [" ".join(r.split()) for r in node.ip("route").splitlines()] == \
            [f"192.0.2.0/24 dev up0 proto kernel scope link src {node.address}"]
    # a second node-down finds nothing to do
    assert a.node_down() == ["node a: nothing to remove"]


def test_routes_of_others_are_left_alone_and_errors_are_clean(lab):
    a = lab.add_node("a")
    lab.write_cluster(["a", "b"])
    a.ip("route", "add", "10.250.2.0/24", "via", "192.0.2.99")        # somebody else's route
    proc = a.pyruntime("network", "node-up", "--cluster", str(lab.cluster_file), "--node", "a",
                       "--config-dir", str(a.config_dir))
    assert proc.returncode != 0
    assert "10.250.2.0/24" in proc.stderr and "Traceback" not in proc.stderr
    assert [" ".join(r.split()) for r in a.ip("route", "show", "10.250.2.0/24").splitlines()] == \
        ["10.250.2.0/24 via 192.0.2.99 dev up0"]
    a.ip("route", "del", "10.250.2.0/24")
    assert a.node_down() and a.cluster_rules() == [] and a.forwarding() == "0"

    # a node not in the file, a bad file: one line, no traceback, nothing made
    for cluster, node, words in ((lab.cluster_file, "z", "'z' is not in the cluster file"),
                                 (lab.tmp / "missing.json", "a", "cannot read cluster file")):
        proc = a.pyruntime("network", "node-up", "--cluster", str(cluster), "--node", node,
                           "--config-dir", str(a.config_dir))
        assert proc.returncode != 0 and words in proc.stderr and "Traceback" not in proc.stderr
    bad = lab.tmp / "bad.json"
    bad.write_text(json.dumps({"cidr": CIDR, "nodes": [{"name": "a", "address": "192.0.2.11",
                                                        "podSubnet": "10.99.0.0/24"}]}))
    proc = a.pyruntime("network", "node-up", "--cluster", str(bad), "--node", "a")
    assert proc.returncode != 0 and "nodes[0] (a).podSubnet" in proc.stderr
    assert a.our_routes() == [] and a.cluster_rules() == []

    # a conflist somebody else wrote is not replaced without --force
    a.config_dir.mkdir(exist_ok=True)
    theirs = a.config_dir / f"{lab.network}.conflist"
    theirs.write_text(json.dumps({"cniVersion": "1.0.0", "name": lab.network, "plugins": []}) + "\n")
    proc = a.pyruntime("network", "node-up", "--cluster", str(lab.cluster_file), "--node", "a",
                       "--config-dir", str(a.config_dir))
    assert proc.returncode != 0 and "--force" in proc.stderr
    assert json.loads(theirs.read_text())["plugins"] == []
    assert a.our_routes() == [] and a.cluster_rules() == []
