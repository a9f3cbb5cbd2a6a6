"""Where runc and crun behave one way and a script or a higher tool can see it: hooks' env and
errors, HOME, a missing cwd, no mount namespace, signal 0, ps of a stopped container, and
runc's compact JSON."""

import json
import os

from tests.support import container_config, repo_env, wait_for


def test_a_hook_without_env_inherits_the_runtimes_and_one_with_env_gets_only_that(rt, tmp_path):
    inherited, exact = tmp_path / "inherited", tmp_path / "exact"
    config = container_config(["true"])
    config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"env > {inherited}"]},
        {"path": "/bin/sh", "args": ["sh", "-c", f"env > {exact}"], "env": ["ONLY=this"]},
    ]}
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id(),
              env=repo_env(PYRUNTIME_TEST_MARK="from-the-caller"))
    assert proc.returncode == 0, proc.stderr
    assert "PYRUNTIME_TEST_MARK=from-the-caller" in inherited.read_text().splitlines()
    assert "PYRUNTIME_TEST_MARK=from-the-caller" not in exact.read_text()
    assert "ONLY=this" in exact.read_text().splitlines()


def test_a_start_container_hook_runs_inside_after_pivot_root(rt):
    config = container_config(["cat", "/tmp/from-hook"])
    config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/from-hook"]}]}   # the state JSON
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "created"


def test_a_failing_hook_is_an_error_running_hook_that_names_it(rt):
    config = container_config(["true"])
    config["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode != 0
    assert "error running hook prestart[0] /bin/false: exit status 1" in proc.stderr, proc.stderr


def test_home_comes_from_the_containers_passwd(rt):
    homes = []
    for user in ({"uid": 0, "gid": 0}, {"uid": 1000, "gid": 1000}, {"uid": 4242, "gid": 4242}):
        config = container_config(["sh", "-c", "echo $HOME"])
        config["process"]["env"] = [e for e in config["process"]["env"] if not e.startswith("HOME=")]
        config["process"]["user"] = user
        proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
        assert proc.returncode == 0, proc.stderr
        homes.append(proc.stdout.strip())
    assert homes == ["/root", "/home/user", "/"]
    config = container_config(["sh", "-c", "echo $HOME"])
    config["process"]["env"].append("HOME=/given")
    assert rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id()).stdout == "/given\n"


def test_a_missing_cwd_is_created(rt):
    config = container_config(["pwd"])
    config["process"]["cwd"] = "/not/in/the/image"
    bundle = rt.bundle_from(config)
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert (proc.returncode, proc.stdout) == (0, "/not/in/the/image\n"), proc.stderr
    assert (bundle / "rootfs" / "not" / "in" / "the" / "image").is_dir()


def test_without_a_mount_namespace_the_rootfs_is_left_alone(rt, tmp_path):
    marker = tmp_path / "host-only"
    marker.write_text("")
    config = container_config(["test", "-e", str(marker)])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"]
                                     if ns["type"] not in ("mount", "cgroup")]
    config["linux"]["maskedPaths"] = ["/proc/kcore"]
    config["linux"]["readonlyPaths"] = ["/proc/sys"]
    with open("/proc/self/mountinfo") as f:
        before = f.read()
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr      # the host's root, so the host's file
    with open("/proc/self/mountinfo") as f:
        assert f.read() == before                 # no mask, no read-only path on the host


def test_signal_0_probes_and_ps_of_a_stopped_container_is_empty(rt):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(["sleep", "60"])), cid, check=True)
    assert rt("kill", cid, "0").returncode == 0
    assert rt.state(cid)["status"] == "running"
    rt("kill", cid, "KILL", check=True)
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    assert rt("ps", "--format", "json", cid, check=True).stdout == "[]\n"
    assert rt("kill", cid, "0").returncode != 0
    rt("delete", cid, check=True)


def test_machine_readable_output_is_runcs_compact_json(rt):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(["sleep", "60"])), cid, check=True)
    for command in (["list", "--format", "json"], ["ps", "--format", "json", cid]):
        out = rt(*command, check=True).stdout
        assert json.loads(out) and ", " not in out and '": ' not in out, out
    state = rt("state", cid, check=True).stdout
    assert state.startswith("{\n  ")                # state stays indented, as runc prints it
    rt("delete", "--force", cid, check=True)


