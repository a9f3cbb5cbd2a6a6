"""`linux.netDevices`: host network devices moved into the container's network namespace.

At create, once the init's namespaces exist and before the prestart hooks run (runc's order),
the runtime moves each device into the init's network namespace over rtnetlink, renamed in
the same request when the config asks, gives it back the permanent global addresses the move
drops, and sets it up.

Nothing moves them back: runtime-spec v1.3 says the runtime MUST NOT, since the namespace may
outlive the container and belongs to whoever manages it. When the namespace is freed the
kernel returns physical devices to the initial namespace (under the name they had inside) and
destroys virtual ones (veth, macvlan, ...).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

IFNAMSIZ = 16                       # with the terminating NUL
_SPACE = " \t\n\v\f\r"


def name_problem(name: str, template: bool) -> str | None:
    """Why the kernel would refuse `name` as an interface name (dev_valid_name), or None.
    With `template`, one %d may stand for the number the kernel picks."""
    if not name:
        return "is empty"
    if len(name.encode()) >= IFNAMSIZ:
        return f"is longer than {IFNAMSIZ - 1} bytes"
    if name in (".", ".."):
        return "is not a device name"
    if any(c in "/:" or c in _SPACE for c in name):
        return "contains '/', ':' or white space"
    if "%" in name and not (template and name.count("%") == 1 and "%d" in name):
        return "may hold '%' only as one %d in the name inside the container"
    return None


def move_into(devices: dict, init_pid: int) -> None:
    """Move `linux.netDevices` (already validated) into the network namespace of `init_pid`."""
    from pyruntime import rootless
    from pyruntime.errors import RuntimeUserError
    from pyruntime.hostnet.rtnl import Rtnl

    if rootless.is_rootless():
        raise RuntimeUserError("linux.netDevices: only root on the host can move its network "
                               "devices into a container")
    try:
        target = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return      # the init has died: its own report of why comes next on the channel
    try:
        if _is_own_namespace(target):
            # moving a device to where it is would only rename it on the host
            raise RuntimeUserError("linux.netDevices: the container shares the runtime's "
                                   "network namespace; its devices have nowhere to go")
        with Rtnl() as host, _rtnl_in(target) as inside:
            for host_name, device in devices.items():
                _move(host, inside, target, host_name, device.get("name") or host_name)
    finally:
        os.close(target)


def _move(host, inside, target: int, host_name: str, name: str) -> None:
    from pyruntime.errors import RuntimeUserError
    from pyruntime.hostnet.rtnl import IFA_F_PERMANENT, RT_SCOPE_UNIVERSE, NetlinkError
    from pyruntime.spec import jsonpath

    where = jsonpath.child("linux.netDevices", host_name)
    link = host.get_link(host_name)
    if link is None:
        raise RuntimeUserError(f"{where}: the host has no network device {host_name!r}")
    template = "%" in name
    if not template and inside.get_link(name) is not None:
        raise RuntimeUserError(f"{where}: the container already has a network device {name!r}")
    # the move drops every address; the permanent global ones are the user's and go along
    # (runtime-spec v1.3, as runc)
    kept = [iface for iface, flags, scope in host.address_records(link.index)
            if flags & IFA_F_PERMANENT and scope == RT_SCOPE_UNIVERSE]
    present = {other.index for other in inside.links()} if template else set()
    try:
        host.move_link(link.index, target, "" if name == host_name else name)
        moved = _find_moved(inside, name, link.mac, present)
        for iface in kept:
            inside.add_address(moved.index, iface)
        inside.set_link(moved.index, up=True)
    except NetlinkError as e:
        raise RuntimeUserError(f"{where}: cannot move {host_name!r} into the container as "
                               f"{name!r}: {e.strerror}") from None


def _find_moved(inside, name: str, mac: str, present: set[int]):
    """The moved device in the container: by name, or for a %d name the new link with its
    MAC address (the kernel may give it another index there)."""
    import errno

    from pyruntime.hostnet.rtnl import NetlinkError

    if "%" not in name:
        found = inside.get_link(name)
    else:
        found = next((link for link in inside.links()
                      if link.index not in present and link.mac == mac), None)
    if found is None:
        raise NetlinkError(errno.ENODEV, "the moved device is not in the container's namespace")
    return found


def _is_own_namespace(fd: int) -> bool:
    ours, theirs = os.stat("/proc/thread-self/ns/net"), os.fstat(fd)
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


@contextmanager
def _rtnl_in(netns_fd: int):
    """An rtnetlink socket in another network namespace: opened there by this thread, which
    then returns to its own (a socket stays with the namespace it was made in)."""
    from pyruntime import linux
    from pyruntime.hostnet.rtnl import Rtnl

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(netns_fd, linux.CLONE_NEWNET)
        try:
            rtnl = Rtnl()
        finally:
            linux.setns(own, linux.CLONE_NEWNET)
    finally:
        os.close(own)
    with rtnl:
        yield rtnl
