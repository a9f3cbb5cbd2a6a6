#!/usr/bin/env python3
"""What networking adds to a container: `pyruntime run` of `true` without a network namespace
configured by a hook (none mode) and with the network hook (bridge mode, reference bridge +
host-local + portmap, and optionally another plugin set), all in one run. Prints medians.

    /opt/pyruntime/venv/bin/python bench/network.py [--runs 20] [--cni-path /usr/lib/cni]

Runs inside a throwaway network namespace acting as the host (nothing touches the machine's
own interfaces or rules); the namespace, state and leases are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pyruntime.network.spec import apply_network  # noqa: E402
from tests.support import BUSYBOX_ROOTFS, container_config, repo_env  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--cni-path", default="/usr/lib/cni")
    opts = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pyruntime-netbench-"))
    host_ns = f"pyrt-nb-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    try:
        subprocess.run(["ip", "-n", host_ns, "link", "set", "lo", "up"], check=True)
        (work / "net.d").mkdir()
        ipam = {"type": "host-local", "dataDir": str(work / "ipam"),
                "ranges": [[{"subnet": "10.237.250.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}
        bridge = {"type": "bridge", "bridge": "pyrtbench0", "isGateway": True, "ipMasq": True, "ipam": ipam}
        networks = {
            "benchbr": [bridge],
            "benchpm": [bridge, {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}],
        }
        for name, plugins in networks.items():
            (work / "net.d" / f"{name}.conflist").write_text(
                json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": plugins}))
        cases = {
            "none (own netns, lo only)": ("none", ()),
            "bridge (bridge + host-local)": ("bridge:benchbr", ()),
            "bridge + portmap, 1 published port": ("bridge:benchpm", ("127.0.0.1:18999:80",)),
        }
        hook = str(REPO / "hooks" / "pyruntime-network")
        cmd = ["nsenter", f"--net=/run/netns/{host_ns}", sys.executable, "-m", "pyruntime",
               "--root", str(work / "state")]
        results = {}
        for label, (mode, publish) in cases.items():
            config = container_config(["true"])
            config["root"]["path"] = str(BUSYBOX_ROOTFS)
            config = apply_network(config, mode, publish, hook, config_dirs=[str(work / "net.d")],
                                   cni_path=[opts.cni_path])
            bundle = work / uuid.uuid4().hex[:8]
            bundle.mkdir()
            (bundle / "config.json").write_text(json.dumps(config))
            times = []
            for i in range(opts.runs + 1):
                start = time.perf_counter()
                subprocess.run(cmd + ["run", "--bundle", str(bundle), f"nb-{i}-{uuid.uuid4().hex[:6]}"],
                               check=True, env=repo_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
                if i:  # the first run warms caches
                    times.append((time.perf_counter() - start) * 1000)
            results[label] = statistics.median(times)
        base = results["none (own netns, lo only)"]
        print(f"| `run` of `true` ({opts.runs} runs, median) | ms | added by networking |")
        print("|---|---:|---:|")
        for label, ms in results.items():
            print(f"| {label} | {ms:.0f} | {ms - base:+.0f} |")
    finally:
        subprocess.run(["ip", "netns", "del", host_ns], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
