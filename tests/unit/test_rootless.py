"""Rootless decisions without a kernel: detection, the default state root, its privacy, and
which id maps need newuidmap/newgidmap."""

import os

import pytest

from pyruntime import rootless
from pyruntime.errors import RuntimeUserError
from tests.unit.support import as_user  # noqa: F401 (fixture)


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
