"""The kernel enforcing what the cgroup manager sets, with real processes.

Runs against the host's own layout (v1 or hybrid here). Every test works in a uniquely named
cgroup under /pyruntime-test and removes it, and kills every process it started.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pyruntime.cgroups import events, open_manager, processes, resolve_path, saved_manager, update_flags
from pyruntime.cgroups.mounts import detect_mode
from pyruntime.errors import NotSupported, RuntimeUserError
from tests.support import kmsg_and_null, open_devices_in_cgroup

ROOT = "/sys/fs/cgroup"
MODE = detect_mode()
pytestmark = pytest.mark.skipif(MODE == "v2", reason="this host runs the unified hierarchy only")


class Child:
    """A python process that waits for "go" on stdin before running `code`.

    It is started outside the cgroup and moved in before it does anything measurable.
    """

    def __init__(self, code: str):
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys\nsys.stdin.readline()\n" + code],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.pid = self.proc.pid

    def go(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def unique_path(request) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]
    return f"/pyruntime-test/{name}-{uuid.uuid4().hex[:8]}"


def dirs_named(path: str) -> list[str]:
    return [os.path.join(ROOT, h, path.strip("/")) for h in os.listdir(ROOT)
            if os.path.isdir(os.path.join(ROOT, h, path.strip("/")))]


@pytest.fixture
def cg(request):
    """Factory for managers on a unique path; tears everything down afterwards."""
    made = []
    children = []

    def make(resources=None, path=None, **kw):
        mgr = open_manager(path or unique_path(request))
        made.append(mgr)
        mgr.create(resources, **kw)
        return mgr

    make.children = children
    make.path = lambda: unique_path(request)
    yield make
    for child in children:
        child.kill()
    for mgr in made:
        if mgr.exists():
            if mgr.is_frozen():
                mgr.thaw()
            for pid in mgr.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            mgr.destroy()
    for h in os.listdir(ROOT):
        try:
            os.rmdir(os.path.join(ROOT, h, "pyruntime-test"))
        except OSError:
            pass  # other tests still use it, or it never existed


def spawn(cg, mgr, code):
    child = Child(code)
    cg.children.append(child)
    mgr.add_process(child.pid)
    return child


def read(mgr, controller, name):
    return mgr.read(controller, name).strip()


# ---------------------------------------------------------------- limits enforced

def test_memory_hog_is_oom_killed_at_the_limit(cg):
    limit = 48 << 20
    mgr = cg({"memory": {"limit": limit}})
    assert int(read(mgr, "memory", "memory.limit_in_bytes")) == limit
    before = mgr.oom_count()
    hog = spawn(cg, mgr, "chunks = []\nfor _ in range(64):\n    chunks.append(b'x' * (8 << 20))\nprint('survived')")
    watcher = events.oom_events(mgr, "hog", poll=0.05, alive=lambda: time.monotonic() < deadline)
    deadline = time.monotonic() + 20
    hog.go()
    event = next(watcher, None)
    code, out, _ = hog.result()
    assert code == -signal.SIGKILL and "survived" not in out
    assert event == {"type": "oom", "id": "hog"}
    assert mgr.oom_count() >= before + 1
    assert int(read(mgr, "memory", "memory.max_usage_in_bytes")) <= limit
    data = events.stats_event(mgr, "hog")["data"]
    assert data["memory"]["usage"]["limit"] == limit
    assert data["memory"]["usage"]["failcnt"] > 0
    assert data["memory"]["event_count"]["oom_kill"] >= 1
    json.dumps(data)


def test_fork_bomb_stops_at_pids_max(cg):
    mgr = cg({"pids": {"limit": 8}})
    assert read(mgr, "pids", "pids.max") == "8"
    bomb = spawn(cg, mgr, """
