"""cgroupsPath to a cgroup path (pyruntime.cgroups.paths)."""

import pytest

from pyruntime.cgroups import resolve_path
from pyruntime.errors import RuntimeUserError

# ---------------------------------------------------------------- paths

@pytest.mark.parametrize("given,expected", [
    (None, "/pyruntime/ctr1"),
    ("", "/pyruntime/ctr1"),
    ("/machine/ctr1", "/machine/ctr1"),
    ("/a//b/./c/", "/a/b/c"),
    ("mine/ctr", "/pyruntime/mine/ctr"),
])
def test_resolve_path(given, expected):
    assert resolve_path(given, "ctr1") == expected


@pytest.mark.parametrize("bad,needle", [
    ("/a/../../etc", "'..'"),
    ("../escape", "'..'"),
    ("system.slice:pyruntime:ctr1", "systemd"),
    ("/", "root cgroup"),
    ("/a/cgroup.procs", "interface file"),
    ("/a/b\nc", "control characters"),
])
def test_resolve_path_rejects(bad, needle):
    with pytest.raises(RuntimeUserError) as err:
        resolve_path(bad, "ctr1")
    assert needle in str(err.value)
    assert "linux.cgroupsPath" in str(err.value)


def test_resolve_path_rejects_bad_container_id():
    with pytest.raises(RuntimeUserError):
        resolve_path(None, "..")
