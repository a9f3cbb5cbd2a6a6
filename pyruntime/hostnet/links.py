"""Bridge, veth pair and container-side addressing: the netlink half of the bridge plugin."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from contextlib import contextmanager

from pyruntime.hostnet.errors import CONFIG, ENVIRONMENT, EXISTS, IO, HostNetError
from pyruntime.hostnet.rtnl import NetlinkError, Rtnl

CLONE_NEWNET = 0x40000000


NS_GET_NSTYPE = 0xB703       # ioctl _IO(0xb7, 0x3): which kind of namespace an nsfs file is
NAMESPACE_KINDS = {0x20000: "mount", 0x4000000: "UTS", 0x8000000: "IPC", 0x10000000: "user",
                   0x20000000: "PID", 0x02000000: "cgroup", 0x80: "time"}


def open_netns(path: str) -> int:
    """A descriptor of the network namespace CNI_NETNS names, which must be another one than
    the plugin's own: configured as a container's, the host's own network would get the
    container's interface, addresses and default route."""
    fd = _open_nsfs_file(path)
    try:
        _require_other_netns(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_netns(path: str, what: str) -> HostNetError:
    return HostNetError(ENVIRONMENT, "CNI_NETNS is not a network namespace", f"{path}: {what}")


def _open_nsfs_file(path: str) -> int:
    """Open `path` for reading only once it is known to be a regular file: an nsfs file shows
    as one, and opening a device or a FIFO for real could have effects (or never return).
    O_PATH opens nothing; the real open goes through /proc/self/fd, so it is that same inode."""
    try:
        handle = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise HostNetError(ENVIRONMENT, "cannot open CNI_NETNS", f"{path}: {e.strerror}") from None
    try:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise _not_netns(path, f"a {_file_kind(mode)}, not a namespace file")
        return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise HostNetError(ENVIRONMENT, "cannot open CNI_NETNS", f"{path}: {e.strerror}") from None
    finally:
        os.close(handle)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _require_other_netns(fd: int, path: str) -> None:
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:                     # ENOTTY: an ordinary file, not one of nsfs
        raise _not_netns(path, "an ordinary file, not a namespace file") from None
    if kind != CLONE_NEWNET:
        raise _not_netns(path, f"a {NAMESPACE_KINDS.get(kind, 'different')} namespace")
    given = os.fstat(fd)
    own = os.stat("/proc/thread-self/ns/net")
    if (given.st_dev, given.st_ino) == (own.st_dev, own.st_ino):
        raise HostNetError(ENVIRONMENT, "CNI_NETNS is the plugin's own network namespace",
                           f"{path}: a container needs a network namespace of its own")


@contextmanager
def entered(netns_fd: int):
    """Run the body with this thread in another network namespace, then come back."""
    from pyruntime import linux
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            linux.setns(netns_fd, CLONE_NEWNET)
        except OSError as e:
            raise HostNetError(ENVIRONMENT, "CNI_NETNS is not a network namespace", str(e)) from None
        try:
            yield
        finally:
            linux.setns(home, CLONE_NEWNET)
    finally:
        os.close(home)


def netlink_sockets(netns_fd: int) -> tuple[Rtnl, Rtnl]:
    """One rtnetlink socket in the host namespace and one in the container's."""
    host = Rtnl()
    with entered(netns_fd):
        container = Rtnl()
    return host, container


def fail(what: str, e: OSError) -> HostNetError:
    return HostNetError(IO, what, e.strerror or str(e))


def random_mac() -> str:
    """A random locally administered unicast MAC address."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFE) | 0x02
    return ":".join(f"{o:02x}" for o in octets)


def ensure_bridge(rt: Rtnl, name: str, mtu: int, promisc: bool):
    link = rt.get_link(name)
    if link is None:
        try:
            # An address of its own, given at creation: a bridge without one takes the lowest
            # of its ports' addresses and changes it as ports come and go, and every container
            # would keep sending to the gateway's old MAC until its ARP entry expired.
            rt.add_bridge(name, mtu, random_mac())
        except NetlinkError as e:
            if e.errno != errno.EEXIST:          # another ADD created it meanwhile
                raise fail(f"cannot create bridge {name}", e) from None
        link = rt.get_link(name)
    if link is None or link.kind != "bridge":
        raise HostNetError(CONFIG, f"{name} exists and is not a bridge", f"it is a {link.kind or 'device'}"
                           if link else "it vanished while being set up")
    if not link.up or (promisc and not link.flags & 0x100):
        rt.set_link(link.index, up=True, promisc=True if promisc else None)
    return link


def ensure_gateway(rt: Rtnl, bridge_index: int, gateway_iface, force: bool) -> None:
    """Put the gateway address on the bridge; with forceAddress replace another one of that subnet."""
    present = rt.addresses(bridge_index)
    if gateway_iface in present:
        return
    for a in present:
        if a.version == gateway_iface.version and a.network.overlaps(gateway_iface.network) \
                and not a.ip.is_link_local:
            if not force:
                raise HostNetError(CONFIG, "bridge already has a different address in this subnet",
                                   f"{a} (wanted {gateway_iface}); set forceAddress to replace it")
            rt.del_address(bridge_index, a)
    try:
        rt.add_address(bridge_index, gateway_iface)
    except NetlinkError as e:
        if e.errno != errno.EEXIST:
            raise fail("cannot put the gateway address on the bridge", e) from None


def create_veth(host_rt: Rtnl, host_name: str, ifname: str, netns_fd: int, mtu: int, mac: str) -> None:
    try:
        host_rt.add_veth(host_name, ifname, netns_fd, mtu, mac)
    except NetlinkError as e:
        if e.errno == errno.EEXIST:
            raise HostNetError(EXISTS, "interface already exists", f"{host_name} on the host or "
                               f"{ifname} in the container; DEL the attachment first") from None
        raise fail("cannot create the veth pair", e) from None


def attach_to_bridge(rt: Rtnl, host_name: str, bridge_index: int, hairpin: bool):
    link = rt.get_link(host_name)
    if link is None:
        raise HostNetError(IO, f"veth {host_name} vanished")
    rt.set_link(link.index, master=bridge_index)
    if hairpin:
        rt.set_hairpin(link.index, True)
    rt.set_link(link.index, up=True)
    return rt.get_link(host_name)


def configure_container(rt: Rtnl, ifname: str, addresses, routes):
    """lo and ifname up, addresses on ifname, then the routes (dst, gw) via ifname."""
    lo = rt.get_link("lo")
    if lo is not None and not lo.up:
        rt.set_link(lo.index, up=True)
    link = rt.get_link(ifname)
    if link is None:
        raise HostNetError(IO, f"{ifname} did not appear in the container")
    try:
        for a in addresses:
            rt.add_address(link.index, a)
        rt.set_link(link.index, up=True)
        for dst, gw in routes:
            try:
                rt.add_route(dst, gw, link.index)
            except NetlinkError as e:
                if e.errno != errno.EEXIST:
                    raise
    except NetlinkError as e:
        raise fail(f"cannot configure {ifname} in the container", e) from None
    return rt.get_link(ifname)


def route_localnet_path(bridge: str) -> str:
    return f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"


def write_sysctl(path: str, value: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise HostNetError(IO, f"cannot set {path.replace('/proc/sys/', '').replace('/', '.')}",
                           e.strerror or str(e)) from None
