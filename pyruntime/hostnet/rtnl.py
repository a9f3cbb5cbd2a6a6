"""A small rtnetlink client: the few link/address/route requests the bridge plugin makes.

pyroute2 offers all of this and much more, but importing it costs ~150 ms, more than a whole
ADD of the reference plugins; the plugin only needs a dozen message shapes, so it speaks
rtnetlink directly over a stdlib socket. Each `Rtnl` is bound to the network namespace that
was current when it was opened.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

# message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3

# header flags
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000

# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4          # hairpin
IFF_UP, IFF_PROMISC = 0x1, 0x100

# address / route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_NODAD, IFA_F_PERMANENT = 0x02, 0x80
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254

AF_BRIDGE = 7
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_ATTR = struct.Struct("=HH")


def attr(kind: int, payload: bytes) -> bytes:
    length = _ATTR.size + len(payload)
    return _ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        out[kind & ~NLA_F_NESTED] = data[offset + _ATTR.size: offset + length]
        offset += (length + 3) & ~3
    return out


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


class Link:
    """What RTM_GETLINK tells about one interface."""

    def __init__(self, index: int, flags: int, attrs: dict[int, bytes]):
        self.index = index
        self.flags = flags
        self.name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
        self.mtu = struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
        self.master = struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
        self.mac = mac_str(attrs.get(IFLA_ADDRESS, b""))
        info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
        self.kind = info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode()

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


class NetlinkError(OSError):
    pass


class Rtnl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        # strict checking makes the kernel honour the filters in dump requests (e.g. the
        # interface index of an address dump), so a host with many veths answers one link's
        # question without sending all of theirs
        self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- transport -------------------------------------------------------------------------
    def request(self, msg_type: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request; return the (type, payload) replies, raising on a netlink error."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_HDR.pack(_HDR.size + len(body), msg_type, flags | NLM_F_REQUEST, seq, 0) + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, rtype, rflags, rseq, _ = _HDR.unpack_from(data, offset)
                payload = data[offset + _HDR.size: offset + length]
                offset += (length + 3) & ~3
                if rseq != seq:
                    continue
                if rtype == NLMSG_DONE:
                    return replies
                if rtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return replies
                replies.append((rtype, payload))
                if not rflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return replies

    # -- links -----------------------------------------------------------------------------
    def get_link(self, name: str) -> Link | None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name)
        try:
            replies = self.request(RTM_GETLINK, 0, body)
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        for rtype, payload in replies:
            if rtype == RTM_NEWLINK:
                _, _, index, flags, _ = _IFINFO.unpack_from(payload)
                return Link(index, flags, parse_attrs(payload, _IFINFO.size))
        return None

    def links(self) -> list[Link]:
        out = []
        for rtype, payload in self.request(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            if rtype == RTM_NEWLINK:
                _, _, index, flags, _ = _IFINFO.unpack_from(payload)
                out.append(Link(index, flags, parse_attrs(payload, _IFINFO.size)))
        return out

    def add_bridge(self, name: str, mtu: int = 0, mac: str = "") -> None:
        attrs = attr_str(IFLA_IFNAME, name)
        if mac:
            attrs += attr(IFLA_ADDRESS, mac_bytes(mac))
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        attrs += nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge"))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                     _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attrs)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int = 0, peer_mac: str = "") -> None:
        peer_attrs = attr_str(IFLA_IFNAME, peer) + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
        own_attrs = attr_str(IFLA_IFNAME, name)
        if mtu:
            peer_attrs += attr_u32(IFLA_MTU, mtu)
            own_attrs += attr_u32(IFLA_MTU, mtu)
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        peer_msg = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + peer_attrs
        linkinfo = nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth"),
                          nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                     _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + own_attrs + linkinfo)

    def set_link(self, index: int, *, up: bool | None = None, promisc: bool | None = None,
                 master: int | None = None, mtu: int = 0) -> None:
        flags = change = 0
        if up is not None:
            change |= IFF_UP
            flags |= IFF_UP if up else 0
        if promisc is not None:
            change |= IFF_PROMISC
            flags |= IFF_PROMISC if promisc else 0
        attrs = b""
        if master is not None:
            attrs += attr_u32(IFLA_MASTER, master)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        self.request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change) + attrs)

    def set_hairpin(self, index: int, on: bool) -> None:
        protinfo = nested(IFLA_PROTINFO, attr(IFLA_BRPORT_MODE, bytes([1 if on else 0])))
        self.request(RTM_SETLINK, NLM_F_ACK, _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + protinfo)

    def hairpin(self, index: int) -> bool:
        for rtype, payload in self.request(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(AF_BRIDGE, 0, 0, 0, 0)):
            if rtype != RTM_NEWLINK or _IFINFO.unpack_from(payload)[2] != index:
                continue
            protinfo = parse_attrs(parse_attrs(payload, _IFINFO.size).get(IFLA_PROTINFO, b""))
            return protinfo.get(IFLA_BRPORT_MODE, b"\0")[0] == 1
        return False

    def move_link(self, index: int, netns_fd: int, name: str = "") -> None:
        """Move a link into the network namespace `netns_fd`, renamed there to `name` when
        given (a name with %d lets the kernel pick the number)."""
        attrs = attr_u32(IFLA_NET_NS_FD, netns_fd)
        if name:
            attrs += attr_str(IFLA_IFNAME, name)
        self.request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + attrs)

    def del_link(self, index_or_name: int | str) -> bool:
        """Delete a link; False if it did not exist."""
        if isinstance(index_or_name, str):
            body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, index_or_name)
        else:
            body = _IFINFO.pack(socket.AF_UNSPEC, 0, index_or_name, 0, 0)
        try:
            self.request(RTM_DELLINK, NLM_F_ACK, body)
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # -- addresses -------------------------------------------------------------------------
    def add_address(self, index: int, iface, replace: bool = False) -> None:
        """Add an ipaddress.IPv4Interface / IPv6Interface to a link."""
        family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        packed = iface.ip.packed
        attrs = attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        flags = 0
        if iface.version == 4:
            if iface.network.prefixlen < 31:
                attrs += attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        else:
            attrs = attr(IFA_ADDRESS, packed)
            flags = IFA_F_NODAD     # usable at once: the address is ours by construction
        how = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL) | NLM_F_ACK
        self.request(RTM_NEWADDR, how,
                     _IFADDR.pack(family, iface.network.prefixlen, flags, RT_SCOPE_UNIVERSE, index) + attrs)

    def del_address(self, index: int, iface) -> None:
        family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        attrs = attr(IFA_LOCAL if iface.version == 4 else IFA_ADDRESS, iface.ip.packed)
        self.request(RTM_DELADDR, NLM_F_ACK,
                     _IFADDR.pack(family, iface.network.prefixlen, 0, 0, index) + attrs)

    def addresses(self, index: int) -> list:
        """The ipaddress interfaces configured on a link (global and link scope)."""
        return [iface for iface, _, _ in self.address_records(index)]

    def address_records(self, index: int) -> list[tuple]:
        """(ipaddress interface, IFA_F_* flags, scope) of each address on a link."""
        import ipaddress
        out = []
        for rtype, payload in self.request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, index)):
            if rtype != RTM_NEWADDR:
                continue
            family, prefixlen, flags, scope, idx = _IFADDR.unpack_from(payload)
            if idx != index:
                continue
            attrs = parse_attrs(payload, _IFADDR.size)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if IFA_FLAGS in attrs:      # the full 32 bits; the header holds only the low 8
                flags = struct.unpack("=I", attrs[IFA_FLAGS])[0]
            if raw:
                out.append((ipaddress.ip_interface((raw, prefixlen)), flags, scope))
        return out

    # -- routes ----------------------------------------------------------------------------
    def add_route(self, dst, gateway=None, oif: int = 0, scope: int | None = None) -> None:
        family = socket.AF_INET if dst.version == 4 else socket.AF_INET6
        if scope is None:
            scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        attrs = b""
        if dst.prefixlen:
            attrs += attr(RTA_DST, dst.network_address.packed)
        if gateway is not None:
            attrs += attr(RTA_GATEWAY, gateway.packed)
        if oif:
            attrs += attr_u32(RTA_OIF, oif)
        msg = _RTMSG.pack(family, dst.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, msg + attrs)

    def routes(self, family: int) -> list[tuple]:
        """(dst network, gateway or None, oif) of the main table's routes."""
        import ipaddress
        out = []
        for rtype, payload in self.request(RTM_GETROUTE, NLM_F_DUMP, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
            if rtype != RTM_NEWROUTE:
                continue
            fam, dst_len, _, _, table, _, _, rtn, _ = _RTMSG.unpack_from(payload)
            if table != RT_TABLE_MAIN or rtn != RTN_UNICAST:
                continue
            attrs = parse_attrs(payload, _RTMSG.size)
            zero = b"\0" * (4 if fam == socket.AF_INET else 16)
            dst = ipaddress.ip_network((attrs.get(RTA_DST, zero), dst_len))
            gw = ipaddress.ip_address(attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else None
            oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
            out.append((dst, gw, oif))
        return out
