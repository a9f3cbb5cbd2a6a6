#!/usr/bin/env python3
"""What networking adds to a container: `run` of `true` in its own network namespace with
loopback only (none), and with the network hook on the reference plugins (bridge + host-local
+ portmap) and on pyruntime-bridge; under pyruntime and under runc (the hook is an OCI hook,
so runc runs it the same way), all in one run. Prints medians as Markdown.

    /opt/pyruntime/venv/bin/python bench/network.py [--runs 20]

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


RUNC = "/usr/sbin/runc"


def our_plugin_dir(work: Path) -> str:
    """A CNI_PATH entry holding pyruntime-bridge: the venv's console script, else a wrapper."""
    directory = work / "cni-bin"
    directory.mkdir()
    script = Path(sys.executable).parent / "pyruntime-bridge"
    if script.exists():
        (directory / "pyruntime-bridge").symlink_to(script)
    else:
        wrapper = directory / "pyruntime-bridge"
        wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m pyruntime.plugins.bridge \"$@\"\n")
        wrapper.chmod(0o755)
    return str(directory)


def networks(work: Path) -> dict:
    """The same network twice: the reference chain, and pyruntime's plugin."""
    ipam = {"dataDir": str(work / "ipam"), "ranges": [[{"subnet": "10.237.250.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}
    bridge = {"bridge": "pyrtbench0", "isGateway": True, "ipMasq": True}
    return {
        "reference": [{"type": "bridge", **bridge, "ipam": {"type": "host-local", **ipam}},
                      {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}],
        "pyruntime": [{"type": "pyruntime-bridge", **bridge, "ipam": {"type": "pyruntime-bridge", **ipam},
                       "capabilities": {"portMappings": True}}],
    }


def runtime_commands(work: Path, host_ns: str) -> dict:
    enter = ["nsenter", f"--net=/run/netns/{host_ns}"]
    script = Path(sys.executable).parent / "pyruntime"
    ours = [str(script)] if script.exists() else [sys.executable, "-m", "pyruntime"]
    return {"pyruntime": enter + ours + ["--root", str(work / "state")],
            "runc": enter + [RUNC, "--root", str(work / "state-runc")]}


def time_runs(cmd: list[str], bundle: Path, runs: int) -> float:
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(cmd + ["run", "--bundle", str(bundle), f"nb-{i}-{uuid.uuid4().hex[:6]}"],
                       check=True, env=repo_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        if i:  # the first run warms caches
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=20)
    opts = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pyruntime-netbench-"))
    host_ns = f"pyrt-nb-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    try:
        subprocess.run(["ip", "-n", host_ns, "link", "set", "lo", "up"], check=True)
        (work / "net.d").mkdir()
        for name, plugins in networks(work).items():
            (work / "net.d" / f"{name}.conflist").write_text(
                json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": plugins}))
        cni_path = [our_plugin_dir(work), "/usr/lib/cni"]
        hook = str(REPO / "hooks" / "pyruntime-network")
        cases = {
            "none (own netns, lo only)": ("none", ()),
            "bridge, reference plugins, 1 published port": ("bridge:reference", ("127.0.0.1:18999:80",)),
            "bridge, pyruntime-bridge, 1 published port": ("bridge:pyruntime", ("127.0.0.1:18999:80",)),
        }
        results: dict[tuple[str, str], float] = {}
        for runtime, cmd in runtime_commands(work, host_ns).items():
            if runtime == "runc" and not Path(RUNC).exists():
                continue
            for label, (mode, publish) in cases.items():
                config = container_config(["true"])
                config["root"]["path"] = str(BUSYBOX_ROOTFS)
                config = apply_network(config, mode, publish, hook, config_dirs=[str(work / "net.d")],
                                       cni_path=cni_path)
                bundle = work / uuid.uuid4().hex[:8]
                bundle.mkdir()
                (bundle / "config.json").write_text(json.dumps(config))
                results[(runtime, label)] = time_runs(cmd, bundle, opts.runs)
        print(f"`run` of `true`, {opts.runs} runs each, medians (ms); the network hook is the same "
              "OCI hook under both runtimes.\n")
        print("| case | pyruntime | added | runc | added |")
        print("|---|---:|---:|---:|---:|")
        for label in cases:
            row = [label]
            for runtime in ("pyruntime", "runc"):
                ms = results.get((runtime, label))
                base = results.get((runtime, "none (own netns, lo only)"))
                row += [f"{ms:.0f}", f"{ms - base:+.0f}"] if ms is not None else ["-", "-"]
            print("| " + " | ".join(row) + " |")
    finally:
        subprocess.run(["ip", "netns", "del", host_ns], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
