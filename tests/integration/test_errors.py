"""Bad input and failures: one clear message, a non-zero exit, no traceback, nothing left."""

import json
import os
import subprocess
import sys

import pytest

from tests.support import container_config, repo_env


def assert_clean_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def assert_nothing_left(rt, cid):
    assert not (rt.root / cid).exists()
    for base in os.listdir("/sys/fs/cgroup"):
        assert not os.path.exists(f"/sys/fs/cgroup/{base}/pyruntime/{cid}"), base


def test_missing_bundle(rt, tmp_path):
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(tmp_path / "nope"), cid)
    assert_clean_error(proc, "nope")
    assert_nothing_left(rt, cid)


def test_invalid_json(rt, tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_text("{ not json")
    cid = rt.new_id()
    assert_clean_error(rt("create", "--bundle", str(bundle), cid), "config.json")
    assert_nothing_left(rt, cid)


def test_unreadable_config(rt, tmp_path):
    bundle = tmp_path / "b"
    bundle.mkdir()
    cid = rt.new_id()
    assert_clean_error(rt("create", "--bundle", str(bundle), cid), "config.json")


@pytest.mark.parametrize("command", [["state"], ["start"], ["kill"], ["delete"]])
def test_unknown_id(rt, command):
    assert_clean_error(rt(*command, "no-such-container"), "no-such-container", "does not exist")


def test_delete_force_of_unknown_id_succeeds(rt):
    """As with runc: podman sends `delete --force` after every failed create."""
    proc = rt("delete", "--force", "no-such-container")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "..", "", "x y"])
def test_unsafe_ids(rt, bad_id):
    bundle = rt.bundle(["true"])
    proc = rt("create", "--bundle", str(bundle), bad_id)
    assert_clean_error(proc, "invalid container id")
    assert not (rt.root.parent / "x").exists()


def test_duplicate_id(rt):
    bundle = rt.bundle(["sleep", "60"])
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)
    proc = rt("create", "--bundle", str(bundle), cid)
    assert_clean_error(proc, "already exists")
    assert rt.state(cid)["status"] == "created"  # the first one is untouched
    rt("delete", cid, check=True)


def test_missing_binary(rt):
    cid = rt.new_id()
    proc = rt("run", "--bundle", str(rt.bundle(["no-such-program"])), cid)
    assert_clean_error(proc, 'exec: "no-such-program": executable file not found in $PATH')
    assert_nothing_left(rt, cid)


def test_another_user_cannot_create_in_roots_state(rt, tmp_path):
    import shutil
    import tempfile

    bundle = rt.bundle_from(container_config(["true"]), traversable=True)
    root_state = tempfile.mkdtemp(prefix="pyruntime-rootstate-", dir="/var/tmp")
    os.chmod(root_state, 0o711)   # as /run/pyruntime
    try:
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-m", "pyruntime", "--root", root_state, "create", "--bundle", str(bundle), "x"],
            env=repo_env(), capture_output=True, text=True, timeout=30)
        assert_clean_error(proc, f"--root {root_state}")
        assert os.listdir(root_state) == []
    finally:
        shutil.rmtree(root_state)


def test_failing_bind_source_rolls_back(rt, tmp_path):
    mounts = container_config([])["mounts"] + [
        {"destination": "/data", "type": "bind", "source": str(tmp_path / "missing"), "options": ["bind"]}]
    cid = rt.new_id()
    bundle = rt.bundle(["true"], mounts=mounts)
    assert_clean_error(rt("create", "--bundle", str(bundle), cid), "mounts[8]", "/data")
    assert_nothing_left(rt, cid)


def test_failing_prestart_hook_rolls_back(rt, tmp_path):
    hook = tmp_path / "hook.sh"
    marker = tmp_path / "hook-ran"
    hook.write_text(f"#!/bin/sh\ncat > {marker}\necho broken network >&2\nexit 3\n")
    hook.chmod(0o755)
    cid = rt.new_id()
    bundle = rt.bundle(["true"], hooks={"prestart": [{"path": str(hook)}]})
    proc = rt("create", "--bundle", str(bundle), cid)
    assert_clean_error(proc, "prestart", str(hook), "status 3", "broken network")
    state = json.loads(marker.read_text())  # the hook got the state on stdin
    assert state["id"] == cid and state["pid"] > 0
    assert not os.path.exists(f"/proc/{state['pid']}/cmdline") or \
        open(f"/proc/{state['pid']}/cmdline").read() == ""
    assert_nothing_left(rt, cid)


