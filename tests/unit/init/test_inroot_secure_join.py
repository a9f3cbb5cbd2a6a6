"""The secure_join planner of pyruntime.init.inroot: what is missing, resolved inside the root."""

import os

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.init.inroot import secure_join


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    os.symlink("/etc", root / "abs")              # absolute: means the rootfs's /etc
    os.symlink("../../../../..", root / "up")     # climbs: must stop at the root
    os.symlink("real", root / "rel")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink(str(tmp_path), root / "host")      # a host path: resolved inside the root
    return root


@pytest.mark.parametrize("unsafe,expected", [
    ("/etc/passwd", "etc/passwd"),
    ("/abs/x", "etc/x"),
    ("/up/etc", "etc"),
    ("/../../etc", "etc"),
    ("/rel/a/b", "real/a/b"),
    ("/host/secret", None),
    ("/missing/../etc", "etc"),
    ("/", ""),
])
def test_secure_join(tree, unsafe, expected):
    result = secure_join(str(tree), unsafe)
    assert result.startswith(str(tree))
    if expected is not None:
        assert result == os.path.join(str(tree), expected).rstrip("/") or result == str(tree)
    else:
        assert result == str(tree) + str(tree.parent) + "/secret"


def test_secure_join_symlink_loop(tree):
    with pytest.raises(RuntimeUserError, match="too many symlinks"):
        secure_join(str(tree), "/loop1/x")
