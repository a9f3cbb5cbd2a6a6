#!/usr/bin/env python3
"""Time pyruntime-bridge against the reference CNI chain, inside a throwaway netns.

  python bench/cni_bench.py [--runs 30] [--scale 500] [--backend auto|nftables|iptables]

1. ADD+DEL of one attachment with the same settings (bridge, isGateway, ipMasq, hairpin,
   host-local IPAM, one published port):
     ours:      pyruntime-bridge                          (one process)
     reference: bridge(+host-local) then portmap; DEL in reverse order (three processes)
   Medians over --runs, and the ratio ours/reference.
2. ADD latency of our plugin with --scale attachments already on the bridge vs none.

Everything happens inside a fresh "host" netns and per-container netns that are removed at the
end; the host's own interfaces and rules are never touched. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DIR = "/usr/lib/cni"


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


class Bench:
    def __init__(self, backend: str):
        self.id = uuid.uuid4().hex[:6]
        self.host = f"pyrb-h-{self.id}"
        self.tmp = tempfile.mkdtemp(prefix="pyrb-")
        self.bin = os.path.join(self.tmp, "bin")
        os.mkdir(self.bin)
        wrapper = os.path.join(self.bin, "pyruntime-bridge")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec {sys.executable} -m pyruntime.plugins.bridge \"$@\"\n")
        os.chmod(wrapper, 0o755)
        self.backend = backend
        self.netns: list[str] = []
        sys.path.insert(0, REPO)
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.add_host(self.host)
        self.enter(self.host)

    def add_host(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.netns.append(name)
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")

    def enter(self, name: str) -> None:
        """Move the bench itself into a host netns, so plugins run as its direct children:
        `ip netns exec` per call would add its own cost, which grows with every netns mount."""
        from pyruntime import linux
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            linux.setns(fd, linux.CLONE_NEWNET)
        finally:
            os.close(fd)

    def exec(self, cmd, **kw):
        return subprocess.run(cmd, capture_output=True, **kw)

    def sandbox(self, name: str) -> str:
        ns = f"pyrb-c-{self.id}-{name}"
        sh("ip", "netns", "add", ns)
        self.netns.append(ns)
        return ns

    def env(self, command: str, cid: str, ns: str) -> dict:
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=cid, CNI_NETNS=f"/run/netns/{ns}",
                   CNI_IFNAME="eth0", CNI_PATH=f"{self.bin}:{REFERENCE_DIR}", PYTHONPATH=REPO,
                   PYRUNTIME_CNI_PORTS_DIR=os.path.join(self.tmp, "ports"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def call(self, plugin: str, command: str, conf: dict, cid: str, ns: str) -> dict | None:
        proc = self.exec([plugin], input=json.dumps(conf).encode(), env=self.env(command, cid, ns))
        if proc.returncode != 0:
            raise RuntimeError(f"{os.path.basename(plugin)} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    # -- configurations with the same settings ------------------------------------------------
    def ours(self, subnet="10.66.0.0/16") -> dict:
        return {"cniVersion": "1.0.0", "name": f"pyrb-ours-{self.id}", "type": "pyruntime-bridge",
                "bridge": "pyrbours0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
                "hairpinMode": True, "firewallBackend": self.backend,
                "ipam": {"type": "pyruntime-bridge", "subnet": subnet, "dataDir": os.path.join(self.tmp, "ipam")},
                "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}

    def reference(self) -> tuple[dict, dict]:
        name = f"pyrb-ref-{self.id}"
        bridge = {"cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": "pyrbref0",
                  "isGateway": True, "isDefaultGateway": True, "ipMasq": True, "hairpinMode": True,
                  "ipam": {"type": "host-local", "subnet": "10.67.0.0/16", "dataDir": os.path.join(self.tmp, "ipam")}}
        portmap = {"cniVersion": "1.0.0", "name": name, "type": "portmap", "capabilities": {"portMappings": True},
                   "runtimeConfig": {"portMappings": [{"hostPort": 8081, "containerPort": 80, "protocol": "tcp"}]}}
        return bridge, portmap

    # -- measurements ---------------------------------------------------------------------------
    def time_ours(self, ns: str, cid: str) -> tuple[float, float]:
        conf = self.ours()
        t0 = time.perf_counter()
        self.call(os.path.join(self.bin, "pyruntime-bridge"), "ADD", conf, cid, ns)
        t1 = time.perf_counter()
        self.call(os.path.join(self.bin, "pyruntime-bridge"), "DEL", conf, cid, ns)
        return t1 - t0, time.perf_counter() - t1

    def time_reference(self, ns: str, cid: str) -> tuple[float, float]:
        bridge, portmap = self.reference()
        t0 = time.perf_counter()
        res = self.call(f"{REFERENCE_DIR}/bridge", "ADD", bridge, cid, ns)
        self.call(f"{REFERENCE_DIR}/portmap", "ADD", dict(portmap, prevResult=res), cid, ns)
        t1 = time.perf_counter()
        self.call(f"{REFERENCE_DIR}/portmap", "DEL", dict(portmap, prevResult=res), cid, ns)
        self.call(f"{REFERENCE_DIR}/bridge", "DEL", bridge, cid, ns)
        return t1 - t0, time.perf_counter() - t1

    def close(self):
        from pyruntime import linux
        linux.setns(self.home, linux.CLONE_NEWNET)
        for ns in reversed(self.netns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def ms(x: float) -> str:
    return f"{x * 1000:7.1f} ms"


def compare(b: Bench, runs: int) -> dict:
    ns = b.sandbox("cmp")
    ours, ref = [], []
    for i in range(runs + 1):                      # first round warms caches and creates bridges
        o = b.time_ours(ns, f"cmp-{i}")
        r = b.time_reference(ns, f"cmp-{i}")
        if i:
            ours.append(o)
            ref.append(r)
    out = {}
    for label, idx in (("ADD", 0), ("DEL", 1)):
        out[label] = (statistics.median(x[idx] for x in ours), statistics.median(x[idx] for x in ref))
    out["ADD+DEL"] = (statistics.median(sum(x) for x in ours), statistics.median(sum(x) for x in ref))
    print(f"\n{'':8} {'pyruntime-bridge':>16} {'reference chain':>16} {'ratio':>7}")
    for label, (o, r) in out.items():
        print(f"{label:8} {ms(o):>16} {ms(r):>16} {o / r:7.2f}")
    return out


def scale(b: Bench, n: int, samples: int) -> dict:
    """ADD/DEL latency on a host with n attachments vs an identical host with none.

    The two hosts are separate netns and samples alternate between them, so load from anything
    else on the machine hits both sides alike."""
    conf = b.ours("10.68.0.0/16")
    conf["name"] = f"pyrb-scale-{b.id}"
    conf["bridge"] = "pyrbscale0"
    plugin = os.path.join(b.bin, "pyruntime-bridge")
    full_host, empty_host = b.host, f"pyrb-e-{b.id}"
    b.add_host(empty_host)
    probe = b.sandbox("probe")

    def one(i: int) -> tuple[float, float]:
        c = dict(conf, runtimeConfig={"portMappings": [{"hostPort": 30000 + i, "containerPort": 80}]})
        t0 = time.perf_counter()
        b.call(plugin, "ADD", c, f"probe-{i}", probe)
        t1 = time.perf_counter()
        b.call(plugin, "DEL", c, f"probe-{i}", probe)
        return t1 - t0, time.perf_counter() - t1

    print(f"\nfilling a host with {n} attachments...", flush=True)
    b.enter(full_host)
    filler = [b.sandbox(f"f{i}") for i in range(n)]

    def fill(i, command="ADD"):
        c = dict(conf, runtimeConfig={"portMappings": [{"hostPort": 20000 + i, "containerPort": 80}]})
        b.call(plugin, command, c, f"fill-{i}", filler[i])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(fill, range(n)))
    runs = {empty_host: [], full_host: []}
    for i in range(samples + 1):                  # round 0 warms up (creates the empty bridge)
        for host in (empty_host, full_host):
            b.enter(host)
            t = one(i)
            if i:
                runs[host].append(t)
    b.enter(full_host)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: fill(i, "DEL"), range(n)))
    empty = statistics.median(t[0] for t in runs[empty_host])
    full = statistics.median(t[0] for t in runs[full_host])
    empty_del = statistics.median(t[1] for t in runs[empty_host])
    full_del = statistics.median(t[1] for t in runs[full_host])
    print(f"ADD with    0 attachments: {ms(empty)}")
    print(f"ADD with {n:4} attachments: {ms(full)}   ratio {full / empty:.2f}")
    print(f"DEL with    0 attachments: {ms(empty_del)}")
    print(f"DEL with {n:4} attachments: {ms(full_del)}   ratio {full_del / empty_del:.2f}")
    return {"empty": empty, "full": full, "empty_del": empty_del, "full_del": full_del}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--scale", type=int, default=500)
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--backend", default="auto", choices=("auto", "nftables", "iptables"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    # as an installed package would be: byte-compiled
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "pyruntime")], check=True,
                   capture_output=True)
    b = Bench(args.backend)
    try:
        compare(b, args.runs)
        if args.scale:
            scale(b, args.scale, args.samples)
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
