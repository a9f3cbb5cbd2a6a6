"""Limits from config.json and runc's cgroup commands, on real containers."""

import json
import os
import time

import pytest

from tests.support import container_config


def cgroup_file(pid: int, controller: str, name: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open(f"/sys/fs/cgroup/{controller}{path}/{name}") as g:
                    return g.read().strip()
    raise AssertionError(f"{controller} not found for {pid}")


def start_detached(rt, config):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle_from(config)), cid, check=True)
    return cid, rt.state(cid)["pid"]


def test_resources_from_config_reach_the_kernel(rt):
    config = container_config(["sleep", "60"])
    config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 20},
                                    "cpu": {"shares": 512, "quota": 20000, "period": 100000}}
    cid, pid = start_detached(rt, config)
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(pid, "pids", "pids.max") == "20"
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "20000"
    assert cgroup_file(pid, "cpu", "cpu.shares") == "512"


def test_default_cgroup_path_and_removal(rt):
    cid, pid = start_detached(rt, container_config(["sleep", "60"]))
    with open(f"/proc/{pid}/cgroup") as f:
        paths = {line.split(":")[2].strip() for line in f if line.split(":")[1]}
    assert paths == {f"/pyruntime/{cid}"}
    rt("delete", "-f", cid, check=True)
    assert not os.path.exists(f"/sys/fs/cgroup/memory/pyruntime/{cid}")


def test_fork_bomb_stops_at_pids_limit(rt):
    config = container_config(["sleep", "60"])
    config["linux"]["resources"] = {"pids": {"limit": 10}}
    cid, pid = start_detached(rt, config)
    # busybox sh gives up at the first fork the kernel refuses; what it made stays.
    rt("exec", cid, "sh", "-c", "while :; do sleep 60 & done")
    assert 5 <= int(cgroup_file(pid, "pids", "pids.current")) <= 10
    assert int(cgroup_file(pid, "pids", "pids.events").split()[-1]) > 0