def test_hook_timeout_rolls_back(rt, tmp_path):
    cid = rt.new_id()
    bundle = rt.bundle(["true"], hooks={"createRuntime": [
        {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]})
    assert_clean_error(rt("create", "--bundle", str(bundle), cid), "timed out")
    assert_nothing_left(rt, cid)


def test_failing_poststop_hook_is_a_warning(rt, tmp_path):
    cid = rt.new_id()
    bundle = rt.bundle(["true"], hooks={"poststop": [{"path": "/bin/false"}]})
    proc = rt("run", "--bundle", str(bundle), cid)
    assert proc.returncode == 0
    assert "poststop" in proc.stderr
    assert_nothing_left(rt, cid)


def test_failing_poststart_hook_is_a_warning_and_the_rest_still_run(rt, tmp_path):
    marker = tmp_path / "second-ran"
    hooks = {"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo first failed >&2; exit 4"]},
                           {"path": "/bin/sh", "args": ["sh", "-c", f"cat > /dev/null; touch {marker}"]}]}
    proc = rt("run", "--bundle", str(rt.bundle(["true"], hooks=hooks)), rt.new_id())
    assert proc.returncode == 0, proc.stderr  # the container ran and its exit code stands
    assert "poststart[0]" in proc.stderr and "first failed" in proc.stderr
    assert marker.exists()


def test_hooks_run_in_order_with_state(rt, tmp_path):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\nstatus=$(grep -o '\"status\": *\"[a-z]*\"' | cut -d'\"' -f4)\n"
                    f"echo \"$1 $status\" >> {log}\n")
    hook.chmod(0o755)
    phases = ["prestart", "createRuntime", "poststart", "poststop"]
    hooks = {p: [{"path": str(hook), "args": ["hook", p]}] for p in phases}
    proc = rt("run", "--bundle", str(rt.bundle(["true"], hooks=hooks)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().split("\n")[:4] == [
        "prestart created", "createRuntime created", "poststart running", "poststop stopped"]


def test_container_hooks_run_inside_the_container(rt, tmp_path):
    """createContainer: path from the runtime's view, run in the container's namespaces before
    pivot_root; startContainer: path inside the container, run there just before the process.
    Both get the state on stdin and their env; hook output reaches the user."""
    seen = tmp_path / "create-hook-mnt"
    create_hook = tmp_path / "create.sh"
    create_hook.write_text(f"#!/bin/sh\ncat > /dev/null\nreadlink /proc/self/ns/mnt > {seen}\n"
                           "echo said-by-createContainer\n")
    create_hook.chmod(0o755)
    start_hook = {"path": "/bin/sh", "env": ["GREETING=hi"],
                  "args": ["sh", "-c", "grep -c '\"status\"' > /tmp/started; echo $GREETING >> /tmp/started"]}
    hooks = {"createContainer": [{"path": str(create_hook)}], "startContainer": [start_hook]}
    proc = rt("run", "--bundle", str(rt.bundle(["cat", "/tmp/started"], hooks=hooks)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "hi"]  # the container sees what its startContainer hook left
    assert seen.read_text().strip() != os.readlink("/proc/self/ns/mnt")  # the container's
    assert "said-by-createContainer" in proc.stderr


def test_systemd_cgroup_refused(rt):
    assert_clean_error(rt("--systemd-cgroup", "list"), "systemd")


def test_delete_force_after_crashed_create(rt):
    """A state dir whose create died half-way (no init) is still removable."""
    cid = rt.new_id()
    d = rt.root / cid
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"id": cid, "bundle": "/nonexistent", "creating": True,
                                              "pid": 0, "config": {}}))
    assert rt.state(cid)["status"] == "creating"
    rt("delete", "--force", cid, check=True)
    assert not d.exists()


def test_invalid_config_names_the_field_and_starts_nothing(rt):
    config = container_config(["true"])
    config["process"]["user"]["uid"] = "root"
    config["mounts"][0]["destination"] = 42
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(rt.bundle_from(config)), cid)
    assert_clean_error(proc, "process.user.uid", "mounts[0].destination")
    assert_nothing_left(rt, cid)


def test_validate_command(rt, tmp_path):
    good = rt.bundle(["true"])
    assert rt("validate", "--bundle", str(good), check=True).stdout.strip().endswith("valid")
    config = container_config(["true"])
    config["linux"]["namespaces"].append({"type": "pid"})
    proc = rt("validate", "--bundle", str(rt.bundle_from(config)))
    assert_clean_error(proc, "linux.namespaces")
    deprecated = container_config(["true"])
    deprecated["mounts"][-1]["destination"] = "tmp"  # the tests' tmpfs, relative
    proc = rt("validate", "--bundle", str(rt.bundle_from(deprecated)), check=True)
    assert "mounts[" in proc.stderr and "relative path 'tmp' is deprecated" in proc.stderr


def test_large_annotations_reach_the_container_hooks_and_state(rt, tmp_path):
    """Annotations bigger than a sync message (~210 KB) still reach createContainer hooks
    (which get the state from the init) and `state`."""
    seen = tmp_path / "create-hook-state"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {seen}"]}
    config = container_config(["true"])
    config["annotations"] = {f"org.example.big{i}": "x" * 1000 for i in range(400)}
    config["hooks"] = {"createContainer": [hook]}
    cid = rt.new_id()
    rt("create", "--bundle", str(rt.bundle_from(config)), cid, check=True)
    try:
        state = json.loads(seen.read_text())
        assert state["id"] == cid and state["status"] == "created" and state["pid"] == rt.state(cid)["pid"]
        assert state["annotations"] == config["annotations"]
        assert rt.state(cid)["annotations"] == config["annotations"]
    finally:
        rt("delete", "--force", cid)
    assert_nothing_left(rt, cid)
