"""The bridge plugin against a real kernel, inside a throwaway "host" network namespace.

Topology per test: netns H plays the host; netns O is another machine on H's uplink
(192.168.x.1 on H, .2 on O, O has no route to the container subnet); container sandboxes are
further netns. The plugin runs inside H through `ip netns exec`, so bridges, veths and
netfilter rules never touch the real host.
"""

from __future__ import annotations

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

from tests.support import repo_env

SERVER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall((sys.argv[3] + " " + peer[0] + "\n").encode())
    c.close()
"""

CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(c.recv(200).decode().strip())
except OSError as e:
    print("ERR", e)
    sys.exit(1)
"""

BACKENDS = ["nftables", "iptables"]


def sh(*cmd, check=True, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


class Lab:
    """Host netns, an outside netns, container netns, the plugin in a temp CNI_PATH."""

    def __init__(self, tmp: Path, backend: str):
        self.id = uuid.uuid4().hex[:6]
        self.tmp = tmp
        self.backend = backend
        self.host = f"pyrt-h-{self.id}"
        self.outside = f"pyrt-o-{self.id}"
        self.netns: list[str] = []
        self.servers: list[subprocess.Popen] = []
        self.bin = tmp / "bin"
        self.bin.mkdir()
        wrapper = self.bin / "pyruntime-bridge"
        wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m pyruntime.plugins.bridge \"$@\"\n")
        wrapper.chmod(0o755)
        for ref in ("host-local", "portmap", "tuning", "bridge"):
            if os.path.exists(f"/usr/lib/cni/{ref}"):
                os.symlink(f"/usr/lib/cni/{ref}", self.bin / ref)
        self.data = tmp / "ipam"
        self.ports = tmp / "ports"
        for ns in (self.host, self.outside):
            sh("ip", "netns", "add", ns)
            self.netns.append(ns)
        self.hexec("ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.outside, "ip", "link", "set", "lo", "up")
        self.hexec("ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", self.outside)
        self.hexec("ip", "addr", "add", "192.168.77.1/24", "dev", "uplink")
        self.hexec("ip", "link", "set", "uplink", "up")
        sh("ip", "netns", "exec", self.outside, "ip", "addr", "add", "192.168.77.2/24", "dev", "eth0")
        sh("ip", "netns", "exec", self.outside, "ip", "link", "set", "eth0", "up")

    def hexec(self, *cmd, check=True):
        return sh("ip", "netns", "exec", self.host, *cmd, check=check)

    def sandbox(self, name: str) -> str:
        ns = f"pyrt-c-{self.id}-{name}"
        sh("ip", "netns", "add", ns)
        self.netns.append(ns)
        return ns

    def conf(self, **over) -> dict:
        c = {"cniVersion": "1.1.0", "name": f"pyrtnet{self.id}", "type": "pyruntime-bridge",
             "bridge": "pyrtbr0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
             "hairpinMode": True, "firewallBackend": self.backend,
             "ipam": {"type": "pyruntime-bridge", "subnet": "10.77.0.0/24", "dataDir": str(self.data)}}
        c.update(over)
        return c

    def plugin_env(self, command, cid, ns, ifname="eth0", **extra):
        env = repo_env(CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=f"/run/netns/{ns}" if ns else "",
                       CNI_IFNAME=ifname, CNI_PATH=str(self.bin), PYRUNTIME_CNI_PORTS_DIR=str(self.ports),
                       **extra)
        return env

    def plugin_cmd(self, plugin="pyruntime-bridge"):
        return ["ip", "netns", "exec", self.host, str(self.bin / plugin)]

    def run(self, command, conf, cid="", ns="", ifname="eth0", plugin="pyruntime-bridge", **extra):
        proc = subprocess.run(self.plugin_cmd(plugin), input=json.dumps(conf), text=True, capture_output=True,
                              env=self.plugin_env(command, cid, ns, ifname, **extra), timeout=120)
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.returncode, out, proc.stderr

    def add(self, conf, cid, ns, **kw):
        rc, out, err = self.run("ADD", conf, cid, ns, **kw)
        assert rc == 0, (out, err)
        return out

    def serve(self, ns, addr, port, label):
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, addr, str(port), label]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.servers.append(p)
        assert p.stdout.readline().strip() == "ready"
        return p

    def connect(self, ns, addr, port) -> str:
        proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, addr, str(port)],
                              capture_output=True, text=True, timeout=20)
        return proc.stdout.strip()

    def rules(self) -> str:
        tools = ("iptables-nft-save", "ip6tables-nft-save") if self.backend == "nftables" \
            else ("iptables-legacy-save", "ip6tables-legacy-save")
        return "".join(self.hexec(t) for t in tools)

    def links(self) -> set[str]:
        return set(self.hexec("ls", "/sys/class/net").split())

    def leases(self) -> list[str]:
        """IPAM leases, and port claims (prefixed "port:")."""
        leases = sorted(p.name for p in self.data.rglob("*") if p.is_file()
                        and p.name != "lock" and not p.name.startswith("last_reserved_ip"))
        return leases + sorted(f"port:{p.name}" for p in self.ports.rglob("*") if p.is_file())

    def close(self):
        for p in self.servers:
            p.kill()
            p.wait()
        for ns in reversed(self.netns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(params=BACKENDS)
def lab(request, tmp_path):
    if request.param == "iptables" and shutil.which("iptables-legacy-save") is None:
        pytest.skip("iptables-legacy not installed")
    lab = Lab(tmp_path, request.param)
    try:
        yield lab
    finally:
        lab.close()


def our_rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if "PYR-" in line or "pyruntime/" in line]


