"""What unit tests of several modules share: a seccomp rule that hands mkdir to a listener, and
an unprivileged caller (the `as_user` fixture of the rootless and id-map tests)."""

import os

import pytest

from pyruntime import idmap, rootless

NOTIFY_MKDIR = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}


@pytest.fixture
def as_user(monkeypatch):
    """Pretend to be uid/gid 1000 in the host's user namespace."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    monkeypatch.setattr(rootless, "in_initial_userns", lambda: True)
    monkeypatch.setattr(idmap, "in_initial_userns", lambda: True)
    yield
    rootless.configure("auto")
