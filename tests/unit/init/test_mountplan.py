"""The mount plan (pyruntime.init.mountplan): what the config alone decides, checked as data."""

import stat

import pytest

from pyruntime import linux
from pyruntime.init import mountplan as mp
from pyruntime.init.mountplan import is_idmapped, parse_options, recursive_attributes

REC = linux.MS_REC


def config(mounts=(), root=None, **lx):
    return {"root": root or {"path": "rootfs"}, "mounts": list(mounts), "linux": lx,
            "process": {"cwd": "/"}}


def mounts_of(plan):
    return [op for op in plan.before_pivot if isinstance(op, mp.Mount)]


def test_the_order_around_the_mounts():
    plan = mp.plan_mounts(config([{"destination": "/proc", "type": "proc", "source": "proc"}]),
                          "/b")
    assert [type(op) for op in plan.before_pivot] == [
        mp.IsolateFromHost, mp.BindRootfs, mp.NewFilesystem, mp.PopulateDev, mp.MakeCwd]
    assert plan.before_pivot[0] == mp.IsolateFromHost(linux.MS_SLAVE | REC)
    assert plan.before_pivot[1] == mp.BindRootfs("/b/rootfs")
    assert plan.before_pivot[-1] == mp.MakeCwd("/")
    assert plan.switch == mp.PivotRoot("/b/rootfs")
    assert plan.after_pivot == []


def test_bind_and_rbind_with_flags():
    plan = mp.plan_mounts(config([
        {"destination": "/data", "type": "bind", "source": "vol", "options": ["ro", "nosuid"]},
        {"destination": "/tree", "type": "none", "source": "/srv", "options": ["rbind", "rw"]},
    ]), "/b")
    assert mounts_of(plan) == [
        mp.Bind(0, "/data", linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID, (0, 0), (),
                False, source="/b/vol"),
        mp.Bind(1, "/tree", linux.MS_BIND | REC, (0, 0), (), False, source="/srv"),
    ]
    assert plan.binds() == mounts_of(plan)


def test_propagation_options_in_their_order():
    op, = mounts_of(mp.plan_mounts(config([
        {"destination": "/m", "type": "bind", "source": "/srv",
         "options": ["rbind", "rshared", "private", "runbindable"]}]), "/b"))
    assert op.propagation == (linux.MS_SHARED | REC, linux.MS_PRIVATE, linux.MS_UNBINDABLE | REC)


def test_recursive_attributes_are_kept_apart_from_flags():
    op, = mounts_of(mp.plan_mounts(config([
        {"destination": "/m", "type": "tmpfs", "source": "tmpfs",
         "options": ["rro", "rnosuid", "rnoatime", "nodev", "size=1m"]}]), "/b"))
    assert op.recursive == (linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                            | linux.MOUNT_ATTR_NOATIME, linux.MOUNT_ATTR__ATIME)
    assert op.flags == linux.MS_NODEV
    assert op.data == ("size=1m",)


@pytest.mark.parametrize("options,fstype,kind,covered", [
    (["size=1m"], "tmpfs", mp.NewFilesystem, True),
    (["mode=700"], "tmpfs", mp.NewFilesystem, False),
    (["tmpcopyup"], "tmpfs", mp.TmpfsCopyUp, None),
    ([], "cgroup", mp.CgroupMount, None),
    (["nosuid"], "proc", mp.NewFilesystem, False),
])
def test_kind_of_filesystem_mount(options, fstype, kind, covered):
    op, = mounts_of(mp.plan_mounts(config([
        {"destination": "/m", "type": fstype, "source": fstype, "options": options}]), "/b"))
    assert type(op) is kind
    if covered is not None:
        assert op.covered_mode is covered


