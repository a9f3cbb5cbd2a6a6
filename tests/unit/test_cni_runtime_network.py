"""Network modes, port publications, hosts/resolv.conf rendering and `spec --network`."""

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.network import files, modes
from pyruntime.network.config import DEFAULT_CONFLIST, find_network
from pyruntime.network.spec import HOOK_MARKER, apply_network
from tests.support import container_config


@pytest.mark.parametrize("text, kind, target", [
    (None, "bridge", "pyruntime"), ("bridge", "bridge", "pyruntime"), ("bridge:lab", "bridge", "lab"),
    ("host", "host", ""), ("none", "none", ""), ("container:web-1", "container", "web-1"),
])
def test_parse_mode(text, kind, target):
    assert modes.parse_mode(text) == modes.NetworkMode(kind, target)


@pytest.mark.parametrize("text", ["bridged", "host:x", "container:", "container:a/b", "bridge:../x"])
def test_parse_mode_rejects(text):
    with pytest.raises(RuntimeUserError):
        modes.parse_mode(text)


@pytest.mark.parametrize("text, mapping", [
    ("8080:80", {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}),
    ("127.0.0.1:8443:443", {"hostPort": 8443, "containerPort": 443, "protocol": "tcp", "hostIP": "127.0.0.1"}),
    ("53:53/UDP", {"hostPort": 53, "containerPort": 53, "protocol": "udp"}),
    ("[::1]:8080:80/tcp", {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "::1"}),
])
def test_parse_publish(text, mapping):
    assert modes.parse_publish(text) == mapping
    assert modes.parse_publish(modes.format_publish(mapping)) == mapping


@pytest.mark.parametrize("text, message", [
    ("80", "expected"), ("0:80", "host port"), ("8080:70000", "container port"),
    ("8080:80/icmp", "protocol"), ("abc:8080:80", "not an IP"), ("1:2:3:4", "expected"),
])
def test_parse_publish_rejects(text, message):
    with pytest.raises(RuntimeUserError, match=message):
        modes.parse_publish(text)


def test_publish_list_from_annotation():
    assert [m["hostPort"] for m in modes.parse_publish_list("1:2, 3:4/udp,")] == [1, 3]
    assert modes.parse_publish_list(None) == []


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


def test_find_network(tmp_path):
    assert find_network("pyruntime", [str(tmp_path)]) is DEFAULT_CONFLIST
    (tmp_path / "lab.conflist").write_text(
        '{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"bridge"}]}')
    assert find_network("lab", [str(tmp_path)])["plugins"][0]["type"] == "bridge"
    (tmp_path / "odd.conflist").write_text('{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"b"}]}')
    with pytest.raises(RuntimeUserError, match="named 'lab', not 'odd'"):
        find_network("odd", [str(tmp_path)])
    with pytest.raises(RuntimeUserError, match="network 'nope' not found"):
        find_network("nope", [str(tmp_path)])


def netns_entries(config):
    return [ns for ns in config["linux"]["namespaces"] if ns["type"] == "network"]


def test_apply_bridge_adds_hooks_annotations_and_netns():
    base = container_config(["true"])
    config = apply_network(base, "bridge:lab", ["127.0.0.1:8080:80", "53:53/udp"], "/usr/bin/hook",
                           config_dirs=["/etc/x"], cni_path=["/opt/a", "/opt/b"], timeout=7)
    assert base == container_config(["true"])  # the input is not modified
    assert config["annotations"] == {"io.pyruntime.network": "bridge:lab",
                                     "io.pyruntime.publish": "127.0.0.1:8080:80/tcp,53:53/udp"}
    up, = config["hooks"]["createRuntime"]
    down, = config["hooks"]["poststop"]
    assert up["path"] == down["path"] == "/usr/bin/hook"
    assert up["args"] == ["hook", "--config-dir=/etc/x", "--cni-path=/opt/a:/opt/b", "up"]
    assert down["args"][-1] == "down" and up["timeout"] == 7 and HOOK_MARKER in up["env"]
    assert netns_entries(config) == [{"type": "network"}]


