"""Paths resolved inside a root through fds (pyruntime.init.inroot), and the pure decisions of
the mount set-up around them. No root needed: openat2 works on any directory."""

import os
import stat

import pytest

from pyruntime import linux
from pyruntime.init import inroot, rootfs
from pyruntime.init.inroot import Root
from pyruntime.state import MAX_ID_LENGTH, is_valid_id


def where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink("/a", root / "abs")
    os.symlink("../../../../..", root / "up")
    os.symlink(str(outside), root / "to-outside")
    return root, outside


def test_symlinks_and_dotdot_never_leave_the_root(tree):
    root, outside = tree
    with Root(str(root)) as r:
        assert where(r.mkdir_all("/abs/b/c")) == f"{root}/a/b/c"
        assert where(r.mkdir_all("/up/x")) == f"{root}/x"
        assert where(r.make_file("/to-outside/file")) == f"{root}{outside}/file"
        assert where(r.mkdir_all("/../../etc")) == f"{root}/etc"
    assert list(outside.iterdir()) == []


def test_a_symlink_swapped_in_after_planning_is_still_resolved_inside(tree, monkeypatch):
    """The plan said a/b was a directory; by the time of the walk it is a symlink out."""
    root, outside = tree
    r = Root(str(root))
    planned = r.relative("/a/b/target")
    os.rmdir(root / "a" / "b")
    os.symlink(str(outside), root / "a" / "b")
    monkeypatch.setattr(r, "relative", lambda path: planned)
    with pytest.raises(OSError):
        r.mkdir_all("/a/b/target")     # the walk met the symlink where a directory was planned
    assert list(outside.iterdir()) == []
    r.close()


def test_a_directory_made_and_then_swapped_for_a_symlink_is_refused(tree, monkeypatch):
    root, outside = tree
    r = Root(str(root))
    real_mkdir = os.mkdir

    def mkdir_then_swap(name, mode=0o777, *, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        os.rmdir(name, dir_fd=dir_fd)
        os.symlink(str(outside), name, dir_fd=dir_fd)

    monkeypatch.setattr(inroot.os, "mkdir", mkdir_then_swap)
    with pytest.raises(OSError):
        r.mkdir_all("/new/deeper")
    assert list(outside.iterdir()) == []
    r.close()


def test_magic_links_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with Root("/") as host, pytest.raises(OSError) as caught:
        host.open("/proc/self/root/etc", os.O_PATH | os.O_DIRECTORY)
    assert caught.value.errno == 40   # ELOOP


def test_on_mounts_refuses_to_create_on_another_mount(tree):
    root, _ = tree
    with Root(str(root)) as r:
        with pytest.raises(OSError) as caught:
            r.mkdir_all("/a/new", on_mounts={-1})
        assert caught.value.errno == 18   # EXDEV
        assert not (root / "a" / "new").exists()
        own = {inroot.mount_id(r.fd)}
        assert where(r.mkdir_all("/a/new", on_mounts=own)) == f"{root}/a/new"


def test_copy_tree_copies_links_as_links(tmp_path):
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "file").write_text("data")
    os.chmod(source / "file", 0o640)
    os.symlink("/etc/passwd", source / "link")
    dest = tmp_path / "dst"
    dest.mkdir()
    src_fd = os.open(source, os.O_PATH)
    dst_fd = os.open(dest, os.O_PATH)
    try:
        inroot.copy_tree(src_fd, dst_fd, copy_root_mode=False)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    assert (dest / "file").read_text() == "data"
    assert stat.S_IMODE((dest / "file").stat().st_mode) == 0o640
    assert os.readlink(dest / "link") == "/etc/passwd"
    assert (dest / "sub").is_dir()


def test_bind_flags_become_exact_mount_attributes():
    attr_set, attr_clr = rootfs.mount_attributes(linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID)
    assert attr_set == linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
    assert attr_clr & linux.MOUNT_ATTR_NODEV and attr_clr & linux.MOUNT_ATTR_NOEXEC
    assert not attr_clr & linux.MOUNT_ATTR__ATIME          # atime kept unless named
    attr_set, attr_clr = rootfs.mount_attributes(linux.MS_BIND | linux.MS_NOATIME)
    assert attr_set & linux.MOUNT_ATTR_NOATIME and attr_clr & linux.MOUNT_ATTR__ATIME


@pytest.mark.parametrize("mounts,expected", [
    ([{"destination": "/dev", "type": "bind", "source": "/dev"}], True),
    ([{"destination": "/dev/", "type": "none", "source": "/dev", "options": ["rbind"]}], True),
    ([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}], False),
    ([{"destination": "/dev/shm", "type": "bind", "source": "/dev/shm"}], False),
])
def test_dev_bind_mount_detection(mounts, expected):
    assert rootfs.dev_is_bind_mounted(mounts) is expected


def test_ids_longer_than_a_file_name_are_invalid():
    assert is_valid_id("a" * MAX_ID_LENGTH)
    assert not is_valid_id("a" * (MAX_ID_LENGTH + 1))


def test_stage_keeps_only_stdio_preserved_and_its_own_fds():
    from pyruntime.init.reexec import close_all_but

    extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(6)]
    keep = {extra[1], extra[4]}
    pid = os.fork()
    if pid == 0:
        close_all_but(keep)
        left = {int(n) for n in os.listdir("/proc/self/fd")}
        os._exit(0 if not (set(extra) - keep) & left and keep <= left else 3)
    _, status = os.waitpid(pid, 0)
    for fd in extra:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_home_of_reads_the_containers_passwd(tmp_path):
    from pyruntime.init.process import home_of

    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nodd:x:7:7::\n")
    assert home_of(0, str(passwd)) == "/root"
    assert home_of(1000, str(passwd)) == "/home/user"
    assert home_of(7, str(passwd)) == "/"          # no home given
    assert home_of(4242, str(passwd)) == "/"
    assert home_of(0, str(tmp_path / "missing")) == "/"
