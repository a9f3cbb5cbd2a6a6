#!/usr/bin/env python3
"""A pod through containerd's CRI plugin with each runtime handler (runc, pyruntime), in one
run: RunPodSandbox + CreateContainer + StartContainer, ExecSync of `true`, and stopping and
removing the pod. Prints medians and the pyruntime/runc ratio as Markdown.

    /opt/pyruntime/venv/bin/python bench/cri.py [--runs 30]

The node is the one the Kubernetes end-to-end test uses (tests/e2e/cri/node.py): a private
containerd with its own root, state and socket, the pyruntime-bridge + portmap pod network and
local images; it is removed at the end. Runs alternate between the handlers so that drift in
the machine's load falls on both. Each figure is a CRI call timed from the client's side (what
the kubelet waits for), network setup of the sandbox included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.clients import remove_cgroup_tree  # noqa: E402
from tests.e2e.cri.node import HANDLERS, CriNode, Pod, cri_missing  # noqa: E402

PHASES = ("runp", "create", "start", "runp+create+start", "exec", "stopp+rmp")
LABELS = {"runp": "RunPodSandbox", "create": "CreateContainer", "start": "StartContainer",
          "exec": "ExecSync `true`", "stopp+rmp": "StopPodSandbox + RemovePodSandbox"}


def one_pod(node: CriNode, handler: str, n: int) -> dict[str, float]:
    ms = {}
    t0 = time.perf_counter()
    pod = Pod(node, handler, f"bench-{handler}-{n}")
    t1 = time.perf_counter()
    cid = pod.container("c", ["sleep", "600"], start=False)
    t2 = time.perf_counter()
    node.client.start_container(cid)
    t3 = time.perf_counter()
    rc, _, err = node.client.exec_sync(cid, ["true"])
    t4 = time.perf_counter()
    if rc != 0:
        raise SystemExit(f"exec in the {handler} pod failed: {err}")
    pod.remove()
    t5 = time.perf_counter()
    remove_cgroup_tree(pod.config["linux"]["cgroup_parent"])
    ms["runp"], ms["create"], ms["start"] = (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000
    ms["runp+create+start"] = (t3 - t0) * 1000
    ms["exec"] = (t4 - t3) * 1000
    ms["stopp+rmp"] = (t5 - t4) * 1000
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    reason = cri_missing()
    if reason:
        raise SystemExit(f"bench/cri.py: {reason}")
    node = CriNode(Path(tempfile.mkdtemp(prefix="pyruntime-e2e-cri-bench-", dir="/var/tmp")))
    samples = {h: {p: [] for p in PHASES} for h in HANDLERS}
    try:
        node.start()
        for handler in HANDLERS:  # one unmeasured pod each: page cache, containerd's caches
            one_pod(node, handler, -1)
        for n in range(args.runs):
            for handler in (HANDLERS if n % 2 == 0 else HANDLERS[::-1]):
                for phase, value in one_pod(node, handler, n).items():
                    samples[handler][phase].append(value)
    finally:
        node.teardown()
    print(f"containerd CRI, {args.runs} pods per handler, medians in ms\n")
    print("| call | runc | pyruntime | pyruntime/runc |")
    print("|---|---:|---:|---:|")
    for phase in PHASES:
        runc = statistics.median(samples["runc"][phase])
        ours = statistics.median(samples["pyruntime"][phase])
        print(f"| {LABELS.get(phase, phase)} | {runc:.1f} | {ours:.1f} | {ours / runc:.2f} |")


if __name__ == "__main__":
    main()
