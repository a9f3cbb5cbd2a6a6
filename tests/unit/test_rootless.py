"""Rootless decisions without a kernel: detection, the default state root, its privacy, and
which id maps need newuidmap/newgidmap."""

import os

import pytest

from pyruntime import idmap, rootless
from pyruntime.errors import RuntimeUserError


@pytest.fixture
def as_user(monkeypatch):
    """Pretend to be uid/gid 1000 in the host's user namespace."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    monkeypatch.setattr(rootless, "in_initial_userns", lambda: True)
    monkeypatch.setattr(idmap, "in_initial_userns", lambda: True)
    yield
    rootless.configure("auto")


def test_detection_follows_runc(as_user, monkeypatch):
    rootless.configure("auto")
    assert rootless.is_rootless()
    rootless.configure("false")
    assert not rootless.is_rootless()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    rootless.configure("auto")
    assert not rootless.is_rootless()
    monkeypatch.setattr(rootless, "in_initial_userns", lambda: False)   # root of rootless podman
    assert rootless.is_rootless()
    with pytest.raises(RuntimeUserError, match="--rootless: expected true, false or auto"):
        rootless.configure("maybe")


def test_default_state_root(as_user, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert rootless.default_state_root() == "/run/user/1000/pyruntime"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert rootless.default_state_root() == "/tmp/pyruntime-1000"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert rootless.default_state_root() == "/run/pyruntime"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_state_root_must_be_private_and_the_callers(as_user, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    os.chown(mine, 1000, 1000)
    rootless.check_private_root(str(mine))
    rootless.check_private_root(str(tmp_path / "missing"))
    os.chmod(mine, 0o755)
    with pytest.raises(RuntimeUserError, match="closed to others"):
        rootless.check_private_root(str(mine))
    os.chmod(mine, 0o700)
    monkeypatch.setattr(os, "geteuid", lambda: 1001)
    with pytest.raises(RuntimeUserError, match="must belong to you"):
        rootless.check_private_root(str(mine))


def test_only_a_map_of_the_callers_own_id_is_written_directly(as_user, monkeypatch):
    own = [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert not idmap.needs_helper("uid", own)
    assert idmap.needs_helper("uid", [{"containerID": 0, "hostID": 1000, "size": 2}])
    assert idmap.needs_helper("gid", own + [{"containerID": 1, "hostID": 100000, "size": 65536}])
    assert idmap.needs_helper("uid", [{"containerID": 0, "hostID": 0, "size": 1}])
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert not idmap.needs_helper("uid", [{"containerID": 0, "hostID": 100000, "size": 65536}])
    assert idmap.map_lines(own) == "0 1000 1\n"


def test_a_missing_helper_is_a_clear_error(as_user, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeUserError, match="needs newuidmap"):
        idmap.write_id_maps(1, {"linux": {"uidMappings": [{"containerID": 0, "hostID": 5, "size": 9}]}})


def test_netd_allowances_read_like_lxc_usernet():
    from pyruntime.network.netd import parse_allowances

    text = "# user network count\nroot pyruntime 2\n0 lab 1   # by uid\nroot pyruntime 1\nnobody-such-user x 3\n"
    assert parse_allowances(text) == {(0, "pyruntime"): 3, (0, "lab"): 1}
    with pytest.raises(RuntimeUserError, match="line 1: expected USER NETWORK COUNT"):
        parse_allowances("root pyruntime many")