def test_apply_slirp4netns_adds_the_hook_with_its_ports_and_a_netns():
    config = apply_network(container_config(["true"]), "slirp4netns", ["127.0.0.1:8080:80"], "/h")
    assert config["annotations"] == {"io.pyruntime.network": "slirp4netns",
                                     "io.pyruntime.publish": "127.0.0.1:8080:80/tcp"}
    assert [h["args"][-1] for h in config["hooks"]["createRuntime"] + config["hooks"]["poststop"]] == ["up", "down"]
    assert netns_entries(config) == [{"type": "network"}]
    with pytest.raises(RuntimeUserError, match="--publish needs a bridge or slirp4netns network"):
        apply_network(container_config(["true"]), "none", ["8080:80"], "/h")


def test_apply_again_replaces_the_previous_choice():
    config = apply_network(container_config(["true"]), "bridge", ["8080:80"], "/h")
    config = apply_network(config, "host", (), "/h")
    assert "hooks" not in config
    assert config["annotations"] == {"io.pyruntime.network": "host"}
    assert netns_entries(config) == []
    assert [m["destination"] for m in config["mounts"][-2:]] == ["/etc/hosts", "/etc/resolv.conf"]
    config = apply_network(config, "none", (), "/h")
    assert netns_entries(config) == [{"type": "network"}]
    assert not any(m["destination"] == "/etc/hosts" for m in config["mounts"])


def test_apply_container_joins_the_named_netns():
    config = apply_network(container_config(["true"]), "container:web", (), "/h")
    assert netns_entries(config) == [{"type": "network", "path": "/run/netns/web"}]
    assert "hooks" not in config
    assert [(m["source"], m["destination"]) for m in config["mounts"][-2:]] == [
        ("/run/pyruntime-network/web/hosts", "/etc/hosts"),
        ("/run/pyruntime-network/web/resolv.conf", "/etc/resolv.conf")]
    config = apply_network(config, "bridge", (), "/h")
    assert not any(m["destination"] == "/etc/hosts" for m in config["mounts"])


def test_apply_refuses_publish_without_bridge_and_relative_hook():
    with pytest.raises(RuntimeUserError, match="--publish needs a bridge"):
        apply_network(container_config(["true"]), "none", ["80:80"], "/h")
    with pytest.raises(RuntimeUserError, match="absolute"):
        apply_network(container_config(["true"]), "bridge", (), "hooks/x")


def test_hook_reports_bad_input_in_one_line(monkeypatch, capsys):
    import io

    from pyruntime.network import hook

    monkeypatch.setattr("sys.stdin", io.StringIO("not json"))
    assert hook.main(["up"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pyruntime-network-hook up: the container state on stdin is not JSON")
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": "c", "annotations": {"io.pyruntime.network": "mesh"}}'))
    assert hook.main(["down"]) == 1
    assert "expected bridge, bridge:<name>, slirp4netns, host, none or container:<id>" in capsys.readouterr().err


def test_hook_does_nothing_outside_bridge_mode(monkeypatch):
    import io

    from pyruntime.network import hook

    for mode in ("host", "none", "container:x"):
        state = {"id": "c", "pid": 1, "annotations": {"io.pyruntime.network": mode}}
        monkeypatch.setattr("sys.stdin", io.StringIO(__import__("json").dumps(state)))
        assert hook.main(["up"]) == 0


@pytest.mark.parametrize("stdin", [b"[" * 100000 + b"]" * 100000,
                                   b'{"id": "c", "annotations": ' + b"[" * 100000 + b"]" * 100000 + b"}",
                                   b'{"id": "c\xff"}', b" " * (16 * 1024 * 1024 + 1)])
def test_hook_reports_undecodable_state_in_one_line(stdin):
    """Through the bundled hook executable, as the runtime runs it."""
    import subprocess
    from pathlib import Path

    hook = Path(__file__).resolve().parents[2] / "hooks" / "pyruntime-network"
    proc = subprocess.run([str(hook), "up"], input=stdin, capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert err.startswith("pyruntime-network-hook up: the container state on stdin is not JSON: "), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_deep_conflist_in_the_config_dir_is_one_clear_error(tmp_path):
    (tmp_path / "deep.conflist").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(RuntimeUserError, match=r"deep.conflist: nested more than 100 levels deep"):
        find_network("deep", [str(tmp_path)])
