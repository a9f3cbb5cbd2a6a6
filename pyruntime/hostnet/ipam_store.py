"""host-local IPAM: addresses leased from range sets, one file per lease, one lock per network.

The on-disk layout is the one the reference host-local plugin uses, so the two can share a
data directory: `<dataDir>/<network>/<ip>` holds "<container id>\\r\\n<ifname>",
`last_reserved_ip.<n>` remembers where range set n last allocated (allocation rotates from
there), and `lock` is flock()ed around every change so concurrent plugin processes never hand
out the same address.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager

from pyruntime.hostnet import locks
from pyruntime.hostnet.errors import CONFIG, EXHAUSTED, IO, HostNetError
from pyruntime.record import Record

LAST_RESERVED = "last_reserved_ip."
LOCK = "lock"


class Range(Record):
    """subnet: an ipaddress network; start, end, gateway: addresses in it (gateway may be None)."""
    __slots__ = ("subnet", "start", "end", "gateway")

    def __contains__(self, ip) -> bool:
        return ip.version == self.start.version and self.start <= ip <= self.end


# -- pure decisions --------------------------------------------------------------------------

def candidates(range_set: list[Range], last_reserved=None) -> Iterator:
    """Every allocatable address of a range set once, starting right after `last_reserved`."""
    start_range, start_ip = 0, range_set[0].start
    if last_reserved is not None:
        for i, r in enumerate(range_set):
            if last_reserved in r:
                start_range, start_ip = i, last_reserved + 1
                if start_ip > r.end:
                    start_range = (i + 1) % len(range_set)
                    start_ip = range_set[start_range].start
                break
    n = len(range_set)
    # first pass from the rotation point to the end of its range, then every other range in
    # order, then the beginning of the starting range up to the rotation point
    for k in range(n + 1):
        idx = (start_range + k) % n
        r = range_set[idx]
        if k == 0:
            lo, hi = start_ip, r.end
        elif k == n:
            lo, hi = r.start, start_ip - 1
        else:
            lo, hi = r.start, r.end
        ip = lo
        while ip <= hi:
            if ip != r.gateway:
                yield ip
            ip += 1


def range_for(range_set: list[Range], ip) -> Range | None:
    for r in range_set:
        if ip in r:
            return r
    return None


def lease_owner(text: str) -> tuple[str, str]:
    cid, _, ifname = text.partition("\r\n")
    return cid.strip(), ifname.strip()


# -- the store ---------------------------------------------------------------------------------

class Store:
    def __init__(self, data_dir: str, network: str):
        self.dir = os.path.join(data_dir, network)

    @contextmanager
    def locked(self):
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
            fd = os.open(os.path.join(self.dir, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise HostNetError(IO, "cannot open IPAM data directory", f"{self.dir}: {e.strerror}") from None
        try:
            locks.acquire(fd, f"IPAM store {self.dir}")
            yield
        finally:
            os.close(fd)

    def _reserve(self, ip, owner: str) -> bool:
        try:
            fd = os.open(os.path.join(self.dir, str(ip)), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", newline="") as f:
            f.write(owner)
        return True

    def _last_reserved(self, idx: int):
        try:
            with open(os.path.join(self.dir, f"{LAST_RESERVED}{idx}")) as f:
                return ipaddress.ip_address(f.read().strip())
        except (OSError, ValueError):
            return None

    def _write_last_reserved(self, idx: int, ip) -> None:
        path = os.path.join(self.dir, f"{LAST_RESERVED}{idx}")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(ip))
        os.replace(tmp, path)

    def leases(self) -> Iterator[tuple[str, str, str]]:
        """(ip, container id, ifname) of every lease."""
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return
        for e in entries:
            if e.name == LOCK or e.name.startswith(LAST_RESERVED) or e.name.endswith(".tmp"):
                continue
            try:
                with open(e.path, newline="") as f:
                    cid, ifname = lease_owner(f.read())
            except OSError:
                continue
            yield e.name, cid, ifname

    def find(self, container_id: str, ifname: str) -> list[str]:
        return [ip for ip, cid, ifn in self.leases() if cid == container_id and ifn in (ifname, "")]

    def allocate(self, container_id: str, ifname: str, range_sets: list[list[Range]],
                 requested: list | None = None) -> list[tuple[Range, object]]:
        """One address per range set; requested addresses are taken from the set holding them."""
        owner = f"{container_id}\r\n{ifname}"
        requested = list(requested or [])
        got: list[tuple[Range, object]] = []
        with self.locked():
            try:
                for idx, rs in enumerate(range_sets):
                    want = next((ip for ip in requested if range_for(rs, ip)), None)
                    if want is not None:
                        requested.remove(want)
                        r = range_for(rs, want)
                        if want == r.gateway or not self._reserve(want, owner):
                            raise HostNetError(CONFIG, "requested IP address is not available",
                                               f"{want} is already reserved in network {os.path.basename(self.dir)}")
                        got.append((r, want))
                        continue
                    for ip in candidates(rs, self._last_reserved(idx)):
                        if self._reserve(ip, owner):
                            self._write_last_reserved(idx, ip)
                            got.append((range_for(rs, ip), ip))
                            break
                    else:
                        span = ", ".join(f"{r.start}-{r.end}" for r in rs)
                        raise HostNetError(EXHAUSTED, "no IP addresses available in range set", span)
                if requested:
                    raise HostNetError(CONFIG, "requested IP address is outside every range",
                                       ", ".join(map(str, requested)))
            except BaseException:
                for _, ip in got:
                    self._unlink(str(ip))
                raise
        return got

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.dir, name))
        except FileNotFoundError:
            pass

    def release(self, container_id: str, ifname: str) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        with self.locked():
            gone = self.find(container_id, ifname)
            for ip in gone:
                self._unlink(ip)
        return gone

    def gc(self, keep: set[tuple[str, str]]) -> list[str]:
        """Release every lease whose (container id, ifname) is not in `keep`."""
        if not os.path.isdir(self.dir):
            return []
        with self.locked():
            gone = [ip for ip, cid, ifn in self.leases() if (cid, ifn) not in keep]
            for ip in gone:
                self._unlink(ip)
        return gone

    def writable(self) -> bool:
        """Whether leases could be written: the nearest existing ancestor is a writable directory."""
        probe = self.dir
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        return os.path.isdir(probe) and os.access(probe, os.W_OK)
