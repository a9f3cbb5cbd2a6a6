"""Paths resolved inside a root through fds (pyruntime.init.inroot). No root needed: openat2
works on any directory."""

import os
import stat

import pytest

from pyruntime.init import inroot
from pyruntime.init.inroot import Root


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
