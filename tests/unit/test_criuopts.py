"""What checkpoint and restore ask criu for (pyruntime.criuopts), checked as runc checks it."""

import pytest

from pyruntime.errors import RuntimeUserError


# -- what checkpoint and restore ask criu for --------------------------------------------------
def test_checkpoint_flags_are_checked_as_runc_checks_them(tmp_path):
    from pyruntime import criuopts as cr

    assert cr.page_server("10.0.0.1:27") == {"address": "10.0.0.1", "port": 27}
    assert cr.page_server("[fe80::1]:8080") == {"address": "fe80::1", "port": 8080}
    assert cr.page_server("") is None
    for bad in ("host", ":80", "host:", "fe80::1:80", "host:http", "host:70000"):
        with pytest.raises(RuntimeUserError, match="--page-server"):
            cr.page_server(bad)
    assert [cr.cgroups_mode(m) for m in ("", "soft", "full", "strict")] == [None, 3, 4, 5]
    with pytest.raises(RuntimeUserError, match="--manage-cgroups-mode 'ignore': use soft, full or strict"):
        cr.cgroups_mode("ignore")
    assert cr.empty_ns_mask([]) == cr.empty_ns_mask(["network"]) == 0x40000000
    with pytest.raises(RuntimeUserError, match="--empty-ns 'pid'"):
        cr.empty_ns_mask(["pid"])
    images = tmp_path / "img"
    (images / "prev").mkdir(parents=True)
    assert cr.image_directories(str(images), "prev") == (str(images), "prev")
    with pytest.raises(RuntimeUserError, match="must be relative"):
        cr.image_directories(str(images), str(images / "prev"))
    with pytest.raises(RuntimeUserError, match="is not a directory"):
        cr.image_directories(str(images), "missing")


def test_the_criu_configuration_file_follows_runcs_annotation():
    from pyruntime import criuopts as cr

    assert cr.criu_config_file({}) == "/etc/criu/runc.conf"
    assert cr.criu_config_file({"org.criu.config": "/etc/criu/mine.conf"}) == "/etc/criu/mine.conf"
    assert cr.criu_config_file({"org.criu.config": ""}) is None


CONTAINER_MOUNTINFO = """\
20 1 0:50 / / ro,relatime - overlay overlay rw
21 20 0:51 / /proc rw - proc proc rw
22 20 0:52 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
23 22 0:30 /pyruntime/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
24 22 0:31 /pyruntime/c1 /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct
25 20 8:1 /srv/my\\040data /data rw - ext4 /dev/sda1 rw
26 21 0:5 /null /proc/kcore rw - devtmpfs udev rw
"""


def _config(namespaces=("pid", "mount"), **linux):
    return {
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
                   {"destination": "/data/", "source": "/srv/my data", "options": ["rbind", "ro"]},
                   {"destination": "/etc/hosts", "type": "bind", "source": "hosts"}],
        "linux": {"namespaces": [{"type": t} for t in namespaces],
                  "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                  **linux},
    }


def test_dump_names_every_mount_from_outside_the_container():
    from pyruntime import criuopts as cr

    mounts = cr.parse_mountinfo(CONTAINER_MOUNTINFO)
    assert ("/data", "ext4") in mounts and ("/sys/fs/cgroup/memory", "cgroup") in mounts
    entries = cr.dump_external_mounts(_config(), mounts, ["/proc/kcore"])
    assert entries == [
        {"key": "/data", "val": "/data"}, {"key": "/etc/hosts", "val": "/etc/hosts"},
        {"key": "/sys/fs/cgroup/memory", "val": "/sys/fs/cgroup/memory"},
        {"key": "/sys/fs/cgroup/cpu,cpuacct", "val": "/sys/fs/cgroup/cpu,cpuacct"},
        {"key": "/proc/kcore", "val": "/dev/null"},
        *({"key": p, "val": p} for p in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                          "/dev/urandom", "/dev/tty", "/dev/fuse")),
    ]
    # with a cgroup namespace the cgroup mounts are the container's own: criu dumps them
    own = cr.dump_external_mounts(_config(namespaces=("pid", "cgroup")), mounts, [])
    assert not [e for e in own if e["key"].startswith("/sys/fs/cgroup")]