def test_masked_and_readonly_paths_then_readonly_root_then_propagation():
    plan = mp.plan_mounts(config(root={"path": "/r", "readonly": True},
                                 maskedPaths=["/proc/kcore", "/sys/firmware"],
                                 readonlyPaths=["/proc/sys"], rootfsPropagation="shared"), "/b")
    assert plan.after_pivot == [mp.MaskPath("/proc/kcore"), mp.MaskPath("/sys/firmware"),
                                mp.ReadonlyPath("/proc/sys"), mp.ReadonlyRoot(),
                                mp.RootPropagation(linux.MS_SHARED)]
    # until then, the host's mounts are slaves: nothing propagates back
    assert plan.before_pivot[0] == mp.IsolateFromHost(linux.MS_SLAVE | REC)


def test_private_root_propagation_isolates_with_private():
    plan = mp.plan_mounts(config(rootfsPropagation="rprivate"), "/b")
    assert plan.before_pivot[0] == mp.IsolateFromHost(linux.MS_PRIVATE | REC)
    assert plan.after_pivot[-1] == mp.RootPropagation(linux.MS_PRIVATE | REC)


def test_own_dev_gets_devices_and_links():
    plan = mp.plan_mounts(config([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
                                 devices=[{"path": "/dev/fuse", "type": "c", "major": 10,
                                           "minor": 229, "fileMode": 0o620, "uid": 5}]), "/b")
    populate, = [op for op in plan.before_pivot if isinstance(op, mp.PopulateDev)]
    assert populate.bind_from_host is False
    assert populate.links == tuple(mp.DEV_SYMLINKS)
    assert [d.path for d in populate.devices] == [
        "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
        "/dev/fuse"]
    assert not any(d.replace for d in populate.devices[:6])
    assert populate.devices[6] == mp.Device("/dev/fuse", stat.S_IFCHR, 0o620, 10, 229, 5, 0,
                                            True, "linux.devices[0] (/dev/fuse)")


def test_bind_mounted_dev_is_left_alone():
    plan = mp.plan_mounts(config([{"destination": "/dev", "type": "bind", "source": "/dev",
                                   "options": ["rbind", "ro"]}]), "/b")
    assert not any(isinstance(op, (mp.PopulateDev, mp.ReadonlyDev)) for op in plan.before_pivot)
    assert mounts_of(plan)[0].flags & linux.MS_RDONLY     # a bind is read-only at once


def test_readonly_dev_is_made_readonly_after_it_is_filled():
    plan = mp.plan_mounts(config([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                                   "options": ["ro", "nosuid"]}]), "/b")
    dev, = mounts_of(plan)
    assert dev.flags == linux.MS_NOSUID
    assert [type(op) for op in plan.before_pivot][-3:] == [mp.PopulateDev, mp.MakeCwd,
                                                           mp.ReadonlyDev]


def test_no_pivot_moves_the_root():
    plan = mp.plan_mounts(config(), "/b", no_pivot=True)
    assert plan.switch == mp.MoveRoot("/b/rootfs")


def test_user_namespace_binds_devices_from_the_host():
    plan = mp.plan_mounts(config(), "/b", in_userns=True)
    populate, = [op for op in plan.before_pivot if isinstance(op, mp.PopulateDev)]
    assert populate.bind_from_host is True


def test_idmapped_binds_take_their_maps():
    own = [{"containerID": 0, "hostID": 1000, "size": 10}]
    linux_maps = [{"containerID": 0, "hostID": 2000, "size": 5}]
    plan = mp.plan_mounts(config([
        {"destination": "/a", "type": "bind", "source": "/a", "uidMappings": own,
         "gidMappings": own},
        {"destination": "/b", "type": "bind", "source": "/b", "options": ["rbind", "ridmap"]},
        {"destination": "/c", "type": "bind", "source": "/c"},
    ], uidMappings=linux_maps, gidMappings=linux_maps), "/bundle")
    a, b, c = plan.binds()
    assert (a.idmapped, a.idmap_recursive, a.uid_mappings) == (True, False, tuple(own))
    assert (b.idmapped, b.idmap_recursive, b.gid_mappings) == (True, True, tuple(linux_maps))
    assert c.idmapped is False


def test_operations_compare_by_kind_and_fields():
    assert mp.MaskPath("/a") == mp.MaskPath("/a")
    assert mp.MaskPath("/a") != mp.ReadonlyPath("/a")
    assert mp.MaskPath("/a") != mp.MaskPath("/b")
    assert "source='/s'" in repr(mp.Bind(0, "/d", 0, (0, 0), (), False, source="/s"))


