#!/usr/bin/env python3
"""Rootless `run` of `true`: pyruntime against runc, both run by the same throwaway user on the
same bundle (runc's own `spec --rootless`), alternated in one run. Prints medians and the ratio.

    /opt/pyruntime/venv/bin/python bench/rootless.py [--runs 20]

Needs root to make (and afterwards remove) the user; the containers run as that user.
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
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    user = f"pyrtb{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True, capture_output=True)
    base = Path(tempfile.mkdtemp(prefix="pyruntime-bench-", dir="/var/tmp"))
    try:
        bundle = base / "bundle"
        bundle.mkdir()
        subprocess.run(["cp", "-a", str(ROOTFS), str(bundle / "rootfs")], check=True)
        subprocess.run(["chown", "-R", f"{user}:{user}", str(base)], check=True)
        as_user = ["runuser", "-u", user, "--"]
        subprocess.run(as_user + ["runc", "spec", "--rootless", "--bundle", str(bundle)], check=True)
        config = json.loads((bundle / "config.json").read_text())
        config["process"].update(terminal=False, args=["true"])
        (bundle / "config.json").write_text(json.dumps(config))
        commands = {
            "pyruntime": as_user + [sys.executable, "-m", "pyruntime", "--root", str(base / "pyr"),
                                    "run", "--bundle", str(bundle), "b"],
            "runc": as_user + ["runc", "--root", str(base / "runc"), "run", "--bundle", str(bundle), "b"],
        }
        env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONPATH": str(REPO), "HOME": f"/home/{user}"}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                start = time.perf_counter()
                subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                times[name].append((time.perf_counter() - start) * 1000)
        ours, theirs = (statistics.median(times[n]) for n in ("pyruntime", "runc"))
        print("| rootless `run` of `true` | pyruntime | runc | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| median of {runs} | {ours:.1f} ms | {theirs:.1f} ms | {ours / theirs:.2f}x |")
    finally:
        subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
        time.sleep(0.2)
        subprocess.run(["userdel", "-r", "-f", user], capture_output=True)
        for path in ("/etc/subuid", "/etc/subgid"):
            lines = Path(path).read_text().splitlines(True)
            Path(path).write_text("".join(l for l in lines if not l.startswith(user + ":")))
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
