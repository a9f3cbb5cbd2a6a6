"""The mount plan's executor (pyruntime.init.rootfs) against a recording kernel: the exact calls
each runtime-spec case leads to, without root."""

import errno
import os
import stat

import pytest

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import rootfs
from pyruntime.init.mountplan import mount_attributes
from tests.unit.fake_kernel import FakeKernel

ROOTFS = "/b/rootfs"
CLONE = linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC
MOUNTINFO = ("22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n"
             "23 22 0:5 / /proc rw shared:2 - proc proc rw\n"
             "24 22 0:6 / /sys rw shared:3 - sysfs sysfs rw\n"
             "25 22 0:7 / /b rw shared:4 - ext4 /dev/sdb1 rw\n"
             "26 24 0:8 / /sys/kernel/security rw - securityfs securityfs rw\n"
             "27 23 0:9 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n"
             "28 22 0:10 / /b/rootfs/proc rw - proc proc rw\n"
             "29 24 0:11 / /sys/fs/bpf rw - sysfs sysfs rw\n")
ATTRS_ALL = (linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV
             | linux.MOUNT_ATTR_NOEXEC | linux.MOUNT_ATTR_NODIRATIME | linux.MOUNT_ATTR_NOSYMFOLLOW)


def config(mounts=(), root=None, **lx):
    return {"root": root or {"path": "rootfs"}, "mounts": list(mounts), "linux": lx,
            "process": {"cwd": "/"}}


def builder(cfg, kernel, **kw):
    return rootfs.RootfsBuilder(cfg, "/b", in_userns=kw.pop("in_userns", False), kernel=kernel,
                                **kw)


def prepared(cfg, **fake):
    """(kernel, builder) after prepare(); /dev/pts/ptmx present unless told otherwise."""
    fake.setdefault("files", {"/proc/self/mountinfo": MOUNTINFO})
    kernel = FakeKernel(**fake)
    b = builder(cfg, kernel)
    b.prepare()
    return kernel, b


def mount_calls(kernel):
    return kernel.named("mount", "open_tree", "mount_setattr", "move_mount", "fsmount",
                        "umount2", "copy_tree")


def test_prepare_isolates_binds_the_rootfs_and_closes_every_fd():
    kernel, b = prepared(config(), foreign={"/dev"})
    assert kernel.calls[:4] == [
        ("mount", None, "/", None, linux.MS_SLAVE | linux.MS_REC, None),
        ("mount", None, "/b", None, linux.MS_PRIVATE, None),     # the rootfs's parent mount
        ("mount", ROOTFS, ROOTFS, None, linux.MS_BIND | linux.MS_REC, None),
        ("open_root", ROOTFS),
    ]
    b.pivot()
    assert kernel.fds == {}


def test_bind_flags_recursive_attributes_and_propagation_on_the_detached_tree():
    kernel, _ = prepared(config([
        {"destination": "/data", "type": "bind", "source": "/srv/data",
         "options": ["rbind", "ro", "nosuid", "rnoexec", "rshared"]}]), foreign={"/dev"})
    tree = "tree:/srv/data"
    assert mount_calls(kernel)[3:] == [
        ("open_tree", "/srv/data", CLONE | linux.AT_RECURSIVE, "AT_FDCWD"),
        ("mount_setattr", tree, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID,
         ATTRS_ALL & ~(linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID), 0, False, 0),
        ("mount_setattr", tree, linux.MOUNT_ATTR_NOEXEC, 0, 0, True, 0),
        ("move_mount", tree, "dir:/data"),
        ("mount", None, "fd:" + tree, None, linux.MS_SHARED | linux.MS_REC, None),
    ]


def test_plain_bind_of_a_file_keeps_its_flags_and_lands_on_a_file():
    kernel, _ = prepared(config([{"destination": "/etc/x", "type": "bind", "source": "/h/x"}]),
                         foreign={"/dev"}, modes={"tree:/h/x": stat.S_IFREG | 0o644})
    assert mount_calls(kernel)[3:] == [("open_tree", "/h/x", CLONE, "AT_FDCWD"),
                                       ("move_mount", "tree:/h/x", "file:/etc/x")]