def test_memory_hog_is_oom_killed(rt):
    # busybox tail keeps a line without newline in memory: reading /dev/zero it only grows.
    # It is the only process that allocates and it volunteers as the victim (oom_score_adj
    # 1000), so the kernel never has a reason to pick the shell that reports its fate.
    hog = "echo 1000 > /proc/self/oom_score_adj && exec tail /dev/zero"
    config = container_config(["sh", "-c", f"sh -c '{hog}'; echo hog exited $?"])
    config["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0 and proc.stdout == "hog exited 137\n", proc  # 128 + SIGKILL


def test_pause_resume_shows_paused_and_stops_progress(rt):
    config = container_config(["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done"])
    config["root"]["readonly"] = False
    cid, pid = start_detached(rt, config)
    time.sleep(0.3)
    rt("pause", cid, check=True)
    assert rt.state(cid)["status"] == "paused"
    assert json.loads(rt("list", "-f", "json", check=True).stdout)[0]["status"] == "paused"
    counter = f"/proc/{pid}/root/tmp/n"
    before = open(counter).read()
    time.sleep(0.4)
    assert open(counter).read() == before
    rt("resume", cid, check=True)
    assert rt.state(cid)["status"] == "running"
    time.sleep(0.4)
    assert open(counter).read() != before
    assert rt("resume", cid).returncode != 0  # not paused any more


def test_delete_force_of_paused_container(rt):
    cid, _ = start_detached(rt, container_config(["sleep", "60"]))
    rt("pause", cid, check=True)
    rt("delete", "--force", cid, check=True)


def test_update_changes_live_limits(rt):
    cid, pid = start_detached(rt, container_config(["sleep", "60"]))
    rt("update", "--memory", "100m", "--pids-limit", "50", "--cpu-quota", "30000",
       "--cpu-period", "100000", cid, check=True)
    assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(100 << 20)
    assert cgroup_file(pid, "pids", "pids.max") == "50"
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "30000"
    saved = json.loads((rt.root / cid / "state.json").read_text())["config"]["linux"]["resources"]
    assert saved["memory"]["limit"] == 100 << 20 and saved["pids"]["limit"] == 50


def test_updated_pids_limit_is_enforced(rt):
    cid, pid = start_detached(rt, container_config(["sleep", "60"]))
    rt("update", "--pids-limit", "6", cid, check=True)
    rt("exec", cid, "sh", "-c", "while :; do sleep 60 & done")
    assert int(cgroup_file(pid, "pids", "pids.current")) <= 6
    assert int(cgroup_file(pid, "pids", "pids.events").split()[-1]) > 0  # forks were refused


def test_container_process_starts_inside_its_cgroup(rt):
    """The first thing the container's program does is read its own cgroups: they are the
    container's already (no cgroup namespace here, so the paths are the host's)."""
    config = container_config(["cat", "/proc/self/cgroup"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    cid = rt.new_id()
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), cid)
    paths = {line.split(":", 2)[2] for line in proc.stdout.splitlines() if line.split(":")[1]}
    assert paths == {f"/pyruntime/{cid}"}, proc.stdout + proc.stderr


def test_update_from_resources_file(rt, tmp_path):
    cid, pid = start_detached(rt, container_config(["sleep", "60"]))
    (tmp_path / "r.json").write_text(json.dumps({"pids": {"limit": 33}}))
    rt("update", "-r", str(tmp_path / "r.json"), cid, check=True)
    assert cgroup_file(pid, "pids", "pids.max") == "33"


def test_update_rejects_bad_values(rt):
    cid, _ = start_detached(rt, container_config(["sleep", "60"]))
    proc = rt("update", "--memory", "lots", cid)
    assert proc.returncode != 0 and "memory" in proc.stderr and "Traceback" not in proc.stderr


def test_events_stats_and_ps(rt):
    cid, pid = start_detached(rt, container_config(["sh", "-c", "sleep 60 & sleep 60 & wait"]))
    event = json.loads(rt("events", "--stats", cid, check=True).stdout)
    assert event["type"] == "stats" and event["id"] == cid
    assert event["data"]["pids"]["current"] >= 2
    assert event["data"]["memory"]["usage"]["usage"] > 0
    pids = json.loads(rt("ps", "--format", "json", cid, check=True).stdout)
    assert pid in pids and len(pids) == 3
    table = rt("ps", cid, check=True).stdout.splitlines()
    assert "PID" in table[0] and len(table) == 4


def test_events_stream_reports_oom(rt):
    import subprocess
    import sys

    from tests.support import repo_env

    config = container_config(["sh", "-c", "sleep 1; head -c 100m /dev/zero | tail; sleep 60"])
    config["linux"]["resources"] = {"memory": {"limit": 16 << 20, "swap": 16 << 20}}
    cid, _ = start_detached(rt, config)
    stream = subprocess.Popen([sys.executable, "-m", "pyruntime", "--root", str(rt.root), "events",
                               "--interval", "10", cid], env=repo_env(), stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = stream.stdout.readline()
            if not line:
                break
            seen.append(json.loads(line))
            if any(e["type"] == "oom" for e in seen):
                break
        assert any(e["type"] == "oom" and e["id"] == cid for e in seen), seen
    finally:
        stream.kill()
        stream.wait()


def test_kill_all_reaches_every_process(rt):
    config = container_config(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    cid, pid = start_detached(rt, config)
    children = json.loads(rt("ps", "-f", "json", cid, check=True).stdout)
    assert len(children) == 3
    rt("kill", "--all", cid, "KILL", check=True)
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}/cmdline") and open(f"/proc/{p}/cmdline").read() for p in children):
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("path,fragment", [("/../escape", "escape"), ("a:b:c", "systemd")])
def test_bad_cgroups_path(rt, path, fragment):
    config = container_config(["true"])
    config["linux"]["cgroupsPath"] = path
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(rt.bundle_from(config)), cid)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "cgroupsPath" in proc.stderr or fragment in proc.stderr
    assert not (rt.root / cid).exists()


def test_device_outside_allow_list_cannot_be_opened(rt):
    # The host's /dev/kmsg bound in. Opening it write-only needs no capability (reading would
    # need CAP_SYSLOG), and `true >` writes nothing: only the devices cgroup can refuse the open,
    # as the second container, whose allow list has it, shows.
    probe = ("head -c1 /dev/full >/dev/null && echo full-ok; "
             "true 2>/dev/null >/mnt/kmsg && echo opened || echo denied")
    results = []
    for allow_kmsg in (False, True):
        config = container_config(["sh", "-c", probe])
        config["mounts"].append({"destination": "/mnt/kmsg", "type": "bind", "source": "/dev/kmsg",
                                 "options": ["bind"]})
        devices = [{"allow": False, "access": "rwm"}]
        if allow_kmsg:
            devices.append({"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"})
        config["linux"]["resources"] = {"devices": devices}
        proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
        results.append(proc.stdout.split())
    assert results == [["full-ok", "denied"], ["full-ok", "opened"]], results


def test_cpu_quota_limits_a_busy_loop_in_a_container(rt):
    config = container_config(["sh", "-c", "while :; do :; done"])
    config["linux"]["resources"] = {"cpu": {"quota": 20000, "period": 100000}}
    cid, pid = start_detached(rt, config)
    before = int(cgroup_file(pid, "cpuacct", "cpuacct.usage"))
    start = time.monotonic()
    time.sleep(1.5)
    used = int(cgroup_file(pid, "cpuacct", "cpuacct.usage")) - before
    share = used / 1e9 / (time.monotonic() - start)
    assert 0.05 < share < 0.30, share  # about 20% of one CPU; never more than the quota allows


def test_cpuset_pins_the_container(rt):
    config = container_config(["sh", "-c", "grep Cpus_allowed_list /proc/self/status"])
    config["linux"]["resources"] = {"cpu": {"cpus": "0"}}
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.stdout.split() == ["Cpus_allowed_list:", "0"], proc.stderr
