"""`pyruntime service` against a real kernel, inside a throwaway "node" network namespace.

Topology per test (all names carry a random id):
  node netns N   bridge svcbr0 10.123.0.1/24 with three backend netns B1..B3 (.11 .12 .13),
                 each running a TCP server on 8080 that answers with its label and the peer
                 address it sees, then echoes lines; a routed veth 10.124.0.1/24 to a
                 "container" netns C (10.124.0.2); a veth owning 10.125.0.1 that the route
                 to the service range 10.96.0.0/24 points at, with that source.
The VIP 10.96.0.10:80 belongs to no interface. pyruntime runs inside N through
`ip netns exec`, so no rule ever lands in the real host's tables.

Shares: 300 connections over three equal backends give each a binomial count with mean 100
and standard deviation 8.2; the accepted band, 60..141 (20%..47%), is more than 4.8 standard
deviations wide on either side, so a correct rule set fails it about once in a million runs,
while a rule set that skews the split (e.g. 1/3 on every rule: 33/22/44%, or no statistic
match: 100/0/0%) fails it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.support import repo_env

SERVER = r"""
import socket, sys, threading
family = socket.AF_INET6 if len(sys.argv) > 2 else socket.AF_INET
s = socket.socket(family)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if len(sys.argv) > 2 else "0.0.0.0", int(sys.argv[2]) if len(sys.argv) > 2 else 8080))
s.listen(256)
print("ready", flush=True)
def serve(c, peer):
    with c:
        c.sendall(f"{sys.argv[1]} {peer[0]}\n".encode())
        for line in c.makefile("rb"):
            c.sendall(line)
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""

# connects COUNT times, prints {"label peer": count} (or "ERR ..." entries) as JSON
CLIENT = r"""
import json, socket, sys
counts = {}
for _ in range(int(sys.argv[3])):
    try:
        with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as c:
            key = c.makefile().readline().strip()
    except OSError as e:
        key = "ERR " + type(e).__name__
    counts[key] = counts.get(key, 0) + 1
print(json.dumps(counts))
"""

# keeps one connection open: prints the backend it reached, then echoes stdin lines through it
HOLDER = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = c.makefile("rwb")
print(f.readline().decode().strip(), flush=True)
for line in sys.stdin:
    f.write(line.encode()); f.flush()
    print(f.readline().decode().strip(), flush=True)
"""

UDP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(100)
    s.sendto(f"{sys.argv[1]} {peer[0]}".encode(), peer)
"""

UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
print(s.recv(100).decode())
"""

VIP, PORT = "10.96.0.10", 80
BACKENDS = {"b1": "10.123.0.11", "b2": "10.123.0.12", "b3": "10.123.0.13"}
CONTAINER_IP, BRIDGE_IP = "10.124.0.2", "10.123.0.1"
FIREWALLS = ["nftables", "iptables"]
SAVE = {"nftables": "iptables-nft-save", "iptables": "iptables-legacy-save"}
OTHER_SAVE = {"nftables": "iptables-legacy-save", "iptables": "iptables-nft-save"}


def sh(*cmd, check=True, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


class Lab:
    def __init__(self, firewall: str):
        self.firewall = firewall
        self.id = uuid.uuid4().hex[:6]
        self.node = f"pyrt-svc-n-{self.id}"
        self.client = f"pyrt-svc-c-{self.id}"
        self.backend_ns = {label: f"pyrt-svc-{label}-{self.id}" for label in BACKENDS}
        self.netns: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def build(self) -> None:
        self._add_netns(self.node)
        self.nexec("ip", "link", "set", "lo", "up")
        self.nexec("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.nexec("ip", "link", "add", "svcbr0", "type", "bridge")
        self.nexec("ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", "svcbr0")
        self.nexec("ip", "link", "set", "svcbr0", "up")
        for i, (label, ip) in enumerate(BACKENDS.items()):
            ns = self.backend_ns[label]
            self._add_netns(ns)
            self.nexec("ip", "link", "add", f"svcv{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            # as the bridge plugin's hairpinMode does: with br_netfilter a backend's packet to
            # the VIP is DNATed while being bridged, and goes back out the port it came in
            self.nexec("ip", "link", "set", f"svcv{i}", "master", "svcbr0", "up")
            self.nexec("ip", "link", "set", f"svcv{i}", "type", "bridge_slave", "hairpin", "on")
            self._wire(ns, ip, BRIDGE_IP)
        self._add_netns(self.client)
        self.nexec("ip", "link", "add", "svcc0", "type", "veth", "peer", "name", "eth0", "netns", self.client)
        self.nexec("ip", "addr", "add", "10.124.0.1/24", "dev", "svcc0")
        self.nexec("ip", "link", "set", "svcc0", "up")
        self._wire(self.client, CONTAINER_IP, "10.124.0.1")
        # the service range routes to a device of its own, with that device's address as the
        # source: the backends see the bridge's address only through the masquerade of
        # node-originated traffic
        self.nexec("ip", "link", "add", "svcd0", "type", "veth", "peer", "name", "svcd1")
        self.nexec("ip", "addr", "add", "10.125.0.1/32", "dev", "svcd0")
        self.nexec("ip", "link", "set", "svcd1", "up")
        self.nexec("ip", "link", "set", "svcd0", "up")
        self.nexec("ip", "route", "add", "10.96.0.0/24", "dev", "svcd0", "src", "10.125.0.1")
        for label, ns in self.backend_ns.items():
            self.start(ns, SERVER, label, ready=True)

    def _add_netns(self, ns: str) -> None:
        sh("ip", "netns", "add", ns)
        self.netns.append(ns)

    def _wire(self, ns: str, ip: str, gateway: str) -> None:
        x = ("ip", "netns", "exec", ns)
        sh(*x, "ip", "link", "set", "lo", "up")
        sh(*x, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        sh(*x, "ip", "link", "set", "eth0", "up")
        sh(*x, "ip", "route", "add", "default", "via", gateway)

    def nexec(self, *cmd, check=True):
        return sh("ip", "netns", "exec", self.node, *cmd, check=check)

    def start(self, ns: str, script: str, *args, ready=False) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        if ready:
            assert p.stdout.readline().strip() == "ready"
        return p

    def pyruntime(self, *args, check=True, env=None):
        return sh("ip", "netns", "exec", self.node, sys.executable, "-m", "pyruntime", *args,
                  check=check, env=repo_env(**(env or {})))

    def service(self, *args, check=True):
        return self.pyruntime("service", *args, "--firewall", self.firewall, check=check)

    def add_web(self, *labels):
        backends = [a for label in labels for a in ("--backend", f"{BACKENDS[label]}:8080")]
        self.service("add", "web", "--vip", f"{VIP}:{PORT}/tcp", *backends)

    def add_ipv6(self) -> None:
        """The same wiring in IPv6: fd00:123::/64 on the bridge (b1, b2 at ::11, ::12),
        fd00:124::/64 to the container, the service range fd00:96::/64 routed to svcd0."""
        nodad = ("nodad",)
        self.nexec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        self.nexec("ip", "-6", "addr", "add", "fd00:123::1/64", "dev", "svcbr0", *nodad)
        self.nexec("ip", "-6", "addr", "add", "fd00:124::1/64", "dev", "svcc0", *nodad)
        self.nexec("ip", "-6", "route", "add", "fd00:96::/64", "dev", "svcd0")
        for ns, ip, gw in ((self.backend_ns["b1"], "fd00:123::11", "fd00:123::1"),
                           (self.backend_ns["b2"], "fd00:123::12", "fd00:123::1"),
                           (self.client, "fd00:124::2", "fd00:124::1")):
            sh("ip", "netns", "exec", ns, "ip", "-6", "addr", "add", f"{ip}/64", "dev", "eth0", *nodad)
            sh("ip", "netns", "exec", ns, "ip", "-6", "route", "add", "default", "via", gw)
        for label in ("b1", "b2"):
            self.start(self.backend_ns[label], SERVER, label, "8081", ready=True)

    def connect(self, ns: str, count: int, vip: str = VIP) -> dict[str, int]:
        out = sh("ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, vip, str(PORT), str(count)).stdout
        return json.loads(out)

    def save(self, tool=None) -> str:
        return self.nexec(tool or SAVE[self.firewall]).stdout

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in reversed(self.netns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(params=FIREWALLS)
def lab(request):
    if shutil.which(SAVE[request.param]) is None:
        pytest.skip(f"{SAVE[request.param]} not installed")
    lab = Lab(request.param)
    try:
        lab.build()
        yield lab
    finally:
        lab.close()


def by_label(counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, n in counts.items():
        out[key.split(" ")[0]] = out.get(key.split(" ")[0], 0) + n
    return out


def ours(save_text: str) -> set[str]:
    """Rules, and chains other than the built-in ones, of a save dump."""
    return {line for line in save_text.splitlines()
            if line.startswith("-A") or (line.startswith(":") and " ACCEPT " not in line)}


def test_shares_removal_and_cleanup(lab):
    before = ours(lab.save())
    lab.add_web("b1", "b2", "b3")

    # the rules live in the chosen backend's tables, in the chains named for the service
    save = lab.save()
    assert '-A PYR-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "pyruntime-service web ' \
           '10.96.0.10:80/tcp" -m tcp --dport 80 -j PYR-SVC-' in save
    assert "--probability 0.33333333349" in save and "--probability 0.50000000000" in save
    assert save.count("-j DNAT --to-destination 10.123.0.1") == 3
    assert "PYR-SERVICES" not in lab.save(OTHER_SAVE[lab.firewall])
    if lab.firewall == "nftables":
        assert "PYR-SERVICES" in lab.nexec("nft", "list", "ruleset").stdout
    listed = json.loads(lab.service("list", "--format", "json").stdout)
    assert listed == [{"name": "web", "vip": "10.96.0.10:80/tcp",
                       "backends": ["10.123.0.11:8080", "10.123.0.12:8080", "10.123.0.13:8080"]}]

    # container traffic: each backend a third, the client's own address preserved
    counts = lab.connect(lab.client, 300)
    assert set(counts) == {f"{label} {CONTAINER_IP}" for label in BACKENDS}, counts
    for label, n in by_label(counts).items():
        assert 60 <= n <= 141, (label, counts)

    # node-originated traffic: the same shares, masqueraded to the bridge's address
    counts = lab.connect(lab.node, 300)
    assert set(counts) == {f"{label} {BRIDGE_IP}" for label in BACKENDS}, counts
    for label, n in by_label(counts).items():
        assert 60 <= n <= 141, (label, counts)

    # a backend reaching its own VIP: answered by itself too, through the masquerade
    # (a dropped first SYN would be retried and land elsewhere: b1 must have answered itself)
    counts = lab.connect(lab.backend_ns["b1"], 60)
    assert sum(n for key, n in counts.items() if not key.startswith("ERR")) == 60, counts
    assert counts.get(f"b1 {BRIDGE_IP}", 0) > 0 and "b1 10.123.0.11" not in counts, counts

    # an established connection to b3, kept open while b3 leaves the service
    holder = None
    for _ in range(60):
        holder = lab.start(lab.client, HOLDER, VIP, str(PORT))
        if holder.stdout.readline().startswith("b3 "):
            break
        holder.kill()
        holder.wait()
        holder = None
    assert holder is not None, "no connection reached b3 in 60 tries"

    lab.add_web("b1", "b2")
    assert lab.service("list").stdout.splitlines()[1].split() == \
        ["web", "10.96.0.10:80/tcp", "10.123.0.11:8080,10.123.0.12:8080"]
    assert "10.123.0.13" not in lab.save()
    counts = by_label(lab.connect(lab.client, 100))
    assert set(counts) == {"b1", "b2"}, counts
    assert all(25 <= n <= 75 for n in counts.values()), counts
    counts = by_label(lab.connect(lab.node, 100))
    assert set(counts) == {"b1", "b2"}, counts

    # conntrack keeps the old connection on b3: it still carries data both ways
    holder.stdin.write("still-there\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "still-there"
    holder.stdin.close()
    holder.wait(timeout=10)

    lab.service("del", "web")
    assert ours(lab.save()) == before
    assert "PYR-" not in lab.nexec("nft", "list", "ruleset").stdout
    assert lab.service("list").stdout.splitlines() == ["NAME  VIP  BACKENDS"]
    counts = lab.connect(lab.client, 3)
    assert all(k.startswith("ERR") for k in counts), counts


def test_two_services_are_listed_and_removed_apart(lab):
    lab.add_web("b1", "b2", "b3")
    lab.service("add", "dns", "--vip", "10.96.0.53:53/udp", "--backend", "10.123.0.11:5353")
    lab.start(lab.backend_ns["b1"], UDP_SERVER, "b1", "5353", ready=True)
    answer = sh("ip", "netns", "exec", lab.client, sys.executable, "-c", UDP_CLIENT, "10.96.0.53", "53").stdout
    assert answer.strip() == f"b1 {CONTAINER_IP}"
    with_dns = ours(lab.save())
    lab.service("add", "other", "--vip", "10.96.0.11:80", "--backend", "10.123.0.12:8080")
    names = [row.split()[0] for row in lab.service("list").stdout.splitlines()[1:]]
    assert names == ["dns", "other", "web"]
    assert by_label(lab.connect(lab.client, 20, vip="10.96.0.11")) == {"b2": 20}   # tcp by default
    lab.service("del", "other")
    assert ours(lab.save()) == with_dns                # exactly what "other" added is gone
    lab.service("del", "web")
    save = lab.save()
    assert "pyruntime-service web " not in save and "pyruntime-service dns " in save
    lab.service("del", "dns")
    assert not any("PYR-" in line for line in ours(lab.save()))


def test_firewall_chosen_by_environment(lab):
    env = {"PYRUNTIME_CNI_FIREWALL": lab.firewall}
    lab.pyruntime("service", "add", "web", "--vip", f"{VIP}:{PORT}/tcp", "--backend", "10.123.0.11:8080", env=env)
    try:
        assert "PYR-SERVICES" in lab.save()
        assert "PYR-SERVICES" not in lab.save(OTHER_SAVE[lab.firewall])
        assert by_label(lab.connect(lab.client, 5)) == {"b1": 5}
    finally:
        lab.pyruntime("service", "del", "web", env=env)
    assert "PYR-" not in lab.save()


def test_concurrent_adds_all_land(lab):
    """Each add reads the table and rewrites it whole: without the xtables lock around both,
    two at once would lose one of them."""
    cmds = [["ip", "netns", "exec", lab.node, sys.executable, "-m", "pyruntime", "service", "add", f"s{i}",
             "--vip", f"10.96.0.{20 + i}:80", "--backend", "10.123.0.11:8080", "--firewall", lab.firewall]
            for i in range(4)]
    procs = [subprocess.Popen(c, env=repo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in cmds]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    names = [row.split()[0] for row in lab.service("list").stdout.splitlines()[1:]]
    assert names == ["s0", "s1", "s2", "s3"]
    for i in range(4):
        lab.service("del", f"s{i}")
    assert not any("PYR-" in line for line in ours(lab.save()))


def test_ipv6_service(lab):
    lab.add_ipv6()
    lab.service("add", "web6", "--vip", "[fd00:96::10]:80/tcp",
                "--backend", "[fd00:123::11]:8081", "--backend", "[fd00:123::12]:8081")
    v6save = "ip6tables-nft-save" if lab.firewall == "nftables" else "ip6tables-legacy-save"
    save = lab.nexec(v6save).stdout
    assert "-A PYR-SERVICES -d fd00:96::10/128 -p tcp" in save
    assert "-j DNAT --to-destination [fd00:123::12]:8081" in save
    assert "PYR-SERVICES" not in lab.save()                      # the IPv4 table is untouched
    assert json.loads(lab.service("list", "--format", "json").stdout)[0]["vip"] == "[fd00:96::10]:80/tcp"
    # 60 connections over two backends: both answer (a miss has odds 2^-59), clients unmasked
    counts = lab.connect(lab.client, 60, vip="fd00:96::10")
    assert set(counts) == {"b1 fd00:124::2", "b2 fd00:124::2"}, counts
    lab.service("del", "web6")
    assert not any("PYR-" in line for line in ours(lab.nexec(v6save).stdout))


@pytest.mark.parametrize("args, named", [
    (["add", "Web", "--vip", "10.96.0.10:80/tcp", "--backend", "10.0.0.1:80"], "service name 'Web'"),
    (["add", "web", "--vip", "10.96.0.10:80/icmp", "--backend", "10.0.0.1:80"], "--vip '10.96.0.10:80/icmp'"),
    (["add", "web", "--vip", "10.96.0.10:80", "--backend", "10.0.0.1:99999"], "--backend '10.0.0.1:99999'"),
    (["add", "web", "--vip", "10.96.0.10:80", "--backend", "[fd00::1]:80"], "--backend '[fd00::1]:80'"),
    (["add", "web", "--vip", "10.96.0.10:80"], "--backend"),
    (["del", "nosuch"], "service 'nosuch'"),
])
def test_user_errors_are_one_line(lab, args, named):
    proc = lab.service(*args, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in proc.stderr, proc.stderr