def test_locked_flags_in_a_user_namespace_are_kept():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO}, foreign={"/dev"},
                        statvfs_flags=os.ST_NODEV | os.ST_NOSUID,
                        fail={("mount_setattr", "tree:/s"): PermissionError(errno.EPERM, "")})
    builder(config([{"destination": "/d", "type": "bind", "source": "/s",
                     "options": ["bind", "ro"]}]), kernel).prepare()
    first, second = kernel.named("mount_setattr")
    assert first[2] == linux.MOUNT_ATTR_RDONLY and first[3] & linux.MOUNT_ATTR_NODEV
    assert second[3] == first[3] & ~(linux.MOUNT_ATTR_NODEV | linux.MOUNT_ATTR_NOSUID)
    assert kernel.named("fstatvfs") == [("fstatvfs", "tree:/s")]


def test_binds_detached_by_stage_one_are_only_attached():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO}, foreign={"/dev"})
    tree = kernel.new_fd("tree:detached")
    builder(config([{"destination": "/v", "type": "bind", "source": "/s",
                     "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]),
            kernel, bind_trees={0: tree}).prepare()
    assert kernel.named("open_tree") == []
    assert kernel.named("move_mount") == [("move_mount", "tree:detached", "dir:/v")]
    assert "tree:detached" not in kernel.fds.values()


def test_an_idmapped_mount_not_detached_first_is_refused():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO})
    b = builder(config([{"destination": "/v", "type": "bind", "source": "/s",
                         "options": ["bind", "idmap"]}]), kernel)
    with pytest.raises(RuntimeUserError, match=r"mounts\[0\] \(/v\): idmapped mounts are made "
                                               "of binds only"):
        b.prepare()


def test_stage_one_detaches_binds_with_their_idmap():
    maps = [{"containerID": 0, "hostID": 1000, "size": 100}]
    kernel = FakeKernel()
    trees = rootfs.detach_bind_sources(config([
        {"destination": "/p", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/a", "type": "bind", "source": "/srv/a", "options": ["rbind", "ridmap"]},
        {"destination": "/c", "type": "bind", "source": "/srv/c", "options": ["rro"]},
    ], uidMappings=maps, gidMappings=maps), "/b", kernel=kernel)
    assert sorted(trees) == [1, 2]
    assert kernel.calls == [
        ("userns", maps, maps),
        ("open_tree", "/srv/a", CLONE | linux.AT_RECURSIVE, "AT_FDCWD"),
        ("mount_setattr", "tree:/srv/a", linux.MOUNT_ATTR_IDMAP, 0, 0, True, "userns:0"),
        ("open_tree", "/srv/c", CLONE, "AT_FDCWD"),
        ("mount_setattr", "tree:/srv/c", linux.MOUNT_ATTR_RDONLY, 0, 0, True, 0),
    ]
    assert sorted(kernel.fds.values()) == ["tree:/srv/a", "tree:/srv/c"]   # the namespace went


def test_a_missing_bind_source_names_the_mount():
    kernel = FakeKernel(fail={("open_tree", "/gone"): FileNotFoundError(errno.ENOENT, "")})
    with pytest.raises(RuntimeUserError, match=r"mounts\[0\] \(/v\): bind source /gone does "
                                               "not exist"):
        rootfs.detach_bind_sources(config([{"destination": "/v", "type": "bind",
                                            "source": "/gone"}]), "/b", kernel=kernel)


def test_tmpfs_takes_the_mode_it_covers_and_recursive_attributes_after():
    kernel, _ = prepared(config([{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["nosuid", "size=1m", "rnodev"]}]),
                         foreign={"/dev"}, modes={"root:/tmp": stat.S_IFDIR | 0o1777})
    assert mount_calls(kernel)[3:] == [
        ("mount", "tmpfs", "fd:dir:/tmp", "tmpfs", linux.MS_NOSUID, "size=1m,mode=1777"),
        ("mount_setattr", "root:/tmp", linux.MOUNT_ATTR_NODEV, 0, 0, True, 0),
    ]


def test_tmpfs_over_a_missing_path_keeps_its_default_mode():
    kernel, _ = prepared(config([{"destination": "/new", "type": "tmpfs", "source": "tmpfs"}]),
                         foreign={"/dev"},
                         fail={("root.open", "/new"): FileNotFoundError(errno.ENOENT, "")})
    assert ("mount", "tmpfs", "fd:dir:/new", "tmpfs", 0, None) in kernel.calls


def test_tmpcopyup_fills_the_tmpfs_before_attaching_it():
    kernel, _ = prepared(config([{"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["tmpcopyup", "ro", "size=2m"]}]), foreign={"/dev"})
    assert mount_calls(kernel)[3:] == [
        ("fsmount", "tmpfs", [("source", "tmpfs"), ("size", "2m")], 0),
        ("copy_tree", "dir:/etc", "fsmount:tmpfs", True),
        ("mount_setattr", "fsmount:tmpfs", linux.MOUNT_ATTR_RDONLY, 0, 0, False, 0),
        ("move_mount", "fsmount:tmpfs", "dir:/etc"),
    ]


def test_proc_on_a_symlink_is_refused():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO},
                        modes={"root:/proc": stat.S_IFLNK | 0o777})
    b = builder(config([{"destination": "/proc", "type": "proc", "source": "proc"}]), kernel)
    with pytest.raises(RuntimeUserError, match="/proc is a symlink"):
        b.prepare()
    assert kernel.named("mount")[-1][1] == ROOTFS      # nothing mounted after the rootfs bind


def test_sysfs_refused_falls_back_to_a_readonly_bind_of_the_host_sys():
    kernel, _ = prepared(config([{"destination": "/sys", "type": "sysfs", "source": "sysfs",
                                  "options": ["nosuid"]}]), foreign={"/dev"},
                         fail={("mount", "sysfs"): PermissionError(errno.EPERM, "")})
    assert mount_calls(kernel)[3:] == [
        ("mount", "sysfs", "fd:dir:/sys", "sysfs", linux.MS_NOSUID, None),
        ("open_tree", "/sys", CLONE | linux.AT_RECURSIVE, "AT_FDCWD"),
        ("mount_setattr", "tree:/sys", linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID,
         ATTRS_ALL & ~(linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID), 0, False, 0),
        ("move_mount", "tree:/sys", "dir:/sys"),
    ]


def test_own_dev_gets_nodes_links_and_the_devpts_ptmx():
    kernel, b = prepared(config([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["mode=755"]}],
                                devices=[{"path": "/dev/null", "type": "c", "major": 1,
                                          "minor": 3, "fileMode": 0o600, "uid": 3, "gid": 4}]),
                         existing={"/dev/zero", "/proc/kcore", "/dev/pts/ptmx", "/dev/ptmx"})
    assert b.own_dev
    nodes = kernel.named("mknod", "chmod", "chown")
    assert nodes[:3] == [("mknod", "/dev/null", stat.S_IFCHR | 0o666, 1, 3),
                         ("chmod", "open:/dev/null", 0o666), ("chown", "open:/dev/null", 0, 0)]
    assert ("mknod", "/dev/zero", stat.S_IFCHR | 0o666, 1, 5) not in nodes    # kept
    assert nodes[-3:] == [("mknod", "/dev/null", stat.S_IFCHR | 0o600, 1, 3),
                          ("chmod", "open:/dev/null", 0o600), ("chown", "open:/dev/null", 3, 4)]
    assert kernel.named("symlink") == [
        ("symlink", "/proc/self/fd", "/dev/fd"), ("symlink", "/proc/self/fd/0", "/dev/stdin"),
        ("symlink", "/proc/self/fd/1", "/dev/stdout"),
        ("symlink", "/proc/self/fd/2", "/dev/stderr"),
        ("symlink", "/proc/kcore", "/dev/core"), ("symlink", "pts/ptmx", "/dev/ptmx")]
    assert ("unlink", "/dev/ptmx") in kernel.calls


def test_devices_in_a_user_namespace_are_bound_from_the_host():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO},
                        modes={f"tree:/dev/{n}": stat.S_IFCHR | 0o666
                               for n in ("null", "zero", "full", "random", "urandom", "tty")})
    builder(config(), kernel, in_userns=True).prepare()
    assert kernel.named("mknod") == []
    null = [c for c in kernel.calls if "/dev/null" in str(c)]
    assert null == [
        ("open_tree", "/dev/null", CLONE, "AT_FDCWD"),
        ("mount_setattr", "tree:/dev/null", linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NOEXEC,
         0, 0, False, 0),
        ("open", "/dev/null", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC),
        ("open", "/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC),
        ("move_mount", "tree:/dev/null", "open:/dev/null"),
    ]


def test_a_host_path_that_is_no_device_is_not_bound():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO},
                        modes={"tree:/dev/null": stat.S_IFREG | 0o644})
    with pytest.raises(RuntimeUserError, match="default device /dev/null: /dev/null on the host "
                                               "is not a device"):
        builder(config(), kernel, in_userns=True).prepare()


