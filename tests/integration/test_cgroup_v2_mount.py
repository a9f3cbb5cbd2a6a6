"""The v2 driver on a real cgroup2 hierarchy.

A private cgroup2 mount in a temporary directory shows the host's unified tree (on this
machine only hugetlb is a v2 controller; the others are bound to v1), which is enough for the
file mechanics: mkdir/rmdir, subtree_control, cgroup.procs, cgroup.freeze, cpu.stat and the
hugetlb limits. Formats of the other controllers are covered by the fake-tree unit tests.
"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pyruntime import linux
from pyruntime.cgroups import open_manager, processes, saved_manager
from pyruntime.errors import NotSupported
from tests.support import kmsg_and_null, open_devices_in_cgroup


@pytest.fixture
def unified(tmp_path):
    """A cgroup2 mount of the host's unified hierarchy; subtree_control restored afterwards."""
    mnt = tmp_path / "cg2"
    mnt.mkdir()
    linux.mount("cgroup2", str(mnt), "cgroup2")
    control = mnt / "cgroup.subtree_control"
    before = control.read_text().split()
    try:
        yield str(mnt)
    finally:
        try:
            os.rmdir(mnt / "pyruntime-test")
        except OSError:
            pass
        for ctrl in control.read_text().split():
            if ctrl not in before:
                try:
                    control.write_text(f"-{ctrl}")
                except OSError:
                    pass  # still used below (another cgroup enabled it meanwhile)
        linux.umount2(str(mnt), linux.MNT_DETACH)


@pytest.fixture
def v2(unified, request):
    made = []

    def make(resources=None):
        name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]
        mgr = open_manager(f"/pyruntime-test/{name}-{uuid.uuid4().hex[:8]}", mode="v2", root=unified)
        made.append(mgr)
        mgr.create(resources)
        return mgr

    yield make
    for mgr in made:
        if mgr.exists():
            if mgr.is_frozen():
                mgr.thaw()
            for pid in mgr.pids():
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while mgr.pids() and time.monotonic() < deadline:
                time.sleep(0.02)
            mgr.destroy()


def start(code="import time\ntime.sleep(60)\n"):
    return subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.readline()\n" + code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_create_join_and_destroy(v2, unified):
    mgr = v2({"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]})
    assert os.path.isdir(mgr.dir)
    assert "hugetlb" in open(os.path.join(unified, "cgroup.subtree_control")).read().split()
    assert open(os.path.join(mgr.dir, "hugetlb.2MB.max")).read().strip() == str(2 << 20)
    assert open(os.path.join(mgr.dir, "hugetlb.2MB.rsvd.max")).read().strip() == str(2 << 20)
    # The same hierarchy the host mounts at /sys/fs/cgroup/unified.
    assert os.path.isdir("/sys/fs/cgroup/unified" + mgr.path)
    proc = start()
    try:
        mgr.add_process(proc.pid)
        assert open(f"/proc/{proc.pid}/cgroup").read().splitlines()[-1] == f"0::{mgr.path}"
        assert saved_manager(mgr.to_dict()).pids() == [proc.pid]
        assert processes.ps_json(mgr) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
    mgr.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": -1}]})
    assert open(os.path.join(mgr.dir, "hugetlb.2MB.max")).read().strip() == "max"
    mgr.destroy()
    assert not os.path.exists(mgr.dir)


def test_freeze_and_thaw_with_cgroup_freeze(v2, tmp_path):
    counter = tmp_path / "n"
    mgr = v2()
    proc = start(f"""
import os, time
fd = os.open({str(counter)!r}, os.O_WRONLY | os.O_CREAT, 0o644)
n = 0
while True:
    n += 1
    os.pwrite(fd, str(n).ljust(20).encode(), 0)
    time.sleep(0.005)
""")
    try:
        mgr.add_process(proc.pid)
        proc.stdin.write("go\n")
        proc.stdin.flush()

        def value():
            text = counter.read_text().strip() if counter.exists() else ""
            return int(text) if text else 0

        deadline = time.monotonic() + 10
        while value() < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        mgr.freeze()
        assert mgr.is_frozen()
        assert "frozen 1" in open(os.path.join(mgr.dir, "cgroup.events")).read()
        at = value()
        time.sleep(0.4)
        assert value() == at
        mgr.thaw()
        assert not mgr.is_frozen()
        time.sleep(0.4)
        assert value() > at
    finally:
        proc.kill()
        proc.wait()


def test_cpu_stat_counts_usage(v2):
    mgr = v2()
    proc = start("import time\nend = time.monotonic() + 0.3\nwhile time.monotonic() < end:\n    pass\n")
    mgr.add_process(proc.pid)
    proc.communicate("go\n", timeout=30)
    usage = mgr.stats()["cpu"]["usage"]
    assert usage["total"] >= 200_000_000  # at least 0.2 s of the 0.3 s busy loop, in ns
    assert usage["user"] + usage["kernel"] > 0


def test_controller_missing_on_this_hierarchy_creates_nothing(unified):
    path = f"/pyruntime-test/missing-{uuid.uuid4().hex[:8]}"
    mgr = open_manager(path, mode="v2", root=unified)
    with pytest.raises(NotSupported, match=r"^linux.resources.memory.limit: the memory controller is not available"):
        mgr.create({"memory": {"limit": 64 << 20}})
    assert not os.path.exists(mgr.dir)


def test_ebpf_device_filter_denies_what_is_not_allowed(v2, tmp_path):
    kmsg, null = kmsg_and_null(tmp_path)
    mgr = v2({"devices": [{"allow": False, "access": "rwm"}]})

    def try_open():
        return open_devices_in_cgroup(mgr, kmsg, null)

    assert try_open() == {kmsg: "EPERM", null: "ok"}
    # Applying new rules replaces the filter attached to the cgroup.
    mgr.apply({"devices": [{"allow": False, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}]})
    assert try_open() == {kmsg: "ok", null: "ok"}
