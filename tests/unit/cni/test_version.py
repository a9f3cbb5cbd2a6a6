"""CNI versions (pyruntime.cni.version)."""

from __future__ import annotations

import pytest

from pyruntime.cni import version
from pyruntime.cni.errors import CniError


def test_version_support():
    assert version.require_supported("0.4.0") == "0.4.0"
    with pytest.raises(CniError) as e:
        version.require_supported("2.0.0")
    assert e.value.code == 1
    assert version.at_least("1.1.0", "1.0.0") and not version.at_least("0.3.1", "0.4.0")
