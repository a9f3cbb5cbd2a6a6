"""linux.memoryPolicy (pyruntime.init.mempolicy): the set_mempolicy call it makes."""

from __future__ import annotations

import errno

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.init import mempolicy
from tests.unit.fake_kernel import FakeProcessKernel


def test_mode_flags_and_node_mask_reach_set_mempolicy():
    kernel = FakeProcessKernel()
    mempolicy.apply({"mode": "MPOL_INTERLEAVE", "nodes": "0,2-3",
                     "flags": ["MPOL_F_STATIC_NODES"]}, kernel=kernel)
    mode = mempolicy.MODES["MPOL_INTERLEAVE"] | mempolicy.FLAGS["MPOL_F_STATIC_NODES"]
    assert kernel.calls == [("set_mempolicy", mode, (0b1101).to_bytes(8, "little"))]


def test_nodes_refused_are_explained():
    mode = mempolicy.MODES["MPOL_BIND"]
    kernel = FakeProcessKernel(fail={("set_mempolicy", mode): OSError(errno.EINVAL, "")})
    with pytest.raises(RuntimeUserError, match="MPOL_BIND on nodes 1: .*online"):
        mempolicy.apply({"mode": "MPOL_BIND", "nodes": "1"}, kernel=kernel)


def test_node_lists_and_masks():
    assert mempolicy.parse_nodes("0-1,3, 5") == {0, 1, 3, 5}
    assert mempolicy.parse_nodes("") == set()
    assert mempolicy.nodemask(set()) == b""
    assert mempolicy.nodemask({0, 2}) == b"\x05" + b"\0" * 7
    mask = mempolicy.nodemask({1, 64})
    assert len(mask) == 16 and mask[0] == 0x02 and mask[8] == 0x01
    for bad in ("1-", "-1", "1,,2", "a"):
        with pytest.raises(ValueError):
            mempolicy.parse_nodes(bad)
