"""The cache directory of compiled validators and seccomp programs (pyruntime.cache): where it is,
and that one others can write to is not used."""

from __future__ import annotations

import os

from pyruntime.spec import fastcheck, schemas
from tests.unit.spec.support import VALID


def test_cache_dir_choice(monkeypatch):
    from pyruntime import cache

    monkeypatch.setenv("PYRUNTIME_CACHE_DIR", "/x/explicit")
    assert cache.cache_dir() == "/x/explicit"
    monkeypatch.delenv("PYRUNTIME_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/xdg")
    monkeypatch.setenv("HOME", "/x/home")
    for euid, expected in ((0, "/var/cache/pyruntime"), (1000, "/x/xdg/pyruntime")):
        monkeypatch.setattr(os, "geteuid", lambda: euid)
        assert cache.cache_dir() == expected          # root ignores another user's XDG_CACHE_HOME
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == "/x/home/.cache/pyruntime"


def test_a_cache_directory_others_can_write_to_is_not_used(tmp_path):
    """Neither read (what is there could be anybody's) nor written."""
    import marshal

    from pyruntime import cache
    from pyruntime.init import seccomp

    own, shared = tmp_path / "own", tmp_path / "shared"
    own.mkdir(mode=0o755)
    shared.mkdir()
    shared.chmod(0o777)
    assert cache.trusted(str(own)) and not cache.trusted(str(shared))
    deny = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    allow = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    program = seccomp.compiled(deny, str(own))
    # somebody plants, under the right name and key, a program that allows everything
    [entry] = os.listdir(own)
    key, library, _ = marshal.loads((own / entry).read_bytes())
    (shared / entry).write_bytes(marshal.dumps((key, library, seccomp.compiled(allow, str(own)))))
    assert seccomp.compiled(deny, str(shared)) == program       # not the planted one
    check = fastcheck.fast_validator("config", schemas.schema_dir(), str(shared))
    assert check(VALID) and not check({}) and os.listdir(shared) == [entry]   # nothing written
