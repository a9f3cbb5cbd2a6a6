"""Hostile images and volumes against the mount set-up: nothing lands outside the rootfs, and
nothing on the host is modified through a bind-mounted /dev."""

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from tests.support import container_config


@pytest.fixture
def shared_dir():
    """A host directory that two containers share as a volume, and a sibling that a mount
    would land in if it escaped the rootfs through a swapped-in symlink."""
    base = Path(tempfile.mkdtemp(prefix="pyruntime-race-", dir="/var/tmp"))
    (base / "vol").mkdir()
    (base / "outside").mkdir()
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _volume(base: Path) -> dict:
    return {"destination": "/vol", "type": "bind", "source": str(base / "vol"), "options": ["rbind", "rw"]}


def _swapper_config(base: Path) -> dict:
    """Container A: swaps vol/x between a directory and a symlink to the host path `outside`
    (meaningless inside A, but the host's path if a walk on the host follows it)."""
    outside = base / "outside"
    # rename(2) swaps: x is a directory or the symlink at every moment, never missing for long
    script = (f"cd /vol; mkdir real; while :; do mv real x; mv x real; ln -s {outside} x; rm x; done")
    config = container_config(["sh", "-c", script])
    config["mounts"].append(_volume(base))
    return config


def _victim_config(base: Path, hook_log: Path, count: int) -> dict:
    """Container B: mounts tmpfs filesystems below vol/x; a createContainer hook, which runs in
    B's mount namespace before pivot_root, records any mount that landed in `outside`."""
    config = container_config(["true"])
    config["mounts"].append(_volume(base))
    for i in range(count):
        config["mounts"].append({"destination": f"/vol/x/d{i}", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["nosuid", "nodev", "size=64k"]})
    check = f"grep ' {base / 'outside'}' /proc/self/mountinfo >> {hook_log}; true"
    config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", check]}]}
    return config


def test_mount_destination_symlink_race_never_leaves_the_rootfs(rt, shared_dir):
    attacker = rt.bundle_from(_swapper_config(shared_dir))
    swapper = rt.new_id()
    rt("run", "-d", "--bundle", str(attacker), swapper, check=True)
    hook_log = shared_dir / "hook.log"
    victim = rt.bundle_from(_victim_config(shared_dir, hook_log, count=30))
    failures = []
    for _ in range(40):   # 40 creates x 30 destinations: 1200 races
        cid = rt.new_id()
        proc = rt("create", "--bundle", str(victim), cid)
        if proc.returncode != 0:
            failures.append(proc.stderr)
        rt("delete", "--force", cid)
    rt("delete", "--force", swapper, check=True)

    assert list((shared_dir / "outside").iterdir()) == [], "something was created outside the rootfs"
    escaped = hook_log.read_text() if hook_log.exists() else ""
    assert escaped == "", f"mounts landed outside the rootfs:\n{escaped}"
    # A lost race may fail a create, but as one clean error, never a traceback.
    for stderr in failures:
        assert "Traceback" not in stderr and "internal error" not in stderr, stderr


def _fake_host_dev(base: Path) -> Path:
    """A directory standing in for the host's /dev: a ptmx and a console of its own."""
    dev = base / "dev"
    (dev / "pts").mkdir(parents=True)
    (dev / "ptmx").write_text("the host's ptmx\n")
    os.mknod(dev / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return dev


def test_bind_mounted_dev_is_used_as_it_is(rt, shared_dir):
    """runc's rule: with /dev bind-mounted from the host, no device, link or ptmx is made in it."""
    dev = _fake_host_dev(shared_dir)
    before = sorted(p.name for p in dev.iterdir())
    config = container_config(["sh", "-c", "ls /dev; cat /dev/ptmx"])
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    config["mounts"].append({"destination": "/dev", "type": "bind", "source": str(dev),
                             "options": ["rbind", "nosuid"]})
    config["mounts"].append({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666"]})
    config["linux"]["devices"] = [{"path": "/dev/extra", "type": "c", "major": 1, "minor": 5}]
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert "the host's ptmx" in proc.stdout
    assert sorted(p.name for p in dev.iterdir()) == before
    assert (dev / "ptmx").read_text() == "the host's ptmx\n" and not (dev / "ptmx").is_symlink()


def test_device_in_a_bind_mounted_volume_is_refused(rt, shared_dir):
    vol = shared_dir / "vol"
    config = container_config(["true"])
    config["mounts"].append(_volume(shared_dir))
    config["linux"]["devices"] = [{"path": "/vol/sub/null", "type": "c", "major": 1, "minor": 3}]
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode != 0
    assert "linux.devices[0] (/vol/sub/null)" in proc.stderr and "not the container's own" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(vol.iterdir()) == []


def test_cwd_through_a_magic_link_is_refused(rt):
    """Without a PID namespace /proc/1/root is the host's root: a cwd through it would start
    the program outside the container (the CVE-2024-21626 class)."""
    config = container_config(["ls", "/proc/1/root/etc"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "pid"]
    config["process"]["cwd"] = "/proc/1/root/etc"
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode != 0
    assert "process.cwd: cannot enter /proc/1/root/etc" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tmpcopyup_copies_the_image_without_following_its_links(rt, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    config = container_config(["sh", "-c",
                               "cd /opt/data; stat -c '%n %u:%g %a' file sub sub/inner; readlink link; "
                               "cat link 2>/dev/null || echo dangling; echo new > file; "
                               "grep ' /opt/data ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1,2"])
    config["mounts"].append({"destination": "/opt/data", "type": "tmpfs", "source": "tmpfs",
                             "options": ["tmpcopyup", "nosuid", "size=1m"]})
    bundle = rt.bundle_from(config)
    data = bundle / "rootfs" / "opt" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "file").write_text("from the image\n")
    os.chown(data / "file", 1000, 1001)
    os.chmod(data / "file", 0o640)
    (data / "sub" / "inner").write_text("x")
    os.chmod(data / "sub", 0o750)
    os.chmod(data, 0o711)
    os.symlink(str(secret), data / "link")
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["file 1000:1001 640", "sub 0:0 750", "sub/inner 0:0 644",
                                        str(secret), "dangling", "tmpfs tmpfs"]
    assert (data / "file").read_text() == "from the image\n"   # the writes went to the tmpfs


def test_readonly_paths_keep_the_flags_of_what_they_cover(rt):
    config = container_config(["sh", "-c", "grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6"])
    proc_mount = next(m for m in config["mounts"] if m["destination"] == "/proc")
    proc_mount["options"] = ["nosuid", "nodev", "noexec"]   # as podman mounts it
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.strip().split(",")) >= {"ro", "nosuid", "nodev", "noexec"}
