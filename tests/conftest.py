import os
from pathlib import Path

import pytest

from tests.support import host_snapshot, leaks


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root")
    tests_dir = Path(__file__).parent
    for item in items:
        # parts below tests/, not of the whole path: a checkout may live in a folder named e2e
        suite = item.path.relative_to(tests_dir).parts[0] if item.path.is_relative_to(tests_dir) else ""
        if suite in ("integration", "e2e"):
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(skip_root)


@pytest.fixture(autouse=True)
def no_leaks(request):
    """After every root test, nothing it made may remain on the host."""
    if "root" not in request.keywords or os.geteuid() != 0:
        yield
        return
    before = host_snapshot()
    yield
    left = leaks(before, host_snapshot())
    assert not left, f"test left resources behind: {left}"


@pytest.fixture
def tun_for_everyone():
    """slirp4netns opens /dev/net/tun as the user: 0600 here, widened for the test only."""
    mode = os.stat("/dev/net/tun").st_mode & 0o777
    os.chmod("/dev/net/tun", 0o666)
    yield
    os.chmod("/dev/net/tun", mode)