def test_io_priority_is_applied_with_or_without_a_priority(rt):
    seen = []
    for wanted in ({"class": "IOPRIO_CLASS_BE", "priority": 5}, {"class": "IOPRIO_CLASS_IDLE"}):
        config = container_config(["ionice", "-p", "1"])
        config["process"]["ioPriority"] = wanted
        proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
        assert proc.returncode == 0, proc.stderr
        seen.append(proc.stdout.strip())
    assert seen[0].startswith("best-effort") and seen[0].endswith("5"), seen
    assert seen[1].startswith("idle"), seen


def test_run_keep_leaves_the_stopped_container_until_delete(rt):
    cid = rt.new_id()
    proc = rt("run", "--keep", "--bundle", str(rt.bundle(["sh", "-c", "exit 3"])), cid)
    assert proc.returncode == 3, proc.stderr
    state = rt.state(cid)
    assert state["status"] == "stopped"
    assert any(os.path.isdir(f"/sys/fs/cgroup/{base}/pyruntime/{cid}") for base in os.listdir("/sys/fs/cgroup"))
    rt("delete", cid, check=True)
    assert not (rt.root / cid).exists()


def test_config_file_other_than_the_bundles(rt, tmp_path):
    bundle = rt.bundle(["echo", "from config.json"])
    other = tmp_path / "other.json"
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["echo", "from --config"]
    other.write_text(json.dumps(config))
    proc = rt("run", "--config", str(other), "--bundle", str(bundle), rt.new_id())
    assert (proc.returncode, proc.stdout) == (0, "from --config\n"), proc.stderr
    missing = rt("run", "--config", str(tmp_path / "nope.json"), "--bundle", str(bundle), rt.new_id())
    assert missing.returncode != 0 and "--config" in missing.stderr and "Traceback" not in missing.stderr


def test_delete_regex_deletes_every_matching_container(rt):
    bundle = rt.bundle(["sleep", "60"])
    keep, *matching = rt.new_id(), rt.new_id(), rt.new_id()
    for cid in (keep, *matching):
        rt("create", "--bundle", str(bundle), cid, check=True)
    pattern = "|".join(matching)
    rt("delete", "--force", "--regex", pattern, check=True)
    assert [c["id"] for c in json.loads(rt("list", "--format", "json", check=True).stdout)] == [keep]
    rt("delete", "--force", keep, check=True)


def test_exec_failures_exit_255(rt):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(["sleep", "60"])), cid, check=True)
    assert rt("exec", cid, "sh", "-c", "exit 7").returncode == 7      # the process's own code
    missing = rt("exec", cid, "/no/such/program")
    assert missing.returncode == 255 and "no such file or directory" in missing.stderr, missing.stderr
    assert rt("exec", "no-such-container", "true").returncode == 255
    rt("delete", "--force", cid, check=True)


def test_kill_all_reaches_what_a_stopped_init_left_in_its_cgroup(rt):
    """containerd stops a pod so: its init gone, processes of the shared PID namespace left."""
    config = container_config(["sh", "-c", "sleep 60 & exit 0"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle_from(config)), cid, check=True)
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    procs_file = f"/sys/fs/cgroup/pids/pyruntime/{cid}/cgroup.procs"
    assert wait_for(lambda: open(procs_file).read().split())   # the sleep is still there
    assert rt("kill", cid, "KILL").returncode != 0           # the init is gone
    rt("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: not open(procs_file).read().split())
    rt("delete", cid, check=True)


def test_log_file_errors_and_debug_lines(rt, tmp_path):
    unopenable = tmp_path / "missing-dir" / "log"
    proc = rt("--log", str(unopenable), "list")
    assert proc.returncode == 1 and f"--log {unopenable}: cannot open it" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    log = tmp_path / "log"
    rt("--debug", "--log", str(log), "list", check=True)
    rt("--debug", "--log", str(log), "state", "no-such-container")
    lines = log.read_text().splitlines()
    assert any("level=debug" in line and "pyruntime" in line for line in lines), lines
    assert any("level=error" in line and "no-such-container" in line for line in lines), lines


def test_the_cwd_is_entered_with_the_runtimes_privileges_first(rt):
    """runc's order: a cwd the user may not enter still becomes the process's cwd, for the
    container's process and for exec; only listing it is then refused."""
    config = container_config(["sh", "-c", "{ pwd; ls .; } > /tmp/where 2>&1; sleep 60"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["cwd"] = "/secret"
    bundle = rt.bundle_from(config)
    (bundle / "rootfs" / "secret").mkdir(mode=0o700)
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", str(bundle), cid).returncode == 0
    where = wait_for(lambda: "denied" in (text := rt("exec", cid, "cat", "/tmp/where").stdout) and text)
    assert where.splitlines()[0] == "/secret", where
    proc = rt("exec", "--user", "1000:1000", cid, "pwd")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "/secret\n"
