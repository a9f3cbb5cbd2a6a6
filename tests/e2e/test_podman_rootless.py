"""Rootless podman (run by a throwaway user) driving runc and pyruntime: what its user sees
must not differ. podman makes the user namespace and calls the runtime inside it."""

from __future__ import annotations

import os
import time
import urllib.request


from tests.e2e.clients import run_in_pty
from tests.support import free_port, wait_for


def test_run_rm_exit_codes_and_output(rpodman, same_as_runc):
    hello = rpodman.run("--rm", image_args=("sh", "-c", "echo hello; echo oops >&2"))
    assert (hello.rc, hello.out) == (0, "hello\n"), str(hello)
    codes = {name: rpodman.run("--rm", image_args=args).rc
             for name, args in {"exit 42": ("sh", "-c", "exit 42"),
                                "not found": ("/no/such/program",)}.items()}
    assert codes == {"exit 42": 42, "not found": 127}, codes
    same_as_runc(out=hello.out, err="oops" in hello.err, codes=codes)


def test_env_workdir_user(rpodman, same_as_runc):
    r = rpodman.run("--rm", "-e", "FOO=bar", "-w", "/tmp", "--user", "1000:1000",
                    image_args=("sh", "-c", "echo $FOO; pwd; id -u; id -g; cat /proc/self/uid_map"))
    assert r.rc == 0, str(r)
    lines = r.out.splitlines()
    assert lines[:4] == ["bar", "/tmp", "1000", "1000"], str(r)
    same_as_runc(lines=[" ".join(line.split()) for line in lines])


def test_stdin_and_tty(rpodman, same_as_runc):
    piped = rpodman.run("--rm", "-i", image_args=("cat",), input="through stdin\n")
    assert (piped.rc, piped.out) == (0, "through stdin\n"), str(piped)
    tty = run_in_pty(rpodman.env.command("run", "--rm", "-t", *rpodman.container_flags(),
                                         "localhost/busybox:latest", "sh", "-c", "tty; echo done",
                                         runtime=rpodman.runtime), env=rpodman.env.env)
    assert tty.rc == 0 and "/dev/pts/0" in tty.out and "done" in tty.out, str(tty)
    same_as_runc(piped=piped.out, tty=[line.strip() for line in tty.out.splitlines()])


def test_exec_logs_stop_kill_rm(rpodman, same_as_runc):
    name = rpodman.start_detached(image_args=("sh", "-c", "echo started; exec sleep 600"))
    assert wait_for(lambda: "started" in rpodman("logs", name).out)
    ex = rpodman("exec", name, "sh", "-c", "id -u; echo from-exec")
    assert (ex.rc, ex.out) == (0, "0\nfrom-exec\n"), str(ex)
    stop = rpodman("stop", "-t", "1", name)
    assert stop.rc == 0, str(stop)
    state = rpodman.inspect(name, "{{.State.Status}}")
    other = rpodman.start_detached()
    kill = rpodman("kill", other)
    assert kill.rc == 0, str(kill)
    assert wait_for(lambda: rpodman.inspect(other, "{{.State.Status}}") == "exited")
    third = rpodman.start_detached()
    removed = rpodman("rm", "-f", "-t", "0", third)
    assert removed.rc == 0 and rpodman.env.existing_names([third]) == [], str(removed)
    same_as_runc(exec=ex.out, stopped=state, rcs=(stop.rc, kill.rc, removed.rc))


def test_pause_without_a_cgroup(rpodman, same_as_runc):
    """cgroup v1 here: a rootless container has no cgroup, so neither runtime can pause it;
    podman must say so the same way for both."""
    name = rpodman.start_detached()
    r = rpodman("pause", name)
    same_as_runc(rc=r.rc != 0, running=rpodman.inspect(name, "{{.State.Status}}"))


def test_read_only_caps_binds_tmpfs_and_no_network(rpodman, same_as_runc, tmp_path):
    shared = rpodman.env.base / f"shared-{rpodman.runtime}"
    shared.mkdir(exist_ok=True)
    (shared / "file").write_text("from host\n")
    os.system(f"chown -R {rpodman.env.user} {shared}")
    r = rpodman.run("--rm", "--read-only", "--cap-drop", "all", "--cap-add", "chown",
                    "-v", f"{shared}:/data", "--tmpfs", "/scratch",
                    image_args=("sh", "-c", "touch /x 2>/dev/null || echo ro; "
                                            "grep CapEff /proc/self/status; cat /data/file; "
                                            "touch /scratch/ok && echo scratch; "
                                            "grep -c ' /scratch ' /proc/self/mountinfo; ls /sys/class/net"))
    assert r.rc == 0, str(r)
    lines = r.out.split("\n")
    assert lines[0] == "ro" and lines[1].endswith("0000000000000001"), str(r)
    assert "from host" in r.out and "scratch" in r.out and lines[-2] == "lo", str(r)
    same_as_runc(lines=lines)


def test_slirp4netns_published_port(rpodman, same_as_runc, tun_for_everyone):
    port = free_port()
    name = rpodman.start_detached("-p", f"127.0.0.1:{port}:80", network="slirp4netns",
                                  image_args=("sh", "-c", "mkdir -p /www; echo served > /www/index.html; "
                                                          "exec httpd -f -p 80 -h /www"))

    def fetch():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
        except OSError:
            time.sleep(0.1)
            return ""

    body = wait_for(fetch, timeout=20)
    assert body == "served\n", body
    rpodman("rm", "-f", "-t", "0", name)
    same_as_runc(body=body)
