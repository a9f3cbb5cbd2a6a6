"""`exec`: a second process inside a running container's namespaces, cgroup and limits."""

import json
import os
import time

from tests.support import container_config


def running(rt, args=("sleep", "60"), **changes):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(list(args), **changes)), cid, check=True)
    return cid


def test_exec_joins_namespaces_and_returns_exit_code(rt):
    cid = running(rt)
    init = rt.state(cid)["pid"]
    proc = rt("exec", cid, "sh", "-c", "hostname; for n in pid net mnt; do readlink /proc/self/ns/$n; done; exit 5")
    assert proc.returncode == 5, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "pyruntime-test"
    assert lines[1:] == [os.readlink(f"/proc/{init}/ns/{n}") for n in ("pid", "net", "mnt")]


def test_exec_gets_container_caps_and_limits(rt):
    cid = running(rt)
    proc = rt("exec", cid, "sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ulimit -n")
    caps = dict(l.split(":\t") for l in proc.stdout.splitlines()[:2])
    assert int(caps["CapEff"], 16) == (1 << 5) | (1 << 10) | (1 << 29)
    assert caps["NoNewPrivs"] == "1"
    assert proc.stdout.splitlines()[2] == "1024"


def test_exec_is_in_the_container_cgroup(rt):
    cid = running(rt)
    init = rt.state(cid)["pid"]
    proc = rt("exec", cid, "cat", "/proc/self/cgroup")
    with open(f"/proc/{init}/cgroup") as f:
        expected = f.read()
    # Same cgroup paths as the init (seen from the container's cgroup namespace: "/").
    assert sorted(l.split(":")[1] for l in proc.stdout.splitlines()) == \
        sorted(l.split(":")[1] for l in expected.splitlines())
    assert all(l.endswith(":/") for l in proc.stdout.splitlines() if l.split(":")[1])


def test_exec_flags_user_env_cwd_caps(rt):
    cid = running(rt)
    proc = rt("exec", "--user", "1000:1000", "-g", "10", "--env", "FOO=bar", "--cwd", "/tmp",
              "--cap", "CAP_CHOWN", cid, "sh", "-c", "id; echo $FOO; pwd; grep CapBnd /proc/self/status")
    out = proc.stdout.splitlines()
    assert out[0] == "uid=1000(user) gid=1000(user) groups=10(wheel)", proc.stderr
    assert out[1:3] == ["bar", "/tmp"]
    assert int(out[3].split()[1], 16) & 1  # CAP_CHOWN is bit 0


