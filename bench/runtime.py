#!/usr/bin/env python3
"""pyruntime vs runc on the same bundle, in one run: `run` of a trivial container, and each
lifecycle call (create, start, state, exec of `true`, kill, delete). Prints medians and
ratios as Markdown.

    /opt/pyruntime/venv/bin/python bench/runtime.py [--runs 30] [--out docs/bench-runtime.md]

Every call is timed from the outside as a whole command (what a higher tool pays), with the
state of both runtimes in private --root directories that are removed at the end.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTFS = REPO / "bundles" / "busybox" / "rootfs"


def pyruntime_cmd() -> list[str]:
    script = Path(sys.executable).parent / "pyruntime"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pyruntime"]


def make_bundle(directory: Path, args: list[str]) -> Path:
    """runc's own default config (the reference's bundle), run by both runtimes."""
    directory.mkdir(parents=True)
    subprocess.run(["runc", "spec", "--bundle", str(directory)], check=True)
    config = json.loads((directory / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"]["path"] = str(ROOTFS)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def timed(cmd: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **kwargs)
    return (time.perf_counter() - start) * 1000


def wait_stopped(cmd: list[str], cid: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(cmd + ["state", cid], capture_output=True, text=True).stdout
        if '"stopped"' in out:
            return
        time.sleep(0.01)
    raise SystemExit(f"{cid} did not stop")


def bench_runtime(name: str, cmd: list[str], true_bundle: Path, sleep_bundle: Path, runs: int) -> dict:
    samples: dict[str, list[float]] = {
        k: [] for k in ("run", "create", "start", "state", "exec", "kill", "delete")}
    for i in range(runs + 2):  # the first two are warm-up
        keep = i >= 2
        cid = f"bench-{name}-{os.getpid()}-{i}"
        t_run = timed(cmd + ["run", "--bundle", str(true_bundle), cid])
        t_create = timed(cmd + ["create", "--bundle", str(sleep_bundle), cid])
        t_state = timed(cmd + ["state", cid])
        t_start = timed(cmd + ["start", cid])
        t_exec = timed(cmd + ["exec", cid, "true"])    # what kubelet's exec probes cost
        t_kill = timed(cmd + ["kill", cid, "KILL"])
        wait_stopped(cmd, cid)
        t_delete = timed(cmd + ["delete", cid])
        if keep:
            for key, value in zip(samples, (t_run, t_create, t_start, t_state, t_exec, t_kill,
                                            t_delete)):
                samples[key].append(value)
    return {k: statistics.median(v) for k, v in samples.items()}


def import_click_ms(runs: int) -> float:
    return statistics.median(timed([sys.executable, "-c", "import click"]) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args()
    if not ROOTFS.is_dir():
        raise SystemExit("build the rootfs first: bundles/build-rootfs")
    work = Path(tempfile.mkdtemp(prefix="pyruntime-bench-"))
    try:
        true_bundle = make_bundle(work / "true", ["true"])
        sleep_bundle = make_bundle(work / "sleep", ["sleep", "60"])
        ours = bench_runtime("pyruntime", pyruntime_cmd() + ["--root", str(work / "state-py")],
                             true_bundle, sleep_bundle, args.runs)
        runc = bench_runtime("runc", ["runc", "--root", str(work / "state-runc")],
                             true_bundle, sleep_bundle, args.runs)
        click_ms = import_click_ms(args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"Medians of {args.runs} runs each, same bundle (busybox), one run of this script.",
        "",
        "| call | pyruntime (ms) | runc (ms) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for key in ours:
        lines.append(f"| {key} | {ours[key]:.1f} | {runc[key]:.1f} | {ours[key] / runc[key]:.2f}x |")
    lines += ["", f"`python -c \"import click\"` on the same interpreter: {click_ms:.1f} ms "
              f"(state/start/kill/delete target: at most {click_ms + 10:.1f} ms)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