def test_a_bind_mounted_dev_gets_nothing_made_in_it():
    kernel, b = prepared(config([{"destination": "/dev", "type": "bind", "source": "/dev",
                                  "options": ["rbind", "ro"]}]))
    assert not b.own_dev
    assert kernel.named("mknod", "symlink", "unlink") == []
    assert ("root.mkdir_all", "/dev") in kernel.calls      # the bind's destination only


def test_a_dev_on_a_foreign_mount_gets_nothing_made_in_it():
    kernel, b = prepared(config(), foreign={"/dev"})
    assert not b.own_dev
    assert kernel.named("mknod", "symlink") == []


def test_readonly_dev_is_filled_first():
    kernel, _ = prepared(config([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["ro", "mode=755"]}]))
    assert kernel.named("mount")[3] == ("mount", "tmpfs", "fd:dir:/dev", "tmpfs", 0, "mode=755")
    last_link = max(i for i, c in enumerate(kernel.calls) if c[0] == "symlink")
    tail = kernel.named("mount_setattr")
    assert tail[-1] == ("mount_setattr", "root:/dev", linux.MOUNT_ATTR_RDONLY, 0, 0, False, 0)
    assert kernel.calls.index(tail[-1]) > last_link


def test_pivot_root_stacks_and_detaches_the_old_root():
    kernel, b = prepared(config(), foreign={"/dev"})
    del kernel.calls[:]
    b.pivot()
    assert kernel.calls == [
        ("open", "/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC),
        ("open", ROOTFS, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC),
        ("fchdir", "open:" + ROOTFS), ("pivot_root", ".", "."), ("fchdir", "open:/"),
        ("mount", None, ".", None, linux.MS_SLAVE | linux.MS_REC, None),
        ("umount2", ".", linux.MNT_DETACH), ("chdir", "/")]
    assert kernel.fds == {}


def test_no_pivot_hides_the_hosts_proc_and_sysfs_first():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO}, foreign={"/dev"},
                        fail={("umount2", "/sys"): PermissionError(errno.EPERM, "locked"),
                              ("umount2", "/proc"): FileNotFoundError(errno.ENOENT, "")})
    b = builder(config(), kernel, no_pivot=True)
    b.prepare()
    del kernel.calls[:]
    b.pivot()
    assert kernel.calls == [
        ("umount2", "/sys/fs/bpf", linux.MNT_DETACH), ("umount2", "/proc", linux.MNT_DETACH),
        ("umount2", "/sys", linux.MNT_DETACH), ("mount", "tmpfs", "/sys", "tmpfs", 0, None),
        ("chdir", ROOTFS), ("mount", ROOTFS, "/", None, linux.MS_MOVE, None),
        ("chroot", "."), ("chdir", "/")]


