"""`spec --network` (pyruntime.network.spec): the hooks, annotations and netns a mode puts into a
config."""

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.network.spec import HOOK_MARKER, apply_network
from tests.support import container_config


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
