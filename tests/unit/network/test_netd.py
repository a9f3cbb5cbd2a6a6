"""pyruntime-netd (pyruntime.network.netd): the allowances file."""

import pytest

from pyruntime.errors import RuntimeUserError


def test_netd_allowances_read_like_lxc_usernet():
    from pyruntime.network.netd import parse_allowances

    text = "# user network count\nroot pyruntime 2\n0 lab 1   # by uid\nroot pyruntime 1\nnobody-such-user x 3\n"
    assert parse_allowances(text) == {(0, "pyruntime"): 3, (0, "lab"): 1}
    with pytest.raises(RuntimeUserError, match="line 1: expected USER NETWORK COUNT"):
        parse_allowances("root pyruntime many")