def test_bind_flags_become_exact_mount_attributes():
    attr_set, attr_clr = mp.mount_attributes(linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID)
    assert attr_set == linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
    assert attr_clr & linux.MOUNT_ATTR_NODEV and attr_clr & linux.MOUNT_ATTR_NOEXEC
    assert not attr_clr & linux.MOUNT_ATTR__ATIME          # atime kept unless named
    attr_set, attr_clr = mp.mount_attributes(linux.MS_BIND | linux.MS_NOATIME)
    assert attr_set & linux.MOUNT_ATTR_NOATIME and attr_clr & linux.MOUNT_ATTR__ATIME


@pytest.mark.parametrize("mounts,expected", [
    ([{"destination": "/dev", "type": "bind", "source": "/dev"}], True),
    ([{"destination": "/dev/", "type": "none", "source": "/dev", "options": ["rbind"]}], True),
    ([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}], False),
    ([{"destination": "/dev/shm", "type": "bind", "source": "/dev/shm"}], False),
])
def test_dev_bind_mount_detection(mounts, expected):
    assert mp.dev_is_bind_mounted(mounts) is expected


def test_parse_options_flags_propagation_and_data():
    flags, propagation, data, ext = parse_options(
        ["nosuid", "nodev", "ro", "rw", "rbind", "rprivate", "mode=755", "size=1m", "tmpcopyup"])
    assert flags == linux.MS_NOSUID | linux.MS_NODEV | linux.MS_BIND | linux.MS_REC
    assert propagation == [linux.MS_PRIVATE | linux.MS_REC]
    assert data == ["mode=755", "size=1m"]
    assert ext == {"tmpcopyup"}


def test_parse_options_clearing_flags_in_order():
    assert parse_options(["noexec", "exec"])[0] == 0
    assert parse_options(["exec", "noexec"])[0] == linux.MS_NOEXEC


def test_recursive_options_are_attributes_not_fs_data():
    flags, _, data, _ = parse_options(["rbind", "rro", "rnosuid", "rnoatime"])
    assert data == [] and flags == linux.MS_BIND | linux.MS_REC
    attr_set, attr_clr = recursive_attributes(["rro", "rnosuid", "rnodev", "rnoexec"])
    assert attr_set == (linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                        | linux.MOUNT_ATTR_NODEV | linux.MOUNT_ATTR_NOEXEC)
    assert attr_clr == 0


def test_a_later_recursive_option_wins():
    assert recursive_attributes(["rro", "rrw"]) == (0, linux.MOUNT_ATTR_RDONLY)
    assert recursive_attributes(["rrw", "rro"]) == (linux.MOUNT_ATTR_RDONLY, 0)
    assert recursive_attributes(["rexec", "rnoexec"]) == (linux.MOUNT_ATTR_NOEXEC, 0)


def test_an_atime_mode_clears_the_whole_atime_field():
    """The kernel refuses an atime mode unless the whole field is cleared with it."""
    assert recursive_attributes(["rnoatime"]) == (linux.MOUNT_ATTR_NOATIME, linux.MOUNT_ATTR__ATIME)
    attr_set, attr_clr = recursive_attributes(["rnoatime", "rstrictatime", "rnoexec"])
    assert attr_set == linux.MOUNT_ATTR_STRICTATIME | linux.MOUNT_ATTR_NOEXEC
    assert attr_clr == linux.MOUNT_ATTR__ATIME
    assert recursive_attributes(["rstrictatime", "rrelatime"]) == (0, linux.MOUNT_ATTR__ATIME)


@pytest.mark.parametrize("mount, idmapped", [
    ({"options": ["rbind", "idmap"]}, True), ({"options": ["ridmap"]}, True),
    ({"uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}, True),
    ({"options": ["rbind", "ro"]}, False), ({}, False),
])
def test_which_mounts_are_idmapped(mount, idmapped):
    assert is_idmapped(mount) is idmapped
