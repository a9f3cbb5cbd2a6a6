"""The runc lifecycle with real busybox containers: create, start, state, kill, delete, run."""

import json
import os
import signal
import time

import pytest

from tests.support import container_config, wait_for


def wait_status(rt, cid, status, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rt.state(cid)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} never reached {status}: {rt.state(cid)}")


def test_run_returns_exit_code_and_output(rt):
    proc = rt.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert proc.returncode == 7
    assert proc.stdout == "out\n"
    assert "err" in proc.stderr


def test_create_start_state_kill_delete(rt, tmp_path):
    bundle = rt.bundle(["sleep", "60"])
    cid = rt.new_id()
    pid_file = tmp_path / "pid"
    rt("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid, check=True)

    state = rt.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid and state["bundle"] == str(bundle)
    pid = state["pid"]
    assert int(pid_file.read_text()) == pid
    # The init exists, blocked before exec: it is not sleep yet.
    assert "sleep" not in open(f"/proc/{pid}/cmdline").read()

    rt("start", cid, check=True)
    assert rt.state(cid)["status"] == "running"
    assert open(f"/proc/{pid}/cmdline").read().split("\0")[0] == "sleep"
    listed = json.loads(rt("list", "--format", "json", check=True).stdout)
    assert [(c["id"], c["status"]) for c in listed] == [(cid, "running")]

    rt("kill", cid, "KILL", check=True)
    wait_status(rt, cid, "stopped")
    assert rt.state(cid)["pid"] == 0

    rt("delete", cid, check=True)
    proc = rt("state", cid)
    assert proc.returncode != 0 and "does not exist" in proc.stderr
    assert not (rt.root / cid).exists()


def test_config_changes_after_create_do_not_matter(rt):
    bundle = rt.bundle(["sh", "-c", "echo original"])
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", "echo edited"]
    (bundle / "config.json").write_text(json.dumps(config))
    saved = json.loads((rt.root / cid / "state.json").read_text())["config"]
    assert saved["process"]["args"] == ["sh", "-c", "echo original"]
    rt("delete", "--force", cid, check=True)


def test_isolation_seen_from_inside(rt):
    proc = rt.run(["sh", "-c", "echo pid=$$; hostname; ls /sys/class/net; cat /proc/1/cmdline"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "pid=1"
    assert lines[1] == "pyruntime-test"
    assert lines[2:3] == ["lo"]


def test_loopback_is_up_in_new_netns(rt):
    proc = rt.run(["sh", "-c", "cat /sys/class/net/lo/operstate; ip -o link"])
    assert "LOOPBACK,UP" in proc.stdout


def test_capabilities_in_proc_status(rt):
    proc = rt.run(["grep", "^Cap", "/proc/self/status"])
    caps = dict(line.split(":\t") for line in proc.stdout.splitlines())
    # CAP_KILL(5), CAP_NET_BIND_SERVICE(10), CAP_AUDIT_WRITE(29)
    expected = (1 << 5) | (1 << 10) | (1 << 29)
    assert int(caps["CapEff"], 16) == expected
    assert int(caps["CapBnd"], 16) == expected
    assert int(caps["CapPrm"], 16) == expected


def test_no_new_privs_and_rlimits(rt):
    proc = rt.run(["sh", "-c", "grep NoNewPrivs /proc/self/status; ulimit -n; ulimit -Hn"])
    lines = proc.stdout.split()
    assert lines[:2] == ["NoNewPrivs:", "1"]
    assert lines[2:] == ["1024", "1024"]


def test_user_and_groups(rt):
    config = container_config(["sh", "-c", "id; touch /home/user/x && echo wrote; umask"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10], "umask": 0o027}
    config["root"]["readonly"] = False
    bundle = rt.bundle_from(config)
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert "uid=1000(user) gid=1000(user) groups=10(wheel)" in proc.stdout
    assert "wrote" in proc.stdout and "0027" in proc.stdout


def test_readonly_root_masked_and_readonly_paths(rt):
    proc = rt.run(["sh", "-c",
                   "touch /x; touch /tmp/ok && echo tmp-writable; "
                   "wc -c < /proc/keys; ls /proc/acpi | wc -l; "
                   "echo name > /proc/sys/kernel/hostname; echo done"])
    assert proc.stdout.split() == ["tmp-writable", "0", "0", "done"]
    errors = proc.stderr.splitlines()
    assert "touch: /x: Read-only file system" in errors
    assert any("/proc/sys/kernel/hostname" in e and "Read-only file system" in e for e in errors)
    # The host's file is untouched and readable.
    assert os.path.getsize("/proc/keys") == 0 and open("/proc/keys").read()


def test_bind_mount_with_options(rt, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("from host\n")
    mounts = container_config([])["mounts"] + [
        {"destination": "/data", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]},
        {"destination": "/data-rw", "type": "bind", "source": str(shared), "options": ["bind"]},
    ]
    proc = rt.run(["sh", "-c", "cat /data/file; touch /data/new 2>&1; echo x > /data-rw/made"],
                  mounts=mounts)
    assert proc.stdout.startswith("from host\n")
    assert "Read-only file system" in proc.stdout
    assert (shared / "made").read_text() == "x\n"


def test_symlinked_mount_destination_stays_in_rootfs(rt, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    config = container_config(["grep", "-c", f" {outside}/inner ", "/proc/self/mountinfo"])
    config["mounts"].insert(1, {"destination": "/escape/inner", "type": "tmpfs", "source": "tmpfs"})
    bundle = rt.bundle_from(config)
    # An absolute symlink in the image that points at a host directory.
    os.symlink(str(outside), bundle / "rootfs" / "escape")
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"  # mounted at that path inside the container's root
    assert list(outside.iterdir()) == []  # and nothing on the host
    assert (bundle / "rootfs" / str(outside).lstrip("/") / "inner").is_dir()


def test_user_namespace_mapping(rt):
    config = container_config(["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u"])
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle = rt.bundle_from(config, traversable=True)
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)
    pid = rt.state(cid)["pid"]
    host_uid = os.stat(f"/proc/{pid}").st_uid
    rt("start", cid, check=True)
    assert host_uid == 100000
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    rt("delete", cid, check=True)


def test_user_namespace_run_output(rt):
    config = container_config(["sh", "-c", "cat /proc/self/uid_map; id -u"])
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    proc = rt("run", "--bundle", str(rt.bundle_from(config, traversable=True)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "100000", "65536", "0"]


def _start_run(rt, bundle, cid):
    import subprocess
    import sys

    from tests.support import repo_env

    proc = subprocess.Popen([sys.executable, "-m", "pyruntime", "--root", str(rt.root), "run",
                             "--bundle", str(bundle), cid], env=repo_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        p = rt("state", cid)
        if p.returncode == 0 and json.loads(p.stdout)["status"] == "running":
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("container never ran")


def test_run_forwards_signals(rt):
    # PID 1 ignores signals it has no handler for, so the container installs one.
    bundle = rt.bundle(["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done"])
    cid = rt.new_id()
    proc = _start_run(rt, bundle, cid)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 42
    assert rt("state", cid).returncode != 0  # run deletes the container after it exits


def test_killed_container_exit_code(rt):
    bundle = rt.bundle(["sleep", "60"])
    cid = rt.new_id()
    proc = _start_run(rt, bundle, cid)
    rt("kill", cid, "9", check=True)
    assert proc.wait(timeout=10) == 128 + signal.SIGKILL


def test_kill_all_and_delete_force(rt):
    bundle = rt.bundle(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    cid = rt.new_id()
    rt("run", "--detach", "--bundle", str(bundle), cid, check=True)
    assert rt.state(cid)["status"] == "running"
    proc = rt("delete", cid)
    assert proc.returncode != 0 and "not stopped: running" in proc.stderr
    rt("kill", "--all", cid, "SIGKILL", check=True)
    wait_status(rt, cid, "stopped")
    rt("delete", cid, check=True)


def test_delete_force_running(rt):
    bundle = rt.bundle(["sleep", "60"])
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(bundle), cid, check=True)
    pid = rt.state(cid)["pid"]
    rt("delete", "--force", cid, check=True)
    assert not os.path.exists(f"/proc/{pid}/cmdline") or "sleep" not in open(f"/proc/{pid}/cmdline").read()


def test_delete_created_container(rt):
    bundle = rt.bundle(["true"])
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)
    rt("delete", cid, check=True)  # as runc: a created container can be deleted
    assert rt("state", cid).returncode != 0


def test_start_twice_and_kill_stopped(rt):
    bundle = rt.bundle(["true"])
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)
    rt("start", cid, check=True)
    wait_status(rt, cid, "stopped")
    again = rt("start", cid)
    assert again.returncode != 0 and "stopped" in again.stderr
    k = rt("kill", cid)
    assert k.returncode != 0 and "not running" in k.stderr
    # runc answers success to `kill --all` of a stopped container with an empty cgroup:
    # containerd's shim sends it once more after the container has stopped
    rt("kill", "--all", cid, "KILL", check=True)
    rt("delete", cid, check=True)


def test_seccomp_denied_syscall_gets_configured_errno(rt):
    config = container_config(["sh", "-c", "mkdir /tmp/d; echo rc=$?"])
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}],
    }
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert "No space left on device" in proc.stderr
    assert "rc=1" in proc.stdout