def test_exec_process_file(rt, tmp_path):
    cid = running(rt)
    process = {"args": ["sh", "-c", "echo $X"], "env": ["X=from-file", "PATH=/bin"], "cwd": "/",
               "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(process))
    proc = rt("exec", "--process", str(tmp_path / "p.json"), cid)
    assert proc.stdout == "from-file\n", proc.stderr


def test_exec_errors(rt):
    cid = running(rt)
    proc = rt("exec", cid, "no-such-binary")
    assert proc.returncode != 0 and "executable file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert rt("exec", "nope", "true").returncode != 0
    rt("kill", cid, "KILL", check=True)
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = rt("exec", cid, "true")
    assert proc.returncode != 0 and "stopped" in proc.stderr


def test_exec_detach_with_pid_file(rt, tmp_path):
    cid = running(rt)
    pid_file = tmp_path / "exec.pid"
    rt("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "30", check=True)
    pid = int(pid_file.read_text())
    assert open(f"/proc/{pid}/cmdline").read().startswith("sleep")
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{rt.state(cid)['pid']}/ns/pid")


def test_exec_with_tty_proxied(rt):
    cid = running(rt)
    proc = rt("exec", "-t", cid, "tty")
    assert proc.stdout.strip().startswith("/dev/pts/"), proc.stderr


def test_runtime_process_is_out_of_the_containers_reach(rt):
    """While an exec is being set up inside the container, the container cannot resolve the
    runtime's /proc/<pid>/exe (the host interpreter): the process is not dumpable."""
    import socket

    from pyruntime.init import execin, reexec, sync

    cid = running(rt)
    state = json.loads((rt.root / cid / "state.json").read_text())
    # A console socket whose buffer is full: the exec stage blocks sending the pty master,
    # inside the container's namespaces, until we let it go.
    held, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    held.setblocking(False)
    try:
        while True:
            held.send(b"x" * 65536)
    except BlockingIOError:
        pass
    held.setblocking(True)
    opts = execin.ExecOptions(state["pid"], {"args": ["true"], "terminal": True, "cwd": "/"},
                              state["config"], console_sock=held)
    stage = reexec.start("exec")
    stage.send(opts)
    stage1, parent_sock = stage.pid, stage.sock
    held.close()
    stage2 = None
    try:
        sync.send(parent_sock, "cgroup-ready")
        stage2 = sync.recv(parent_sock, "exec-pid")["pid"]
        sync.send(parent_sock, "exec-go")
        os.waitpid(stage1, 0)
        time.sleep(0.2)
        with open(f"/proc/{stage2}/status") as f:
            nspid = [l for l in f if l.startswith("NSpid:")][0].split()
        assert len(nspid) == 3, nspid  # host pid, container pid: it is inside the container
        inner = nspid[-1]
        proc = rt("exec", cid, "sh", "-c",
                  f"readlink /proc/1/exe; cat /proc/{inner}/cmdline | tr '\\0' ' '; echo; "
                  f"readlink /proc/{inner}/exe; echo rc=$?; "
                  f"for fd in /proc/{inner}/fd/*; do readlink $fd || echo denied; done")
        out = proc.stdout.splitlines()
        assert out[0] == "/bin/busybox"          # an ordinary process's exe resolves
        assert "python" in out[1]                # the held stage is the runtime's interpreter
        assert "rc=1" in out, proc.stdout + proc.stderr
        fd_links = out[out.index("rc=1") + 1:]
        assert fd_links and set(fd_links) == {"denied"}  # no fd of the runtime can be followed
        assert "/usr/bin/python" not in proc.stdout
    finally:
        if stage2:
            os.kill(stage2, 9)
        stage.close()
        peer.close()


# Run by the kernel as `/proc/self/exe -S /evil`: a container program that names the executable
# of whoever execs it. Were that the host's interpreter, the script would be running it and
# could open it for writing (CVE-2019-5736). It only looks: access() writes nothing.
SELF_EXE_SCRIPT = """#!/proc/self/exe -S
import os
print("ran", os.path.basename(os.readlink("/proc/self/exe")) or "detached")
print("writable", os.access("/proc/self/exe", os.W_OK))
"""


def self_exe_bundle(rt):
    """A busybox bundle in which the runtime's interpreter could run if the kernel handed it
    over: the host's /usr read-only (libraries and standard library), /lib and /lib64 leading
    into it as on the host (the ELF loader), plus the script above as /evil."""
    import sys

    config = container_config(["/evil"])
    config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                             "options": ["rbind", "ro"]})
    bundle = rt.bundle_from(config)
    for merged in ("lib", "lib64"):
        (bundle / "rootfs" / merged).symlink_to(f"usr/{merged}")
    (bundle / "rootfs" / "evil").write_text(SELF_EXE_SCRIPT)
    (bundle / "rootfs" / "evil").chmod(0o755)
    return bundle, os.path.basename(os.path.realpath(sys.executable))


def test_container_cannot_write_the_runtime_interpreter_through_proc_self_exe(rt):
    bundle, interpreter = self_exe_bundle(rt)
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    # The kernel did hand the container the runtime's interpreter (the attack's first step)...
    assert proc.returncode == 0 and proc.stdout.startswith("ran "), proc
    assert interpreter not in proc.stdout  # ...but from a detached clone, not the host's path
    # ...and that clone is read-only: nothing can be written back to the host's binary.
    assert proc.stdout.splitlines()[1] == "writable False", proc.stdout


def test_exec_cannot_write_the_runtime_interpreter_through_proc_self_exe(rt):
    bundle, _ = self_exe_bundle(rt)
    cid = rt.new_id()
    rt("create", "--bundle", str(bundle), cid, check=True)  # the init waits; /evil is not run
    proc = rt("exec", cid, "/evil")
    assert proc.returncode == 0 and proc.stdout.startswith("ran "), proc
    assert proc.stdout.splitlines()[1] == "writable False", proc.stdout


def test_no_runtime_fd_reaches_the_container(rt):
    """The runtime's sockets and state directory stay open across the stages' own exec (see
    init/reexec.py), but none may reach the container's init or an exec'ed process."""
    cid = running(rt)
    proc = rt("exec", cid, "sh", "-c", "ls /proc/1/fd; echo; ls /proc/self/fd", check=True)
    init_fds, exec_fds = proc.stdout.split("\n\n")
    assert init_fds.split() == ["0", "1", "2"]
    assert exec_fds.split() == ["0", "1", "2", "3"]  # 3: the directory ls is reading


def test_exec_preserve_fds_and_no_new_privs(rt):
    from tests.support import pyruntime_with_fd3

    cid = running(rt, process__noNewPrivileges=False)
    proc = pyruntime_with_fd3(rt, b"through fd 3\n", "exec", "--preserve-fds", "1", cid,
                              "sh", "-c", "cat <&3")
    assert proc.stdout == "through fd 3\n", proc.stderr
    nnp = "grep NoNewPrivs /proc/self/status"
    assert rt("exec", cid, "sh", "-c", nnp, check=True).stdout.split() == ["NoNewPrivs:", "0"]
    assert rt("exec", "--no-new-privs", cid, "sh", "-c", nnp, check=True).stdout.split() == ["NoNewPrivs:", "1"]
