"""linux.netDevices (pyruntime.netdevices): which interface names and templates are taken."""

from __future__ import annotations

import pytest

from pyruntime import netdevices


# -- linux.netDevices --------------------------------------------------------------------------
@pytest.mark.parametrize("name,template,problem", [
    ("eth0", False, None),
    ("a" * 15, False, None),
    ("a" * 16, False, "longer than 15 bytes"),
    ("", True, "is empty"),
    (".", False, "not a device name"),
    ("..", True, "not a device name"),
    ("dev/null", False, "contains '/', ':' or white space"),
    ("eth0:1", True, "contains"),
    ("eth 0", True, "contains"),
    ("eth%d", True, None),
    ("eth%d", False, "may hold '%' only"),
    ("e%d%d", True, "may hold '%' only"),
    ("e%s", True, "may hold '%' only"),
])
def test_interface_names(name, template, problem):
    found = netdevices.name_problem(name, template)
    assert (found is None) if problem is None else (problem in found), found
