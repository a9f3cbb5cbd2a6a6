"""Command-line items that follow runc 1.1 and crun 1.8: --version, -h everywhere,
--cgroup-manager, checkpoint and restore through criu."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from tests.support import container_config, make_bundle, wait_for

CRIU = shutil.which("criu")
needs_criu = pytest.mark.skipif(CRIU is None, reason="criu is not installed (.ci/setup installs it)")


def one_error_line(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def criu_works() -> bool:
    return CRIU is not None and subprocess.run([CRIU, "check"], capture_output=True, check=False).returncode == 0


@pytest.fixture
def criu_that_fails():
    """For the failure paths: where criu can dump, test_checkpoint_and_restore_for_real runs."""
    if criu_works():
        pytest.skip("criu works on this host: test_checkpoint_and_restore_for_real covers it")


def running_container(rt, args=("sleep", "300"), **changes):
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(rt.bundle(list(args), **changes)), cid, check=True)
    return cid, rt.state(cid)["pid"]


def own_cgroups(pid) -> set[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return set(f.read().splitlines())


def container_cgroup_dirs(cid) -> list[str]:
    return [f"/sys/fs/cgroup/{base}/pyruntime/{cid}" for base in os.listdir("/sys/fs/cgroup")
            if os.path.exists(f"/sys/fs/cgroup/{base}/pyruntime/{cid}")]


# -- --version and -h ----------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_prints_runcs_layout(rt, flag):
    from pyruntime import OCI_VERSION, __version__
    from pyruntime.linux import libraries
    from tests.support import REPO

    lines = rt(flag, check=True).stdout.splitlines()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, check=False,
                          text=True).stdout.strip() or "unknown"
    assert lines[:3] == [f"pyruntime version {__version__}", f"commit: {head}", f"spec: {OCI_VERSION}"]
    assert re.fullmatch(r"python: \d+\.\d+\.\d+", lines[3])
    assert lines[4] == f"libseccomp: {libraries.seccomp_library_version()}"


def test_a_wheel_built_from_a_checkout_reports_its_commit(tmp_path):
    """setup.py records the commit in the sdist, and the wheel built from that sdist (as
    `python -m build` does it) carries it on."""
    import sys
    import tarfile
    import zipfile

    from tests.support import REPO

    pytest.importorskip("build", reason="the `build` package (pip install '.[test]')")
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "rootfs", "build", "dist", "*.egg-info", ".pytest_cache", ".hypothesis"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (source / ".git").mkdir()
    (source / ".git" / "HEAD").write_text(commit + "\n")      # a checkout at that commit
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with tarfile.open(sdist) as t:
        (member,) = [m for m in t.getmembers() if m.name.endswith("/pyruntime/COMMIT")]
        assert t.extractfile(member).read().decode() == commit + "\n"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "installed")
    proc = subprocess.run([sys.executable, "-m", "pyruntime", "--version"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "installed")},
                          capture_output=True, text=True, check=False)
    assert proc.stdout.splitlines()[1] == f"commit: {commit}", proc.stderr


RUNC_COMMANDS = {"checkpoint", "create", "delete", "events", "exec", "kill", "list", "pause", "ps",
                 "restore", "resume", "run", "spec", "start", "state", "update", "features"}


def every_command(group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from every_command(command, (*prefix, name))


def test_every_command_takes_dash_h(rt):
    from pyruntime import cli

    commands = list(every_command(cli.main_group))
    assert RUNC_COMMANDS <= {c[0] for c in commands}
    assert ("network", "install") in commands
    for command in [(), *commands]:
        proc = rt(*command, "-h")
        assert proc.returncode == 0, (command, proc.stderr)
        assert proc.stdout.startswith(f"Usage: pyruntime {' '.join(command)}".rstrip()), command
        assert proc.stdout == rt(*command, "--help").stdout


# -- --cgroup-manager ----------------------------------------------------------------------
@pytest.mark.parametrize("front_end", ["fastpath", "click"])
def test_cgroup_manager_disabled_makes_no_cgroup(rt, tmp_path, front_end):
    config = container_config(["sleep", "300"], linux__resources={"memory": {"limit": 64 << 20},
                                                                  "pids": {"limit": 20}})
    bundle = make_bundle(tmp_path / "b", config)
    cid = rt.new_id()
    # --config FILE is click's alone; the plain create is the fast path's
    extra = ["--config", str(bundle / "config.json")] if front_end == "click" else []
    rt("--cgroup-manager", "disabled", "create", "--bundle", str(bundle), *extra, cid, check=True)
    pid = rt.state(cid)["pid"]
    assert own_cgroups(pid) == own_cgroups(os.getpid())      # the caller's cgroups, as crun
    assert container_cgroup_dirs(cid) == []
    saved = json.loads((rt.root / cid / "state.json").read_text())
    assert saved["cgroup"] == {} and saved["extra"]["cgroupManager"] == "disabled"
    rt("start", cid, check=True)
    # later commands know from the state that there is none, whatever flags they get
    assert "cgroup-manager disabled" in one_error_line(rt("pause", cid))
    assert "cgroup-manager disabled" in one_error_line(rt("--cgroup-manager", "cgroupfs", "pause", cid))
    assert str(pid) in rt("ps", cid, check=True).stdout
    rt("kill", cid, "KILL", check=True)
    assert wait_for(lambda: rt.state(cid)["status"] == "stopped")
    rt("delete", cid, check=True)
    assert not (rt.root / cid).exists()


def test_cgroup_manager_cgroupfs_is_todays_cgroup(rt):
    cid = rt.new_id()
    rt("--cgroup-manager", "cgroupfs", "run", "-d", "--bundle", str(rt.bundle(["sleep", "300"])),
       cid, check=True)
    assert container_cgroup_dirs(cid)
    assert any(f"/pyruntime/{cid}" in line for line in own_cgroups(rt.state(cid)["pid"]))
    saved = json.loads((rt.root / cid / "state.json").read_text())
    assert saved["cgroup"]["path"] == f"/pyruntime/{cid}"
    rt("pause", cid, check=True)
    assert rt.state(cid)["status"] == "paused"
    rt("delete", "-f", cid, check=True)
    assert container_cgroup_dirs(cid) == []


@pytest.mark.parametrize("flags", [["--cgroup-manager", "systemd"], ["--cgroup-manager=systemd"],
                                   ["--systemd-cgroup"]])
def test_the_systemd_cgroup_manager_is_refused(rt, tmp_path, flags):
    cid = rt.new_id()
    line = one_error_line(rt(*flags, "run", "-d", "--bundle", str(rt.bundle(["true"])), cid))
    assert line.endswith("the systemd cgroup driver is not supported; use --cgroup-manager "
                         "cgroupfs (the default) or disabled")
    assert not (rt.root / cid).exists()
    proc = rt("--cgroup-manager", "bogus", "state", cid)
    assert proc.returncode == 2 and "'bogus' is not one of" in proc.stderr


# -- checkpoint ----------------------------------------------------------------------------
@needs_criu
def test_checkpoint_reaches_criu_and_reports_its_failure(rt, tmp_path, criu_that_fails):
    cid, pid = running_container(rt)
    images = tmp_path / "images"
    line = one_error_line(rt("checkpoint", "--image-path", str(images), cid))
    assert line.startswith("criu failed: type DUMP errno ")
    log_file = line.rpartition("; log file: ")[2]
    assert log_file == str(rt.root / cid / "criu.work" / "dump.log")
    log_text = Path(log_file).read_text()
    assert "Version: " in log_text and "Error (" in log_text
    # the images directory got what runc writes before criu runs: the init's stdio
    assert json.loads((images / "descriptors.json").read_text())[0] == "/dev/null"
    assert rt.state(cid)["status"] == "running" and rt.state(cid)["pid"] == pid
    assert os.path.exists(f"/proc/{pid}")
    rt("delete", "-f", cid, check=True)


@needs_criu
def test_checkpoint_refuses_what_is_not_running(rt, tmp_path):
    assert one_error_line(rt("checkpoint", "no-such-container")) == \
        "container 'no-such-container' does not exist"
    cid = rt.new_id()
    rt("create", "--bundle", str(rt.bundle(["true"])), cid, check=True)
    line = one_error_line(rt("checkpoint", "--image-path", str(tmp_path / "i"), cid))
    assert line == f"container {cid} cannot be checkpointed: it is created"
    assert not (tmp_path / "i").exists()
    rt("delete", "-f", cid, check=True)


@needs_criu
@pytest.mark.parametrize("flags,fragment", [
    (["--manage-cgroups-mode", "ignore"], "--manage-cgroups-mode 'ignore': use soft, full or strict"),
    (["--page-server", "nowhere"], "--page-server 'nowhere': use ADDRESS:PORT"),
    (["--empty-ns", "pid"], "--empty-ns 'pid': namespace is not supported"),
    (["--parent-path", "/abs"], "--parent-path /abs: must be relative"),
])
def test_checkpoint_flag_errors(rt, tmp_path, flags, fragment):
    cid, _ = running_container(rt)
    images = tmp_path / "i"
    line = one_error_line(rt("checkpoint", "--image-path", str(images), *flags, cid))
    assert line.startswith(fragment)
    assert not images.exists() and rt.state(cid)["status"] == "running"
    rt("delete", "-f", cid, check=True)


@needs_criu
def test_criu_answers_the_version_request():
    from pyruntime import criurpc

    out = subprocess.run([CRIU, "--version"], capture_output=True, text=True, check=False).stdout
    major, minor, *rest = re.search(r"Version: (\d+)\.(\d+)(?:\.(\d+))?", out).groups()
    assert criurpc.version(CRIU) == int(major) * 10000 + int(minor) * 100 + int(rest[0] or 0)


# -- restore -------------------------------------------------------------------------------
def test_restore_without_a_checkpoint_is_a_clean_error(rt, tmp_path):
    bundle = rt.bundle(["sleep", "300"])
    cid = rt.new_id()
    missing = tmp_path / "missing"
    assert one_error_line(rt("restore", "-d", "--bundle", str(bundle), "--image-path", str(missing), cid)) \
        == f"--image-path {missing}: no such directory"
    assert not missing.exists() and not (rt.root / cid).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a checkpoint (descriptors.json is missing)" in \
        one_error_line(rt("restore", "--bundle", str(bundle), "--image-path", str(empty), cid))
    assert not (rt.root / cid).exists()


@needs_criu
def test_a_failed_restore_leaves_nothing_behind(rt, tmp_path, criu_that_fails):
    cid, _ = running_container(rt)
    images = tmp_path / "images"
    rt("checkpoint", "--image-path", str(images), cid)      # fails, but leaves descriptors.json
    rt("delete", "-f", cid, check=True)
    line = one_error_line(rt("restore", "-d", "--bundle", str(rt.bundle(["sleep", "300"])),
                             "--image-path", str(images), cid))
    assert line.startswith("criu failed: type RESTORE errno ")
    log_file = line.rpartition("; log file: ")[2]
    assert log_file == str(images / "restore.log") and "Error (" in Path(log_file).read_text()
    # no state, cgroup or bound rootfs stays (the leak check looks at the mounts too)
    assert not (rt.root / cid).exists() and container_cgroup_dirs(cid) == []


@needs_criu
def test_checkpoint_and_restore_for_real(rt, tmp_path):
    if not criu_works():
        pytest.skip("criu cannot checkpoint on this host (`criu check` fails)")
    bundle = rt.bundle(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"])
    cid = rt.new_id()
    rt("run", "-d", "--bundle", str(bundle), cid, check=True)
    images = tmp_path / "images"
    rt("checkpoint", "--image-path", str(images), cid, check=True)
    assert "does not exist" in rt("state", cid).stderr        # runc destroys it
    rt("restore", "-d", "--bundle", str(bundle), "--image-path", str(images), cid, check=True)
    state = rt.state(cid)
    assert state["status"] == "running" and os.path.exists(f"/proc/{state['pid']}")
    rt("delete", "-f", cid, check=True)
