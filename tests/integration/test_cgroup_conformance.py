"""Cgroup behaviours of runc (and where runc and the runtime-spec part, the spec's) on real
containers: kernel TCP memory, realtime CPU under the default parent, `unified` on v1, a
cgroup that already holds processes, exec into a paused container and into sub-cgroups,
device rules (update, linux.devices) and CPU limits below a pod's cgroup."""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from pyruntime.cgroups import open_manager
from pyruntime.cgroups.mounts import detect_mode
from tests.support import container_config, repo_env, wait_for

ROOT = "/sys/fs/cgroup"
MODE = detect_mode()
pytestmark = pytest.mark.skipif(MODE == "v2", reason="these are cgroup v1 behaviours; this host is v2 only")

KMSG = {"path": "/dev/mykmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666, "uid": 0, "gid": 0}
# Opening /dev/kmsg write-only needs no capability and `true >` writes nothing: only the
# devices cgroup can refuse the open.
PROBE_KMSG = "true > /dev/mykmsg && echo opened"


def cgroup_dir(pid: int, controller: str) -> str:
    """The host path of `pid`'s cgroup in the hierarchy of `controller`."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return f"{ROOT}/{controller}{path}"
    raise AssertionError(f"{controller} not found for {pid}")


def read(pid: int, controller: str, name: str) -> str:
    with open(os.path.join(cgroup_dir(pid, controller), name)) as f:
        return f.read().strip()


def cgroup_paths(pid: int) -> dict[str, str]:
    """controller(s) -> path, from /proc/<pid>/cgroup (the unified line under "")."""
    with open(f"/proc/{pid}/cgroup") as f:
        return {c: p for _, c, p in (line.rstrip("\n").split(":", 2) for line in f)}


def start_detached(rt, config, cid=None):
    cid = cid or rt.new_id()
    proc = rt("run", "-d", "--bundle", str(rt.bundle_from(config)), cid)
    assert proc.returncode == 0, proc.stderr
    return cid, rt.state(cid)["pid"], proc


def sleeper(**resources):
    config = container_config(["sleep", "120"])
    config["linux"]["resources"].update(resources)
    return config


# ---------------------------------------------------------------- 1. memory.kernelTCP

@pytest.mark.skipif(not os.path.exists(f"{ROOT}/memory/memory.kmem.tcp.limit_in_bytes"),
                    reason="this kernel has no memory.kmem.tcp.limit_in_bytes")
def test_kernel_tcp_limit_reaches_the_kernel_and_update_changes_it(rt):
    cid, pid, _ = start_detached(rt, sleeper(memory={"kernelTCP": 2 << 20}))
    assert read(pid, "memory", "memory.kmem.tcp.limit_in_bytes") == str(2 << 20)
    rt("update", "--kernel-memory-tcp", "4m", cid, check=True)
    assert read(pid, "memory", "memory.kmem.tcp.limit_in_bytes") == str(4 << 20)


# ---------------------------------------------------------------- 2. realtime CPU

@pytest.mark.skipif(not os.path.exists(f"{ROOT}/cpu/cpu.rt_runtime_us"),
                    reason="no cpu.rt_runtime_us: the kernel lacks CONFIG_RT_GROUP_SCHED")
def test_realtime_runtime_works_under_the_default_parent(rt):
    parent = f"{ROOT}/cpu/pyruntime/cpu.rt_runtime_us"
    before = open(parent).read().strip() if os.path.exists(parent) else None
    cid = rt.new_id()
    try:
        # A new parent has no realtime runtime of its own, so the kernel refuses any for the
        # container until the parent has room.
        cid, pid, _ = start_detached(rt, sleeper(cpu={"realtimeRuntime": 20000, "realtimePeriod": 1000000}), cid)
        assert read(pid, "cpu", "cpu.rt_runtime_us") == "20000"
        assert read(pid, "cpu", "cpu.rt_period_us") == "1000000"
        assert int(open(parent).read()) >= 20000
        # The kernel lets a task of the container become SCHED_FIFO only now.
        chrt = subprocess.run(["chrt", "-f", "-p", "10", str(pid)], capture_output=True, text=True)
        assert chrt.returncode == 0, chrt.stderr
        assert "SCHED_FIFO" in subprocess.run(["chrt", "-p", str(pid)], capture_output=True, text=True).stdout
    finally:
        rt("delete", "--force", cid)
        if before is not None:
            # The kernel counts a removed cgroup's runtime until it is freed, a moment later.
            wait_for(lambda: _write_back(parent, before), timeout=10)


def _write_back(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- 3. unified on v1

def test_unified_on_a_v1_host_is_refused_with_runcs_message(rt):
    config = sleeper(unified={"memory.high": "64M"})
    cid = rt.new_id()
    proc = rt("run", "-d", "--bundle", str(rt.bundle_from(config)), cid)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "invalid configuration: linux.resources.unified: cannot use unified on cgroup v1"]
    assert not (rt.root / cid).exists()


# ---------------------------------------------------------------- 4. a cgroup already in use

def test_cgroup_that_already_holds_a_process_warns_and_still_runs(rt):
    cid = rt.new_id()
    occupied = open_manager(f"/pyruntime/{cid}")
    occupied.create()
    squatter = subprocess.Popen(["sleep", "120"])
    try:
        occupied.add_process(squatter.pid)
        _, pid, proc = start_detached(rt, sleeper(), cid)
        warnings = [line for line in proc.stderr.splitlines() if "not empty" in line]
        assert warnings == ["warning: container's cgroup is not empty: 1 process(es) found"], proc.stderr
        assert rt.state(cid)["status"] == "running"
        assert cgroup_dir(pid, "pids") == cgroup_dir(squatter.pid, "pids")
        rt("delete", "--force", cid, check=True)
        assert not occupied.exists()
    finally:
        squatter.kill()
        squatter.wait()
        if occupied.exists():
            occupied.destroy()


# ---------------------------------------------------------------- 5. exec and pause

def test_exec_into_a_paused_container_needs_ignore_paused(rt):
    cid, _, _ = start_detached(rt, sleeper())
    rt("pause", cid, check=True)
    refused = rt("exec", cid, "true")
    assert refused.returncode == 255
    assert refused.stderr.strip() == "cannot exec in a paused container (use --ignore-paused to override)"
    waiting = subprocess.Popen([sys.executable, "-m", "pyruntime", "--root", str(rt.root), "exec",
                                "--ignore-paused", cid, "sh", "-c", "echo ran"],
                               env=repo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert waiting.poll() is None, waiting.communicate()   # frozen with the container
        rt("resume", cid, check=True)                          # the exec does not hold the lock
        out, err = waiting.communicate(timeout=30)
        assert (waiting.returncode, out) == (0, "ran\n"), err
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


# ---------------------------------------------------------------- 6. exec --cgroup

def test_exec_cgroup_joins_sub_cgroups_and_refuses_escapes(rt, tmp_path):
    cid, pid, _ = start_detached(rt, sleeper())
    base = f"/pyruntime/{cid}"
    for hierarchy in os.listdir(ROOT):
        if os.path.isdir(f"{ROOT}/{hierarchy}{base}"):
            os.mkdir(f"{ROOT}/{hierarchy}{base}/sub1")

    def exec_detached(*flags):
        pid_file = tmp_path / f"{uuid.uuid4().hex[:6]}.pid"
        rt("exec", "-d", "--pid-file", str(pid_file), *flags, cid, "sleep", "120", check=True)
        return int(pid_file.read_text())

    everywhere = cgroup_paths(exec_detached("--cgroup", "sub1"))
    assert set(everywhere.values()) == {f"{base}/sub1"}, everywhere
    some = cgroup_paths(exec_detached("--cgroup", "pids,memory:sub1", "--cgroup", "name=systemd:/sub1"))
    joined = {c for c, p in some.items() if p == f"{base}/sub1"}
    assert joined == {"pids", "memory", "name=systemd"}, some
    assert {p for c, p in some.items() if c not in joined} == {base}
    for flags, message in ((["--cgroup", "../escape"], "is not a sub-cgroup"),
                           (["--cgroup", "sub1/../../x"], "is not a sub-cgroup"),
                           (["--cgroup", "missing"], "does not exist"),
                           (["--cgroup", "nosuch:sub1"], "unknown controller nosuch"),
                           (["--cgroup", "sub1", "--cgroup", "sub1"], "missing <controller>: prefix")):
        proc = rt("exec", *flags, cid, "true")
        assert proc.returncode == 255 and message in proc.stderr and "Traceback" not in proc.stderr, proc
    assert cgroup_paths(pid) == {c: base for c in everywhere}


# ---------------------------------------------------------------- 7. update of device rules

def test_update_takes_a_device_away_without_a_wide_open_moment(rt):
    config = sleeper(devices=[{"allow": False, "access": "rwm"},
                              {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}])
    config["linux"]["devices"] = [KMSG]
    cid, pid, _ = start_detached(rt, config)
    assert rt("exec", cid, "sh", "-c", PROBE_KMSG).stdout == "opened\n"
    listed = read(pid, "devices", "devices.list").splitlines()
    assert "c 1:11 w" in listed
    rt("update", "-r", "-", cid, input=json.dumps({"devices": [{"allow": False, "access": "rwm"}]}).encode(),
       check=True)
    listed = read(pid, "devices", "devices.list").splitlines()
    assert "c 1:11 w" not in listed and "a *:* rwm" not in listed
    assert {"c 1:3 rwm", "c 136:* rwm"} <= set(listed)   # the defaults were never taken away
    denied = rt("exec", cid, "sh", "-c", PROBE_KMSG)
    assert denied.stdout == "" and "Operation not permitted" in denied.stderr, denied
    assert rt("exec", cid, "sh", "-c", "echo x > /dev/null && echo null-ok").stdout == "null-ok\n"
    saved = json.loads((rt.root / cid / "state.json").read_text())["config"]["linux"]["resources"]
    assert saved["devices"] == [{"allow": False, "access": "rwm"}]


# ---------------------------------------------------------------- 8 and 10. below a pod's cgroup

@pytest.fixture
def pod(rt):
    """A pod-level cgroup below the default parent with half a CPU (quota 50000 of 100000 us),
    as kubelet makes them. The containers go first, then the pod with what they left."""
    path = f"/pyruntime/pod-{uuid.uuid4().hex[:10]}"
    manager = open_manager(path)
    manager.create({"cpu": {"quota": 50000, "period": 100000}, "memory": {"limit": 256 << 20}})
    yield path
    for cid in rt.ids:
        rt("delete", "--force", cid)
    manager.destroy()


def in_pod(rt, pod, config):
    """A new container id, and the config placed below the pod (a relative cgroupsPath)."""
    cid = rt.new_id()
    config["linux"]["cgroupsPath"] = f"{pod.removeprefix('/pyruntime/')}/{cid}"
    return cid, config


def test_container_in_a_pod_cgroup_gets_its_own_limits(rt, pod):
    cid, config = in_pod(rt, pod, sleeper(cpu={"quota": 20000, "period": 50000}, memory={"limit": 64 << 20}))
    cid, pid, _ = start_detached(rt, config, cid)
    assert os.path.dirname(cgroup_dir(pid, "cpu")) == f"{ROOT}/cpu{pod}"
    assert read(pid, "cpu", "cpu.cfs_period_us") == "50000"
    assert read(pid, "cpu", "cpu.cfs_quota_us") == "20000"
    assert read(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    rt("delete", "--force", cid, check=True)


def test_update_of_period_and_quota_finds_the_order_the_kernel_takes(rt, pod):
    cid, config = in_pod(rt, pod, sleeper(cpu={"quota": 40000, "period": 100000}))
    cid, pid, _ = start_detached(rt, config, cid)
    # Period first would leave 40000 of 50000 us, more than the pod's half CPU: EINVAL.
    rt("update", "--cpu-period", "50000", "--cpu-quota", "20000", cid, check=True)
    assert (read(pid, "cpu", "cpu.cfs_period_us"), read(pid, "cpu", "cpu.cfs_quota_us")) == ("50000", "20000")
    # Quota first would ask 40000 of 50000 us: here the period has to go first.
    rt("update", "--cpu-period", "100000", "--cpu-quota", "40000", cid, check=True)
    assert (read(pid, "cpu", "cpu.cfs_period_us"), read(pid, "cpu", "cpu.cfs_quota_us")) == ("100000", "40000")
    rt("delete", "--force", cid, check=True)


# ---------------------------------------------------------------- 9. linux.devices

def test_a_node_from_linux_devices_is_usable_only_where_the_rules_allow_it(rt):
    results = []
    for rules in ([], [{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]):
        config = container_config(["sh", "-c", f"{PROBE_KMSG} || echo denied"])
        config["linux"]["devices"] = [KMSG]
        config["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"}] + rules
        proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
        results.append(proc.stdout)
    assert results == ["denied\n", "opened\n"]
