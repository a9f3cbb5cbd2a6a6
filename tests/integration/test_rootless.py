"""Rootless: a throwaway unprivileged user (the `user` fixture) runs real containers."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


from tests.support import free_port, pyruntime, wait_for


def _host_uids(pid: int) -> set[int]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return {int(x) for x in line.split()[1:]}
    return set()


def test_rootless_run_is_root_inside_and_the_user_outside(user):
    bundle = user.bundle(["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map"])
    proc = user.run("run", "--bundle", str(bundle), "c1")
    assert proc.returncode == 0, proc.stderr
    lines = [" ".join(line.split()) for line in proc.stdout.splitlines()]
    assert lines == ["0", f"0 {user.uid} 1", f"0 {user.gid} 1"]
    st = user.state_root.stat()
    assert st.st_uid == user.uid and st.st_mode & 0o777 == 0o700
    assert list(user.state_root.iterdir()) == []


def test_rootless_lifecycle(user):
    bundle = user.bundle(["sleep", "60"])
    assert user.run("create", "--bundle", str(bundle), "c2").returncode == 0
    state = json.loads(user.run("state", "c2").stdout)
    assert state["status"] == "created"
    assert user.run("start", "c2").returncode == 0
    listed = json.loads(user.run("list", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [("c2", "running")]
    exec_proc = user.run("exec", "c2", "sh", "-c", "id -u; echo from-exec")
    assert exec_proc.stdout.split() == ["0", "from-exec"], exec_proc.stderr
    ps = json.loads(user.run("ps", "--format", "json", "c2").stdout)
    assert state["pid"] in ps
    for pid in ps:
        assert _host_uids(pid) == {user.uid}      # every process of it is the user's outside
    assert user.run("kill", "c2", "KILL").returncode == 0
    assert wait_for(lambda: json.loads(user.run("state", "c2").stdout)["status"] == "stopped")
    deleted = user.run("delete", "c2")
    assert deleted.returncode == 0, deleted.stderr
    assert list(user.state_root.iterdir()) == []


def test_rootless_with_subordinate_ids_through_newuidmap(user):
    sub_uid, _ = user.subuid
    sub_gid, _ = user.subgid
    bundle = user.bundle(["sh", "-c", "cat /proc/self/uid_map; sleep 60"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                      {"containerID": 1, "hostID": sub_uid, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                      {"containerID": 1, "hostID": sub_gid, "size": 65536}]
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    (bundle / "config.json").write_text(json.dumps(config))
    proc = user.run("run", "-d", "--bundle", str(bundle), "c3")
    assert proc.returncode == 0, proc.stderr
    pid = json.loads(user.run("state", "c3").stdout)["pid"]
    assert _host_uids(pid) == {sub_uid + 999}
    mapping = [" ".join(line.split()) for line in open(f"/proc/{pid}/uid_map").read().splitlines()]
    assert mapping == [f"0 {user.uid} 1", f"1 {sub_uid} 65536"]
    assert user.run("delete", "--force", "c3").returncode == 0


def test_rootless_limits_that_cannot_be_applied_are_an_error(user):
    bundle = user.bundle(["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"] = {"pids": {"limit": 10}}
    (bundle / "config.json").write_text(json.dumps(config))
    proc = user.run("run", "--bundle", str(bundle), "c4")
    assert proc.returncode != 0
    assert "linux.resources.pids: a rootless container" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(user.state_root.iterdir()) == []


def test_a_state_root_someone_else_made_is_refused(user):
    user.state_root.mkdir(mode=0o777)             # planted by another user (root, here)
    os.chmod(user.state_root, 0o777)
    proc = user.run("run", "--bundle", str(user.bundle(["true"])), "c5")
    assert proc.returncode != 0
    assert "must belong to you" in proc.stderr and "Traceback" not in proc.stderr
    assert list(user.state_root.iterdir()) == []


def test_a_user_cannot_see_signal_or_delete_roots_containers(user, rt):
    root_state = Path(tempfile.mkdtemp(prefix="pyruntime-rootstate-", dir="/var/tmp"))
    os.chmod(root_state, 0o711)          # as /run/pyruntime: others may pass, not list
    cid = rt.new_id()
    try:
        pyruntime("run", "-d", "--bundle", str(rt.bundle(["sleep", "60"])), cid, root=root_state, check=True)
        for command in (["state", cid], ["kill", cid, "KILL"], ["delete", "--force", cid], ["list"]):
            proc = user.run("--root", str(root_state), *command)
            assert proc.returncode != 0, command
            assert "permission denied" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        state = json.loads(pyruntime("state", cid, root=root_state, check=True).stdout)
        assert state["status"] == "running"
    finally:
        pyruntime("delete", "--force", cid, root=root_state)
        shutil.rmtree(root_state, ignore_errors=True)


def _slirp_processes(user) -> list[int]:
    """Live slirp4netns processes of the user (an exited one waits as a zombie until the
    host's init reaps it: it holds nothing)."""
    found = subprocess.run(["pgrep", "-u", user.name, "slirp4netns"], capture_output=True, text=True)
    live = []
    for pid in map(int, found.stdout.split()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] != "Z":
                    live.append(pid)
        except FileNotFoundError:
            pass
    return live


def test_rootless_slirp4netns_publishes_a_port_and_goes_with_the_container(user, tun_for_everyone):
    import urllib.request

    port = free_port()
    bundle = user.bundle(["sh", "-c", "mkdir -p /tmp/www; echo served > /tmp/www/index.html; "
                                      "ip -4 -o addr show tap0 | grep -c 10.0.2.100; "
                                      "exec httpd -f -p 80 -h /tmp/www"],
                         spec_args=("--network", "slirp4netns", "--publish", f"127.0.0.1:{port}:80/tcp"),
                         root={"path": "rootfs", "readonly": False})
    proc = user.run("run", "-d", "--bundle", str(bundle), "c6")
    assert proc.returncode == 0, proc.stderr
    assert len(_slirp_processes(user)) == 1

    def fetch():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
        except OSError:
            return ""

    assert wait_for(fetch, timeout=20) == "served\n"
    deleted = user.run("delete", "--force", "c6")
    assert deleted.returncode == 0, deleted.stderr
    assert _slirp_processes(user) == []
    assert not Path(f"/tmp/pyruntime-network-{user.uid}/c6").exists()
