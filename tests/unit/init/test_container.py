"""Steps of the container stages (pyruntime.init.container) against a recording kernel."""

import errno
import os

import pytest

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import container
from pyruntime.init.container import NamespacePlan
from tests.unit.fake_kernel import FakeProcessKernel


def test_joining_a_namespace_opens_it_and_setns_with_its_type():
    kernel = FakeProcessKernel()
    container.join_namespace("network", "/run/netns/x", kernel=kernel)
    assert kernel.calls == [("open", "/run/netns/x", os.O_RDONLY | os.O_CLOEXEC),
                            ("setns", "open:/run/netns/x", linux.CLONE_NEWNET)]
    assert kernel.fds == {}


def test_a_namespace_that_cannot_be_joined_names_it():
    kernel = FakeProcessKernel(fail={("setns", "open:/proc/1/ns/ipc"):
                                     PermissionError(errno.EPERM, "Operation not permitted")})
    with pytest.raises(RuntimeUserError, match="cannot join ipc namespace /proc/1/ns/ipc: "
                                               "Operation not permitted"):
        container.join_namespace("ipc", "/proc/1/ns/ipc", kernel=kernel)
    assert kernel.fds == {}


@pytest.mark.parametrize("uid_maps,gid_maps,expected", [
    ([{"containerID": 0, "hostID": 1000, "size": 1}],
     [{"containerID": 0, "hostID": 1000, "size": 1}],
     [("setresgid", 0, 0, 0), ("setresuid", 0, 0, 0)]),
    ([{"containerID": 1, "hostID": 1000, "size": 5}], [], []),
])
def test_root_is_taken_only_where_the_maps_have_it(uid_maps, gid_maps, expected):
    kernel = FakeProcessKernel()
    container.become_root_if_mapped({"linux": {"uidMappings": uid_maps, "gidMappings": gid_maps}},
                                    kernel=kernel)
    assert kernel.calls == expected


def test_namespace_plan_orders_joins_and_separates_user():
    config = {"linux": {"namespaces": [
        {"type": "network", "path": "/proc/1/ns/net"}, {"type": "pid"}, {"type": "mount"},
        {"type": "user"}, {"type": "ipc", "path": "/proc/1/ns/ipc"}, {"type": "time"}]}}
    plan = NamespacePlan.from_config(config)
    assert plan.join == [("ipc", "/proc/1/ns/ipc"), ("network", "/proc/1/ns/net")]
    assert plan.new_user
    assert plan.new_flags == linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWTIME
    assert plan.new_types == {"pid", "mount", "user", "time"}