def test_add_traffic_check_del(lab):
    ports = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    conf1 = lab.conf(runtimeConfig=ports)
    c1, c2 = lab.sandbox("a"), lab.sandbox("b")
    res1 = lab.add(conf1, "ctr-a", c1)
    res2 = lab.add(lab.conf(), "ctr-b", c2)

    # result shape: bridge, host veth, container interface with its sandbox; ip points at it
    names = [i["name"] for i in res1["interfaces"]]
    assert names[0] == "pyrtbr0" and names[1].startswith("pyr") and names[2] == "eth0"
    assert res1["interfaces"][2]["sandbox"] == f"/run/netns/{c1}"
    ip1 = res1["ips"][0]["address"].split("/")[0]
    ip2 = res2["ips"][0]["address"].split("/")[0]
    assert res1["ips"][0] == {"interface": 2, "address": f"{ip1}/24", "gateway": "10.77.0.1"}
    assert ip1 != ip2
    assert {"dst": "0.0.0.0/0", "gw": "10.77.0.1"} in res1["routes"]

    # kernel state: container side addressed and routed, host side enslaved with hairpin
    assert f"inet {ip1}/24" in sh("ip", "netns", "exec", c1, "ip", "-o", "addr", "show", "eth0")
    assert "default via 10.77.0.1 dev eth0" in sh("ip", "netns", "exec", c1, "ip", "route")
    assert "state UP" in sh("ip", "netns", "exec", c1, "ip", "link", "show", "lo") or \
        "UP" in sh("ip", "netns", "exec", c1, "ip", "-br", "link", "show", "lo")
    veth = names[1]
    assert "master pyrtbr0" in lab.hexec("ip", "link", "show", veth)
    assert "hairpin on" in lab.hexec("bridge", "-d", "link", "show", "dev", veth)
    assert "inet 10.77.0.1/24" in lab.hexec("ip", "-o", "addr", "show", "pyrtbr0")
    assert lab.hexec("cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"

    # a host firewall that drops forwarded traffic by default must not cut the containers off
    lab.hexec("iptables-nft" if lab.backend == "nftables" else "iptables-legacy", "-P", "FORWARD", "DROP")
    if lab.backend == "nftables":
        ruleset = lab.hexec("nft", "list", "ruleset")
        assert "chain PYR-DN-" in ruleset and "chain PYR-SN-" in ruleset and f"ip saddr {ip1}" in ruleset

    lab.serve(lab.host, "10.77.0.1", 9000, "gateway")
    lab.serve(c2, ip2, 9000, "neighbour")
    lab.serve(lab.outside, "192.168.77.2", 9000, "outside")
    lab.serve(c1, "0.0.0.0", 80, "published")

    assert lab.connect(c1, "10.77.0.1", 9000) == f"gateway {ip1}"
    assert lab.connect(c1, ip2, 9000) == f"neighbour {ip1}"
    # SNAT: the outside host sees the host's address, not the container's
    assert lab.connect(c1, "192.168.77.2", 9000) == "outside 192.168.77.1"
    # DNAT from another machine, from the host itself (also on 127.0.0.1), and hairpin
    assert lab.connect(lab.outside, "192.168.77.1", 8080) == "published 192.168.77.2"
    assert lab.connect(lab.host, "192.168.77.1", 8080).startswith("published ")
    assert lab.connect(lab.host, "127.0.0.1", 8080).startswith("published ")
    assert lab.connect(c1, "192.168.77.1", 8080) == "published 10.77.0.1"
    assert lab.connect(c2, "192.168.77.1", 8080) == "published 10.77.0.1"

    # CHECK passes with the ADD result as prevResult...
    check1 = dict(conf1, prevResult=res1)
    rc, out, err = lab.run("CHECK", check1, "ctr-a", c1)
    assert rc == 0 and out is None, (out, err)
    # ...and fails after a rule is removed by hand
    tag_rule = next(line for line in lab.rules().splitlines() if line.startswith("-A PREROUTING") and "PYR-DN-" in line)
    save = "iptables-nft" if lab.backend == "nftables" else "iptables-legacy"
    lab.hexec(save, "-t", "nat", "-D", *tag_rule.replace('"', "").split()[1:])
    rc, out, _ = lab.run("CHECK", check1, "ctr-a", c1)
    assert rc != 0 and out["code"] == 102 and "PREROUTING" in out["details"]
    # ...or after hairpin mode is turned off by hand
    lab.hexec("bridge", "link", "set", "dev", veth, "hairpin", "off")
    rc, out, _ = lab.run("CHECK", check1, "ctr-a", c1)
    assert rc != 0 and "hairpin" in out["details"]
    # ...or after the container's address is removed by hand
    check2 = dict(lab.conf(), prevResult=res2)
    assert lab.run("CHECK", check2, "ctr-b", c2)[0] == 0
    sh("ip", "netns", "exec", c2, "ip", "addr", "del", f"{ip2}/24", "dev", "eth0")
    rc, out, _ = lab.run("CHECK", check2, "ctr-b", c2)
    assert rc != 0 and out["code"] == 102 and ip2 in out["details"]

    # DEL leaves no link, rule, chain or lease, and a second DEL is fine
    links_before = lab.links()
    assert lab.run("DEL", conf1, "ctr-a", c1)[0] == 0
    # the network's shared part (FORWARD accept, masquerade) outlives all but its last attachment
    sh("ip", "netns", "exec", c2, "ip", "addr", "add", f"{ip2}/24", "dev", "eth0")
    sh("ip", "netns", "exec", c2, "ip", "route", "add", "default", "via", "10.77.0.1")
    assert lab.connect(c2, "192.168.77.2", 9000) == "outside 192.168.77.1"
    assert not any(ip1 in line for line in our_rules(lab.rules()))
    assert lab.run("DEL", lab.conf(), "ctr-b", c2)[0] == 0
    assert lab.run("DEL", conf1, "ctr-a", c1)[0] == 0
    assert lab.links() == links_before - {veth, res2["interfaces"][1]["name"]}
    assert not any(n.startswith("pyr") and n != "pyrtbr0" for n in lab.links())
    assert our_rules(lab.rules()) == []
    assert lab.leases() == []
    assert sh("ip", "netns", "exec", c1, "ip", "-br", "link").split()[0] == "lo"


def test_del_after_netns_is_gone(lab):
    ns = lab.sandbox("gone")
    conf = lab.conf(runtimeConfig={"portMappings": [{"hostPort": 8081, "containerPort": 80}]})
    res = lab.add(conf, "ctr-gone", ns)
    sh("ip", "netns", "del", ns)
    lab.netns.remove(ns)
    rc, out, err = lab.run("DEL", conf, "ctr-gone", ns)
    assert rc == 0, (out, err)
    assert res["interfaces"][1]["name"] not in lab.links()
    assert our_rules(lab.rules()) == [] and lab.leases() == []


def test_port_conflict_is_refused_and_rolled_back(lab):
    ports = {"portMappings": [{"hostPort": 8082, "containerPort": 80}]}
    a, b = lab.sandbox("a"), lab.sandbox("b")
    lab.add(lab.conf(runtimeConfig=ports), "ctr-a", a)
    links = lab.links()
    rules_before = our_rules(lab.rules())
    rc, out, _ = lab.run("ADD", lab.conf(runtimeConfig=ports), "ctr-b", b)
    assert rc != 0 and out["code"] == 101 and "tcp/8082" in out["details"]
    assert lab.links() == links and our_rules(lab.rules()) == rules_before
    leases = lab.leases()
    assert len(leases) == 2 and leases[1] == "port:tcp_any_8082"      # only ctr-a's
    # the same port on another protocol is fine
    udp = {"portMappings": [{"hostPort": 8082, "containerPort": 80, "protocol": "udp"}]}
    lab.add(lab.conf(runtimeConfig=udp), "ctr-b", b)
    for cid, ns in (("ctr-a", a), ("ctr-b", b)):
        assert lab.run("DEL", lab.conf(runtimeConfig=ports), cid, ns)[0] == 0
    assert our_rules(lab.rules()) == [] and lab.leases() == []


def test_dual_stack(lab):
    ns = lab.sandbox("v6")
    ipam = {"type": "pyruntime-bridge", "dataDir": str(lab.data),
            "ranges": [[{"subnet": "10.77.1.0/24"}], [{"subnet": "fd77::/64"}]]}
    conf = lab.conf(ipam=ipam, runtimeConfig={"portMappings": [{"hostPort": 8083, "containerPort": 80}]})
    res = lab.add(conf, "ctr-v6", ns)
    addrs = [ip["address"] for ip in res["ips"]]
    assert addrs == ["10.77.1.2/24", "fd77::2/64"]
    assert {"dst": "::/0", "gw": "fd77::1"} in res["routes"]
    lab.hexec("ip", "addr", "add", "fd99::1/64", "dev", "uplink", "nodad")
    sh("ip", "netns", "exec", lab.outside, "ip", "addr", "add", "fd99::2/64", "dev", "eth0", "nodad")
    lab.serve(lab.host, "fd77::1", 9000, "gw6")
    lab.serve(lab.outside, "fd99::2", 9000, "out6")
    lab.serve(ns, "::", 80, "pub6")
    assert lab.connect(ns, "fd77::1", 9000) == "gw6 fd77::2"
    assert lab.connect(ns, "fd99::2", 9000) == "out6 fd99::1"         # masqueraded
    assert lab.connect(lab.outside, "fd99::1", 8083) == "pub6 fd99::2"  # published over IPv6
    assert "fd77::2" in lab.rules()
    assert lab.run("CHECK", dict(conf, prevResult=res), "ctr-v6", ns)[0] == 0
    assert lab.run("DEL", conf, "ctr-v6", ns)[0] == 0
    assert our_rules(lab.rules()) == [] and lab.leases() == []


def test_concurrent_adds_get_distinct_addresses(lab):
    n = 50
    conf = lab.conf()
    sandboxes = [lab.sandbox(f"p{i}") for i in range(n)]
    procs = [subprocess.Popen(lab.plugin_cmd(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=lab.plugin_env("ADD", f"ctr-{i}", ns))
             for i, ns in enumerate(sandboxes)]
    outs = []
    for p in procs:
        out, err = p.communicate(json.dumps(conf), timeout=300)
        assert p.returncode == 0, (out, err)
        outs.append(json.loads(out))
    addrs = [o["ips"][0]["address"] for o in outs]
    assert len(set(addrs)) == n
    assert len(lab.leases()) == n
    saved = lab.rules().splitlines()
    assert len([r for r in saved if r.startswith("-A POSTROUTING -s ")]) == n      # one masquerade jump each
    # the network's shared part was made once, by whichever ADD came first
    assert len([r for r in saved if r.startswith("-A FORWARD ") and "-j PYR-FW-" in r]) == 1
    assert len([r for r in saved if r.startswith("-A POSTROUTING -o pyrtbr0 -m mark")]) == 1
    procs = [subprocess.Popen(lab.plugin_cmd(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=lab.plugin_env("DEL", f"ctr-{i}", ns))
             for i, ns in enumerate(sandboxes)]
    for p in procs:
        out, err = p.communicate(json.dumps(conf), timeout=300)
        assert p.returncode == 0, (out, err)
    assert lab.leases() == [] and our_rules(lab.rules()) == []
    assert not any(name.startswith("pyr") and name != "pyrtbr0" for name in lab.links())


def test_gc_and_status(lab):
    a, b = lab.sandbox("a"), lab.sandbox("b")
    conf = lab.conf()
    lab.add(conf, "ctr-a", a)
    res_b = lab.add(dict(conf, runtimeConfig={"portMappings": [{"hostPort": 8090, "containerPort": 80}]}),
                    "ctr-b", b)
    assert "port:tcp_any_8090" in lab.leases()
    rc, out, err = lab.run("STATUS", conf)
    assert rc == 0 and out is None, (out, err)
    gc_conf = dict(conf, **{"cni.dev/valid-attachments": [{"containerID": "ctr-a", "ifname": "eth0"}]})
    rc, out, err = lab.run("GC", gc_conf)
    assert rc == 0, (out, err)
    assert len(lab.leases()) == 1
    assert res_b["interfaces"][1]["name"] not in lab.links()
    assert all("ctr-b" not in line for line in our_rules(lab.rules()))
    assert any("ctr-a" in line for line in our_rules(lab.rules()))
    assert lab.run("DEL", conf, "ctr-a", a)[0] == 0
    assert lab.leases() == [] and our_rules(lab.rules()) == []


@pytest.mark.parametrize("cni_version", ["0.3.1", "0.4.0", "1.0.0"])
def test_older_versions_and_chaining(lab, cni_version):
    if lab.backend == "iptables":
        pytest.skip("result shapes do not depend on the firewall backend")
    ns = lab.sandbox("v")
    conf = lab.conf(cniVersion=cni_version, ipMasq=False)
    res = lab.add(conf, "ctr-v", ns)
    assert res["cniVersion"] == cni_version
    assert ("version" in res["ips"][0]) == (cni_version < "1.0.0")
    # the reference tuning plugin accepts our result as prevResult (we are first in a conflist)
    tuning = {"cniVersion": cni_version, "name": conf["name"], "type": "tuning",
              "sysctl": {"net.ipv4.conf.eth0.rp_filter": "2"}, "prevResult": res}
    rc, out, err = lab.run("ADD", tuning, "ctr-v", ns, plugin="tuning")
    assert rc == 0, (out, err)
    assert sh("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter").strip() == "2"
    # and we accept a prevResult too: ours is appended after it
    second = lab.sandbox("w")
    chained = lab.add(dict(conf, prevResult=res), "ctr-w", second, ifname="eth1")
    assert len(chained["interfaces"]) == 6 and chained["ips"][-1]["interface"] == 5
    assert lab.run("DEL", conf, "ctr-w", second, ifname="eth1")[0] == 0
    assert lab.run("DEL", conf, "ctr-v", ns)[0] == 0
    assert lab.leases() == []


def test_delegated_and_serving_ipam(lab):
    if lab.backend == "iptables":
        pytest.skip("IPAM delegation does not depend on the firewall backend")
    ns = lab.sandbox("d")
    # our bridge with the reference host-local as IPAM
    # (Debian's reference plugins speak up to 1.0.0)
    conf = lab.conf(cniVersion="1.0.0",
                    ipam={"type": "host-local", "subnet": "10.77.2.0/24", "dataDir": str(lab.data)})
    res = lab.add(conf, "ctr-d", ns)
    assert res["ips"][0]["address"] == "10.77.2.2/24"
    assert lab.leases() == ["10.77.2.2"]
    assert lab.run("DEL", conf, "ctr-d", ns)[0] == 0
    assert lab.leases() == []
    # the reference bridge with us as its IPAM
    ref = {"cniVersion": "1.0.0", "name": conf["name"], "type": "bridge", "bridge": "pyrtref0",
           "isGateway": True, "ipam": {"type": "pyruntime-bridge", "subnet": "10.77.3.0/24",
                                       "dataDir": str(lab.data)}}
    rc, out, err = lab.run("ADD", ref, "ctr-r", ns, plugin="bridge")
    assert rc == 0, (out, err)
    assert out["ips"][0]["address"] == "10.77.3.2/24"
    assert (lab.data / conf["name"] / "10.77.3.2").read_bytes() == b"ctr-r\r\neth0"
    rc, out, err = lab.run("DEL", ref, "ctr-r", ns, plugin="bridge")
    assert rc == 0, (out, err)
    assert lab.leases() == []


def test_link_options_requested_ip_and_exhaustion(lab):
    if lab.backend == "iptables":
        pytest.skip("link options do not depend on the firewall backend")
    a, b, c = lab.sandbox("a"), lab.sandbox("b"), lab.sandbox("c")
    ipam = {"type": "pyruntime-bridge", "subnet": "10.77.4.0/29", "rangeEnd": "10.77.4.3", "dataDir": str(lab.data)}
    dns = {"nameservers": ["10.77.4.1"], "domain": "lab", "search": ["lab"], "options": ["ndots:2"]}
    conf = lab.conf(mtu=1400, promiscMode=True, ipMasq=False, ipam=ipam, dns=dns)
    res = lab.add(conf, "ctr-a", a, CNI_ARGS="IgnoreUnknown=1;IP=10.77.4.3;MAC=02:00:00:aa:bb:cc")
    assert res["dns"] == dns                        # the network's dns, passed on in the result
    assert res["ips"][0]["address"] == "10.77.4.3/29"
    assert res["interfaces"][2]["mac"] == "02:00:00:aa:bb:cc" and res["interfaces"][2]["mtu"] == 1400
    assert "link/ether 02:00:00:aa:bb:cc" in sh("ip", "netns", "exec", a, "ip", "link", "show", "eth0")
    assert "mtu 1400" in sh("ip", "netns", "exec", a, "ip", "link", "show", "eth0")
    assert "mtu 1400" in lab.hexec("ip", "link", "show", res["interfaces"][1]["name"])
    assert "PROMISC" in lab.hexec("ip", "link", "show", "pyrtbr0")
    # the requested address is taken now
    rc, out, _ = lab.run("ADD", conf, "ctr-b", b, CNI_ARGS="IP=10.77.4.3")
    assert rc != 0 and out["code"] == 7 and "10.77.4.3" in out["details"]
    assert lab.add(conf, "ctr-b", b)["ips"][0]["address"] == "10.77.4.2/29"
    # .1 is the gateway, .2 and .3 are leased: the range is exhausted
    rc, out, _ = lab.run("ADD", conf, "ctr-c", c)
    assert rc != 0 and out["code"] == 100 and "10.77.4.1-10.77.4.3" in out["details"]
    assert len([n for n in lab.links() if n.startswith("pyr") and n != "pyrtbr0"]) == 2   # a's and b's
    # a bridge address outside the gateway's subnet is replaced only with forceAddress
    lab.hexec("ip", "addr", "del", "10.77.4.1/29", "dev", "pyrtbr0")
    lab.hexec("ip", "addr", "add", "10.77.4.6/29", "dev", "pyrtbr0")
    for cid, ns in (("ctr-a", a), ("ctr-b", b)):
        assert lab.run("DEL", conf, cid, ns)[0] == 0
    rc, out, _ = lab.run("ADD", conf, "ctr-c", c)
    assert rc != 0 and out["code"] == 7 and "forceAddress" in out["details"]
    assert lab.leases() == []
    res = lab.add(dict(conf, forceAddress=True), "ctr-c", c)
    bridge_addrs = lab.hexec("ip", "-o", "addr", "show", "pyrtbr0")
    assert "10.77.4.1/29" in bridge_addrs and "10.77.4.6/29" not in bridge_addrs
    assert lab.run("DEL", conf, "ctr-c", c)[0] == 0
    assert lab.leases() == []


def test_busy_locks_give_try_again_later_and_roll_back(lab, tmp_path):
    """A lock held too long (IPAM store, xtables lock) is CNI error 11, and the ADD made nothing."""
    import fcntl
    a = lab.sandbox("busy")
    conf = lab.conf(runtimeConfig={"portMappings": [{"hostPort": 8095, "containerPort": 80}]})
    xtables_lock = tmp_path / "xtables.lock"
    env = {"PYRUNTIME_CNI_LOCK_TIMEOUT": "2", "XTABLES_LOCKFILE": str(xtables_lock)}
    ipam_dir = lab.data / conf["name"]
    ipam_dir.mkdir(parents=True, exist_ok=True)
    links_before = lab.links()
    for lock_file in (ipam_dir / "lock", xtables_lock):
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            started = time.monotonic()
            rc, out, err = lab.run("ADD", conf, "ctr-busy", a, **env)
            assert rc != 0 and out["code"] == 11, (out, err)
            assert str(lock_file) in out["msg"] or str(lock_file.parent) in out["msg"]
            # one wait of 2 s: the rollback does not wait for the same lock a second time
            assert 2 <= time.monotonic() - started < 3.6
        finally:
            os.close(fd)
        # the bridge stays, as it does after DEL; the veth pair is gone
        assert lab.links() - {"pyrtbr0"} == links_before and lab.leases() == [] and our_rules(lab.rules()) == []
    rc, out, _ = lab.run("ADD", conf, "ctr-busy", a, PYRUNTIME_CNI_LOCK_TIMEOUT="soon")
    assert rc != 0 and out["code"] == 4 and "PYRUNTIME_CNI_LOCK_TIMEOUT" in out["msg"]
    lab.add(conf, "ctr-busy", a, **env)                 # free again: the same ADD goes through
    assert lab.run("DEL", conf, "ctr-busy", a, **env)[0] == 0
    assert lab.leases() == [] and our_rules(lab.rules()) == []


def test_netns_given_as_proc_pid_path(lab):
    if lab.backend == "iptables":
        pytest.skip("netns paths do not depend on the firewall backend")
    ns = lab.sandbox("pid")
    holder = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"])
    try:
        for _ in range(100):           # wait until the child has entered the netns
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino:
                break
            time.sleep(0.02)
        conf = lab.conf(ipMasq=False)
        env_path = f"/proc/{holder.pid}/ns/net"
        proc = subprocess.run(lab.plugin_cmd(), input=json.dumps(conf), text=True, capture_output=True,
                              env=dict(lab.plugin_env("ADD", "ctr-pid", ns), CNI_NETNS=env_path), timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        res = json.loads(proc.stdout)
        assert res["interfaces"][2]["sandbox"] == env_path
        assert res["ips"][0]["address"].split("/")[0] in sh("ip", "netns", "exec", ns, "ip", "-o", "addr")
        assert lab.run("DEL", conf, "ctr-pid", ns)[0] == 0
        assert lab.leases() == []
    finally:
        holder.kill()
        holder.wait()


def test_conflist_with_reference_plugins_chained_after_ours(lab):
    if lab.backend == "iptables":
        pytest.skip("conflist running does not depend on the firewall backend")
    from pyruntime.cni import runtime
    from pyruntime.cni.errors import CniError
    from pyruntime.hostnet import links
    ns = lab.sandbox("list")
    first = {k: v for k, v in lab.conf(cniVersion="1.0.0").items() if k not in ("cniVersion", "name")}
    first["capabilities"] = {"portMappings": True}
    conflist = runtime.parse_conflist({"cniVersion": "1.0.0", "name": f"pyrtlist{lab.id}", "plugins": [
        first, {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.rp_filter": "2"}}]})
    caps = {"portMappings": [{"hostPort": 8085, "containerPort": 80, "protocol": "tcp"}]}
    cache = tempfile.mkdtemp(prefix="pyrt-cache-")
    cni = runtime.CNIRuntime(cni_path=[str(lab.bin)], cache_dir=cache)
    netns = f"/run/netns/{ns}"
    host_fd = links.open_netns(f"/run/netns/{lab.host}")
    old_env = dict(os.environ)
    os.environ["PYRUNTIME_CNI_PORTS_DIR"] = str(lab.ports)
    os.environ["PYTHONPATH"] = repo_env()["PYTHONPATH"]
    try:
        with links.entered(host_fd):
            res = cni.add(conflist, "ctr-list", netns, "eth0", capability_args=caps)
            assert res["ips"][0]["address"].startswith("10.77.0.")
            assert sh("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter").strip() == "2"
            assert "--dport 8085" in lab.rules()
            cni.check(conflist, "ctr-list", netns, "eth0")
            cni.delete(conflist, "ctr-list", netns, "eth0", capability_args=caps)
            assert our_rules(lab.rules()) == [] and lab.leases() == []
            # a failing later plugin rolls back the earlier ones
            broken = dict(conflist, plugins=[first, {"type": "no-such-plugin"}])
            with pytest.raises(CniError):
                cni.add(broken, "ctr-list", netns, "eth0", capability_args=caps)
            assert sh("ip", "netns", "exec", ns, "ip", "-br", "link").split()[0] == "lo"
            assert len(sh("ip", "netns", "exec", ns, "ip", "-br", "link").splitlines()) == 1
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        os.close(host_fd)
        shutil.rmtree(cache, ignore_errors=True)
    assert our_rules(lab.rules()) == [] and lab.leases() == []


UDP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(200)
    s.sendto((sys.argv[3] + " " + peer[0]).encode(), peer)
"""

UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(6):  # datagrams may be lost while the conntrack entry is being made
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recv(200).decode())
        break
    except socket.timeout:
        continue
else:
    print("ERR no answer")
"""


def test_udp_mapping_and_host_ip_confinement(lab):
    """A udp port is published too; a mapping with a hostIP answers on that address only."""
    lab.hexec("ip", "addr", "add", "192.168.77.3/24", "dev", "uplink")
    ports = {"portMappings": [{"hostPort": 8081, "containerPort": 81, "protocol": "udp"},
                              {"hostPort": 8082, "containerPort": 82, "protocol": "tcp",
                               "hostIP": "192.168.77.3"}]}
    conf = lab.conf(runtimeConfig=ports)
    ns = lab.sandbox("u")
    lab.add(conf, "ctr-u", ns)
    udp = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", UDP_SERVER, "0.0.0.0", "81", "udp"],
                           stdout=subprocess.PIPE, text=True)
    lab.servers.append(udp)
    assert udp.stdout.readline().strip() == "ready"
    lab.serve(ns, "0.0.0.0", 82, "tcp82")

    def udp_ask(addr, port):
        return subprocess.run(["ip", "netns", "exec", lab.outside, sys.executable, "-c", UDP_CLIENT, addr, str(port)],
                              capture_output=True, text=True, timeout=20).stdout.strip()

    assert udp_ask("192.168.77.1", 8081) == "udp 192.168.77.2"
    assert lab.connect(lab.outside, "192.168.77.3", 8082) == "tcp82 192.168.77.2"
    assert lab.connect(lab.outside, "192.168.77.1", 8082).startswith("ERR")  # not on the other address
    assert lab.run("DEL", conf, "ctr-u", ns)[0] == 0
    assert our_rules(lab.rules()) == [] and lab.leases() == []


def test_sctp_mapping_is_published_checked_and_removed(lab):
    """sctp mappings get their DNAT rules (this kernel has no SCTP sockets, so no traffic)."""
    ports = {"portMappings": [{"hostPort": 3868, "containerPort": 3868, "protocol": "sctp"}]}
    conf = lab.conf(runtimeConfig=ports)
    ns = lab.sandbox("s")
    res = lab.add(conf, "ctr-s", ns)
    ip = res["ips"][0]["address"].split("/")[0]
    dnat = [r for r in our_rules(lab.rules()) if "--to-destination" in r]
    assert dnat == [f"-A {dnat[0].split()[1]} -p sctp -m sctp --dport 3868 -j DNAT --to-destination {ip}:3868"]
    assert lab.run("CHECK", dict(conf, prevResult=res), "ctr-s", ns)[0] == 0
    # the same sctp port is taken now; the same port over tcp is not
    other = lab.sandbox("s2")
    rc, out, _ = lab.run("ADD", conf, "ctr-s2", other)
    assert rc != 0 and out["code"] == 101 and "sctp" in out["details"]
    tcp = lab.conf(runtimeConfig={"portMappings": [{"hostPort": 3868, "containerPort": 3868, "protocol": "tcp"}]})
    lab.add(tcp, "ctr-s2", other)
    assert lab.run("DEL", tcp, "ctr-s2", other)[0] == 0
    assert lab.run("DEL", conf, "ctr-s", ns)[0] == 0
    assert our_rules(lab.rules()) == [] and lab.leases() == []


def test_attachments_made_under_changed_settings_get_a_shared_part_of_their_own(lab):
    """The network's first attachment had no ipMasq; one added after the config changed gets
    the masquerade it needs. The last DEL of the network takes every shared part. Ports come
    and go without changing the bridge's MAC (the containers' gateway stays reachable)."""
    a, b = lab.sandbox("sa"), lab.sandbox("sb")
    lab.add(lab.conf(ipMasq=False, runtimeConfig={"portMappings": [{"hostPort": 8097, "containerPort": 80}]}),
            "ctr-a", a)
    res_b = lab.add(lab.conf(), "ctr-b", b)
    bridge_mac = res_b["interfaces"][0]["mac"]
    saved = lab.rules().splitlines()
    assert len([r for r in saved if r.startswith("-A FORWARD ") and "-j PYR-FW-" in r]) == 2
    lab.serve(lab.outside, "192.168.77.2", 9000, "outside")
    assert lab.connect(b, "192.168.77.2", 9000) == "outside 192.168.77.1"      # masqueraded
    assert lab.run("DEL", lab.conf(ipMasq=False), "ctr-a", a)[0] == 0
    assert f"link/ether {bridge_mac}" in lab.hexec("ip", "link", "show", "pyrtbr0")
    assert lab.connect(b, "192.168.77.2", 9000) == "outside 192.168.77.1"
    assert lab.run("DEL", lab.conf(), "ctr-b", b)[0] == 0
    assert our_rules(lab.rules()) == [] and lab.leases() == []


# A frame for 127.0.0.1 put on the container's wire by hand, addressed to the bridge's MAC: what
# a container with CAP_NET_RAW can do. The kernel's own stack would never send it (lo owns
# 127.0.0.0/8 in the container), so a packet socket writes Ethernet, IPv4 and UDP headers itself.
CRAFTED_UDP = r"""
import socket, struct, sys
ifname, src_mac, dst_mac, src_ip, dst_ip, sport, dport, payload = sys.argv[1:]
payload = payload.encode()

def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

udp = struct.pack("!HHHH", int(sport), int(dport), 8 + len(payload), 0) + payload   # no UDP checksum
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, socket.IPPROTO_UDP, 0,
                 socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
mac = lambda text: bytes.fromhex(text.replace(":", ""))
frame = mac(dst_mac) + mac(src_mac) + struct.pack("!H", 0x0800) + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
s.send(frame)
"""

# Prints every datagram it gets, one per line.
UDP_SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    print(s.recv(200).decode(errors="replace"), flush=True)
"""


def _lines_within(proc: subprocess.Popen, seconds: float) -> list[str]:
    """What `proc` printed within `seconds` (its stdout is an unbuffered binary pipe)."""
    import select
    data = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        data += chunk
    return data.decode().splitlines()


def test_containers_cannot_reach_the_hosts_loopback_services(lab):
    """CVE-2020-8558: publishing a port turns route_localnet on for the bridge; a container
    must still not reach a service bound to the host's 127.0.0.1 by sending it a crafted
    frame. Without the guard the same frame does get there (the test's positive control)."""
    ports = {"portMappings": [{"hostPort": 8086, "containerPort": 80, "protocol": "tcp"}]}
    conf = lab.conf(runtimeConfig=ports)
    ns = lab.sandbox("lo")
    res = lab.add(conf, "ctr-lo", ns)
    bridge_mac, cont_mac = res["interfaces"][0]["mac"], res["interfaces"][2]["mac"]
    cont_ip = res["ips"][0]["address"].split("/")[0]
    route_localnet = "/proc/sys/net/ipv4/conf/pyrtbr0/route_localnet"
    assert lab.hexec("cat", route_localnet).strip() == "1"

    sink = subprocess.Popen(["ip", "netns", "exec", lab.host, sys.executable, "-u", "-c", UDP_SINK,
                             "127.0.0.1", "9053"], stdout=subprocess.PIPE, bufsize=0)
    lab.servers.append(sink)
    assert _lines_within(sink, 10) == ["ready"]

    def send_crafted(payload, sport):
        for _ in range(3):
            sh("ip", "netns", "exec", ns, sys.executable, "-c", CRAFTED_UDP, "eth0", cont_mac, bridge_mac,
               cont_ip, "127.0.0.1", str(sport), "9053", payload)

    guard = [line for line in lab.rules().splitlines() if line.startswith("-A INPUT ")]
    assert guard == ["-A INPUT -d 127.0.0.0/8 -i pyrtbr0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
                     f'-m comment --comment "pyruntime/{guard[0].split("pyruntime/")[1].split("/")[0]}/'
                     f'{conf["name"]}" -j DROP'], guard
    send_crafted("guarded", 40001)
    assert _lines_within(sink, 1.5) == []
    tool = "iptables-nft" if lab.backend == "nftables" else "iptables-legacy"
    counted = [line for line in lab.hexec(tool + "-save", "-c", "-t", "filter").splitlines() if "-A INPUT " in line]
    assert counted and not counted[0].startswith("[0:"), counted      # the guard dropped them

    # hostport on loopback still works: the host's own 127.0.0.1 reaches the published port
    lab.serve(ns, "0.0.0.0", 80, "published")
    assert lab.connect(lab.host, "127.0.0.1", 8086).startswith("published ")

    # positive control: without the guard the same frames reach the service
    guard_args = guard[0].replace('"', "").split()[2:]
    lab.hexec(tool, "-t", "filter", "-D", "INPUT", *guard_args)
    try:
        send_crafted("unguarded", 40002)
        assert "unguarded" in _lines_within(sink, 5)
    finally:
        lab.hexec(tool, "-t", "filter", "-I", "INPUT", "1", *guard_args)

    # DEL of the network's last attachment takes the guard and turns route_localnet off again
    assert lab.run("DEL", conf, "ctr-lo", ns)[0] == 0
    assert our_rules(lab.rules()) == [] and lab.leases() == []
    assert lab.hexec("cat", route_localnet).strip() == "0"


def test_netns_that_is_the_plugins_own_is_refused(lab):
    """CNI_NETNS naming the namespace the plugin runs in (here the lab's "host") under any
    path: its own /proc entries, another process's, the bind mount `ip netns` made, and
    /proc/1/ns/net for a plugin that is PID 1 of its own PID namespace. Nothing is made."""
    if lab.backend == "iptables":
        pytest.skip("netns checks do not depend on the firewall backend")
    conf = lab.conf(runtimeConfig={"portMappings": [{"hostPort": 8087, "containerPort": 80}]})
    holder = subprocess.Popen(["ip", "netns", "exec", lab.host, "sleep", "60"])
    try:
        for _ in range(100):           # until the child has entered the lab's host netns
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino == os.stat(f"/run/netns/{lab.host}").st_ino:
                break
            time.sleep(0.02)
        links, rules = lab.links(), our_rules(lab.rules())
        routes = lab.hexec("ip", "route")
        as_pid1 = ["ip", "netns", "exec", lab.host, "unshare", "--pid", "--fork", "--mount-proc",
                   str(lab.bin / "pyruntime-bridge")]
        cases = [("/proc/self/ns/net", None), ("/proc/thread-self/ns/net", None),
                 (f"/proc/{holder.pid}/ns/net", None), (f"/run/netns/{lab.host}", None),
                 ("/proc/1/ns/net", as_pid1)]
        for command in ("ADD", "CHECK"):
            for path, cmd in cases:
                env = dict(lab.plugin_env(command, "ctr-own", None), CNI_NETNS=path)
                proc = subprocess.run(cmd or lab.plugin_cmd(), input=json.dumps(dict(conf, prevResult={
                    "cniVersion": "1.1.0", "interfaces": [], "ips": []})), text=True, capture_output=True,
                    env=env, timeout=60)
                out = json.loads(proc.stdout)
                assert proc.returncode != 0 and out["code"] == 4, (path, out, proc.stderr)
                assert out["msg"] == "CNI_NETNS is the plugin's own network namespace", (path, out)
                assert "Traceback" not in proc.stderr
                assert lab.links() == links and our_rules(lab.rules()) == rules and lab.leases() == []
                assert lab.hexec("ip", "route") == routes
    finally:
        holder.kill()
        holder.wait()
