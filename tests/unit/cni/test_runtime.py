"""The CNI runtime against small fake plugins (shell scripts that record what they got)."""

import json
import stat

import pytest

from pyruntime.cni import runtime as cni
from pyruntime.cni.errors import INVALID_CONFIG, CniError
from pyruntime.cni.runtime import CNIRuntime

CONFLIST = {
    "cniVersion": "1.0.0", "name": "testnet",
    "plugins": [
        {"type": "first", "ipam": {"type": "host-local"}},
        {"type": "second", "capabilities": {"portMappings": True, "bandwidth": False}},
    ],
}


def make_plugin(directory, name, body="") -> None:
    """A plugin that appends `<name> <command> <stdin>` to $LOG and prints a result naming
    itself (or runs `body` instead of printing)."""
    path = directory / name
    default = ('printf \'{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/24"}],'
               f'"by":"{name}"}}\'')
    path.write_text(
        "#!/bin/sh\n"
        "input=$(cat)\n"
        f"printf '%s %s %s %s %s\\n' {name} \"$CNI_COMMAND\" \"$CNI_NETNS\" \"$CNI_IFNAME\" "
        "\"$CNI_CONTAINERID\" >> \"$LOG\"\n"
        f"printf '%s\\n' \"$input\" > \"$LOG.{name}.$CNI_COMMAND\"\n"
        + (body or default) + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def env(tmp_path, monkeypatch):
    plugins = tmp_path / "bin"
    plugins.mkdir()
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    runtime = CNIRuntime([str(tmp_path / "missing"), str(plugins)], str(tmp_path / "cache"), timeout=5)
    return plugins, log, runtime, tmp_path


def calls(log):
    return [line.split()[:2] for line in log.read_text().splitlines()] if log.exists() else []


def stdin_of(log, plugin, command):
    return json.loads(open(f"{log}.{plugin}.{command}").read())


def test_add_runs_plugins_in_order_with_prev_result_and_capabilities(env):
    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first")
    make_plugin(plugins, "second")
    netns = str(tmp / "ns")
    open(netns, "w").close()
    ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    result = runtime.add(CONFLIST, "c1", netns, "eth0", capability_args={"portMappings": ports, "bandwidth": {}})
    assert result["by"] == "second"
    assert calls(log) == [["first", "ADD"], ["second", "ADD"]]
    first = stdin_of(log, "first", "ADD")
    assert first["name"] == "testnet" and first["cniVersion"] == "1.0.0"
    assert "prevResult" not in first and "runtimeConfig" not in first
    second = stdin_of(log, "second", "ADD")
    assert second["prevResult"]["by"] == "first"
    assert second["runtimeConfig"] == {"portMappings": ports}  # bandwidth is not enabled
    line = log.read_text().splitlines()[0].split()
    assert line[2:] == [netns, "eth0", "c1"]
    cache = json.loads((tmp / "cache" / "testnet-c1-eth0.json").read_text())
    assert cache["result"]["by"] == "second" and cache["config"] == CONFLIST


def test_del_runs_in_reverse_with_cached_result_and_removes_cache(env):
    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first")
    make_plugin(plugins, "second")
    runtime.add(CONFLIST, "c1", "/proc/self/ns/net", capability_args={"portMappings": []})
    log.unlink()
    runtime.delete(CONFLIST, "c1", "/proc/self/ns/net")
    assert calls(log) == [["second", "DEL"], ["first", "DEL"]]
    assert stdin_of(log, "first", "DEL")["prevResult"]["by"] == "second"
    assert stdin_of(log, "second", "DEL")["prevResult"]["by"] == "second"
    assert not (tmp / "cache" / "testnet-c1-eth0.json").exists()


def test_del_without_cache_or_netns_still_runs_every_plugin(env):
    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first")
    make_plugin(plugins, "second")
    runtime.delete(CONFLIST, "gone", str(tmp / "no-such-netns"))
    assert calls(log) == [["second", "DEL"], ["first", "DEL"]]
    assert "prevResult" not in stdin_of(log, "first", "DEL")
    # an absent namespace is passed as an empty CNI_NETNS
    assert log.read_text().splitlines()[0].split()[2] == "eth0"


def test_del_uses_cached_config_over_the_given_one(env):
    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first")
    make_plugin(plugins, "second")
    runtime.add(CONFLIST, "c2", "/proc/self/ns/net")
    log.unlink()
    runtime.delete(None, "c2", "", network="testnet")
    assert calls(log) == [["second", "DEL"], ["first", "DEL"]]


def test_plugin_error_json_becomes_a_clear_error_and_add_rolls_back(env):
    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first")
    make_plugin(plugins, "second", body='printf \'{"cniVersion":"1.0.0","code":11,'
                '"msg":"no more addresses","details":"range full"}\'; exit 1')
    with pytest.raises(CniError) as err:
        runtime.add(CONFLIST, "c3", "/proc/self/ns/net")
    text = str(err.value)
    assert "second" in text and "ADD" in text and "no more addresses" in text and "range full" in text
    assert err.value.code == 11 and err.value.plugin == "second"
    # rollback: DEL for the whole list, in reverse
    assert calls(log) == [["first", "ADD"], ["second", "ADD"], ["second", "DEL"], ["first", "DEL"]]
    assert not (tmp / "cache" / "testnet-c3-eth0.json").exists()


def test_plugin_failing_without_json_reports_stderr(env):
    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first", body="echo 'cannot create bridge' >&2; exit 2")
    make_plugin(plugins, "second")
    with pytest.raises(CniError, match="first ADD failed: cannot create bridge"):
        runtime.add(CONFLIST, "c4", "/proc/self/ns/net")


def test_plugin_timeout_kills_it(env):
    import time

    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first", body="sleep 30 & echo $! > \"$LOG.sleeper\"; wait")
    make_plugin(plugins, "second")
    runtime.timeout = 1.5
    with pytest.raises(CniError, match="first ADD timed out after 1.5s"):
        runtime.add(CONFLIST, "c5", "/proc/self/ns/net")
    sleeper = int(open(f"{log}.sleeper").read())

    def alive() -> bool:
        try:
            return open(f"/proc/{sleeper}/stat").read().split()[2] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive()  # the plugin's whole process group was killed


