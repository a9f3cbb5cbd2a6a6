"""podman (with conmon) driving runc and pyruntime: what a podman user sees must not differ."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import time
import urllib.request

import pytest

from tests.e2e.clients import IMAGE, host_cgroup_file, run_command
from tests.e2e.conftest import require_runtime_command
from tests.support import wait_for


def status_lines(text: str, *keys: str) -> dict[str, str]:
    """Selected `Key:\tvalue` lines of /proc/<pid>/status output."""
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            found[key] = value.strip()
    return found




# --- run, exit codes, process attributes -------------------------------------------------

def test_run_rm_echo(podman, same_as_runc):
    r = podman.run("--rm", image_args=("echo", "hello", "world"))
    assert (r.rc, r.out) == (0, "hello world\n"), str(r)
    assert podman.env.existing_names(podman.names) == []  # --rm removed it
    same_as_runc(rc=r.rc, out=r.out)


def test_exit_codes(podman, same_as_runc):
    codes, messages = {}, {}
    for name, args in {"exit 42": ("sh", "-c", "exit 42"),
                       "child killed": ("sh", "-c", "sleep 60 & kill -KILL $!; wait $!"),
                       "not found": ("/no/such/program",),
                       "not executable": ("/etc/passwd",)}.items():
        r = podman.run("--rm", image_args=args)
        codes[name] = r.rc
        if r.rc in (126, 127):
            # one line, naming the cause as runc does (runc prefixes its own context)
            lines = r.err.splitlines()
            messages[name] = (len(lines), lines[-1][lines[-1].find("exec: "):])
    # podman's own mapping: 127 when the runtime reports a missing program, 126 when it
    # cannot execute it; those depend on the runtime's error message in its --log file
    assert codes == {"exit 42": 42, "child killed": 137, "not found": 127,
                     "not executable": 126}, codes
    assert messages["not found"] == (1, 'exec: "/no/such/program": stat /no/such/program: no such file '
                                        "or directory: OCI runtime attempted to invoke a command that "
                                        "was not found"), messages
    same_as_runc(codes=codes, messages=messages)


def test_env(podman, same_as_runc):
    r = podman.run("--rm", "-e", "FOO=bar baz", "--env", "EMPTY=", "--hostname", "h1",
                   image_args=("env",))
    assert r.rc == 0, str(r)
    env = sorted(r.out.splitlines())
    assert "FOO=bar baz" in env and "EMPTY=" in env and "HOSTNAME=h1" in env
    assert any(line.startswith("PATH=") for line in env)
    same_as_runc(env=env)


def test_workdir(podman, same_as_runc):
    here = podman.run("--rm", "-w", "/var/www", image_args=("pwd",))
    # podman refuses a workdir the image does not have before the runtime is involved
    missing = podman.run("--rm", "-w", "/new/dir", image_args=("pwd",))
    assert (here.rc, here.out) == (0, "/var/www\n"), str(here)
    assert missing.rc == 126 and "does not exist" in missing.err, str(missing)
    same_as_runc(here=here.out, rcs=(here.rc, missing.rc))


def test_hostname(podman, same_as_runc):
    named = podman.run("--rm", "--hostname", "box.example", image_args=("hostname",))
    default = podman.run("--rm", image_args=("sh", "-c", "hostname; cat /etc/hostname"))
    assert (named.rc, named.out) == (0, "box.example\n"), str(named)
    first, second = default.out.split()
    assert re.fullmatch(r"[0-9a-f]{12}", first) and first == second, str(default)
    same_as_runc(named=named.out, default_is_short_id=bool(re.fullmatch(r"[0-9a-f]{12}", first)))


def test_user_and_groups(podman, same_as_runc):
    numeric = podman.run("--rm", "--user", "1000:1000", "--group-add", "10",
                         image_args=("sh", "-c", "id; grep -E '^(Uid|Gid|Groups)' /proc/self/status"))
    named = podman.run("--rm", "--user", "user", image_args=("id",))
    assert numeric.rc == 0, str(numeric)
    assert "uid=1000(user) gid=1000(user) groups=10(wheel),1000(user)" in numeric.out or \
           "uid=1000(user) gid=1000(user) groups=1000(user),10(wheel)" in numeric.out, str(numeric)
    assert named.rc == 0 and named.out.startswith("uid=1000(user) gid=1000(user)"), str(named)
    same_as_runc(numeric=numeric.out, named=named.out)


def test_stdin(podman, same_as_runc):
    piped = podman.run("--rm", "-i", image_args=("sh", "-c", "read a; read b; echo \"$b $a\"; cat"),
                       input="first\nsecond\nrest of it\n")
    closed = podman.run("--rm", image_args=("sh", "-c", "cat; echo done"), input="ignored\n")
    assert (piped.rc, piped.out) == (0, "second first\nrest of it\n"), str(piped)
    assert (closed.rc, closed.out) == (0, "done\n"), str(closed)
    same_as_runc(piped=piped.out, closed=closed.out)


def test_tty(podman, same_as_runc):
    r = podman.run("--rm", "-t", image_args=("sh", "-c", "tty; test -t 0 && echo stdin-tty; "
                                             "test -t 1 && echo stdout-tty; exit 3"))
    assert r.rc == 3, str(r)
    assert r.out == "/dev/pts/0\r\nstdin-tty\r\nstdout-tty\r\n", str(r)
    same_as_runc(rc=r.rc, out=r.out)


def test_create_then_start(podman, same_as_runc):
    name = podman.create(image_args=("sh", "-c", "echo started; exit 5"))
    before = podman.inspect(name, "{{.State.Status}}")
    r = podman("start", "-a", name)
    after = podman.inspect(name, "{{.State.Status}} {{.State.ExitCode}}")
    assert before == "created" and (r.rc, r.out) == (5, "started\n") and after == "exited 5", \
        (before, str(r), after)
    same_as_runc(before=before, rc=r.rc, out=r.out, after=after)


def test_preserve_fds(podman, tmp_path, same_as_runc):
    out = tmp_path / "fd3"
    podman_cmd = ["podman", *podman.env.global_flags, "--runtime",
                  str(podman.env.runtimes[podman.runtime]), "run", "--rm",
                  *podman.container_flags(), "--preserve-fds", "1", IMAGE,
                  "sh", "-c", "echo through-fd3 >&3; ls /proc/self/fd | wc -l"]
    # podman hands its fd 3 on: open it in a shell that then becomes podman
    r = run_command(["sh", "-c", f'exec "$@" 3>"{out}"', "sh", *podman_cmd], env=podman.env.env,
                    cwd=podman.env.base)
    assert (r.rc, r.out.strip()) == (0, "5"), str(r)  # 0-2, 3, and ls's own directory fd
    assert out.read_text() == "through-fd3\n"
    same_as_runc(out=r.out, fd3=out.read_text())


# --- running containers: exec, logs, top ---------------------------------------------------

def test_exec(podman, same_as_runc):
    name = podman.start_detached("-e", "FROM_RUN=1")
    plain = podman("exec", "-e", "X=y", "-w", "/tmp", name,
                   "sh", "-c", "echo $X $FROM_RUN; pwd; test -t 0 || echo no-tty; exit 3")
    user = podman("exec", "--user", "1000", name, "id", "-u")
    piped = podman("exec", "-i", name, "cat", input="through stdin\n")
    tty = podman("exec", "-t", name, "sh", "-c", "tty; exit 4")
    missing = podman("exec", name, "/no/such/program")
    assert (plain.rc, plain.out) == (3, "y 1\n/tmp\nno-tty\n"), str(plain)
    assert (user.rc, user.out) == (0, "1000\n"), str(user)
    assert (piped.rc, piped.out) == (0, "through stdin\n"), str(piped)
    assert tty.rc == 4 and tty.out.strip() == "/dev/pts/0", str(tty)
    assert missing.rc == 127, str(missing)
    same_as_runc(plain=(plain.rc, plain.out), user=(user.rc, user.out),
                 piped=(piped.rc, piped.out), tty=(tty.rc, tty.out), missing=missing.rc)


def test_logs(podman, same_as_runc):
    name = podman.start_detached(image_args=("sh", "-c", "echo out1; echo err1 >&2; echo out2"))
    r = podman("wait", name)
    logs = podman("logs", name)
    assert (r.rc, r.out) == (0, "0\n"), str(r)
    assert logs.rc == 0 and logs.out == "out1\nout2\n" and logs.err == "err1\n", str(logs)
    same_as_runc(out=logs.out, err=logs.err)


def test_top(podman, same_as_runc):
    name = podman.start_detached(image_args=("sh", "-c", "sleep 600 & sleep 601"))
    wait_for(lambda: "sleep 600" in podman("top", name, "args").out)
    r = podman("top", name, "user", "args")
    pid1 = podman("top", name, "pid", "args")
    assert r.rc == 0 and pid1.rc == 0, (str(r), str(pid1))
    rows = sorted(" ".join(line.split()) for line in r.out.splitlines()[1:])
    # busybox sh runs the last command of -c in its own process: it becomes pid 1
    assert rows == ["root sleep 600", "root sleep 601"], rows
    assert any(line.split() == ["1", "sleep", "601"] for line in pid1.out.splitlines()), str(pid1)
    same_as_runc(rows=rows)


# --- signals and lifecycle -----------------------------------------------------------------

TRAP_TERM = ("sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; "
             "while :; do sleep 0.1; done")


def test_stop_with_trap(podman, same_as_runc):
    name = podman.start_detached(image_args=TRAP_TERM)
    wait_for(lambda: "ready" in podman("logs", name).out)
    r = podman("stop", "-t", "10", name)
    code = podman.inspect(name, "{{.State.ExitCode}}")
    logs = podman("logs", name).out
    assert r.rc == 0 and code == "7" and logs == "ready\ngot-term\n", (str(r), code, logs)
    same_as_runc(code=code, logs=logs)


def test_stop_ignored_term_falls_back_to_kill(podman, same_as_runc):
    name = podman.start_detached(image_args=("sleep", "600"))  # pid 1: TERM has no handler
    started = time.monotonic()
    r = podman("stop", "-t", "1", name)
    took = time.monotonic() - started
    code = podman.inspect(name, "{{.State.ExitCode}}")
    assert r.rc == 0 and code == "137" and 1 <= took < 10, (str(r), code, took)
    same_as_runc(code=code)


def test_kill(podman, same_as_runc):
    name = podman.start_detached(image_args=(
        "sh", "-c", "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done"))
    wait_for(lambda: "ready" in podman("logs", name).out)
    usr1 = podman("kill", "-s", "USR1", name)
    wait_for(lambda: "got-usr1" in podman("logs", name).out)
    still = podman.inspect(name, "{{.State.Status}}")
    kill = podman("kill", name)
    wait = podman("wait", name)
    logs = podman("logs", name).out
    assert usr1.rc == 0 and kill.rc == 0 and still == "running", (str(usr1), str(kill), still)
    assert wait.out == "137\n" and logs == "ready\ngot-usr1\n", (str(wait), logs)
    same_as_runc(still=still, wait=wait.out, logs=logs)


def test_wait(podman, same_as_runc):
    name = podman.start_detached(image_args=("sh", "-c", "sleep 0.5; exit 9"))
    r = podman("wait", name)
    assert (r.rc, r.out) == (0, "9\n"), str(r)
    same_as_runc(out=r.out)


def test_restart(podman, same_as_runc):
    name = podman.start_detached(image_args=("sh", "-c", "echo run; exec sleep 600"))
    first_pid = podman.host_pid(name)
    r = podman("restart", "-t", "0", name)
    second_pid = podman.host_pid(name)
    status = podman.inspect(name, "{{.State.Status}}")
    logs = podman("logs", name).out
    assert r.rc == 0 and status == "running" and second_pid != first_pid, (str(r), status)
    assert logs == "run\nrun\n", logs
    same_as_runc(status=status, logs=logs)


def test_rm_force_running(podman, same_as_runc):
    name = podman.start_detached()
    pid = podman.host_pid(name)
    r = podman("rm", "-f", "-t", "0", name)
    gone = podman.env.existing_names([name]) == []
    assert r.rc == 0 and gone, str(r)
    assert wait_for(lambda: not _alive(pid), timeout=5), f"container process {pid} survived rm -f"
    same_as_runc(rc=r.rc, gone=gone)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_pause_unpause(podman, runtime, request, same_as_runc):
    require_runtime_command(request, runtime, "pause")
    name = podman.start_detached(image_args=("sh", "-c", "while :; do echo tick; sleep 0.05; done"))
    pid = podman.host_pid(name)
    pause = podman("pause", name)
    paused = podman.inspect(name, "{{.State.Status}}")
    freezer = host_cgroup_file(pid, "freezer", "freezer.state")
    lines = podman("logs", name).out.count("tick")
    time.sleep(0.5)
    frozen = podman("logs", name).out.count("tick") == lines
    unpause = podman("unpause", name)
    status = podman.inspect(name, "{{.State.Status}}")
    resumed = wait_for(lambda: podman("logs", name).out.count("tick") > lines, timeout=5)
    assert (pause.rc, unpause.rc) == (0, 0), (str(pause), str(unpause))
    assert (paused, freezer, frozen, status, bool(resumed)) == ("paused", "FROZEN", True, "running", True)
    same_as_runc(paused=paused, freezer=freezer, frozen=frozen, status=status)


# --- resources -------------------------------------------------------------------------------

def test_resource_limits(podman, same_as_runc):
    name = podman.start_detached("--memory", "64m", "--cpus", "0.5", "--pids-limit", "50",
                                 "--cpu-shares", "512")
    pid = podman.host_pid(name)
    limits = {
        "memory.limit_in_bytes": host_cgroup_file(pid, "memory", "memory.limit_in_bytes"),
        "memory.memsw.limit_in_bytes": host_cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes"),
        "cpu.cfs_quota_us": host_cgroup_file(pid, "cpu", "cpu.cfs_quota_us"),
        "cpu.cfs_period_us": host_cgroup_file(pid, "cpu", "cpu.cfs_period_us"),
        "cpu.shares": host_cgroup_file(pid, "cpu", "cpu.shares"),
        "pids.max": host_cgroup_file(pid, "pids", "pids.max"),
    }
    assert limits == {"memory.limit_in_bytes": str(64 << 20),
                      "memory.memsw.limit_in_bytes": str(128 << 20),
                      "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000",
                      "cpu.shares": "512", "pids.max": "50"}, limits
    same_as_runc(limits=limits)


def test_memory_limit_kills(podman, same_as_runc):
    # the shell holds the whole command substitution (64 MiB) in memory
    r = podman.run("--rm", "--memory", "16m", "--memory-swap", "16m", image_args=(
        "sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"))
    assert r.rc == 137, str(r)
    same_as_runc(rc=r.rc)


def test_pids_limit_enforced(podman, same_as_runc):
    r = podman.run("--rm", "--pids-limit", "5", image_args=(
        "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo all-started"))
    assert r.rc == 2 and "can't fork" in r.err and "all-started" not in r.out, str(r)
    same_as_runc(rc=r.rc, err=r.err)


def test_update(podman, runtime, request, same_as_runc):
    require_runtime_command(request, runtime, "update")
    name = podman.start_detached("--memory", "64m")
    pid = podman.host_pid(name)
    r = podman("update", "--memory", "96m", "--memory-swap", "192m", "--cpus", "0.25", name)
    limits = {"memory": host_cgroup_file(pid, "memory", "memory.limit_in_bytes"),
              "memsw": host_cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes"),
              "quota": host_cgroup_file(pid, "cpu", "cpu.cfs_quota_us")}
    assert r.rc == 0, str(r)
    assert limits == {"memory": str(96 << 20), "memsw": str(192 << 20), "quota": "25000"}, limits
    same_as_runc(limits=limits)


# --- security ----------------------------------------------------------------------------------

def test_read_only(podman, same_as_runc):
    r = podman.run("--rm", "--read-only", image_args=(
        "sh", "-c", "touch /x 2>&1; echo rc=$?; touch /tmp/x /var/tmp/x /run/x && echo tmpfs-ok"))
    assert r.rc == 0, str(r)
    assert "Read-only file system" in r.out and "rc=1" in r.out and "tmpfs-ok" in r.out, str(r)
    same_as_runc(out=r.out)


CAPS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def test_capabilities(podman, same_as_runc):
    default = podman.run("--rm", image_args=("cat", "/proc/self/status"))
    dropped = podman.run("--rm", "--cap-drop", "all", image_args=("cat", "/proc/self/status"))
    added = podman.run("--rm", "--cap-drop", "all", "--cap-add", "NET_ADMIN",
                       "--cap-add", "CAP_CHOWN", image_args=("cat", "/proc/self/status"))
    chown = podman.run("--rm", "--cap-drop", "all", image_args=("chown", "1000", "/tmp"))
    caps = {name: status_lines(r.out, *CAPS) for name, r in
            {"default": default, "dropped": dropped, "added": added}.items()}
    assert caps["dropped"]["CapEff"] == "0000000000000000" == caps["dropped"]["CapBnd"], caps
    assert caps["added"]["CapEff"] == f"{(1 << 12) | (1 << 0):016x}", caps  # NET_ADMIN, CHOWN
    assert int(caps["default"]["CapEff"], 16) & 1, caps  # podman's default set has CHOWN
    assert chown.rc == 1 and "Operation not permitted" in chown.err, str(chown)
    same_as_runc(caps=caps, chown=chown.rc)


def test_no_new_privileges(podman, same_as_runc):
    on = podman.run("--rm", "--security-opt", "no-new-privileges", image_args=("cat", "/proc/self/status"))
    off = podman.run("--rm", image_args=("cat", "/proc/self/status"))
    seen = {"on": status_lines(on.out, "NoNewPrivs", "Seccomp"),
            "off": status_lines(off.out, "NoNewPrivs", "Seccomp")}
    assert seen["on"]["NoNewPrivs"] == "1" and seen["off"]["NoNewPrivs"] == "0", seen
    assert seen["on"]["Seccomp"] == "2", seen  # podman's default seccomp profile is loaded
    same_as_runc(seen=seen)


def test_ulimit(podman, same_as_runc):
    r = podman.run("--rm", "--ulimit", "nofile=100:200", "--ulimit", "nproc=50:60",
                   image_args=("sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u; "
                               "grep -E 'open files|processes' /proc/self/limits"))
    assert r.rc == 0 and r.out.splitlines()[:3] == ["100", "200", "50"], str(r)
    same_as_runc(out=r.out)


def test_sysctl(podman, same_as_runc):
    r = podman.run("--rm", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.msgmax=4096",
                   "--sysctl", "net.ipv4.ping_group_range=0 2000",
                   image_args=("sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax "
                               "/proc/sys/net/ipv4/ping_group_range"))
    assert r.rc == 0 and r.out.split() == ["1", "4096", "0", "2000"], str(r)
    same_as_runc(out=r.out.split())


def test_bind_mounts(podman, tmp_path, same_as_runc):
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "file").write_text("from host\n")
    r = podman.run("--rm", "-v", f"{rw}:/data", "-v", f"{ro}:/ro:ro", image_args=(
        "sh", "-c", "echo from container > /data/out; cat /ro/file; "
                    "touch /ro/x 2>/dev/null || echo ro-refused; grep -E ' /(data|ro) ' /proc/mounts "
                    "| cut -d' ' -f2,4 | cut -d, -f1"))
    assert r.rc == 0, str(r)
    assert (rw / "out").read_text() == "from container\n" and not (ro / "x").exists()
    lines = r.out.splitlines()
    # podman orders the two volumes differently from one run to the next
    seen = lines[:2] + sorted(lines[2:])
    assert seen == ["from host", "ro-refused", "/data rw", "/ro ro"], str(r)
    same_as_runc(seen=seen)


def test_tmpfs(podman, same_as_runc):
    r = podman.run("--rm", "--tmpfs", "/scratch:rw,size=1m,mode=1777", image_args=(
        "sh", "-c", "grep ' /scratch ' /proc/mounts | cut -d' ' -f1-3; stat -c %a /scratch; "
                    "dd if=/dev/zero of=/scratch/f bs=1k count=2048 2>/dev/null; echo dd=$?"))
    assert r.rc == 0, str(r)
    assert r.out.splitlines() == ["tmpfs /scratch tmpfs", "1777", "dd=1"], str(r)
    same_as_runc(out=r.out)


def test_uidmap(podman, same_as_runc):
    r = podman.run("--rm", "--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536",
                   image_args=("sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id; "
                               "stat -c '%u %g' /bin/busybox; touch /tmp/x && echo ok"))
    assert r.rc == 0, str(r)
    lines = [" ".join(line.split()) for line in r.out.splitlines()]
    assert lines == ["0 200000 65536", "0 200000 65536", "uid=0(root) gid=0(root)",
                     "0 0", "ok"], str(r)
    same_as_runc(lines=lines)


# --- networking: CNI bridge + portmap, published port ------------------------------------------

def test_publish_port_to_httpd(podman, cni_network, same_as_runc):
    port = free_port()
    name = podman.start_detached("-p", f"127.0.0.1:{port}:80", network=cni_network.name,
                                 image_args=("httpd", "-f", "-p", "80", "-h", "/var/www"))
    addr = podman.inspect(name, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    body = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/index.html"), timeout=15)
    inside = podman("exec", name, "ip", "-4", "-o", "addr", "show", "eth0")
    assert body == "hello from a pyruntime container\n", body
    assert ipaddress.ip_address(addr) in cni_network.subnet, addr
    assert f"inet {addr}/{cni_network.subnet.prefixlen}" in inside.out, str(inside)
    same_as_runc(body=body, addr_in_subnet=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


# --- more run options: (podman run flags, command, what runc shows) ------------------------------

MORE_OPTIONS = {
    "pid host": (["--pid", "host"], "ps -o pid | grep -qx ' *1' && ps | wc -l | awk '{print ($1 > 10)}'",
                 "1\n"),
    "ipc host": (["--ipc", "host"], "readlink /proc/self/ns/ipc",
                 lambda: os.readlink("/proc/self/ns/ipc") + "\n"),
    "network host": (["--network", "host"], "test -e /sys/class/net/lo && echo lo", "lo\n"),
    "privileged": (["--privileged"], "grep -E '^(CapEff|Seccomp):' /proc/self/status; "
                   "test -e /dev/loop-control -o -e /dev/kmsg && echo host-devices",
                   "CapEff:\t000001fffeffffff\nSeccomp:\t0\nhost-devices\n"),
    "device": (["--device", "/dev/null:/dev/mynull"],
               "echo x > /dev/mynull && ls -l /dev/mynull | cut -c1-10", "crw-rw-rw-\n"),
    "shm-size": (["--shm-size", "1m"], "grep ' /dev/shm ' /proc/mounts | cut -d' ' -f4",
                 "rw,nosuid,nodev,noexec,relatime,size=1024k\n"),
    "oom-score-adj": (["--oom-score-adj", "500"], "cat /proc/self/oom_score_adj", "500\n"),
    "cpuset": (["--cpuset-cpus", "0"], "grep Cpus_allowed_list /proc/self/status",
               "Cpus_allowed_list:\t0\n"),
    "seccomp unconfined": (["--security-opt", "seccomp=unconfined"],
                           "grep Seccomp: /proc/self/status", "Seccomp:\t0\n"),
    "cgroupns private": (["--cgroupns", "private"], "grep -E ':(memory|pids):' /proc/self/cgroup",
                         "8:pids:/\n4:memory:/\n"),
    "rslave ro mount": (["--mount", "type=bind,src=/etc,dst=/m,bind-propagation=rslave,ro"],
                        "grep ' /m ' /proc/self/mountinfo | grep -c master:; touch /m/x 2>&1 | cut -d: -f3",
                        lambda: f"{int(_host_root_is_shared())}\n Read-only file system\n"),
    "add-host": (["--add-host", "foo:192.0.2.99"], "grep foo /etc/hosts", "192.0.2.99\tfoo\n"),
    "nobody": (["-u", "65534"], "id", "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"),
    "read-only without tmpfs": (["--read-only", "--read-only-tmpfs=false"],
                                "touch /tmp/x 2>&1 | cut -d: -f3", " Read-only file system\n"),
    "cap-add all": (["--cap-add", "ALL"], "grep CapEff /proc/self/status", "CapEff:\t000001fffeffffff\n"),
}


@pytest.mark.parametrize("case", list(MORE_OPTIONS))
def test_more_run_options(podman, case, same_as_runc):
    flags, command, expected = MORE_OPTIONS[case]
    network = "none"
    if "--network" in flags:
        network = flags[flags.index("--network") + 1]
        flags = [f for f in flags if f not in ("--network", network)]
    r = podman.run("--rm", *flags, image_args=("sh", "-c", command), network=network)
    if callable(expected):  # depends on the host
        expected = expected()
    assert (r.rc, r.out) == (0, expected), str(r)
    same_as_runc(rc=r.rc, out=r.out)


def _host_root_is_shared() -> bool:
    """An rslave bind has a master only if its source is in a shared peer group."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == "/" and "shared:" in line for line in f)
