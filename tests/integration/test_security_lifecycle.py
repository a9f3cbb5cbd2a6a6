"""Faults and hostile input around the lifecycle: nothing of the caller is held, nothing is left
after the runtime is killed, nothing waits forever, and every user error is one clear line."""

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support import container_config, repo_env, wait_for
from tests.integration.test_errors import assert_clean_error, assert_nothing_left


def _fd_targets(pid: int) -> list[str]:
    targets = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except FileNotFoundError:
            pass
    return targets


def test_created_container_holds_none_of_the_callers_fds(rt, tmp_path):
    """`flock L pyruntime create` must not keep L locked for the container's life, nor may a
    pipe the caller reads to EOF stay open in it."""
    lock_path = tmp_path / "lock"
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    read_end, write_end = os.pipe()
    cid = rt.new_id()
    try:
        rt("create", "--bundle", str(rt.bundle(["true"])), cid, pass_fds=(lock, write_end), check=True)
    finally:
        os.close(lock)
        os.close(write_end)
    pid = rt.state(cid)["pid"]
    again = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)   # BlockingIOError if the init kept it
    finally:
        os.close(again)
    os.set_blocking(read_end, False)
    assert os.read(read_end, 1) == b""                        # EOF: no write end is left
    os.close(read_end)
    targets = _fd_targets(pid)
    assert str(lock_path) not in targets and not any(t.startswith("pipe:") for t in targets[3:]), targets
    rt("delete", "--force", cid, check=True)


def test_preserved_fds_still_reach_the_container(rt, tmp_path):
    read_end, write_end = os.pipe()
    os.write(write_end, b"through fd 3\n")
    os.close(write_end)
    script = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
              "os.execv(sys.executable, [sys.executable, '-m', 'pyruntime', *sys.argv[2:]])")
    proc = subprocess.run([sys.executable, "-c", script, str(read_end), "--root", str(rt.root),
                           "run", "--preserve-fds", "1", "--bundle", str(rt.bundle(["cat", "/proc/self/fd/3"])),
                           rt.new_id()],
                          pass_fds=(read_end,), env=repo_env(), capture_output=True, text=True, timeout=60)
    os.close(read_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "through fd 3\n"


def _container_cgroups(cid: str) -> list[str]:
    return [f"/sys/fs/cgroup/{base}/pyruntime/{cid}" for base in os.listdir("/sys/fs/cgroup")
            if os.path.exists(f"/sys/fs/cgroup/{base}/pyruntime/{cid}")]


def _runtime(rt, *args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pyruntime", "--root", str(rt.root), *args]
    return subprocess.Popen(cmd, env=repo_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_runtime_killed_during_create_leaves_nothing_after_delete_force(rt):
    """SIGKILL at random moments of a create; `delete --force` then removes every cgroup in
    every hierarchy, and the state directory."""
    bundle = rt.bundle(["true"])
    rng = random.Random(1234)
    for _ in range(30):
        cid = rt.new_id()
        creator = _runtime(rt, "create", "--bundle", str(bundle), cid)
        time.sleep(rng.uniform(0.0, 0.09))
        creator.kill()
        creator.wait()
        _assert_no_init_left_waiting(rt, cid)
        proc = rt("delete", "--force", cid)
        assert proc.returncode == 0, proc.stderr
        assert _container_cgroups(cid) == []
        assert not (rt.root / cid).exists()


def _assert_no_init_left_waiting(rt, cid: str) -> None:
    """A create that did not complete must not leave its init behind (it would wait forever
    for a `start`: the state says the container is still being created)."""
    try:
        saved = json.loads((rt.root / cid / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return
    if saved.get("creating") and saved.get("pid"):
        assert wait_for(lambda: not _alive(saved["pid"]), timeout=10), "an init outlived its create"


def test_init_exits_when_the_runtime_dies_before_create_completes(rt, tmp_path):
    """Killed while a createRuntime hook runs: the init sees the channel close and exits; it
    never waits for a `start` that nobody can send."""
    marker = tmp_path / "hook-pid"
    config = container_config(["true"])
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                          "args": ["sh", "-c", f"echo $$ > {marker}; exec sleep 30"]}]}
    cid = rt.new_id()
    creator = _runtime(rt, "create", "--bundle", str(rt.bundle_from(config)), cid)
    assert wait_for(lambda: marker.exists() and marker.read_text().strip(), timeout=20)
    init_pid = json.loads((rt.root / cid / "state.json").read_text())["pid"]
    assert init_pid > 0
    creator.kill()
    creator.wait()
    os.kill(int(marker.read_text()), signal.SIGKILL)    # the hook the runtime left behind
    gone = wait_for(lambda: not _alive(init_pid), timeout=10)
    assert gone, "the init still waits after its runtime died"
    rt("delete", "--force", cid, check=True)
    assert _container_cgroups(cid) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def frozen_cgroup():
    """A cgroup path that exists in every v1 hierarchy, frozen by the freezer."""
    name = f"pyruntime-test/frozen-{uuid.uuid4().hex[:8]}"
    made = []
    for base in sorted(os.listdir("/sys/fs/cgroup")):
        root = Path("/sys/fs/cgroup") / base
        if not (root / "cgroup.procs").exists():
            continue
        path = root / name
        path.mkdir(parents=True)
        made.append(path)
    freezer = Path("/sys/fs/cgroup/freezer") / name
    (freezer / "freezer.state").write_text("FROZEN")
    yield "/" + name, made
    (freezer / "freezer.state").write_text("THAWED")
    for path in made:
        for directory in (path, path.parent):
            try:
                directory.rmdir()
            except OSError:
                pass


def test_create_in_a_frozen_cgroup_is_refused_at_once(rt, frozen_cgroup):
    cgroups_path, made = frozen_cgroup
    config = container_config(["sleep", "10"])
    config["linux"]["cgroupsPath"] = cgroups_path
    cid = rt.new_id()
    started = time.monotonic()
    proc = rt("run", "-d", "--bundle", str(rt.bundle_from(config)), cid, timeout=30)
    assert time.monotonic() - started < 20
    assert_clean_error(proc, "frozen cgroup")
    assert not (rt.root / cid).exists()
    assert all(path.is_dir() for path in made), "the caller's cgroup must survive the refusal"


def test_delete_force_of_a_frozen_container_thaws_and_removes_it(rt):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(["sh", "-c", "sleep 60 & sleep 60"])), cid, check=True)
    rt("pause", cid, check=True)
    rt("delete", "--force", cid, check=True)
    assert _container_cgroups(cid) == []


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_config_that_is_no_regular_file_or_too_big_is_refused_at_once(rt, tmp_path, kind):
    bundle = tmp_path / "b"
    bundle.mkdir()
    config = bundle / "config.json"
    if kind == "fifo":
        os.mkfifo(config)
    elif kind == "device":
        os.symlink("/dev/zero", config)
    else:
        with open(config, "wb") as f:
            f.truncate(64 << 20)
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(bundle), cid, timeout=20)
    expected = "not a regular file" if kind != "huge" else "more than"
    assert_clean_error(proc, str(config), expected)
    assert_nothing_left(rt, cid)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [100, 5000, 100000])