def test_seccomp_compiled_by_the_runtime_or_built_in_the_init(rt):
    """A profile arrives in the init as the program the runtime compiled (and cached): the init
    never loads libseccomp. A profile with load-time flags is built in the init. Both enforce."""
    for flags, init_maps_libseccomp in (([], False), (["SECCOMP_FILTER_FLAG_LOG"], True)):
        config = container_config(["sh", "-c", "mkdir /tmp/d; echo rc=$?"])
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "flags": flags,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}
        bundle = rt.bundle_from(config)
        cid = rt.new_id()
        rt("create", "--bundle", str(bundle), cid, check=True)
        try:
            with open(f"/proc/{rt.state(cid)['pid']}/maps") as maps:
                assert ("libseccomp" in maps.read()) == init_maps_libseccomp, flags
        finally:
            rt("delete", "--force", cid, check=True)
        proc = rt("run", "--bundle", str(bundle), rt.new_id())
        assert "No space left on device" in proc.stderr and "rc=1" in proc.stdout, (flags, proc.stderr)


def test_seccomp_argument_conditions(rt):
    # busybox renice N -p PID calls setpriority(PRIO_PROCESS, PID, N): deny only N == 5.
    config = container_config(["sh", "-c", "renice 3 -p $$ && echo three-ok; "
                                           "renice 5 -p $$ 2>/dev/null && echo five-ok || echo five-denied"])
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["setpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 2, "value": 5, "op": "SCMP_CMP_EQ"}]}],
    }
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.stdout.split() == ["three-ok", "five-denied"], proc.stderr