def test_restore_maps_the_mounts_to_sources_on_this_host(tmp_path):
    from pyruntime import criuopts as cr
    from pyruntime.cgroups import saved_manager

    manager = saved_manager({
        "mode": "v1", "path": "/pyruntime/c2", "root": "/sys/fs/cgroup",
        "hierarchies": {"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}})
    sources = cr.cgroup_bind_sources(_config(), manager)
    assert sources == {"/sys/fs/cgroup/cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/pyruntime/c2",
                       "/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/pyruntime/c2"}
    assert cr.cgroup_bind_sources(_config(namespaces=("cgroup",)), manager) == {}
    assert cr.cgroup_bind_sources(_config(), None) == {}
    v2 = saved_manager({"mode": "v2", "path": "/pyruntime/c2", "root": "/sys/fs/cgroup"})
    assert cr.cgroup_bind_sources(_config(), v2) == {"/sys/fs/cgroup": "/sys/fs/cgroup/pyruntime/c2"}
    entries = cr.restore_external_mounts(_config(maskedPaths=["/proc/kcore"]), "/bundles/b", sources)
    assert entries[:5] == [
        {"key": "/data", "val": "/srv/my data"}, {"key": "/etc/hosts", "val": "/bundles/b/hosts"},
        {"key": "/sys/fs/cgroup/cpu,cpuacct", "val": "/sys/fs/cgroup/cpu,cpuacct/pyruntime/c2"},
        {"key": "/sys/fs/cgroup/memory", "val": "/sys/fs/cgroup/memory/pyruntime/c2"},
        {"key": "/dev/null", "val": "/dev/null"}]
    assert [e["key"] for e in entries].count("/dev/null") == 1


def test_stdio_pipes_and_cgroup_roots_for_restore():
    from pyruntime import criuopts as cr

    assert cr.inherited_pipes(["/dev/null", "pipe:[77]", "pipe:[78]"]) == [
        {"key": "pipe:[77]", "fd": 1}, {"key": "pipe:[78]", "fd": 2}]
    proc_cgroup = "12:pids:/pyruntime/c2\n4:cpu,cpuacct:/pyruntime/c2\n1:name=systemd:/x\n0::/x\n"
    assert cr.cgroup_roots(proc_cgroup) == [
        {"ctrl": "pids", "path": "/pyruntime/c2"}, {"ctrl": "cpu,cpuacct", "path": "/pyruntime/c2"},
        {"ctrl": "name=systemd", "path": "/x"}]


def test_dump_options_are_runcs():
    from pyruntime import criuopts as cr

    options = cr.CriuOptions(leave_running=True, tcp_established=True, shell_job=True,
                             page_server="10.0.0.1:27", parent_path="prev",
                             manage_cgroups_mode="full")
    config = _config(namespaces=("pid", "network"))
    config["annotations"] = {"org.criu.config": ""}
    opts = cr.dump_options(options, config, "/b", 99, version=31701,
                           external_ns_inodes={"network": 4026532008, "pid": 4026532009},
                           freezer="/sys/fs/cgroup/freezer/pyruntime/c1")
    assert opts == {
        "log_level": 4, "manage_cgroups": True, "notify_scripts": True, "shell_job": True,
        "tcp_established": True, "ext_unix_sk": False, "file_locks": False,
        "empty_ns": 0x40000000, "orphan_pts_master": True, "auto_dedup": False,
        "lazy_pages": False, "manage_cgroups_mode": 4, "pid": 99, "root": "/b/rootfs",
        "leave_running": True, "log_file": "dump.log",
        "external": ["net[4026532008]:extRootNetNS", "pid[4026532009]:extRootPidNS"],
        "freeze_cgroup": "/sys/fs/cgroup/freezer/pyruntime/c1",
        "ps": {"address": "10.0.0.1", "port": 27}, "parent_img": "prev", "track_mem": True}
    # an external PID namespace needs criu 3.15
    older = cr.dump_options(cr.CriuOptions(), config, "/b", 99, version=31400,
                            external_ns_inodes={"network": 1, "pid": 2}, freezer=None)
    assert older["external"] == ["net[1]:extRootNetNS"] and "freeze_cgroup" not in older
    assert "config_file" not in older       # the annotation asks for none


def test_restore_options_and_joined_namespaces():
    from pyruntime import criuopts as cr

    opts = cr.restore_options(cr.CriuOptions(file_locks=True, lsm_profile="apparmor:p"), {}, "/r")
    assert opts["rst_sibling"] and opts["evasive_devices"] and opts["file_locks"]
    assert (opts["root"], opts["log_file"], opts["lsm_profile"]) == ("/r", "restore.log", "apparmor:p")
    assert opts["config_file"] == "/etc/criu/runc.conf" and "lsm_mount_context" not in opts
    config = {"linux": {"namespaces": [{"type": "ipc", "path": "/proc/7/ns/ipc"},
                                       {"type": "network", "path": "/run/netns/n"},
                                       {"type": "uts"}]}}
    assert cr.joined_namespaces(config) == [{"ns": "ipc", "ns_file": "/proc/7/ns/ipc"}]
    with pytest.raises(RuntimeUserError, match="cgroup namespace given by path"):
        cr.joined_namespaces({"linux": {"namespaces": [{"type": "cgroup", "path": "/proc/7/ns/cgroup"}]}})