def test_missing_plugin_is_named(env):
    plugins, log, runtime, tmp = env
    with pytest.raises(CniError, match="CNI plugin 'first' not found in .*missing"):
        runtime.add(CONFLIST, "c6", "/proc/self/ns/net")


def test_check_uses_cached_result(env):
    plugins, log, runtime, tmp = env
    make_plugin(plugins, "first", body="true")
    make_plugin(plugins, "second")
    with pytest.raises(CniError, match="no cached result"):
        runtime.check(CONFLIST, "c7", "/proc/self/ns/net")
    runtime.add(CONFLIST, "c7", "/proc/self/ns/net")
    runtime.check(CONFLIST, "c7", "/proc/self/ns/net")
    assert stdin_of(log, "first", "CHECK")["prevResult"]["by"] == "second"


@pytest.mark.parametrize("doc, message", [
    ("{", "not valid JSON"),
    ([], "JSON object"),
    ({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}, "'name'"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": []}, "non-empty list"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"ipam": {}}]}, r"plugins\[0\] needs a 'type'"),
    ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../x"}]}, "invalid plugin name: '../x'"),
])
def test_conflist_validation(doc, message):
    with pytest.raises(CniError, match=message):
        cni.parse_conflist(doc if isinstance(doc, str) else json.dumps(doc))


def test_single_network_config_becomes_a_list():
    conflist = cni.parse_conflist({"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "b"})
    assert conflist == {"cniVersion": "0.4.0", "name": "n", "plugins": [{"type": "bridge", "bridge": "b"}]}


def test_plugin_env_carries_the_protocol_variables():
    env = cni.plugin_env("ADD", "c", "/run/netns/c", "eth0", ["/a", "/b"], "K=V", base={})
    assert env == {"PATH": cni.SANE_PATH, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c",
                   "CNI_NETNS": "/run/netns/c", "CNI_IFNAME": "eth0", "CNI_ARGS": "K=V",
                   "CNI_PATH": "/a:/b"}


def test_plugin_config_keeps_static_runtime_config_and_adds_capabilities():
    plugin = {"type": "p", "runtimeConfig": {"mac": "aa"}, "capabilities": {"portMappings": True}}
    conf = cni.plugin_config({"name": "n", "cniVersion": "1.0.0"}, plugin, {"ips": []},
                             {"portMappings": [1]})
    assert conf["runtimeConfig"] == {"mac": "aa", "portMappings": [1]}
    assert conf["prevResult"] == {"ips": []} and conf["name"] == "n"


BAD_PLUGIN_NAMES = ["../evil", "/bin/sh", "sub/plugin", "..", ".", "nul\0byte", "x" * 256]


@pytest.mark.parametrize("name", BAD_PLUGIN_NAMES)
def test_conflist_refuses_plugin_types_that_are_not_bare_names(name):
    for plugin in ({"type": name}, {"type": "bridge", "ipam": {"type": name}}):
        doc = {"cniVersion": "1.0.0", "name": "n", "plugins": [plugin]}
        with pytest.raises(CniError, match="invalid plugin name") as caught:
            cni.parse_conflist(doc)
        assert caught.value.code == INVALID_CONFIG


def evil_plugin(tmp) -> tuple:
    """An executable outside CNI_PATH that leaves a mark when it runs."""
    mark = tmp / "evil-ran"
    evil = tmp / "evil"
    evil.write_text(f"#!/bin/sh\ntouch {mark}\necho '{{}}'\n")
    evil.chmod(0o755)
    return evil, mark


def test_plugin_outside_cni_path_is_never_run(env):
    """Lists that skipped parse_conflist (a caller's dict, the cache DEL reads) are checked
    where the plugin is looked up."""
    plugins, log, runtime, tmp = env
    evil, mark = evil_plugin(tmp)
    for name in ("../evil", str(evil)):
        conflist = {"cniVersion": "1.0.0", "name": "testnet", "plugins": [{"type": name}]}
        with pytest.raises(CniError, match="invalid plugin name") as caught:
            runtime.add(conflist, "c9", "/proc/self/ns/net")
        assert caught.value.code == INVALID_CONFIG
        runtime._write_cache("testnet", "c9", "eth0", {"config": conflist, "result": {}})
        with pytest.raises(CniError, match="invalid plugin name"):
            runtime.delete(None, "c9", "", network="testnet")
        assert not mark.exists()
    assert cni.find_plugin("evil", [str(tmp)]) == str(evil)        # a bare name still works


DEEP = "[" * 100000 + "]" * 100000


@pytest.mark.parametrize("text", [DEEP, "[" * 500 + "]" * 500,
                                  '{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x", "a": %s}]}' % DEEP])
def test_deeply_nested_conflist_is_a_clear_error(tmp_path, text):
    path = tmp_path / "n.conflist"
    path.write_text(text)
    with pytest.raises(CniError, match="nested more than 100 levels deep") as caught:
        cni.load_conflist(str(path))
    assert str(caught.value).startswith(str(path)) and caught.value.code == INVALID_CONFIG
    with pytest.raises(CniError, match="nested more than 100 levels deep"):     # a caller's dict too
        cni.parse_conflist({"cniVersion": "1.0.0", "name": "n",
                            "plugins": [{"type": "x", "a": __import__("json").loads("[" * 500 + "]" * 500)}]})


def test_deeply_nested_plugin_output_and_cache_are_refused(env):
    plugins, log, runtime, tmp = env
    deep_file = tmp / "deep.json"
    deep_file.write_text(DEEP)
    make_plugin(plugins, "first", body=f"cat {deep_file}")
    make_plugin(plugins, "second")
    with pytest.raises(CniError, match="first ADD printed something that is not a JSON object") as caught:
        runtime.add(CONFLIST, "c10", "/proc/self/ns/net")
    assert caught.value.code == 6
    # a cache file that cannot be decoded is as good as none: DEL still runs every plugin
    runtime._write_cache("testnet", "c10", "eth0", {})
    (tmp / "cache" / cni.cache_name("testnet", "c10", "eth0")).write_text(DEEP)
    assert runtime.cached("testnet", "c10", "eth0") is None
    make_plugin(plugins, "first")
    runtime.delete(CONFLIST, "c10", "")
    assert ["first", "DEL"] in calls(log) and ["second", "DEL"] in calls(log)
