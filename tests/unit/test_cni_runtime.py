"""The conflist runner's pure parts: list loading and per-plugin configuration."""

from __future__ import annotations

import pytest

from pyruntime.cni import runtime
from pyruntime.cni.errors import CniError

LIST = {"cniVersion": "1.0.0", "name": "net1", "plugins": [
    {"type": "pyruntime-bridge", "bridge": "pyr0", "capabilities": {"portMappings": True, "ips": False}},
    {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.rp_filter": "2"}}]}


def test_plugin_config_gets_name_version_capabilities_and_prev_result():
    caps = {"portMappings": [{"hostPort": 80, "containerPort": 8080}], "ips": ["10.0.0.5"], "mac": "x"}
    first = runtime.plugin_config(LIST, LIST["plugins"][0], None, caps)
    assert first == {"type": "pyruntime-bridge", "bridge": "pyr0", "cniVersion": "1.0.0", "name": "net1",
                     "runtimeConfig": {"portMappings": caps["portMappings"]}}
    second = runtime.plugin_config(LIST, LIST["plugins"][1], {"ips": []}, caps)
    assert second["prevResult"] == {"ips": []} and "runtimeConfig" not in second


def test_load_conflist_accepts_single_plugin_config():
    out = runtime.load_conflist('{"cniVersion": "1.1.0", "name": "n", "type": "pyruntime-bridge", "mtu": 1400}')
    assert out["plugins"] == [{"type": "pyruntime-bridge", "mtu": 1400}]


@pytest.mark.parametrize("bad, code", [
    ("{", 6),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": []}, 7),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}, 7),
    ({"cniVersion": "7.0.0", "name": "n", "plugins": [{"type": "x"}]}, 1),
    ({"cniVersion": "1.0.0", "name": "bad name", "plugins": [{"type": "x"}]}, 7),
])
def test_load_conflist_rejects(bad, code):
    with pytest.raises(CniError) as e:
        runtime.load_conflist(bad)
    assert e.value.code == code


def test_missing_plugin_is_a_config_error(tmp_path):
    with pytest.raises(CniError) as e:
        runtime.find_plugin("nope", [str(tmp_path)])
    assert e.value.code == 7
