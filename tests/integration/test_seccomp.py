"""Seccomp in real containers: the -ENOSYS answer for syscalls newer than the profile, and
SCMP_ACT_NOTIFY with an agent (written here) that answers the container's syscalls.

Syscalls are made by number with a small static program compiled for the test (busybox has
no such tool) and copied into each bundle's own rootfs: `syscall NR [ARG...]` prints
"NR ret=R errno=E"; an ARG starting with "/" is passed as a pointer to that string.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from pyruntime.init import seccomp
from tests.support import container_config, wait_for

LIB = seccomp.binding()
AT_FDCWD = -100

SYSCALL_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long args[6] = {0};
    if (argc < 2 || argc > 8) {
        fputs("usage: syscall NR [ARG...]\n", stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        args[i - 2] = argv[i][0] == '/' ? (long)argv[i] : strtol(argv[i], NULL, 0);
    long ret = syscall(strtol(argv[1], NULL, 0), args[0], args[1], args[2], args[3], args[4], args[5]);
    printf("%s ret=%ld errno=%d\n", argv[1], ret, ret == -1 ? errno : 0);
    return 0;
}
"""


def nr(name: str) -> int:
    return LIB.resolve_syscall(LIB.Arch.NATIVE, name)


@pytest.fixture(scope="module")
def syscall_tool():
    """The static `syscall` program, built once for the module in a directory removed after."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the syscall tool")
    with tempfile.TemporaryDirectory(prefix="pyruntime-syscall-") as build:
        source, binary = Path(build, "syscall.c"), Path(build, "syscall")
        source.write_text(SYSCALL_C)
        subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(source)], check=True,
                       capture_output=True)
        yield binary


def bundle_with_tool(rt, config: dict, tool: Path) -> Path:
    bundle = rt.bundle_from(config)
    shutil.copy2(tool, bundle / "rootfs" / "bin" / "syscall")
    return bundle


def calls(output: str) -> dict[int, tuple[int, int]]:
    """Syscall number -> (ret, errno), from the tool's lines."""
    return {int(m[1]): (int(m[2]), int(m[3]))
            for m in re.finditer(r"^(\d+) ret=(-?\d+) errno=(\d+)$", output, re.M)}


# -- the -ENOSYS prelude ----------------------------------------------------------------------
# process_madvise (440) is the highest syscall the profile names (denied, with the default's own
# errno); epoll_pwait2 (441) is newer than all it names; faccessat2 (439) is older but unnamed.
HIGHEST_NAMED, NEWER, OLDER_UNNAMED = "process_madvise", "epoll_pwait2", "faccessat2"