import json, os, time
made, refused = 0, 0
for _ in range(40):              # bounded: at most 40 forks even without a limit
    try:
        pid = os.fork()
    except OSError:
        refused += 1
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    made += 1
print(json.dumps({"made": made, "refused": refused}), flush=True)
time.sleep(60)
""")
    bomb.go()
    line = bomb.proc.stdout.readline()
    counts = json.loads(line)
    assert counts["made"] == 7            # 8 tasks: the bomb itself and seven children
    assert counts["refused"] == 33
    assert int(read(mgr, "pids", "pids.current")) == 8
    assert len(mgr.pids()) == 8
    killed = processes.signal_all(mgr, signal.SIGKILL)
    assert sorted(killed) == sorted(set(killed)) and bomb.pid in killed
    bomb.proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while mgr.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mgr.pids() == []


def test_cpu_quota_caps_a_busy_loop_near_20_percent(cg):
    mgr = cg({"cpu": {"quota": 20000, "period": 100000}})
    assert read(mgr, "cpu", "cpu.cfs_quota_us") == "20000"
    busy = spawn(cg, mgr, "while True:\n    pass\n")
    busy.go()
    time.sleep(0.3)
    start_usage, start = int(read(mgr, "cpuacct", "cpuacct.usage")), time.monotonic()
    time.sleep(1.5)
    used = int(read(mgr, "cpuacct", "cpuacct.usage")) - start_usage
    share = used / ((time.monotonic() - start) * 1e9)
    # The cap is the point; the floor only shows the loop ran (other load on the host can
    # take some of its 20 %).
    assert 0.05 <= share <= 0.30, share
    assert mgr.stats()["cpu"]["throttling"]["throttledPeriods"] > 0


def cpus_allowed(pid):
    with open(f"/proc/{pid}/status") as f:
        return re.search(r"Cpus_allowed_list:\s*(\S+)", f.read()).group(1)


def test_cpuset_pins_to_cpu0_and_update_widens_it(cg):
    mgr = cg({"cpu": {"cpus": "0", "mems": "0"}})
    child = spawn(cg, mgr, "import time\ntime.sleep(60)\n")
    assert cpus_allowed(child.pid) == "0"
    mgr.update({"cpu": {"cpus": "0"}}, {"cpu": {"cpus": "0-1"}})
    assert read(mgr, "cpuset", "cpuset.cpus") == "0-1"
    assert cpus_allowed(child.pid) == "0-1"


def test_device_outside_the_allow_list_cannot_be_opened(cg, tmp_path):
    kmsg, null = kmsg_and_null(tmp_path)
    denied = cg({"devices": [{"allow": False, "access": "rwm"}]})
    allowed = cg({"devices": [{"allow": False, "access": "rwm"},
                              {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}]})
    for mgr, expect in ((denied, "EPERM"), (allowed, "ok")):
        assert open_devices_in_cgroup(mgr, kmsg, null) == {kmsg: expect, null: "ok"}
    assert "c 1:11 r" in read(allowed, "devices", "devices.list").splitlines()


def test_freeze_stops_progress_and_thaw_resumes(cg, tmp_path):
    counter = tmp_path / "counter"
    mgr = cg()
    child = spawn(cg, mgr, f"""
import os, time
fd = os.open({str(counter)!r}, os.O_WRONLY | os.O_CREAT, 0o644)
n = 0
while True:
    n += 1
    os.pwrite(fd, str(n).ljust(20).encode(), 0)
    time.sleep(0.005)
