"""runtime-spec v1.3 on real containers: linux.memoryPolicy, linux.netDevices, process.scheduler,
linux.timeOffsets errors, and what `features` and `--version` report."""

import json
import subprocess
import uuid

import pytest

from tests.support import container_config


def running(rt, config):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle_from(config)), cid, check=True)
    return cid, rt.state(cid)["pid"]


def run_config(rt, config):
    return rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())


def refused(rt, config, fragment):
    """The create fails with one clear line naming `fragment` and leaves no container."""
    cid = rt.new_id()
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), cid)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (rt.root / cid).exists()
    return proc.stderr


def first_policy(numa_maps: str) -> str:
    """The policy column of the first mapping of a numa_maps text."""
    return numa_maps.splitlines()[0].split()[1]


# -- linux.memoryPolicy ------------------------------------------------------------------------
@pytest.mark.parametrize("policy,shown", [
    ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "interleave=static:0"),
    ({"mode": "MPOL_PREFERRED_MANY", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
     "prefer (many)=balancing:0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
])
def test_memory_policy_is_the_processs(rt, policy, shown):
    config = container_config(["head", "-n", "1", "/proc/self/numa_maps"])
    config["linux"]["memoryPolicy"] = policy
    proc = run_config(rt, config)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(" ", 1)[1].startswith(shown + " "), proc.stdout


def test_memory_policy_seen_from_the_host_and_given_to_exec(rt):
    config = container_config(["sleep", "60"])
    config["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0"}
    cid, pid = running(rt, config)
    with open(f"/proc/{pid}/numa_maps") as f:
        assert first_policy(f.read()) == "interleave:0"
    proc = rt("exec", cid, "head", "-n", "1", "/proc/self/numa_maps")
    assert proc.returncode == 0, proc.stderr
    assert first_policy(proc.stdout) == "interleave:0"
    rt("delete", "--force", cid, check=True)


@pytest.mark.parametrize("policy,fragment", [
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes: MPOL_BIND needs at least one node"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "linux.memoryPolicy.nodes: must be empty for MPOL_LOCAL"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other"),
    ({"mode": "MPOL_SOMETIMES", "nodes": "0"}, "linux.memoryPolicy.mode"),
    # valid as written; no machine has node 4000 online, and the kernel says no
    ({"mode": "MPOL_BIND", "nodes": "4000"}, "linux.memoryPolicy: cannot set MPOL_BIND on nodes 4000"),
])
def test_memory_policy_refused(rt, policy, fragment):
    config = container_config(["true"])
    config["linux"]["memoryPolicy"] = policy
    refused(rt, config, fragment)


# -- process.scheduler -------------------------------------------------------------------------
def chrt(pid: int) -> str:
    return subprocess.run(["chrt", "-p", str(pid)], capture_output=True, text=True, check=True).stdout


def test_scheduler_policy_nice_and_flags_are_applied(rt):
    config = container_config(["sleep", "60"])
    config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7,
                                      "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    cid, pid = running(rt, config)
    assert "current scheduling policy: SCHED_BATCH|SCHED_RESET_ON_FORK" in chrt(pid)
    with open(f"/proc/{pid}/stat") as f:
        assert f.read().rpartition(")")[2].split()[16] == "7"     # field 19, nice
    rt("delete", "--force", cid, check=True)


def test_scheduler_realtime_priority(rt):
    config = container_config(["sleep", "60"])
    config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 10}
    # with realtime group scheduling (cgroup v1) the container's cgroup needs realtime time
    config["linux"]["resources"]["cpu"] = {"realtimeRuntime": 10000, "realtimePeriod": 1000000}
    cid, pid = running(rt, config)
    shown = chrt(pid)
    assert "current scheduling policy: SCHED_FIFO" in shown
    assert "current scheduling priority: 10" in shown
    rt("delete", "--force", cid, check=True)


