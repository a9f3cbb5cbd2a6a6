"""Conversions between the config's units and the cgroup files' (pyruntime.cgroups.convert)."""

import pytest

from pyruntime.cgroups import convert

# ---------------------------------------------------------------- conversions

@pytest.mark.parametrize("shares,weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000), (512, 20)])
def test_shares_to_weight(shares, weight):
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio,io", [(0, 0), (10, 1), (500, 4950), (1000, 10000), (100, 910)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io


def test_v2_swap_semantics():
    mib = 1 << 20
    assert convert.v2_swap(None, None) is None
    assert convert.v2_swap(0, 100 * mib) is None
    assert convert.v2_swap(300 * mib, 100 * mib) == 200 * mib     # total - memory
    assert convert.v2_swap(100 * mib, 100 * mib) == 0              # no swap at all
    assert convert.v2_swap(-1, 100 * mib) == -1
    assert convert.v2_swap(None, -1) == -1                         # unlimited memory: unlimited swap
    with pytest.raises(ValueError):
        convert.v2_swap(50 * mib, 100 * mib)
    with pytest.raises(ValueError):
        convert.v2_swap(50 * mib, None)


def test_cpu_max():
    assert convert.cpu_max(None, None) is None
    assert convert.cpu_max(20000, 100000) == "20000 100000"
    assert convert.cpu_max(-1, 100000) == "max 100000"
    assert convert.cpu_max(50000, None) == "50000"
    assert convert.cpu_max(0, 250000) == "max 250000"


def test_cpu_lists_round_trip():
    assert convert.parse_cpu_list("0-2,4,7-8") == [0, 1, 2, 4, 7, 8]
    assert convert.format_cpu_list([8, 0, 1, 2, 4, 7]) == "0-2,4,7-8"
    assert convert.format_cpu_list([]) == ""
    for bad in ("a", "1-", "3-1", "0,,1", "-1"):
        with pytest.raises(ValueError):
            convert.parse_cpu_list(bad)


@pytest.mark.parametrize("text,value", [
    ("4096", 4096), ("512m", 512 << 20), ("512M", 512 << 20), ("1g", 1 << 30), ("1.5GiB", 3 << 29),
    ("64kb", 64 << 10), ("2 mb", 2 << 20),
])
def test_ram_in_bytes(text, value):
    assert convert.ram_in_bytes(text) == value


@pytest.mark.parametrize("bad", ["", "m", "12x", "-5", "1..2g"])
def test_ram_in_bytes_rejects(bad):
    with pytest.raises(ValueError):
        convert.ram_in_bytes(bad)


def test_hugepage_names():
    assert convert.hugepage_size_bytes("2MB") == 2 << 20
    assert convert.hugepage_size_name(1 << 30) == "1GB"
    assert convert.hugepage_size_name(64 << 10) == "64KB"
    with pytest.raises(ValueError):
        convert.hugepage_size_bytes("2M")


def test_host_hugepage_sizes(tmp_path):
    (tmp_path / "hugepages-2048kB").mkdir()
    (tmp_path / "hugepages-1048576kB").mkdir()
    assert convert.host_hugepage_sizes(str(tmp_path)) == ["2MB", "1GB"]
    assert convert.host_hugepage_sizes(str(tmp_path / "missing")) == []


def test_limits_text():
    assert convert.limit_text(-1) == "max"
    assert convert.limit_text(1234) == "1234"
    assert convert.parse_limit("max\n") == -1
    assert convert.parse_limit("77\n") == 77
