import os

import pytest

from tests.support import host_snapshot, leaks


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root")
    for item in items:
        if "integration" in item.path.parts or "e2e" in item.path.parts:
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