def test_scheduler_deadline_parameters(rt):
    config = container_config(["sleep", "60"])
    config["process"]["scheduler"] = {"policy": "SCHED_DEADLINE", "runtime": 5_000_000,
                                      "deadline": 10_000_000, "period": 20_000_000}
    cid, pid = running(rt, config)
    shown = chrt(pid)
    assert "current scheduling policy: SCHED_DEADLINE" in shown
    assert "runtime/deadline/period parameters: 5000000/10000000/20000000" in shown
    rt("delete", "--force", cid, check=True)


def test_scheduler_of_an_exec_process(rt, tmp_path):
    cid, _ = running(rt, container_config(["sleep", "60"]))
    process = {"args": ["grep", "^policy", "/proc/self/sched"], "cwd": "/", "env": ["PATH=/bin"],
               "scheduler": {"policy": "SCHED_IDLE"}}
    (tmp_path / "p.json").write_text(json.dumps(process))
    proc = rt("exec", "--process", str(tmp_path / "p.json"), cid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "5"
    rt("delete", "--force", cid, check=True)


@pytest.mark.parametrize("scheduler,fragment", [
    ({"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority: can only be set for SCHED_FIFO or SCHED_RR"),
    ({"policy": "SCHED_FIFO"}, "process.scheduler.priority: must be from 1 to 99 for SCHED_FIFO"),
    ({"policy": "SCHED_BATCH", "nice": 20}, "process.scheduler.nice: must be from -20 to 19"),
    ({"policy": "SCHED_IDLE", "deadline": 1000}, "process.scheduler.deadline: can only be set for SCHED_DEADLINE"),
    ({"policy": "SCHED_DEADLINE", "runtime": 2_000_000, "deadline": 1_000_000},
     "process.scheduler.deadline: must be at least the runtime"),
    ({"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 2_000_000, "period": 1_500_000},
     "process.scheduler.period: must be 0 (the deadline) or at least the deadline"),
    # valid as written; Linux has no SCHED_ISO and says so
    ({"policy": "SCHED_ISO"}, "process.scheduler: cannot set SCHED_ISO: Invalid argument"),
])
def test_scheduler_refused(rt, scheduler, fragment):
    config = container_config(["true"])
    config["process"]["scheduler"] = scheduler
    refused(rt, config, fragment)


# -- linux.netDevices --------------------------------------------------------------------------
def ip(*args, netns=None, check=True):
    cmd = ["ip", "-netns", netns, *args] if netns else ["ip", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def host_has(name: str) -> bool:
    return ip("link", "show", name, check=False).returncode == 0


@pytest.fixture
def veth():
    """A veth pair on the host (this kernel has no dummy devices): the end to move, with a
    permanent global address and a link-scope one, and its peer. Both go in the end, wherever
    they are (a device in a dead namespace is gone already: veths are not given back)."""
    tag = uuid.uuid4().hex[:4]
    end, peer = f"pyrt-nd{tag}", f"pyrt-np{tag}"
    ip("link", "add", end, "type", "veth", "peer", "name", peer)
    ip("addr", "add", "169.254.77.1/32", "dev", end)
    ip("addr", "add", "169.254.78.1/24", "scope", "link", "dev", end)
    yield end, peer
    for name in (end, peer):
        ip("link", "del", name, check=False)


@pytest.fixture
def named_netns():
    name = f"pyrt-nd-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    yield name
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_net_device_moved_renamed_with_its_addresses(rt, veth):
    end, peer = veth
    config = container_config(["sleep", "60"])
    config["linux"]["netDevices"] = {end: {"name": "ctr0"}}
    cid, _ = running(rt, config)
    assert not host_has(end)
    inside = rt("exec", cid, "sh", "-c", "ip -o link show ctr0; ip -o addr show dev ctr0")
    assert inside.returncode == 0, inside.stderr
    link, *addresses = inside.stdout.splitlines()
    assert ",UP" in link.split()[2]
    assert [a.split()[3] for a in addresses if a.split()[2] == "inet"] == ["169.254.77.1/32"]
    rt("delete", "--force", cid, check=True)
    # not moved back (runtime-spec v1.3): the namespace went, and with it the virtual device
    assert not host_has(end) and not host_has(peer)


def test_net_device_stays_in_a_joined_namespace(rt, veth, named_netns):
    end, _ = veth
    config = container_config(["ip", "-o", "link", "show", "up"])
    config["linux"]["namespaces"] = [ns if ns["type"] != "network" else
                                     {"type": "network", "path": f"/run/netns/{named_netns}"}
                                     for ns in config["linux"]["namespaces"]]
    config["linux"]["netDevices"] = {end: {"name": "eth%d"}}
    proc = run_config(rt, config)
    assert proc.returncode == 0, proc.stderr
    assert any(line.split()[1].startswith("eth0@") for line in proc.stdout.splitlines()), proc.stdout
    # the container is gone; the device is where it was put, under its new name
    assert not host_has(end)
    assert ip("link", "show", "eth0", netns=named_netns, check=False).returncode == 0


def test_net_device_refusals_leave_the_device_on_the_host(rt, veth):
    end, _ = veth
    config = container_config(["true"])
    config["linux"]["netDevices"] = {end: {"name": "lo"}}
    refused(rt, config, f'linux.netDevices["{end}"]: the container already has a network device \'lo\'')
    config["linux"]["netDevices"] = {"pyrt-absent0": {}}
    refused(rt, config, "linux.netDevices[\"pyrt-absent0\"]: the host has no network device")
    config["linux"]["netDevices"] = {end: {"name": "a:b"}}
    refused(rt, config, f'linux.netDevices["{end}"].name: \'a:b\' contains')
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    config["linux"]["netDevices"] = {end: {}}
    refused(rt, config, "linux.netDevices: moving network devices needs a network namespace")
    assert host_has(end)


def test_net_devices_are_for_root_only(user, veth):
    end, _ = veth
    bundle = user.bundle(["true"], linux__netDevices={end: {}})
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "network"})   # not in the rootless default
    (bundle / "config.json").write_text(json.dumps(config))
    proc = user.run("run", "--bundle", str(bundle), "nd-rootless")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "linux.netDevices: only root on the host can move" in proc.stderr
    assert host_has(end)


# -- linux.timeOffsets -------------------------------------------------------------------------
def with_time_namespace(offsets):
    config = container_config(["cat", "/proc/self/timens_offsets"])
    config["linux"]["namespaces"].append({"type": "time"})
    config["linux"]["timeOffsets"] = offsets
    return config


def test_time_offset_nanoseconds_stay_below_a_second(rt):
    refused(rt, with_time_namespace({"boottime": {"secs": 1, "nanosecs": 1_000_000_000}}),
            "linux.timeOffsets.boottime.nanosecs: must be below 1000000000")


def test_time_offset_that_the_kernel_refuses_names_its_clock(rt):
    # a monotonic clock moved back further than the host has been up would read below zero
    refused(rt, with_time_namespace({"monotonic": {"secs": -(10**12)}, "boottime": {"secs": 5}}),
            "linux.timeOffsets.monotonic: cannot apply")


# -- what the runtime says of itself -----------------------------------------------------------
def test_features_and_version_speak_of_1_3(rt):
    from pyruntime import spec

    doc = json.loads(rt("features", check=True).stdout)
    spec.validate_document(doc, "features")
    assert doc["ociVersionMax"] == "1.3.0"
    assert set(doc["linux"]["memoryPolicy"]["modes"]) == {
        "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED",
        "MPOL_PREFERRED_MANY", "MPOL_LOCAL"}
    assert set(doc["linux"]["memoryPolicy"]["flags"]) == {
        "MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"}
    assert doc["linux"]["netDevices"] == {"enabled": True}
    assert "spec: 1.3.0" in rt("--version", check=True).stdout.splitlines()
