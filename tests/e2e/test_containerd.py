"""containerd (runc v2 shim) and ctr driving runc and pyruntime through `--runc-binary`."""

from __future__ import annotations

import subprocess

from tests.e2e.clients import IMAGE, host_cgroup_file
from tests.e2e.conftest import require_runtime_command
from tests.support import wait_for




def task_pid(ctr, cid: str) -> int:
    for line in ctr("task", "ls").out.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return int(fields[1])
    raise LookupError(cid)


def test_run_rm_exit_code_and_output(ctr, same_as_runc):
    r = ctr.run("--rm", image_args=("sh", "-c", "echo out; echo err >&2; exit 5"))
    assert (r.rc, r.out, r.err.strip().splitlines()[0]) == (5, "out\n", "err"), str(r)
    ok = ctr.run("--rm", image_args=("true",))
    missing = ctr.run("--rm", image_args=("/no/such/program",))
    assert ok.rc == 0 and missing.rc != 0, (str(ok), str(missing))
    assert "no such file or directory" in missing.err or "not found" in missing.err, str(missing)
    same_as_runc(rc=r.rc, out=r.out, ok=ok.rc, missing=missing.rc)


def test_env_cwd(ctr, same_as_runc):
    r = ctr.run("--rm", "--env", "FOO=bar", "--cwd", "/var/www",
                image_args=("sh", "-c", "echo $FOO; pwd; id -u"))
    assert (r.rc, r.out) == (0, "bar\n/var/www\n0\n"), str(r)
    same_as_runc(out=r.out)


def test_run_tty(ctr, same_as_runc):
    r = ctr.run("--rm", "-t", image_args=("sh", "-c", "tty; test -t 0 && echo stdin-tty; exit 3"),
                tty=True)
    assert r.rc == 3 and r.out.replace("\r", "") == "/dev/pts/0\nstdin-tty\n", str(r)
    same_as_runc(rc=r.rc, out=r.out)


def test_task_exec(ctr, same_as_runc):
    cid = ctr.start_detached()
    plain = ctr("task", "exec", "--exec-id", "plain", "--cwd", "/tmp", cid,
                "sh", "-c", "pwd; test -t 0 || echo no-tty; exit 6")
    tty = ctr.daemon.ctr_pty("task", "exec", "-t", "--exec-id", "tty", cid, "sh", "-c", "tty; exit 4")
    user = ctr("task", "exec", "--exec-id", "user", "--user", "1000", cid, "id", "-u")
    assert (plain.rc, plain.out) == (6, "/tmp\nno-tty\n"), str(plain)
    # ctr may add its own "resize pty" complaint when the process is already gone
    tty_line = tty.out.splitlines()[0].strip() if tty.out else ""
    assert tty.rc == 4 and tty_line == "/dev/pts/0", str(tty)
    assert (user.rc, user.out) == (0, "1000\n"), str(user)
    same_as_runc(plain=(plain.rc, plain.out), tty=(tty.rc, tty_line), user=user.out)


def test_task_ps(ctr, runtime, request, same_as_runc):
    require_runtime_command(request, runtime, "ps")
    cid = ctr.start_detached(image_args=("sh", "-c", "sleep 600 & exec sleep 601"))
    pid = task_pid(ctr, cid)

    def listing():
        r = ctr("task", "ps", cid)
        return r if r.rc != 0 or len(r.out.splitlines()) >= 3 else None

    r = wait_for(listing) or ctr("task", "ps", cid)
    assert r.rc == 0, str(r)
    pids = sorted(int(line.split()[0]) for line in r.out.splitlines()[1:])
    assert len(pids) == 2 and pid in pids, str(r)
    same_as_runc(count=len(pids), has_init=pid in pids)


def test_pause_resume(ctr, runtime, request, same_as_runc):
    require_runtime_command(request, runtime, "pause")
    cid = ctr.start_detached()
    pid = task_pid(ctr, cid)
    pause = ctr("task", "pause", cid)
    paused = ctr.daemon.task_status(cid)
    freezer = host_cgroup_file(pid, "freezer", "freezer.state")
    resume = ctr("task", "resume", cid)
    running = ctr.daemon.task_status(cid)
    assert (pause.rc, resume.rc) == (0, 0), (str(pause), str(resume))
    assert (paused, freezer, running) == ("PAUSED", "FROZEN", "RUNNING")
    same_as_runc(paused=paused, freezer=freezer, running=running)


def test_kill_with_signals(ctr, same_as_runc):
    cid = ctr.new_id()
    script = ("trap 'echo got-usr1' USR1; trap 'echo got-term; exit 7' TERM; echo ready; "
              "while :; do sleep 0.1; done")
    with open(ctr.daemon.base / f"{cid}.out", "w+") as out:
        fg = subprocess.Popen(["ctr", "-a", str(ctr.daemon.socket), "-n", ctr.daemon.namespace,
                               "run", "--rm", *ctr.run_flags(cid), IMAGE, cid, "sh", "-c", script],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert wait_for(lambda: "ready" in _read(out)), _read(out)
            usr1 = ctr("task", "kill", "-s", "USR1", cid)
            assert wait_for(lambda: "got-usr1" in _read(out)), _read(out)
            term = ctr("task", "kill", "-s", "SIGTERM", cid)
            rc = fg.wait(timeout=20)
        finally:
            if fg.poll() is None:
                fg.kill()
                fg.wait()
        text = _read(out)
    assert (usr1.rc, term.rc, rc) == (0, 0, 7), (str(usr1), str(term), rc, text)
    assert text == "ready\ngot-usr1\ngot-term\n", text
    same_as_runc(rc=rc, text=text)


def _read(f) -> str:
    f.seek(0)
    return f.read()


def test_kill_all_and_sigkill(ctr, same_as_runc):
    cid = ctr.start_detached(image_args=("sh", "-c", "sleep 600 & sleep 601 & wait"))
    r = ctr("task", "kill", "-a", "-s", "KILL", cid)
    stopped = wait_for(lambda: ctr.daemon.task_status(cid) == "STOPPED", timeout=10)
    assert r.rc == 0 and stopped, str(r)
    same_as_runc(rc=r.rc, stopped=stopped)


def test_memory_and_cpu_limits(ctr, same_as_runc):
    cid = ctr.start_detached("--memory-limit", str(64 << 20), "--cpus", "0.5", "--cpu-shares", "256")
    pid = task_pid(ctr, cid)
    limits = {"memory": host_cgroup_file(pid, "memory", "memory.limit_in_bytes"),
              "quota": host_cgroup_file(pid, "cpu", "cpu.cfs_quota_us"),
              "period": host_cgroup_file(pid, "cpu", "cpu.cfs_period_us"),
              "shares": host_cgroup_file(pid, "cpu", "cpu.shares")}
    assert limits == {"memory": str(64 << 20), "quota": "50000", "period": "100000",
                      "shares": "256"}, limits
    oom = ctr.run("--rm", "--memory-limit", str(16 << 20), image_args=(
        "sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}"))
    assert oom.rc == 137, str(oom)
    same_as_runc(limits=limits, oom=oom.rc)


def test_read_only_rootfs(ctr, same_as_runc):
    r = ctr.run("--rm", "--read-only", image_args=(
        "sh", "-c", "touch /x 2>&1; echo rc=$?; grep ' / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"))
    assert r.rc == 0 and "Read-only file system" in r.out and r.out.endswith("rc=1\nro\n"), str(r)
    same_as_runc(out=r.out)

