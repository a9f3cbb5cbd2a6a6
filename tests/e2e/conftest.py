"""Fixtures of the end-to-end suite: podman and containerd driving runc and pyruntime.

Every test runs once per runtime (runc first). A test reports what it observed through
`same_as_runc(...)`; the pyruntime case fails when that differs from runc's observation, so
the suite catches any difference a client could see, not only outright failures.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.clients import (RUNTIMES, CniNetwork, Containerd, Ctr, Podman, PodmanEnv, RootlessPodman,
                               RootlessPodmanEnv, cgroup_dirs_under, runtime_supports)
from tests.support import BUSYBOX_ROOTFS, host_snapshot, leaks

_baselines: dict[tuple, dict] = {}
_sessions: dict[str, object] = {}


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.e2e)
            if not shutil.which("podman") or not shutil.which("conmon"):
                item.add_marker(pytest.mark.skip(reason="podman/conmon not installed"))
            elif not BUSYBOX_ROOTFS.is_dir():
                item.add_marker(pytest.mark.skip(reason="no busybox rootfs: run bundles/build-rootfs"))


# What the clients make on the host for these tests: podman's CNI netns, the test networks'
# bridges and rules (named pe2e-*), storage and state mounts. Other suites may be running on
# the same host at the same time; their resources are not this suite's to judge.
E2E_NAME = "pe2e"
E2E_MOUNT_PARTS = ("pyruntime-e2e", "/run/netns/cni-", "/run/containers", "/var/lib/containers",
                   "/run/containerd", "/run/runc", "/run/pyruntime/", "/var/lib/cni")


def belongs_to_e2e(kind: str, item: str) -> bool:
    if kind == "links":
        return item.startswith((E2E_NAME, "cni-podman"))
    if kind == "netns":
        return item.startswith("cni-")
    if kind == "mounts":
        return any(part in item for part in E2E_MOUNT_PARTS)
    if kind == "rules":
        return E2E_NAME in item or "CNI-HOSTPORT" in item
    return "pyruntime-e2e" in item


def stable_snapshot() -> dict[str, set[str]]:
    """host_snapshot, retried when another suite removes a cgroup while it is being walked."""
    for _ in range(5):
        try:
            return host_snapshot()
        except FileNotFoundError:
            time.sleep(0.05)
    return host_snapshot()


@pytest.fixture(autouse=True)
def no_leaks(request):
    """The shared leak check, narrowed to what podman, containerd and their plugins create."""
    before = stable_snapshot()
    yield
    left = leaks(before, stable_snapshot())
    ours = {kind: {x for x in items if belongs_to_e2e(kind, x)} for kind, items in left.items()}
    ours = {kind: items for kind, items in ours.items() if items}
    assert not ours, f"test left resources behind: {ours}"


@pytest.fixture(scope="session")
def podman_env():
    base = Path(tempfile.mkdtemp(prefix="pyruntime-e2e-", dir="/var/tmp"))
    env = PodmanEnv(base)
    _sessions["podman"] = env
    try:
        env.import_image()
        yield env
    finally:
        summarise_traces(env.traces, "podman")
        env.teardown()


@pytest.fixture(scope="session")
def rootless_podman_env():
    if not shutil.which("newuidmap"):
        pytest.skip("rootless podman needs newuidmap (package uidmap)")
    env = RootlessPodmanEnv()
    try:
        env.import_image()
        yield env
    finally:
        summarise_traces(env.traces, "rootless-podman")
        env.teardown()


@pytest.fixture
def rpodman(rootless_podman_env, runtime):
    """Rootless podman bound to one runtime."""
    client = RootlessPodman(rootless_podman_env, runtime)
    calls = trace_length(rootless_podman_env.traces[runtime])
    yield client
    assert not client.names or trace_length(rootless_podman_env.traces[runtime]) > calls, \
        f"rootless podman never called {runtime}: the test did not test it"
    client.cleanup()


@pytest.fixture(scope="session")
def containerd(podman_env):
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd/ctr not installed")
    base = Path(tempfile.mkdtemp(prefix="pyruntime-e2e-ctd-", dir="/var/tmp"))
    daemon = Containerd(base, podman_env)
    try:
        yield daemon
    finally:
        summarise_traces(daemon.traces, "containerd")
        daemon.teardown()


@pytest.fixture(params=RUNTIMES)
def runtime(request):
    return request.param


@pytest.fixture
def podman(podman_env, runtime):
    client = Podman(podman_env, runtime)
    calls = trace_length(podman_env.traces[runtime])
    yield client
    assert not client.names or trace_length(podman_env.traces[runtime]) > calls, \
        f"podman never called {runtime}: the test did not test it"
    ids = podman_ids(client)
    client.cleanup()
    assert_nothing_left(cgroup_dirs_under(podman_env.cgroup_parent),
                        allowed={f"{podman_env.cgroup_parent.lstrip('/')}/conmon"},
                        state_dirs=[Path("/run/runc"), Path("/run/pyruntime")], ids=ids)


def trace_length(trace: Path) -> int:
    return len(trace.read_text().splitlines()) if trace.exists() else 0


def podman_ids(client: Podman) -> list[str]:
    if not client.names:
        return []
    r = client("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}")
    return [line.split()[0] for line in r.out.splitlines() if line.split()[-1] in client.names]


@pytest.fixture(params=["reference", "pyruntime-bridge"])
def cni_network(podman_env, podman, request):
    network = CniNetwork(podman_env.network_dir, request.param)
    yield network
    podman.cleanup()  # the plugins' DEL must run before the network goes
    network.remove()


@pytest.fixture
def ctr(containerd, runtime):
    client = Ctr(containerd, runtime)
    calls = trace_length(containerd.traces[runtime])
    yield client
    assert not client.ids or trace_length(containerd.traces[runtime]) > calls, \
        f"containerd never called {runtime}: the test did not test it"
    client.cleanup()
    assert_nothing_left(cgroup_dirs_under(containerd.cgroup_parent), allowed=set(),
                        state_dirs=[Path("/run/containerd/runc") / containerd.namespace],
                        ids=client.ids)


def assert_nothing_left(cgroups: set[str], allowed: set[str], state_dirs: list[Path],
                        ids: list[str]) -> None:
    left_cgroups = cgroups - allowed
    assert not left_cgroups, f"cgroups left behind: {sorted(left_cgroups)}"
    left_state = [str(d / i) for d in state_dirs for i in ids if (d / i).exists()]
    assert not left_state, f"runtime state left behind: {left_state}"


def require_runtime_command(request, runtime: str, command: str) -> None:
    """Cases that need a runtime command pyruntime may not have yet are expected to fail
    (strictly: they must turn green as soon as the command exists)."""
    if runtime == "pyruntime" and not runtime_supports(command):
        request.applymarker(pytest.mark.xfail(
            reason=f"pyruntime has no `{command}` command yet", strict=True))


@pytest.fixture
def same_as_runc(request, runtime):
    """same_as_runc(**observed): runc's case records, pyruntime's case must see the same.

    If runc's case was not run in this session (e.g. `-k pyruntime`), the test body is run
    once more against runc first to get the baseline."""
    key = baseline_key(request)

    def check(**observed):
        if runtime == "runc":
            _baselines[key] = observed
            return
        if key not in _baselines:
            run_baseline(request)
        baseline = _baselines.get(key)
        assert baseline is not None, "the runc case of this test recorded nothing"
        assert observed == baseline, "pyruntime differs from runc (left: pyruntime, right: runc)"

    return check


def baseline_key(request) -> tuple:
    """The test and its parameters other than the runtime."""
    params = {k: v for k, v in request.node.callspec.params.items() if k != "runtime"}
    return request.node.path.name, request.node.originalname, tuple(sorted(map(str, params.items())))


def run_baseline(request) -> None:
    """Call the test function with its runtime-bound fixtures rebuilt for runc."""
    wanted = inspect.signature(request.node.function).parameters
    kwargs = {name: value for name, value in request.node.funcargs.items() if name in wanted}
    made = []
    if "runtime" in kwargs:
        kwargs["runtime"] = "runc"
    if "podman" in kwargs:
        kwargs["podman"] = Podman(kwargs["podman"].env, "runc")
        made.append(kwargs["podman"])
    if "rpodman" in kwargs:
        kwargs["rpodman"] = RootlessPodman(kwargs["rpodman"].env, "runc")
        made.append(kwargs["rpodman"])
    if "ctr" in kwargs:
        kwargs["ctr"] = Ctr(kwargs["ctr"].daemon, "runc")
        made.append(kwargs["ctr"])
    key = baseline_key(request)

    def record(**observed):
        _baselines[key] = observed

    kwargs["same_as_runc"] = record
    try:
        request.node.function(**kwargs)
    finally:
        for client in made:
            client.cleanup()


ID_RE = re.compile(r"\b[0-9a-f]{64}\b")


def normalise_trace_line(line: str) -> str:
    """Keep the command and its flags; hide ids, paths and numbers that vary per call."""
    line = ID_RE.sub("<id>", line)
    line = re.sub(r"(?<![\w-])/[^\s=]+", "<path>", line)
    line = re.sub(r"\be2e-[0-9a-f]{10}\b", "<id>", line)
    return line


def summarise_traces(traces: dict[str, Path], client: str) -> None:
    """Write the distinct runtime command lines the client used next to the session output
    (`PYRUNTIME_E2E_TRACE_DIR`, default /var/tmp) for docs/compatibility.md."""
    out_dir = Path(os.environ.get("PYRUNTIME_E2E_TRACE_DIR", "/var/tmp"))
    lines = []
    for rt, trace in traces.items():
        if not trace.exists():
            continue
        seen: dict[str, int] = {}
        for raw in trace.read_text().splitlines():
            norm = normalise_trace_line(raw)
            seen[norm] = seen.get(norm, 0) + 1
        lines.append(f"## {client} -> {rt}")
        lines.extend(f"{count:5d}  {line}" for line, count in sorted(seen.items()))
    if lines:
        (out_dir / f"pyruntime-e2e-trace-{client}.txt").write_text("\n".join(lines) + "\n")
