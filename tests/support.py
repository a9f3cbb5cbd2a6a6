"""Helpers shared by the test suites: how to call the CLI and what counts as a leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def repo_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses that must import this checkout of pyruntime."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def pyruntime(*args: str, root: str | os.PathLike | None = None, check: bool = False,
              timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run the pyruntime CLI of this checkout and capture its output."""
    cmd = [sys.executable, "-m", "pyruntime"]
    if root is not None:
        cmd += ["--root", str(root)]
    cmd += list(args)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.run(cmd, env=kwargs.pop("env", repo_env()), timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def host_snapshot() -> dict[str, set[str]]:
    """What a test could leak on the host, read from the kernel and the standard tools."""
    snap: dict[str, set[str]] = {}
    snap["links"] = set(os.listdir("/sys/class/net"))
    snap["netns"] = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    with open("/proc/self/mountinfo") as f:
        snap["mounts"] = {line.split()[4] for line in f}
    cgroups = set()
    for base in Path("/sys/fs/cgroup").iterdir():
        for sub in ("pyruntime", "pyruntime-test"):
            d = base / sub
            if d.is_dir():
                cgroups.update(str(p) for p in d.rglob("*") if p.is_dir())
    snap["cgroups"] = cgroups
    rules = set()
    for tool in ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"):
        try:
            out = subprocess.run([tool], capture_output=True, text=True, timeout=20).stdout
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
        rules.update(f"{tool}: {line}" for line in out.splitlines() if line.startswith(("-A", ":")))
    snap["rules"] = rules
    try:
        nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=20).stdout
        snap["nft_tables"] = set(nft.splitlines())
    except FileNotFoundError:
        snap["nft_tables"] = set()
    return snap


def leaks(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: after[k] - before.get(k, set()) for k in after if after[k] - before.get(k, set())}


def load_json(text: str):
    return json.loads(text)
