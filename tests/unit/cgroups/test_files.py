"""cgroupfs file helpers (pyruntime.cgroups.files): removing busy directories, undoing only what a
create made."""

import os

import pytest

from pyruntime.cgroups.v1 import V1Manager
from pyruntime.errors import RuntimeUserError
from tests.unit.cgroups.support import PATH


def test_destroy_retries_busy_then_gives_a_clear_error(tmp_path, monkeypatch):
    import errno

    from pyruntime.cgroups import files

    d = tmp_path / "cg" / "child"
    d.mkdir(parents=True)
    real_rmdir = os.rmdir
    busy = {"left": 3}

    def flaky_rmdir(path):
        if busy["left"] > 0:
            busy["left"] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy")
        real_rmdir(path)

    monkeypatch.setattr(files.os, "rmdir", flaky_rmdir)
    files.remove_cgroup_dir(str(tmp_path / "cg"))
    assert not (tmp_path / "cg").exists()
    files.remove_cgroup_dir(str(tmp_path / "cg"))  # already gone: fine

    d.mkdir(parents=True)
    busy["left"] = 10 ** 6
    with pytest.raises(RuntimeUserError, match=r"cannot remove cgroup .*processes still in it"):
        files.remove_cgroup_dir(str(tmp_path / "cg"), timeout=0.1)


def test_rollback_spares_a_sibling_made_meanwhile(tmp_path):
    from pyruntime.cgroups.files import make_dirs, remove_made_dirs

    made = []
    make_dirs(str(tmp_path / "parent" / "mine"), made)
    assert made == [str(tmp_path / "parent"), str(tmp_path / "parent" / "mine")]
    (tmp_path / "parent" / "theirs").mkdir()  # another container, same new parent
    remove_made_dirs(made)
    assert not (tmp_path / "parent" / "mine").exists()
    assert (tmp_path / "parent" / "theirs").is_dir()


def test_undo_create_removes_only_what_create_made(tmp_path):
    from pyruntime.cgroups.files import make_dirs

    mgr = V1Manager(PATH, hierarchies={c: str(tmp_path / c) for c in ("memory", "freezer")})
    theirs = tmp_path / "memory" / PATH.strip("/")
    theirs.mkdir(parents=True)                      # the caller's cgroup, there before
    made = []
    for d in mgr.directories():
        make_dirs(d, made)
    mgr.made = made
    mgr.undo_create()
    assert theirs.is_dir()
    assert not (tmp_path / "freezer" / PATH.strip("/")).exists()
    assert (tmp_path / "freezer" / "pyruntime-test").is_dir()   # a parent others may share
    mgr.undo_create()                                           # nothing left to undo
