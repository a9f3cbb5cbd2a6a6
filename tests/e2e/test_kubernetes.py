"""pyruntime as a Kubernetes node runtime: containerd's CRI plugin with a `pyruntime` runtime
handler (the runc v2 shim running pyruntime) and pyruntime-bridge + portmap as the pod network,
driven over the CRI gRPC API as the kubelet drives it. Every case runs per handler (runc
first) and pyruntime's observations must equal runc's.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.clients import host_cgroup_file, remove_cgroup_tree
from tests.e2e.cri import messages
from tests.e2e.cri.client import CriError
from tests.support import free_port, wait_for

WWW = "mkdir -p /tmp/www && echo {body} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"


@pytest.fixture(scope="session")
def cri_node():
    from tests.e2e.cri.node import CriNode, cri_missing

    reason = cri_missing()
    if reason:
        pytest.skip(f"no CRI client here: {reason}")
    node = CriNode(Path(tempfile.mkdtemp(prefix="pyruntime-e2e-cri-", dir="/var/tmp")))
    try:
        node.start()
        yield node
    finally:
        node.teardown()


@pytest.fixture
def pods(cri_node):
    """pods(name, handler): makes pods; removes them afterwards as the kubelet does (stop,
    remove, then the pod's cgroup) and checks that the node holds nothing of them any more.
    The handler is passed by the test (its `runtime`), so that the runc baseline that
    `same_as_runc` may run with the same fixtures makes runc pods."""
    from tests.e2e.cri.node import Pod

    made: list[Pod] = []

    def make(name: str, handler: str, **kwargs) -> Pod:
        pod = Pod(cri_node, handler, f"{name}-{handler}", **kwargs)
        made.append(pod)
        return pod

    yield make
    for pod in made:
        pod.remove()
    not_ours = [(pod.handler, cid) for pod in made for cid, ok in pod.made_by_handler.items() if not ok]
    assert not not_ours, f"containers not made by their pod's handler: {not_ours}"
    assert not made or any(pod.made_by_handler for pod in made), "no container seen made by its handler"
    assert not cri_node.client.list_pod_sandboxes(), "pods left in containerd"
    left = cri_node.left_behind()
    pod_cgroups = {pod.config["linux"]["cgroup_parent"].lstrip("/") for pod in made}
    left["cgroups"] = [c for c in left.get("cgroups", []) if c not in pod_cgroups]
    for pod in made:
        remove_cgroup_tree(pod.config["linux"]["cgroup_parent"])
    assert not {k: v for k, v in left.items() if v}, f"the pods left behind: {left}"


def host_pid(node, container_id: str) -> int:
    info = node.client.container_status(container_id, verbose=True)["info"]
    return json.loads(info["info"])["pid"]


def ps_commands(node, container_id: str) -> list[str]:
    """The commands `ps` lists inside the container, without PIDs (which differ: runc's
    `runc init` stages take PIDs in the pod's namespace) and without the ps call itself."""
    rc, out, err = node.client.exec_sync(container_id, ["ps", "-o", "pid,args"])
    assert rc == 0, err
    rows = [line.split(None, 1)[1] if " " in line.strip() else "" for line in out.splitlines()[1:]]
    return sorted(r for r in rows if not r.startswith("ps "))


def test_pod_with_two_containers_sharing_network_and_pid(cri_node, pods, runtime, same_as_runc):
    pod = pods("share", runtime)
    web = pod.container("web", ["sh", "-c", WWW.format(body="from-web")])
    side = pod.container("side", ["sh", "-c", "exec sleep 600"])
    client = cri_node.client

    def ns(cid: str, kind: str) -> str:
        rc, out, _ = client.exec_sync(cid, ["readlink", f"/proc/self/ns/{kind}"])
        return out.strip() if rc == 0 else f"rc={rc}"

    same_ns = {kind: ns(web, kind) == ns(side, kind) for kind in ("net", "pid", "ipc", "uts")}
    mount_shared = ns(web, "mnt") == ns(side, "mnt")
    fetched = wait_for(lambda: (r := client.exec_sync(side, ["wget", "-qO-", "http://127.0.0.1:8080/"]))[0] == 0
                       and r) or client.exec_sync(side, ["wget", "-qO-", "http://127.0.0.1:8080/"])
    commands = wait_for(lambda: (c := ps_commands(cri_node, side)) and any("httpd" in x for x in c) and c)
    assert same_ns == {"net": True, "pid": True, "ipc": True, "uts": True}, same_ns
    assert not mount_shared
    assert fetched[:2] == (0, "from-web\n"), fetched
    # the pause process is PID 1 of the pod and the web container's httpd is visible
    rc, pid1, _ = client.exec_sync(side, ["cat", "/proc/1/cmdline"])
    assert rc == 0 and "trap 'exit 0' TERM INT" in pid1, pid1
    assert any(c.startswith("httpd -f -p 8080") for c in commands), commands
    rc, hostname, _ = client.exec_sync(web, ["hostname"])
    assert hostname.strip() == f"share-{runtime}"
    same_as_runc(same_ns=same_ns, mount_shared=mount_shared, fetched=fetched[:2],
                 commands=commands)


def test_exec_logs_and_exit_code(cri_node, pods, runtime, same_as_runc):
    pod = pods("logs", runtime)
    talker = pod.container("talker", ["sh", "-c", "echo out-line; echo err-line >&2; exec sleep 600"])
    quitter = pod.container("quitter", ["sh", "-c", "echo bye; exit 7"])
    client = cri_node.client
    plain = client.exec_sync(talker, ["sh", "-c", "echo exec-out; echo exec-err >&2; exit 3"])
    env = client.exec_sync(talker, ["sh", "-c", "cd /tmp && pwd && id -u"])
    with pytest.raises(CriError) as missing:
        client.exec_sync(talker, ["/no/such/program"])
    missing = (missing.value.code, "no such file or directory" in missing.value.details)
    exited = wait_for(lambda: (s := client.container_status(quitter)["status"]).get("state")
                      == messages.CONTAINER_EXITED and s)
    logs = wait_for(lambda: len(pod.log_lines("talker")) >= 2 and sorted(pod.log_lines("talker")))
    quitter_log = pod.log_lines("quitter")
    assert plain == (3, "exec-out\n", "exec-err\n"), plain
    assert env[:2] == (0, "/tmp\n0\n"), env
    assert missing == ("UNKNOWN", True), missing
    assert exited and exited.get("exit_code") == 7 and exited.get("reason") == "Error", exited
    assert logs == [("stderr", "err-line"), ("stdout", "out-line")], pod.log_lines("talker")
    assert quitter_log == [("stdout", "bye")], quitter_log
    same_as_runc(plain=plain, env=env, missing=missing, exit_code=exited.get("exit_code"),
                 reason=exited.get("reason"), logs=logs, quitter_log=quitter_log)


def test_resource_limits(cri_node, pods, runtime, same_as_runc):
    pod = pods("limits", runtime)
    resources = {"memory_limit_in_bytes": 64 << 20, "cpu_quota": 50000, "cpu_period": 100000,
                 "cpu_shares": 256}
    cid = pod.container("limited", ["sleep", "600"], resources=resources)
    pid = host_pid(cri_node, cid)
    on_host = {"memory": host_cgroup_file(pid, "memory", "memory.limit_in_bytes"),
               "quota": host_cgroup_file(pid, "cpu", "cpu.cfs_quota_us"),
               "period": host_cgroup_file(pid, "cpu", "cpu.cfs_period_us"),
               "shares": host_cgroup_file(pid, "cpu", "cpu.shares")}
    # what the container itself reads from its cgroup mount (v1 here: one directory per
    # controller, the container's own cgroup at their root)
    rc, inside, err = cri_node.client.exec_sync(cid, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                                      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                                                      "/sys/fs/cgroup/cpu/cpu.shares"])
    assert on_host == {"memory": str(64 << 20), "quota": "50000", "period": "100000",
                       "shares": "256"}, on_host
    assert (rc, inside.split()) == (0, [str(64 << 20), "50000", "256"]), (rc, inside, err)
    hog = pod.container("hog", ["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"],
                        resources={"memory_limit_in_bytes": 16 << 20})
    oom = wait_for(lambda: (s := cri_node.client.container_status(hog)["status"]).get("state")
                   == messages.CONTAINER_EXITED and s, timeout=60)
    assert oom and (oom.get("exit_code"), oom.get("reason")) == (137, "OOMKilled"), oom
    same_as_runc(on_host=on_host, inside=inside, oom=(oom.get("exit_code"), oom.get("reason")))


def test_stop_kills_a_term_ignoring_container_and_its_children(cri_node, pods, runtime, same_as_runc):
    """StopContainer: TERM, the grace period, then KILL. The container shares the pod's PID
    namespace, so when its init dies its background child lives on (re-parented to the pod's
    PID 1) until the shim sends `kill --all` to the now stopped container."""
    pod = pods("stop", runtime)
    watcher = pod.container("watcher", ["sleep", "600"])
    stubborn = pod.container("stubborn", ["sh", "-c", "trap '' TERM; sleep 1001 & "
                                          "while :; do sleep 1; done"])
    client = cri_node.client
    assert wait_for(lambda: "sleep 1001" in " ".join(ps_commands(cri_node, watcher)))
    grace = 2
    started = time.monotonic()
    client.stop_container(stubborn, timeout=grace)
    took = time.monotonic() - started
    status = client.container_status(stubborn)["status"]
    gone = wait_for(lambda: not any("sleep 1001" in c for c in ps_commands(cri_node, watcher)),
                    timeout=10)
    assert grace <= took < grace + 5, took
    assert (status.get("state"), status.get("exit_code")) == (messages.CONTAINER_EXITED, 137), status
    assert gone, ps_commands(cri_node, watcher)
    # a second stop of a stopped container is no error (the kubelet repeats it)
    client.stop_container(stubborn, timeout=0)
    same_as_runc(within_grace=grace <= took < grace + 5, exit_code=status.get("exit_code"),
                 children_killed=bool(gone))


def test_host_port_and_pod_to_pod(cri_node, pods, runtime, same_as_runc):
    host_port = free_port()
    server = pods("server", runtime, port_mappings=[
        {"protocol": messages.TCP, "container_port": 8080, "host_port": host_port}])
    server.container("web", ["sh", "-c", WWW.format(body="from-server")])
    client_pod = pods("client", runtime)
    peer = client_pod.container("peer", ["sleep", "600"])
    server_ip, client_ip = server.ip, client_pod.ip
    network = cri_node.network
    assert server_ip != client_ip
    assert all(ip.startswith(str(network.subnet.network_address)[:-1]) for ip in (server_ip, client_ip))

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy

    def fetch(url: str):
        try:
            with direct.open(url, timeout=3) as r:
                return r.read().decode()
        except OSError as e:
            return f"error: {e}"

    gateway = str(network.subnet.network_address + 1)
    via_loopback = wait_for(lambda: (b := fetch(f"http://127.0.0.1:{host_port}/")) == "from-server\n" and b) \
        or fetch(f"http://127.0.0.1:{host_port}/")
    via_node = fetch(f"http://{gateway}:{host_port}/")
    pod_to_pod = cri_node.client.exec_sync(peer, ["wget", "-qO-", f"http://{server_ip}:8080/"])
    # the address containerd reported is the one on the pod's interface
    rc, addresses, _ = cri_node.client.exec_sync(peer, ["ip", "-4", "-o", "addr", "show", "eth0"])
    assert via_loopback == "from-server\n", via_loopback
    assert via_node == "from-server\n", via_node
    assert pod_to_pod[:2] == (0, "from-server\n"), pod_to_pod
    assert rc == 0 and re.search(rf"inet {re.escape(client_ip)}/", addresses), addresses
    same_as_runc(via_loopback=via_loopback, via_node=via_node, pod_to_pod=pod_to_pod[:2])


def test_kill_all_of_a_stopped_container_in_a_shared_pid_namespace(tmp_path, runtime, same_as_runc):
    """The runtime calls of containerd's runc shim, made directly: when the init of a container
    that joined the pod's PID namespace exits, its children live on in its cgroup, and the
    shim sends `kill --all <id> KILL` to the stopped container, then sends it again."""
    import uuid

    from tests.e2e.clients import run_command
    from tests.e2e.cri.node import runtime_binaries
    from tests.support import container_config, make_bundle

    work = tmp_path / runtime  # the runc baseline may run inside the pyruntime case
    binary, root = runtime_binaries()[runtime], work / "root"
    parent = f"/pyruntime-e2e-killall-{uuid.uuid4().hex[:8]}"
    ids = [f"{name}-{uuid.uuid4().hex[:8]}" for name in ("pause", "member")]

    def rt(*args: str):
        return run_command([binary, "--root", str(root), *args])

    def members() -> list[str]:
        procs = Path(f"/sys/fs/cgroup/memory{parent}/member/cgroup.procs")
        return procs.read_text().split() if procs.exists() else []

    def status(cid: str) -> str:
        r = rt("state", cid)
        return json.loads(r.out)["status"] if r.rc == 0 else f"rc={r.rc}"

    pause = container_config(["sleep", "600"])
    pause["linux"]["cgroupsPath"] = f"{parent}/pause"
    try:
        r = rt("run", "-d", "--bundle", str(make_bundle(work / "pause", pause, copy_rootfs=False)), ids[0])
        assert r.rc == 0, str(r)
        pause_pid = json.loads(rt("state", ids[0]).out)["pid"]
        member = container_config(["sh", "-c", "sleep 1002 & exit 0"])
        member["linux"]["cgroupsPath"] = f"{parent}/member"
        member["linux"]["namespaces"] = [
            {"type": "pid", "path": f"/proc/{pause_pid}/ns/pid"} if ns["type"] == "pid" else ns
            for ns in member["linux"]["namespaces"]]
        r = rt("run", "-d", "--bundle", str(make_bundle(work / "member", member, copy_rootfs=False)), ids[1])
        assert r.rc == 0, str(r)
        stopped = wait_for(lambda: status(ids[1]) == "stopped")
        left = members()
        first = rt("kill", "--all", ids[1], "KILL")
        emptied = wait_for(lambda: not members(), timeout=10)
        again = rt("kill", "--all", ids[1], "KILL")
        plain = rt("kill", ids[1], "KILL")
        assert stopped and len(left) == 1, (status(ids[1]), left)
        assert (first.rc, emptied, again.rc) == (0, True, 0), (str(first), members(), str(again))
        assert plain.rc != 0 and "not running" in plain.err, str(plain)
        same_as_runc(left=len(left), first=first.rc, emptied=emptied, again=again.rc,
                     plain=plain.rc)
    finally:
        for cid in reversed(ids):
            rt("delete", "--force", cid)
        remove_cgroup_tree(parent)