def test_deeply_nested_config_is_a_clean_error(rt, tmp_path, depth):
    config = container_config(["true"])
    text = json.dumps(config)[:-1] + f', "org.example.extension": {_nested(depth)}}}'
    bundle = rt.bundle_from(config)
    (bundle / "config.json").write_text(text)
    cid = rt.new_id()
    for command in (["create", "--bundle", str(bundle), cid], ["validate", "--bundle", str(bundle)]):
        proc = rt(*command)
        assert_clean_error(proc, "nested more than")
        assert "internal error" not in proc.stderr
    assert_nothing_left(rt, cid)


def test_overlong_id_is_a_clean_error(rt):
    proc = rt("create", "--bundle", str(rt.bundle(["true"])), "a" * 1000)
    assert_clean_error(proc, "1000 characters long")
    assert "internal error" not in proc.stderr


def test_root_that_is_a_file(rt, tmp_path):
    not_a_dir = tmp_path / "root-file"
    not_a_dir.write_text("")
    bundle = rt.bundle(["true"])
    for command in (["create", "--bundle", str(bundle), "x"], ["state", "x"], ["list"], ["delete", "x"]):
        proc = subprocess.run([sys.executable, "-m", "pyruntime", "--root", str(not_a_dir), *command],
                              env=repo_env(), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        assert_clean_error(proc, f"--root {not_a_dir} is not a directory")
        assert "internal error" not in proc.stderr


def test_pid_file_in_a_missing_directory(rt, tmp_path):
    missing = tmp_path / "no-such-dir" / "pid"
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(rt.bundle(["sleep", "30"])), "--pid-file", str(missing), cid)
    assert_clean_error(proc, f"--pid-file {missing}", "does not exist")
    assert "internal error" not in proc.stderr
    assert_nothing_left(rt, cid)

    rt("run", "-d", "--bundle", str(rt.bundle(["sleep", "30"])), cid, check=True)
    proc = rt("exec", "-d", "--pid-file", str(missing), cid, "sleep", "31")
    assert_clean_error(proc, f"--pid-file {missing}", "does not exist")
    inside = rt("exec", cid, "ps", "-o", "args", check=True).stdout
    assert "sleep 31" not in inside, inside
    rt("delete", "--force", cid, check=True)
