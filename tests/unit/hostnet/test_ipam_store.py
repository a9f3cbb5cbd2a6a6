"""The host-local IPAM store (pyruntime.hostnet.ipam_store): candidates, allocation, exhaustion,
gc, concurrency."""

from __future__ import annotations

import ipaddress
import multiprocessing

import pytest

from pyruntime.hostnet import ipam_store as ipam
from pyruntime.hostnet.errors import EXHAUSTED, HostNetError
from pyruntime.plugins.bridge import config
from pyruntime.plugins.bridge.main import from_host_error


def rset(*ranges):
    return [config.parse_range(r) for r in ranges]


# -- IPAM --------------------------------------------------------------------------------------------

def test_candidates_rotate_from_last_reserved_and_skip_gateway():
    rs = rset({"subnet": "10.0.0.0/29"})            # usable .1-.6, gateway .1
    assert [str(i) for i in ipam.candidates(rs)] == [f"10.0.0.{n}" for n in (2, 3, 4, 5, 6)]
    after = [str(i) for i in ipam.candidates(rs, ipaddress.ip_address("10.0.0.4"))]
    assert after == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_candidates_walk_every_range_of_a_set():
    rs = rset({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.11"},
              {"subnet": "10.0.1.0/24", "rangeStart": "10.0.1.10", "rangeEnd": "10.0.1.11"})
    got = [str(i) for i in ipam.candidates(rs, ipaddress.ip_address("10.0.0.11"))]
    assert got == ["10.0.1.10", "10.0.1.11", "10.0.0.10", "10.0.0.11"]


def test_store_allocates_releases_and_exhausts(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    sets = [rset({"subnet": "10.0.0.0/29"}), rset({"subnet": "fd00::/126"})]
    got = store.allocate("c1", "eth0", sets)
    assert [str(ip) for _, ip in got] == ["10.0.0.2", "fd00::2"]
    lease = (tmp_path / "net" / "10.0.0.2").read_bytes()
    assert lease == b"c1\r\neth0"                            # the reference host-local format
    assert str(store.allocate("c2", "eth0", sets)[0][1]) == "10.0.0.3"
    assert sorted(store.release("c1", "eth0")) == ["10.0.0.2", "fd00::2"]
    # rotation: the freed .2 is not handed out before .4-.6
    assert str(store.allocate("c3", "eth0", sets[:1])[0][1]) == "10.0.0.4"
    assert store.release("nobody", "eth0") == []


def test_exhaustion_is_a_clear_error(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    small = [rset({"subnet": "10.0.0.0/29", "rangeEnd": "10.0.0.3"})]      # .2 and .3 (.1 is the gateway)
    store.allocate("a", "eth0", small)
    store.allocate("b", "eth0", small)
    with pytest.raises(HostNetError) as e:
        store.allocate("c", "eth0", small)
    assert e.value.kind == EXHAUSTED and "10.0.0.1-10.0.0.3" in e.value.details
    assert from_host_error(e.value).code == 100             # what the plugin reports


def test_requested_ip_taken_or_outside(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    sets = [rset({"subnet": "10.0.0.0/24"})]
    assert str(store.allocate("a", "eth0", sets, [ipaddress.ip_address("10.0.0.50")])[0][1]) == "10.0.0.50"
    with pytest.raises(HostNetError):
        store.allocate("b", "eth0", sets, [ipaddress.ip_address("10.0.0.50")])
    with pytest.raises(HostNetError):
        store.allocate("b", "eth0", sets, [ipaddress.ip_address("10.9.0.50")])
    assert store.find("b", "eth0") == []                      # failed allocations leave nothing


def test_gc_keeps_only_valid(tmp_path):
    store = ipam.Store(str(tmp_path), "net")
    sets = [rset({"subnet": "10.0.0.0/24"})]
    for cid in ("a", "b", "c"):
        store.allocate(cid, "eth0", sets)
    store.gc({("b", "eth0")})
    assert [cid for _, cid, _ in store.leases()] == ["b"]


def _grab(args):
    data_dir, n = args
    store = ipam.Store(data_dir, "net")
    return str(store.allocate(f"c{n}", "eth0", [rset({"subnet": "10.0.0.0/24"})])[0][1])


def test_concurrent_allocations_are_distinct(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        got = pool.map(_grab, [(str(tmp_path), n) for n in range(80)])
    assert len(set(got)) == 80
