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


def test_hostname_then_domainname_then_each_sysctl_in_its_order():
    kernel = FakeProcessKernel()
    config = {"hostname": "box", "domainname": "example.org",
              "linux": {"sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": 4096}}}
    container.set_names_and_sysctl(config, NamespacePlan([], 0, False, {"uts"}), kernel)
    assert kernel.calls == [("sethostname", "box"), ("setdomainname", "example.org"),
                            ("write_text", "/proc/sys/net/ipv4/ip_forward", "1"),
                            ("write_text", "/proc/sys/kernel/shmmax", "4096")]


def test_the_hostname_is_set_in_a_joined_uts_namespace_but_not_in_the_hosts():
    config = {"hostname": "box"}
    joined, host = FakeProcessKernel(), FakeProcessKernel()
    container.set_names_and_sysctl(config, NamespacePlan([("uts", "/proc/9/ns/uts")], 0, False,
                                                         set()), joined)
    container.set_names_and_sysctl(config, NamespacePlan([], 0, False, {"mount"}), host)
    assert joined.calls == [("sethostname", "box")]
    assert host.calls == []


def test_a_refused_sysctl_names_its_key_and_stops_there():
    kernel = FakeProcessKernel(fail={("write_text", "/proc/sys/kernel/shmmax"):
                                     PermissionError(errno.EACCES, "Permission denied")})
    with pytest.raises(RuntimeUserError, match="linux.sysctl.kernel.shmmax: cannot set to '7': "
                                               "Permission denied"):
        container.apply_sysctl({"kernel.shmmax": "7", "kernel.msgmax": "8"}, kernel)
    assert kernel.named("write_text") == [("write_text", "/proc/sys/kernel/shmmax", "7")]


def test_time_offsets_are_one_write_per_clock():
    kernel = FakeProcessKernel()
    container.write_time_offsets({"boottime": {"secs": 5}, "monotonic": {"secs": -2, "nanosecs": 9}},
                                 kernel)
    assert kernel.calls == [("write_text", "/proc/self/timens_offsets", "monotonic -2 9\n"),
                            ("write_text", "/proc/self/timens_offsets", "boottime 5 0\n")]


def test_a_time_offset_out_of_range_names_its_clock():
    kernel = FakeProcessKernel(fail={("write_text", "/proc/self/timens_offsets"):
                                     OSError(errno.ERANGE, "Numerical result out of range")})
    with pytest.raises(RuntimeUserError, match=r"linux.timeOffsets.boottime: cannot apply -9 s 0 ns: "
                                               r"the clock would leave its range"):
        container.write_time_offsets({"boottime": {"secs": -9}}, kernel)


def test_loopback_is_brought_up_keeping_its_other_flags():
    import struct

    iff_loopback = 0x8
    kernel = FakeProcessKernel(ioctl_replies={0x8913: struct.pack("16sH14x", b"lo", iff_loopback)})
    container.loopback_up(kernel)
    assert kernel.calls == [
        ("socket", "inet-dgram"),
        ("ioctl", "socket:inet-dgram", 0x8913, struct.pack("16sH14x", b"lo", 0)),
        ("ioctl", "socket:inet-dgram", 0x8914, struct.pack("16sH14x", b"lo", iff_loopback | 1))]
    assert kernel.fds == {}
