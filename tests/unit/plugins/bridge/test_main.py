"""The bridge plugin's executable (pyruntime.plugins.bridge.main) without root: every malformed
input gives its CNI error code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyruntime.cni import version
from tests.support import repo_env
from tests.unit.plugins.bridge.support import conf

PLUGIN = [sys.executable, "-m", "pyruntime.plugins.bridge"]


def run_plugin(stdin, **env):
    base = {k: v for k, v in repo_env().items() if not k.startswith("CNI_")}
    base.update(env)
    data = stdin if isinstance(stdin, (bytes, str)) else json.dumps(stdin)
    proc = subprocess.run(PLUGIN, input=data if isinstance(data, bytes) else data.encode(),
                          env=base, capture_output=True, timeout=30)
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr.decode()


ADD_ENV = dict(CNI_COMMAND="ADD", CNI_CONTAINERID="c1", CNI_NETNS="/nonexistent/netns",
               CNI_IFNAME="eth0", CNI_PATH="/nonexistent")


# -- through the executable: every malformed input gives its CNI error code ------------------------

def test_version_command_lists_supported_versions():
    rc, out, _ = run_plugin({"cniVersion": "0.4.0"}, CNI_COMMAND="VERSION")
    assert rc == 0
    assert out["cniVersion"] == "0.4.0"
    assert {"0.4.0", "1.0.0", "1.1.0"} <= set(out["supportedVersions"])


@pytest.mark.parametrize("stdin, env, code", [
    (b"{not json", ADD_ENV, 6),
    (b"[1, 2]", ADD_ENV, 6),
    (conf(), {k: v for k, v in ADD_ENV.items() if k != "CNI_CONTAINERID"}, 4),
    (conf(), {k: v for k, v in ADD_ENV.items() if k != "CNI_NETNS"}, 4),
    (conf(), {k: v for k, v in ADD_ENV.items() if k != "CNI_IFNAME"}, 4),
    (conf(), {k: v for k, v in ADD_ENV.items() if k != "CNI_COMMAND"}, 4),
    (conf(), dict(ADD_ENV, CNI_COMMAND="FROB"), 4),
    (conf(), dict(ADD_ENV, CNI_CONTAINERID="bad/id"), 4),
    (conf(), dict(ADD_ENV, CNI_IFNAME="much-too-long-ifname"), 4),
    (conf(), dict(ADD_ENV, CNI_ARGS="IP"), 4),
    (conf(cniVersion="9.9.9"), ADD_ENV, 1),
    (conf(cniVersion="one"), ADD_ENV, 7),
    (conf(name="bad name"), ADD_ENV, 7),
    (conf(ipam={"type": "pyruntime-bridge", "subnet": "10.1.2.300/24"}), ADD_ENV, 7),
    (conf(ipam={"type": "pyruntime-bridge", "subnet": "10.1.2.0/31"}), ADD_ENV, 7),
    (conf(ipam={"type": "pyruntime-bridge", "subnet": "10.1.2.0/24", "rangeStart": "10.9.9.9"}), ADD_ENV, 7),
    (conf(runtimeConfig={"portMappings": [{"hostPort": 70000, "containerPort": 80}]}), ADD_ENV, 7),
    (conf(runtimeConfig={"portMappings": [{"hostPort": 80, "containerPort": 0}]}), ADD_ENV, 7),
    (conf(runtimeConfig={"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]}), ADD_ENV, 7),
    (conf(runtimeConfig={"portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": "nope"}]}), ADD_ENV, 7),
    (conf(mtu="big"), ADD_ENV, 7),
    (conf(isGateway="yes"), ADD_ENV, 7),
    (conf(vlan=12), ADD_ENV, 2),
    (conf(firewallBackend="pf"), ADD_ENV, 7),
    (conf(), ADD_ENV, 4),                                   # the netns path does not exist
    (conf(cniVersion="0.3.1"), dict(ADD_ENV, CNI_COMMAND="CHECK"), 1),
    (conf(cniVersion="1.0.0"), dict(ADD_ENV, CNI_COMMAND="GC"), 1),
])
def test_malformed_input_gives_cni_error(stdin, env, code):
    rc, out, err = run_plugin(stdin, **env)
    assert rc != 0
    assert out["code"] == code, out
    assert out["msg"]
    assert "Traceback" not in err


def test_netns_path_that_is_not_a_netns(tmp_path):
    not_netns = tmp_path / "netns"
    not_netns.write_text("")
    rc, out, err = run_plugin(conf(), **dict(ADD_ENV, CNI_NETNS=str(not_netns)))
    assert rc != 0 and out["code"] == 4 and "Traceback" not in err


@pytest.mark.parametrize("kind, what", [
    ("file", "an ordinary file"), ("directory", "a directory"), ("fifo", "a FIFO"),
    ("device", "a device"), ("mount namespace", "a mount namespace"),
])
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_netns_must_be_a_network_namespace_file(tmp_path, kind, what, command):
    """Only nsfs files of network namespaces; a FIFO or device is never opened for real (a
    FIFO would block the plugin for good)."""
    import os
    path = {"file": tmp_path / "plain", "directory": tmp_path, "fifo": tmp_path / "fifo",
            "device": "/dev/null", "mount namespace": "/proc/self/ns/mnt"}[kind]
    if kind == "file":
        path.write_text("")
    elif kind == "fifo":
        os.mkfifo(path)
    stdin = conf(prevResult={"cniVersion": "1.1.0", "interfaces": [], "ips": []})
    rc, out, err = run_plugin(stdin, **dict(ADD_ENV, CNI_COMMAND=command, CNI_NETNS=str(path)))
    assert rc != 0 and out["code"] == 4, out
    assert out["msg"] == "CNI_NETNS is not a network namespace" and what in out["details"], out
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["STATUS", "GC", "ADD"])
def test_ipam_type_outside_cni_path_is_refused_and_never_run(tmp_path, command):
    """STATUS and GC run a foreign IPAM plugin without a netns: the one place a path in
    ipam.type would run at once."""
    mark = tmp_path / "evil-ran"
    evil = tmp_path / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {mark}\necho '{{}}'\n")
    evil.chmod(0o755)
    plugins = tmp_path / "bin"
    plugins.mkdir()
    env = dict(ADD_ENV, CNI_COMMAND=command, CNI_PATH=str(plugins))
    for name in (str(evil), "../evil", ".."):
        rc, out, err = run_plugin(conf(ipam={"type": name}), **env)
        assert rc != 0 and out["code"] == 7 and out["msg"] == "invalid plugin name", out
        assert repr(name) in out["details"] and "Traceback" not in err
        assert not mark.exists()


DEEP = 100000


@pytest.mark.parametrize("stdin, detail", [
    (b"[" * DEEP + b"]" * DEEP, "nested more than 100 levels deep"),
    (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nested more than 100 levels deep"),
    # deep inside an otherwise valid config, and just deep enough to decode but not to be used
    (json.dumps(conf(args={"x": "@"})).replace('"@"', "[" * DEEP + "]" * DEEP).encode(), "nested more than 100"),
    (json.dumps(conf(args={"x": "@"})).replace('"@"', "[" * 500 + "]" * 500).encode(), "nested more than 100"),
    (b'{"cniVersion": "1.1.0", "name": "n\xff"}', "not UTF-8: invalid byte 0xff at offset 34"),
    (b"\xef\xbb\xbf" + json.dumps(conf()).encode(), "not valid JSON"),             # a BOM
    (json.dumps(conf(mtu="@")).replace('"@"', "NaN").encode(), "NaN is not a JSON value"),
    (json.dumps(conf(bridge="\ud800")).encode(), "lone UTF-16 surrogate"),
    (b"", "not valid JSON"),
    (b"null", "expected a JSON object, got NoneType"),
    (b'"a string"', "expected a JSON object, got str"),
    (b"[]", "expected a JSON object, got list"),
    (b"42", "expected a JSON object, got int"),
    (b" " * (16 * 1024 * 1024 + 1), "stdin is larger than 16777216 bytes"),
])
@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_undecodable_stdin_is_error_6_without_a_traceback(stdin, detail, command):
    rc, out, err = run_plugin(stdin, **dict(ADD_ENV, CNI_COMMAND=command))
    assert rc == 1
    assert out["code"] == 6 and out["msg"] == "failed to decode network configuration", out
    assert detail in out["details"], out
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_version_answers_even_when_stdin_is_undecodable():
    rc, out, err = run_plugin(b"[" * DEEP, CNI_COMMAND="VERSION")
    assert rc == 0 and out["cniVersion"] == version.CURRENT and "Traceback" not in err


@pytest.mark.parametrize("key, value", [
    ("dns", "8.8.8.8"), ("args", "x"), ("args", {"cni": "x"}), ("args", {"cni": {"ips": 5}}),
    ("runtimeConfig", [1]), ("runtimeConfig", {"ips": 5}), ("runtimeConfig", {"ips": [5]}),
    ("runtimeConfig", {"mac": 5}), ("ipam", {"type": "pyruntime-bridge", "subnet": "10.9.0.0/24", "routes": 5}),
    ("prevResult", {"cniVersion": "1.1.0", "ips": "x"}), ("prevResult", {"interfaces": [5]}),
])
def test_values_of_the_wrong_json_type_are_config_errors(key, value):
    rc, out, err = run_plugin(conf(**{key: value}), **ADD_ENV)
    assert rc == 1 and out["code"] in (6, 7), out
    assert "Traceback" not in err


def test_error_echoes_the_callers_version():
    rc, out, _ = run_plugin(conf(cniVersion="0.4.0", vlan=3), **ADD_ENV)
    assert rc == 1 and out["cniVersion"] == "0.4.0" and out["code"] == 2


def test_status_reports_unusable_ipam_store(tmp_path):
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/nonexistent"}
    good = conf(ipam={"type": "pyruntime-bridge", "subnet": "10.123.0.0/24", "dataDir": str(tmp_path)})
    rc, out, err = run_plugin(good, **env)
    assert rc == 0 and out is None, (out, err)
    bad = conf(ipam={"type": "pyruntime-bridge", "subnet": "10.123.0.0/24", "dataDir": "/dev/null/leases"})
    rc, out, _ = run_plugin(bad, **env)
    assert rc != 0 and out["code"] == 50


def test_gc_validates_attachments():
    rc, out, _ = run_plugin(conf(**{"cni.dev/valid-attachments": [{"containerID": 5}]}),
                            CNI_COMMAND="GC", CNI_PATH="/nonexistent")
    assert rc != 0 and out["code"] == 7
