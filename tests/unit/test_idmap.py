"""Which id maps need newuidmap/newgidmap (pyruntime.idmap)."""

import os

import pytest

from pyruntime import idmap
from pyruntime.errors import RuntimeUserError
from tests.unit.support import as_user  # noqa: F401 (fixture)


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