""")
    child.go()

    def value():
        text = counter.read_text().strip() if counter.exists() else ""
        return int(text) if text else 0

    deadline = time.monotonic() + 10
    while value() < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not mgr.is_frozen()
    mgr.freeze()
    assert mgr.is_frozen()
    assert read(mgr, "freezer", "freezer.state") == "FROZEN"
    frozen_at = value()
    time.sleep(0.4)
    assert value() == frozen_at
    mgr.thaw()
    assert not mgr.is_frozen()
    time.sleep(0.4)
    assert value() > frozen_at


def test_update_changes_live_limits(cg):
    stored = {"memory": {"limit": 64 << 20}, "pids": {"limit": 10}, "cpu": {"quota": 20000, "period": 100000}}
    mgr = cg(stored)
    spawn(cg, mgr, "import time\ntime.sleep(60)\n")
    changes = update_flags.update_from_flags(memory="96m", pids_limit=20, cpu_quota="50000", cpu_share="512")
    merged = mgr.update(stored, changes)
    assert read(mgr, "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert read(mgr, "pids", "pids.max") == "20"
    assert read(mgr, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(mgr, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(mgr, "cpu", "cpu.shares") == "512"
    assert merged["cpu"] == {"quota": 50000, "period": 100000, "shares": 512}
    # Back to unlimited.
    mgr.update(merged, update_flags.update_from_flags(memory="-1", pids_limit=-1))
    assert int(read(mgr, "memory", "memory.limit_in_bytes")) > 1 << 60
    assert read(mgr, "pids", "pids.max") == "max"


def test_check_before_update_refuses_to_go_below_usage(cg):
    stored = {"memory": {"limit": 256 << 20}}
    mgr = cg(stored)
    hog = spawn(cg, mgr, "import sys, time\nkeep = b'x' * (40 << 20)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    hog.go()
    assert hog.proc.stdout.readline().strip() == "ready"
    with pytest.raises(RuntimeUserError, match=r"memory.limit: .*below the current memory usage"):
        mgr.update(stored, {"memory": {"limit": 16 << 20, "checkBeforeUpdate": True}})
    assert read(mgr, "memory", "memory.limit_in_bytes") == str(256 << 20)


def test_ps_and_stats_see_the_process(cg):
    mgr = cg({"pids": {"limit": 5}})
    child = spawn(cg, mgr, "import time\ntime.sleep(60)\n")
    assert processes.ps_json(mgr) == [child.pid]
    table = processes.ps_table(mgr, ["-o", "pid,comm"]).splitlines()
    assert table[0].split() == ["PID", "COMMAND"]
    assert [line.split()[0] for line in table[1:]] == [str(child.pid)]
    event = events.stats_event(mgr, "ctr")
    assert event["type"] == "stats" and event["id"] == "ctr"
    assert event["data"]["pids"] == {"current": 1, "limit": 5}


def test_manager_rebuilt_from_state_reads_the_same_cgroup(cg):
    mgr = cg()
    child = spawn(cg, mgr, "import time\ntime.sleep(60)\n")
    saved = json.loads(json.dumps(mgr.to_dict()))
    again = saved_manager(saved)
    assert again.pids() == [child.pid]
    with open(f"/proc/{child.pid}/cgroup") as f:
        lines = f.read().splitlines()
    # Every hierarchy, the named systemd one and (hybrid) the unified one hold the process.
    assert all(line.split(":", 2)[2] == mgr.path for line in lines), lines
    child.kill()
    again.destroy()
    again.destroy()  # already gone is fine
    assert dirs_named(mgr.path) == []


def test_destroy_right_after_kill(cg):
    # The task is still exiting (and not reaped) when destroy() starts: rmdir may see EBUSY
    # for a moment, which destroy() waits out.
    mgr = cg({"memory": {"limit": 64 << 20}})
    child = spawn(cg, mgr, "import time\nkeep = b'x' * (20 << 20)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    child.go()
    assert child.proc.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    mgr.destroy()
    assert dirs_named(mgr.path) == []
    child.proc.wait(timeout=10)


@pytest.mark.skipif(MODE != "hybrid", reason="needs the hybrid layout")
def test_hybrid_hugetlb_limit_lives_in_the_unified_hierarchy(cg):
    control = os.path.join(ROOT, "unified", "cgroup.subtree_control")
    with open(control) as f:
        before = f.read().split()
    try:
        mgr = cg({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
        unified_dir = os.path.join(ROOT, "unified", mgr.path.strip("/"))
        with open(os.path.join(unified_dir, "hugetlb.2MB.max")) as f:
            assert f.read().strip() == str(4 << 20)
        assert mgr.stats()["hugetlb"]["2MB"] == {"failcnt": 0}
        mgr.destroy()
        # A cgroup created without hugepage limits gets them on update.
        later = cg({"pids": {"limit": 10}})
        later.update({"pids": {"limit": 10}}, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]})
        with open(os.path.join(ROOT, "unified", later.path.strip("/"), "hugetlb.2MB.max")) as f:
            assert f.read().strip() == str(2 << 20)
        later.destroy()
    finally:
        try:
            os.rmdir(os.path.join(ROOT, "unified", "pyruntime-test"))
        except OSError:
            pass
        if "hugetlb" not in before:
            try:
                with open(control, "w") as f:
                    f.write("-hugetlb")
            except OSError:
                pass


# ---------------------------------------------------------------- bad input: nothing made

@pytest.mark.parametrize("resources,message", [
    ({"cpu": {"shares": 1}}, r"^linux.resources.cpu.shares: 1 is out of range"),
    ({"memory": {"limit": -7}}, r"^linux.resources.memory.limit: -7 is out of range"),
    ({"network": {"classID": 42}}, r"^linux.resources.network.classID: the net_cls cgroup controller is not available"),
    ({"unified": {"memory.high": "1G"}}, r"^invalid configuration: linux.resources.unified: cannot use unified on cgroup v1"),
    ({"hugepageLimits": [{"pageSize": "16GB", "limit": 0}]}, r"^linux.resources.hugepageLimits\[0\].pageSize"),
    ({"cpu": {"cpus": "0-63"}}, r"^linux.resources.cpu.cpus: cannot write .* cpuset.cpus"),
    ({"memory": {"limit": 64 << 20}, "cpu": {"mems": "5"}}, r"^linux.resources.cpu.mems: cannot write"),
])
def test_bad_resources_leave_nothing_behind(cg, resources, message):
    path = cg.path()
    with pytest.raises(RuntimeUserError, match=message):
        cg(resources, path=path)
    assert dirs_named(path) == []


def test_escaping_path_is_refused_before_anything_exists():
    with pytest.raises(RuntimeUserError, match=r"linux.cgroupsPath: .*'\.\.'"):
        resolve_path("/pyruntime-test/../../etc", "c1")
    with pytest.raises(RuntimeUserError, match="systemd"):
        resolve_path("system.slice:pyruntime:c1", "c1")
    assert dirs_named("/etc") == []


def test_freezer_missing_is_a_clear_error(cg):
    mgr = cg()
    partial = saved_manager({**mgr.to_dict(), "hierarchies": {
        k: v for k, v in mgr.to_dict()["hierarchies"].items() if k != "freezer"}})
    with pytest.raises(NotSupported, match="freezer cgroup controller is not mounted"):
        partial.freeze()
    assert partial.is_frozen() is False


def test_add_process_of_a_missing_pid_is_a_clear_error(cg):
    mgr = cg()
    with pytest.raises(RuntimeUserError, match="cannot move process .*No such process"):
        mgr.add_process(2 ** 22 + 12345)


def test_every_v1_setting_reads_back_from_the_kernel(cg):
    """The formats written through the controller objects are the ones this kernel accepts."""
    major, minor = os.major(os.stat("/dev/vda").st_rdev), 0
    mgr = cg({
        "memory": {"limit": 96 << 20, "reservation": 32 << 20, "swappiness": 10, "disableOOMKiller": True},
        "cpu": {"shares": 300, "quota": 30000, "period": 50000, "burst": 10000, "idle": 0},
        "pids": {"limit": 50},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}],
                    "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2 << 20}],
                    "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 200}]},
    })
    assert read(mgr, "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert read(mgr, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(mgr, "memory", "memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read(mgr, "memory", "memory.oom_control")
    assert read(mgr, "cpu", "cpu.shares") == "300"
    assert read(mgr, "cpu", "cpu.cfs_period_us") == "50000"
    assert read(mgr, "cpu", "cpu.cfs_burst_us") == "10000"
    assert read(mgr, "cpu", "cpu.idle") == "0"
    mgr.apply({"cpu": {"idle": 1}})  # SCHED_IDLE: the kernel then reports minimal shares
    assert read(mgr, "cpu", "cpu.idle") == "1"
    assert read(mgr, "pids", "pids.max") == "50"
    weight_file = next((name for name in ("blkio.weight", "blkio.bfq.weight")
                        if mgr.read("blkio", name) is not None), None)
    if weight_file is None:  # neither CFQ nor BFQ in this kernel: a clear error, as runc's
        with pytest.raises(RuntimeUserError, match="blockIO.weight: .* does not provide it"):
            mgr.apply({"blockIO": {"weight": 250}})
    else:
        mgr.apply({"blockIO": {"weight": 250}})
        assert mgr.read("blkio", weight_file).split()[-1] == "250"
    dev = f"{major}:{minor}"
    assert read(mgr, "blkio", "blkio.throttle.read_bps_device") == f"{dev} {1 << 20}"
    assert read(mgr, "blkio", "blkio.throttle.write_bps_device") == f"{dev} {2 << 20}"
    assert read(mgr, "blkio", "blkio.throttle.read_iops_device") == f"{dev} 100"
    assert read(mgr, "blkio", "blkio.throttle.write_iops_device") == f"{dev} 200"
    # A rate of 0 removes a throttle again (v1 semantics).
    mgr.apply({"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 0}]}})
    assert read(mgr, "blkio", "blkio.throttle.read_bps_device") == ""


def test_warmup_move_leaves_the_runtime_where_it_was():
    """The warm-up writes the runtime's own pid into its own cgroup: the kernel accepts that
    write (done here once in the open) and the process stays in every cgroup it was in."""
    code = (
        "import os, time\n"
        "from pyruntime.cgroups import warmup\n"
        "before = open('/proc/self/cgroup').read()\n"
        "target = warmup.own_procs_file(before)\n"
        "fd = os.open(target, os.O_WRONLY); os.write(fd, str(os.getpid()).encode()); os.close(fd)\n"
        "warmup.start(); time.sleep(0.3)\n"
        "assert open('/proc/self/cgroup').read() == before\n"
        "assert str(os.getpid()) in open(target).read().split()\n"
        "print(target)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(ROOT) and out.stdout.strip().endswith("/cgroup.procs")