def denying_profile(flags: list[str]) -> dict:
    """Denies with EPERM by default and allows every syscall up to HIGHEST_NAMED but two: what
    busybox and the init need, and then some."""
    allowed = []
    for number in range(nr(HIGHEST_NAMED)):
        try:
            name = LIB.resolve_syscall(LIB.Arch.NATIVE, number).decode()
        except ValueError:
            continue
        if name not in (OLDER_UNNAMED, "getcpu"):
            allowed.append(name)
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM, "flags": flags,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"},
                         {"names": [HIGHEST_NAMED], "action": "SCMP_ACT_ERRNO"},
                         {"names": ["getcpu"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}


@pytest.mark.parametrize("flags,no_new_privs", [([], True), (["SECCOMP_FILTER_FLAG_LOG"], False)],
                         ids=["compiled-by-the-runtime", "built-in-the-init"])
def test_a_syscall_newer_than_the_profile_answers_enosys(rt, syscall_tool, flags, no_new_privs):
    script = "; ".join([f"syscall {nr(NEWER)} 0 0 0 0 0",
                        f"syscall {nr(HIGHEST_NAMED)} 0 0 0 0",
                        f"syscall {nr(OLDER_UNNAMED)} {AT_FDCWD} / 0 0",
                        f"syscall {nr('getcpu')} 0 0 0",
                        f"syscall {nr('getppid')}"])
    config = container_config(["sh", "-c", script])
    config["process"]["noNewPrivileges"] = no_new_privs
    config["linux"]["seccomp"] = denying_profile(flags)
    proc = rt("run", "--bundle", str(bundle_with_tool(rt, config, syscall_tool)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    got = calls(proc.stdout)
    assert got[nr(NEWER)] == (-1, errno.ENOSYS), proc.stdout
    assert got[nr(HIGHEST_NAMED)] == (-1, errno.EPERM)
    assert got[nr(OLDER_UNNAMED)] == (-1, errno.EPERM)
    assert got[nr("getcpu")] == (-1, errno.EACCES)
    assert got[nr("getppid")][1] == 0


# -- SCMP_ACT_NOTIFY --------------------------------------------------------------------------
SECCOMP_GET_NOTIF_SIZES = 3
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


class SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32),
                ("instruction_pointer", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", SeccompData)]


class NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class NotifSizes(ctypes.Structure):
    _fields_ = [("seccomp_notif", ctypes.c_uint16), ("seccomp_notif_resp", ctypes.c_uint16),
                ("seccomp_data", ctypes.c_uint16)]


def _iowr(number: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | number


NOTIF_RECV = _iowr(0, ctypes.sizeof(Notif))
NOTIF_SEND = _iowr(1, ctypes.sizeof(NotifResp))


def notif_sizes() -> NotifSizes:
    libc = ctypes.CDLL(None, use_errno=True)
    sizes = NotifSizes()
    if libc.syscall(ctypes.c_long(nr("seccomp")), ctypes.c_long(SECCOMP_GET_NOTIF_SIZES),
                    ctypes.c_long(0), ctypes.byref(sizes)) != 0:
        raise OSError(ctypes.get_errno(), "SECCOMP_GET_NOTIF_SIZES")
    return sizes


class Agent:
    """A seccomp agent at `path`. Each connection brings one container process state and its
    listener; the agent then answers that listener's notifications: mkdir fails with EXDEV,
    chmod succeeds without being done, anything else goes on as the kernel would do it."""

    FAILS = {nr("mkdir"): errno.EXDEV, nr("mkdirat"): errno.EXDEV}
    FAKED = {nr("chmod"), nr("fchmodat")}

    def __init__(self, path: Path):
        self.path = path
        sizes = notif_sizes()
        # the kernel's structures may have grown: buffers as large as it says, at least ours
        self.notif_size = max(sizes.seccomp_notif, ctypes.sizeof(Notif))
        self.resp_size = max(sizes.seccomp_notif_resp, ctypes.sizeof(NotifResp))
        self.states: list[dict] = []
        self.answered: list[int] = []
        self.stop_r, self.stop_w = os.pipe()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(8)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            ready, _, _ = select.select([self.server, self.stop_r], [], [])
            if self.stop_r in ready:
                return
            conn, _ = self.server.accept()
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
            while chunk := conn.recv(1 << 16):      # the runtime closes after one state
                data += chunk
        [listener] = fds
        try:
            self.states.append(json.loads(data))
            poller = select.poll()
            poller.register(listener, select.POLLIN)
            poller.register(self.stop_r, select.POLLIN)
            while True:
                events = dict(poller.poll())
                if self.stop_r in events or events.get(listener, 0) & (select.POLLHUP | select.POLLERR):
                    return      # stopped, or no process holds the filter any more
                self._answer(listener)
        finally:
            os.close(listener)

    def _answer(self, listener: int) -> None:
        request = bytearray(self.notif_size)        # the kernel wants it zeroed
        try:
            fcntl.ioctl(listener, NOTIF_RECV, request, True)
        except OSError as e:
            if e.errno == errno.ENOENT:             # the caller is gone already
                return
            raise
        notif = Notif.from_buffer(request)
        answer = bytearray(self.resp_size)
        resp = NotifResp.from_buffer(answer)
        resp.id = notif.id
        if notif.data.nr in self.FAILS:
            resp.error = -self.FAILS[notif.data.nr]
        elif notif.data.nr in self.FAKED:
            resp.val = 0
        else:
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE
        self.answered.append(notif.data.nr)
        try:
            fcntl.ioctl(listener, NOTIF_SEND, answer, True)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise

    def close(self) -> None:
        os.write(self.stop_w, b"x")
        for thread in self.threads:
            thread.join(10)
        self.server.close()
        os.close(self.stop_r)
        os.close(self.stop_w)
        self.path.unlink(missing_ok=True)


@pytest.fixture
def agent(tmp_path):
    agent = Agent(tmp_path / "agent.sock")
    yield agent
    agent.close()


NOTIFIED = ["mkdir", "mkdirat", "chmod", "fchmodat"]
# What the container reports: mkdir's errno through the tool, chmod's success and the mode that
# stayed (busybox)
PROBE = (f"touch /tmp/f; syscall {nr('mkdir')} /tmp/d 0755; "
         "chmod 600 /tmp/f && echo chmod=ok; stat -c mode=%a /tmp/f; ls -d /tmp/d || echo no-dir")


def notify_config(agent: Agent, args: list[str], no_new_privs: bool = True, flags=()) -> dict:
    config = container_config(args)
    config["process"]["noNewPrivileges"] = no_new_privs
    config["annotations"] = {"org.example.seccomp": "agent-test"}
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(agent.path), "flags": list(flags),
        "listenerMetadata": "mkdir=EXDEV;chmod=fake",
        "syscalls": [{"names": NOTIFIED, "action": "SCMP_ACT_NOTIFY"}]}
    return config


def assert_agent_answered(output: str) -> None:
    assert calls(output)[nr("mkdir")] == (-1, errno.EXDEV), output
    assert "chmod=ok" in output and "mode=644" in output and "no-dir" in output, output


@pytest.mark.parametrize("no_new_privs,flags",
                         [(True, []), (False, []), (True, ["SECCOMP_FILTER_FLAG_LOG"])],
                         ids=["no-new-privs", "privileged-load", "built-in-the-init"])
def test_run_with_notify_the_agents_answers_are_what_the_syscalls_return(rt, agent, syscall_tool,
                                                                         no_new_privs, flags):
    config = notify_config(agent, ["sh", "-c", PROBE], no_new_privs, flags)
    bundle = bundle_with_tool(rt, config, syscall_tool)
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert_agent_answered(proc.stdout)
    [state] = agent.states
    assert state["state"]["status"] == "creating" and state["fds"] == ["seccompFd"]
    assert nr("mkdir") in agent.answered and set(agent.answered) & {nr("chmod"), nr("fchmodat")}


def test_create_hands_the_listener_over_before_it_returns(rt, agent, syscall_tool, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    config = notify_config(agent, ["sh", "-c", f"{{ {PROBE}; }} > /out/log 2>&1"])
    config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                             "options": ["rbind", "rw"]})
    bundle = bundle_with_tool(rt, config, syscall_tool)
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)
    try:
        assert wait_for(lambda: agent.states, timeout=5), "the agent got nothing from create"
        state = rt.state(cid)
        [doc] = agent.states
        assert doc["ociVersion"] and doc["fds"] == ["seccompFd"]
        assert doc["pid"] == doc["state"]["pid"] == state["pid"]
        assert doc["metadata"] == "mkdir=EXDEV;chmod=fake"
        assert doc["state"]["status"] == "creating"
        assert doc["state"]["id"] == cid and doc["state"]["bundle"] == str(bundle)
        assert doc["state"]["annotations"] == {"org.example.seccomp": "agent-test"}
        # the init kept no copy of the listener: only the agent may answer
        fds = os.listdir(f"/proc/{state['pid']}/fd")
        assert not any("seccomp notify" in os.readlink(f"/proc/{state['pid']}/fd/{fd}")
                       for fd in fds if os.path.exists(f"/proc/{state['pid']}/fd/{fd}"))
        rt("start", cid, check=True)
        assert wait_for(lambda: rt.state(cid)["status"] == "stopped", timeout=20)
        assert_agent_answered((out / "log").read_text())
    finally:
        rt("delete", "--force", cid, check=True)


def test_exec_gets_a_listener_of_its_own(rt, agent, syscall_tool):
    bundle = bundle_with_tool(rt, notify_config(agent, ["sleep", "60"]), syscall_tool)
    cid = rt.new_id()
    rt("run", "--detach", "--bundle", str(bundle), cid, check=True)
    try:
        init_pid = rt.state(cid)["pid"]
        proc = rt("exec", cid, "sh", "-c", PROBE)
        assert proc.returncode == 0, proc.stderr
        assert_agent_answered(proc.stdout)
        first, second = agent.states
        assert first["state"]["status"] == "creating" and first["pid"] == init_pid
        assert second["state"]["status"] == "running" and second["state"]["pid"] == init_pid
        assert second["pid"] not in (0, init_pid)
        assert second["state"]["id"] == cid and second["fds"] == ["seccompFd"]
    finally:
        rt("delete", "--force", cid, check=True)


def test_an_agent_that_is_not_there_fails_the_create_and_leaves_nothing(rt, tmp_path):
    config = container_config(["true"])
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(rt.bundle_from(config)), cid)
    assert proc.returncode != 0
    assert "linux.seccomp.listenerPath" in proc.stderr
    assert "cannot connect to the seccomp agent" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert rt("state", cid).returncode != 0


def test_notify_without_a_listener_path_is_a_config_error(rt):
    config = container_config(["true"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode != 0
    assert "linux.seccomp.listenerPath: is required" in proc.stderr
    assert "Traceback" not in proc.stderr
