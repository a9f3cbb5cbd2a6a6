"""Wall time of `podman run --rm --network none busybox true` per runtime (median of N).

Usage (root): python -m tests.e2e.measure_podman_run [N]
Uses the same private podman set-up as the end-to-end suite and removes it afterwards.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.clients import IMAGE, RUNTIMES, PodmanEnv


def measure(runs: int) -> dict[str, list[float]]:
    env = PodmanEnv(Path(tempfile.mkdtemp(prefix="pyruntime-e2e-", dir="/var/tmp")))
    try:
        env.import_image()
        times: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
        for _ in range(runs + 1):  # the first round warms caches and is dropped
            for rt in RUNTIMES:
                started = time.monotonic()
                r = env("run", "--rm", "--network", "none", "--cgroup-parent", env.cgroup_parent,
                        IMAGE, "true", runtime=rt)
                took = time.monotonic() - started
                if r.rc != 0:
                    raise SystemExit(f"{rt}: {r}")
                times[rt].append(took)
        return {rt: t[1:] for rt, t in times.items()}
    finally:
        env.teardown()


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    results = measure(runs)
    for rt, t in results.items():
        print(f"{rt:10s} median {statistics.median(t) * 1000:7.1f} ms  "
              f"min {min(t) * 1000:7.1f} ms  max {max(t) * 1000:7.1f} ms  (n={len(t)})")
    ratio = statistics.median(results["pyruntime"]) / statistics.median(results["runc"])
    print(f"pyruntime / runc: {ratio:.2f}x")


if __name__ == "__main__":
    main()
