#!/usr/bin/env python3
"""pyruntime vs runc on the same bundle, in one run: `run` of a trivial container, each
lifecycle call (create, start, state, exec of `true`, kill, delete), and N containers started
with `run -d` at once, then deleted with `delete -f` at once. Prints medians and ratios as
Markdown, and the interpreter's own start-up for comparison.

    /opt/pyruntime/venv/bin/python bench/runtime.py [--runs 30] [--parallel 50] [--out FILE]

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


CALLS = ("run", "create", "start", "state", "exec", "kill", "delete")


def one_round(name: str, cmd: list[str], true_bundle: Path, sleep_bundle: Path, i: int) -> dict:
    """Every call once, on a fresh container."""
    cid = f"bench-{name}-{os.getpid()}-{i}"
    times = {"run": timed(cmd + ["run", "--bundle", str(true_bundle), cid]),
             "create": timed(cmd + ["create", "--bundle", str(sleep_bundle), cid]),
             "state": timed(cmd + ["state", cid]),
             "start": timed(cmd + ["start", cid]),
             "exec": timed(cmd + ["exec", cid, "true"]),    # what kubelet's exec probes cost
             "kill": timed(cmd + ["kill", cid, "KILL"])}
    wait_stopped(cmd, cid)
    times["delete"] = timed(cmd + ["delete", cid])
    return times


def parallel_wall(cmd: list[str], argvs: list[list[str]]) -> float:
    """Wall time (ms) of all the command lines started at once, until the last has exited."""
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
             for argv in argvs]
    codes = [p.wait() for p in procs]
    elapsed = (time.perf_counter() - start) * 1000
    if any(codes):
        raise SystemExit(f"{cmd[0]}: {sum(1 for c in codes if c)} of {len(codes)} failed")
    return elapsed


def parallel_round(name: str, cmd: list[str], sleep_bundle: Path, count: int, i: int) -> dict:
    """`count` parallel `run -d`, then `count` parallel `delete -f` of those containers."""
    ids = [f"par-{name}-{os.getpid()}-{i}-{n}" for n in range(count)]
    try:
        runs = parallel_wall(cmd, [["run", "-d", "--bundle", str(sleep_bundle), c] for c in ids])
    finally:
        deletes = parallel_wall(cmd, [["delete", "-f", c] for c in ids])
    return {"run -d": runs, "delete -f": deletes}


def alternate(rounds: int, warmup: int, measure) -> dict[str, dict[str, float]]:
    """Medians per runtime of `measure(name, cmd, i)`, the runtimes taking turns each round
    (a machine that gets busier or quieter meanwhile affects both alike)."""
    samples: dict[str, dict[str, list[float]]] = {}
    for i in range(rounds + warmup):
        for name, cmd in RUNTIMES.items():
            result = measure(name, cmd, i)
            if i >= warmup:
                for key, value in result.items():
                    samples.setdefault(name, {}).setdefault(key, []).append(value)
    return {name: {k: statistics.median(v) for k, v in per.items()} for name, per in samples.items()}


RUNTIMES: dict[str, list[str]] = {}


def interpreter_ms(runs: int, *args: str) -> float:
    return statistics.median(timed([sys.executable, *args]) for _ in range(runs))


def table(title: str, ours: dict, runc: dict) -> list[str]:
    lines = [title, "", "| call | pyruntime (ms) | runc (ms) | ratio |", "|---|---:|---:|---:|"]
    for key in ours:
        lines.append(f"| {key} | {ours[key]:.1f} | {runc[key]:.1f} | {ours[key] / runc[key]:.2f}x |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=50,
                        help="containers started (and deleted) at once; 0 to skip")
    parser.add_argument("--parallel-runs", type=int, default=5)
    parser.add_argument("--out", help="also write the Markdown tables to this file")
    args = parser.parse_args()
    if not ROOTFS.is_dir():
        raise SystemExit("build the rootfs first: bundles/build-rootfs")
    work = Path(tempfile.mkdtemp(prefix="pyruntime-bench-"))
    try:
        true_bundle = make_bundle(work / "true", ["true"])
        sleep_bundle = make_bundle(work / "sleep", ["sleep", "60"])
        RUNTIMES["pyruntime"] = pyruntime_cmd() + ["--root", str(work / "state-py")]
        RUNTIMES["runc"] = ["runc", "--root", str(work / "state-runc")]
        serial = alternate(args.runs, 2, lambda name, cmd, i: one_round(
            name, cmd, true_bundle, sleep_bundle, i))
        parallel = alternate(args.parallel_runs, 1, lambda name, cmd, i: parallel_round(
            name, cmd, sleep_bundle, args.parallel, i)) if args.parallel else None
        bare = interpreter_ms(args.runs, "-I", "-S", "-c", "pass")
        venv = interpreter_ms(args.runs, "-c", "pass")
    finally:
        for cmd in RUNTIMES.values():   # anything a failed round left behind
            for cid in _listed(cmd):
                subprocess.run(cmd + ["delete", "-f", cid], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    lines = table(f"Medians of {args.runs} rounds, pyruntime and runc alternating, same bundle "
                  "(busybox), one run of this script.", serial["pyruntime"], serial["runc"])
    if parallel:
        lines += table(f"{args.parallel} at once (wall time until the last exits), medians of "
                       f"{args.parallel_runs} rounds:", parallel["pyruntime"], parallel["runc"])
    over = {k: serial["pyruntime"][k] - bare for k in ("state", "start", "kill", "delete")}
    lines += [f"`python -I -S -c pass`: {bare:.1f} ms (`python -c pass` in the venv: {venv:.1f} "
              "ms); above it: " + ", ".join(f"{k} +{v:.1f}" for k, v in over.items()) + " ms."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def _listed(cmd: list[str]) -> list[str]:
    out = subprocess.run(cmd + ["list", "-q"], capture_output=True, text=True).stdout
    return out.split()


if __name__ == "__main__":
    main()
