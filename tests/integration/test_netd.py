"""pyruntime-netd: root's helper puts a rootless user's container on a bridge, and refuses
every abuse: another user's container, the host's namespace, more than the allowance.

The service runs inside a throwaway "host" network namespace the test makes, so the bridge,
the veths and the IPAM leases it makes live there and in the test's directories only.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import REPO, repo_env, wait_for

PLUGIN = "#!/bin/sh\nPYTHONPATH={repo} exec {python} -m pyruntime.plugins.bridge \"$@\"\n"
ASK = ("import json, socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
       "s.sendall(sys.argv[2].encode() + b'\\n'); print(s.makefile().readline().strip())")


class Netd:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.lab = f"pyrt-nd-{uuid.uuid4().hex[:8]}"
        self.network = f"nd{uuid.uuid4().hex[:6]}"
        self.bridge = f"pyrtnd{uuid.uuid4().hex[:4]}"
        self.socket = Path(tempfile.mkdtemp(prefix="pyruntime-netd-", dir="/var/tmp")) / "netd.sock"
        os.chmod(self.socket.parent, 0o755)
        self.allowances = tmp / "netd.conf"
        self.allowances.write_text("")
        self.leases = tmp / "ipam"
        (tmp / "net.d").mkdir()
        (tmp / "bin").mkdir()
        plugin = tmp / "bin" / "pyruntime-bridge"
        plugin.write_text(PLUGIN.format(repo=REPO, python=sys.executable))
        plugin.chmod(0o755)
        ipam = {"type": "pyruntime-bridge", "dataDir": str(self.leases),
                "ranges": [[{"subnet": "10.237.9.0/24"}]]}
        conflist = {"cniVersion": "1.0.0", "name": self.network, "plugins": [
            {"type": "pyruntime-bridge", "bridge": self.bridge, "isGateway": True, "ipam": ipam}]}
        (tmp / "net.d" / f"{self.network}.conflist").write_text(json.dumps(conflist))
        subprocess.run(["ip", "netns", "add", self.lab], check=True)
        self.in_lab("ip", "link", "set", "lo", "up")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.lab}", sys.executable, "-m", "pyruntime.network.netd",
             "--socket", str(self.socket), "--allowances", str(self.allowances),
             "--config-dir", str(tmp / "net.d"), "--cni-path", str(tmp / "bin"),
             "--cache-dir", str(tmp / "cache")],
            env=repo_env(), stdout=subprocess.DEVNULL, stderr=open(tmp / "netd.log", "w"))
        assert wait_for(self.socket.exists, timeout=20), (tmp / "netd.log").read_text()

    def allow(self, *lines: str) -> None:
        self.allowances.write_text("".join(line + "\n" for line in lines))

    def in_lab(self, *cmd, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.lab, *cmd], check=check,
                              capture_output=True, text=True, timeout=30)

    def ask(self, user, request) -> dict:
        """A raw request as `user`, as any program of theirs could send it."""
        text = request if isinstance(request, str) else json.dumps(request)
        proc = subprocess.run(["runuser", "-u", user.name, "--", sys.executable, "-c", ASK,
                               str(self.socket), text], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def lab_links(self) -> list[str]:
        out = self.in_lab("ip", "-o", "link").stdout
        return [line.split(": ")[1].split("@")[0] for line in out.splitlines()]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        subprocess.run(["ip", "netns", "del", self.lab])
        subprocess.run(["rm", "-rf", str(self.socket.parent)])


@pytest.fixture
def netd(tmp_path):
    service = Netd(tmp_path)
    yield service
    service.stop()


def _bundle(user, netd, args):
    bundle = user.bundle(args, spec_args=("--network", f"bridge:{netd.network}"))
    config = json.loads((bundle / "config.json").read_text())
    for hooks in config["hooks"].values():
        for hook in hooks:
            hook["env"].append(f"PYRUNTIME_NETD_SOCKET={netd.socket}")
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_a_users_container_is_attached_and_detached(user, netd):
    netd.allow(f"{user.name} {netd.network} 1")
    proc = user.run("run", "-d", "--bundle", str(_bundle(user, netd, ["sleep", "60"])), "web")
    assert proc.returncode == 0, proc.stderr
    shown = user.run("exec", "web", "ip", "-4", "-o", "addr", "show", "eth0")
    address = shown.stdout.split()[3].split("/")[0]
    assert address.startswith("10.237.9."), shown
    assert netd.in_lab("busybox", "ping", "-c", "1", "-W", "2", address, check=False).returncode == 0
    pin = Path(f"/run/netns/netd-{user.uid}-web")
    assert pin.exists()
    assert user.run("delete", "--force", "web").returncode == 0
    assert wait_for(lambda: netd.lab_links() == ["lo", netd.bridge], timeout=15), netd.lab_links()
    assert wait_for(lambda: not pin.exists())
    leases = netd.leases / netd.network
    assert not leases.exists() or [p.name for p in leases.iterdir()
                                   if p.name[0].isdigit()] == []


def test_every_abuse_is_refused(make_user, netd):
    alice, mallory = make_user(), make_user()
    netd.allow(f"{alice.name} {netd.network} 1", f"{mallory.name} {netd.network} 1")
    proc = alice.run("run", "-d", "--bundle", str(_bundle(alice, netd, ["sleep", "60"])), "a1")
    assert proc.returncode == 0, proc.stderr
    alice_pid = json.loads(alice.run("state", "a1").stdout)["pid"]

    def refused(user, request) -> str:
        answer = netd.ask(user, request)
        assert answer["ok"] is False, answer
        return answer["error"]

    ask = {"id": "x1", "pid": alice_pid, "network": netd.network}
    assert "does not belong to a user namespace of uid" in refused(mallory, ask)
    # the service's own namespace (the lab plays the host), and a root-made one
    assert "host's network namespace" in refused(mallory, {**ask, "pid": netd.proc.pid})
    assert "does not belong to a user namespace of uid" in refused(mallory, {**ask, "pid": os.getpid()})
    assert "may attach 1 interface(s)" in refused(alice, {**ask, "id": "a2"})   # a1 holds it
    assert "may attach 0 interface(s)" in refused(alice, {**ask, "network": "pyruntime"})
    assert "does not exist" in refused(mallory, {**ask, "pid": 2 ** 22 + 7})
    assert "bad request" in refused(mallory, '{"id": [[[[[[[[]]]]]]]]}')
    assert "invalid container id" in refused(mallory, {**ask, "id": "../etc"})
    assert alice.run("delete", "--force", "a1").returncode == 0
    assert wait_for(lambda: netd.lab_links() == ["lo", netd.bridge], timeout=15), netd.lab_links()