def test_finish_masks_makes_readonly_then_sets_the_root_propagation():
    kernel = FakeKernel(files={"/proc/self/mountinfo": MOUNTINFO}, missing={"/proc/absent"},
                        modes={"root:/proc/kcore": stat.S_IFREG | 0o400})
    b = builder(config(root={"path": "rootfs", "readonly": True},
                       maskedPaths=["/proc/kcore", "/proc/acpi", "/proc/absent"],
                       readonlyPaths=["/proc/sys"], rootfsPropagation="shared"), kernel)
    b.finish()
    assert mount_calls(kernel) == [
        ("open_tree", "", CLONE | linux.AT_EMPTY_PATH, "root:/dev/null"),
        ("move_mount", "tree:root:/dev/null", "root:/proc/kcore"),
        ("fsmount", "tmpfs", [("source", "tmpfs")], linux.MOUNT_ATTR_RDONLY),
        ("move_mount", "fsmount:tmpfs", "root:/proc/acpi"),
        ("open_tree", "", CLONE | linux.AT_RECURSIVE | linux.AT_EMPTY_PATH, "root:/proc/sys"),
        ("mount_setattr", "tree:root:/proc/sys", linux.MOUNT_ATTR_RDONLY, 0, 0, True, 0),
        ("move_mount", "tree:root:/proc/sys", "root:/proc/sys"),
        ("mount_setattr", "rootdir:/", linux.MOUNT_ATTR_RDONLY, 0, 0, False, 0),
        ("mount", None, "/", None, linux.MS_SHARED, None),
    ]
    assert kernel.fds == {}


