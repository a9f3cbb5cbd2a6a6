"""The container's /etc/hosts and resolv.conf (pyruntime.network.files)."""

from pyruntime.network import files

RESULT = {
    "interfaces": [{"name": "br0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.9.0.1/24", "interface": 0}, {"address": "10.9.0.5/24", "interface": 2},
            {"address": "fd00::5/64", "interface": 2}],
    "dns": {"nameservers": ["10.9.0.1"], "search": ["lab"]},
}


def test_hosts_names_the_container_addresses():
    assert files.result_addresses(RESULT) == ["10.9.0.5", "fd00::5"]
    text = files.render_hosts("web", files.result_addresses(RESULT))
    assert "127.0.0.1\tlocalhost\n" in text and "10.9.0.5\tweb\n" in text and "fd00::5\tweb\n" in text


def test_resolv_conf_prefers_the_network_dns():
    host = "nameserver 192.0.2.1\nsearch corp\noptions ndots:2\n"
    assert files.render_resolv_conf(RESULT["dns"], host) == \
        "nameserver 10.9.0.1\nsearch lab\noptions ndots:2\n"


def test_resolv_conf_falls_back_to_host_without_loopback_resolvers():
    host = "# managed\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver ::1\nsearch corp x\n"
    assert files.render_resolv_conf({}, host) == "nameserver 192.0.2.1\nsearch corp x\n"
    assert files.render_resolv_conf(None, "") == ""