def test_sysctl_and_oom_score_adj(rt):
    config = container_config(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj"])
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["linux"]["readonlyPaths"].remove("/proc/sys")
    config["process"]["oomScoreAdj"] = 500
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.stdout.split() == ["1", "500"], proc.stderr


def test_joining_another_containers_network_namespace(rt):
    first = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(["sleep", "60"])), first, check=True)
    pid = rt.state(first)["pid"]
    config = container_config(["sh", "-c", "readlink /proc/self/ns/net"])
    config["linux"]["namespaces"] = [
        ns if ns["type"] != "network" else {"type": "network", "path": f"/proc/{pid}/ns/net"}
        for ns in config["linux"]["namespaces"]
    ]
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.stdout.strip() == os.readlink(f"/proc/{pid}/ns/net")
    rt("delete", "--force", first, check=True)


def test_hostname_and_domainname(rt):
    proc = rt.run(["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"], domainname="example.test")
    assert proc.stdout.split() == ["pyruntime-test", "example.test"]


@pytest.mark.parametrize("ns_type", ["ipc", "uts", "cgroup", "mnt", "pid", "net"])
def test_namespaces_differ_from_host(rt, ns_type):
    proc = rt.run(["readlink", f"/proc/self/ns/{ns_type}"])
    assert proc.stdout.strip() != os.readlink(f"/proc/self/ns/{ns_type}")