def test_masking_a_file_needs_the_containers_dev_null():
    kernel = FakeKernel(missing={"/dev/null"}, modes={"root:/etc/x": stat.S_IFREG | 0o644})
    b = builder(config(maskedPaths=["/etc/x"]), kernel)
    with pytest.raises(RuntimeUserError, match="cannot mask /etc/x: the container has no "
                                               "/dev/null"):
        b.finish()


CGROUP_V1_MOUNTINFO = MOUNTINFO + (
    "30 24 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
    "31 24 0:27 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd\n")
PROC_CGROUP = "5:memory:/pyruntime/c1\n1:name=systemd:/pyruntime/c1\n0::/pyruntime/c1\n"
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
CGROUP_FLAGS = linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV | linux.MS_RELATIME


def test_cgroup_v1_without_a_cgroup_namespace_binds_each_own_hierarchy():
    kernel, _ = prepared(config([CGROUP_MOUNT]), foreign={"/dev"},
                         files={"/proc/self/mountinfo": CGROUP_V1_MOUNTINFO,
                                "/proc/self/cgroup": PROC_CGROUP})
    ro_attrs = mount_attributes(CGROUP_FLAGS | linux.MS_RDONLY)
    tmpfs = "root:/sys/fs/cgroup"
    assert kernel.named("mount", "open_tree", "move_mount", "mount_setattr", "mkdir")[3:] == [
        ("mount", "tmpfs", "fd:dir:/sys/fs/cgroup", "tmpfs", CGROUP_FLAGS, "mode=755"),
        ("mkdir", "/sys/fs/cgroup/memory", 0o755),
        ("open_tree", "/sys/fs/cgroup/memory/pyruntime/c1", CLONE, "AT_FDCWD"),
        ("move_mount", "tree:/sys/fs/cgroup/memory/pyruntime/c1", "open:/sys/fs/cgroup/memory"),
        ("mount_setattr", "tree:/sys/fs/cgroup/memory/pyruntime/c1", *ro_attrs, 0, False, 0),
        ("mkdir", "/sys/fs/cgroup/systemd", 0o755),
        ("open_tree", "/sys/fs/cgroup/systemd/pyruntime/c1", CLONE, "AT_FDCWD"),
        ("move_mount", "tree:/sys/fs/cgroup/systemd/pyruntime/c1",
         "open:/sys/fs/cgroup/systemd"),
        ("mount_setattr", "tree:/sys/fs/cgroup/systemd/pyruntime/c1", *ro_attrs, 0, False, 0),
        ("mount", None, "fd:" + tmpfs, None, linux.MS_REMOUNT | CGROUP_FLAGS | linux.MS_RDONLY,
         "mode=755"),
    ]


def test_cgroup_v1_with_a_cgroup_namespace_mounts_each_hierarchy_anew():
    kernel = FakeKernel(files={"/proc/self/mountinfo": CGROUP_V1_MOUNTINFO,
                               "/proc/self/cgroup": PROC_CGROUP}, foreign={"/dev"})
    builder(config([CGROUP_MOUNT]), kernel, cgroupns=True).prepare()
    assert kernel.named("mount")[4:6] == [
        ("mount", "cgroup", "fd:open:/sys/fs/cgroup/memory", "cgroup", CGROUP_FLAGS, "memory"),
        ("mount", "cgroup", "fd:open:/sys/fs/cgroup/systemd", "cgroup", CGROUP_FLAGS,
         "none,name=systemd"),
    ]
    assert kernel.named("open_tree") == []
    assert list(kernel.fds.values()) == [f"rootdir:{ROOTFS}"]     # the root, until the pivot


def test_cgroup_v2_without_a_cgroup_namespace_binds_the_own_cgroup():
    kernel, _ = prepared(config([CGROUP_MOUNT]), foreign={"/dev"},
                         files={"/proc/self/mountinfo": MOUNTINFO,
                                "/proc/self/cgroup": "0::/pyruntime/c2\n"})
    tree = "tree:/sys/fs/cgroup/pyruntime/c2"
    assert mount_calls(kernel)[3:] == [
        ("open_tree", "/sys/fs/cgroup/pyruntime/c2", CLONE | linux.AT_RECURSIVE, "AT_FDCWD"),
        ("mount_setattr", tree, *mount_attributes(CGROUP_FLAGS | linux.MS_RDONLY), 0, False, 0),
        ("move_mount", tree, "dir:/sys/fs/cgroup"),
    ]