def test_time_namespace_offsets(rt):
    config = container_config(["cat", "/proc/uptime"])
    config["linux"]["namespaces"].append({"type": "time"})
    config["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    uptime = float(proc.stdout.split()[0])
    with open("/proc/uptime") as f:
        host = float(f.read().split()[0])
    assert uptime - host > 86400 * 364


def test_preserve_fds(rt, tmp_path):
    from tests.support import pyruntime_with_fd3

    bundle = rt.bundle(["sh", "-c", "cat <&3"])
    proc = pyruntime_with_fd3(rt, b"through fd 3\n", "run", "--preserve-fds", "1",
                              "--bundle", str(bundle), rt.new_id())
    assert proc.stdout == "through fd 3\n", proc.stderr


def test_concurrent_commands_are_serialized(rt):
    """Many deletes and kills at once on one container: each either acts or finds it gone;
    nothing half-done remains."""
    import subprocess
    import sys

    from tests.support import repo_env

    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(["sleep", "60"])), cid, check=True)
    base = [sys.executable, "-m", "pyruntime", "--root", str(rt.root)]
    procs = [subprocess.Popen(base + cmd + [cid], env=repo_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for cmd in (["delete", "--force"], ["kill"], ["delete", "--force"], ["state"],
                         ["delete", "--force"], ["kill", "--all"])]
    results = [(p.wait(timeout=30), p.stderr.read()) for p in procs]
    deletes = [results[i] for i in (0, 2, 4)]
    assert sum(code == 0 for code, _ in deletes) >= 1
    for code, err in results:
        assert code == 0 or "does not exist" in err or "not running" in err, err
        assert "Traceback" not in err
    assert not (rt.root / cid).exists()


def test_linux_devices(rt):
    config = container_config(["sh", "-c", "stat -c '%F %t,%T %a %u:%g' /dev/mydev /dev/fuse-like"])
    config["linux"]["devices"] = [
        {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 10},
        {"path": "/dev/fuse-like", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
    ]
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.stdout.splitlines() == ["character special file 1,3 640 1000:10",
                                        "character special file a,e5 666 0:0"], proc.stderr


def test_seccomp_without_no_new_privs(rt):
    """Without no_new_privs the filter is loaded while the init still has CAP_SYS_ADMIN."""
    config = container_config(["sh", "-c", "grep NoNewPrivs /proc/self/status; mkdir /tmp/x"])
    config["process"]["noNewPrivileges"] = False
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.stdout.split() == ["NoNewPrivs:", "0"]
    assert "Permission denied" in proc.stderr


def test_mount_propagation_option(rt, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    mounts = container_config([])["mounts"] + [
        {"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind", "rshared"]}]
    proc = rt.run(["grep", " /shared ", "/proc/self/mountinfo"], mounts=mounts)
    assert "shared:" in proc.stdout, proc.stdout + proc.stderr


def test_large_config_reaches_the_container(rt):
    """A config.json bigger than a socket message (~210 KB here) still reaches the init."""
    config = container_config(["sh", "-c", "env | grep -c '^BIG'"])
    config["process"]["env"] += [f"BIG{i}={'x' * 100}" for i in range(2500)]
    bundle = rt.bundle_from(config)
    assert (bundle / "config.json").stat().st_size > 256 << 10
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode == 0 and proc.stdout == "2500\n", proc.stderr


def test_no_pivot_chroots_into_the_rootfs(rt):
    """--no-pivot: the rootfs is moved over / and chroot'ed into instead of pivot_root; the
    container and a process exec'ed into it see the bundle's rootfs, nothing of the host's."""
    probe = "ls -a / | grep -c -x -e .pyruntime-rootfs -e work -e opt"
    cid = rt.new_id()
    rt("run", "-d", "--no-pivot", "--bundle", str(rt.bundle(["sh", "-c", f"{probe} > /tmp/seen; sleep 60"])),
       cid, check=True)
    wait_for(lambda: rt("exec", cid, "cat", "/tmp/seen").stdout)
    assert rt("exec", cid, "cat", "/tmp/seen", check=True).stdout == "1\n"  # the marker, no host dirs
    assert rt("exec", cid, "sh", "-c", probe, check=True).stdout == "1\n"
