"""CLI surface: logs in runc's JSON shape, list, features, version, usage errors."""

import json
import os


def test_json_log_gets_the_error(rt, tmp_path):
    log = tmp_path / "log.json"
    proc = rt("--log", str(log), "--log-format", "json", "start", "missing")
    assert proc.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["level"] == "error"
    assert "missing" in entries[-1]["msg"] and "does not exist" in entries[-1]["msg"]
    assert entries[-1]["time"].endswith("Z")
    assert "does not exist" in proc.stderr


def test_json_log_through_click_path(rt, tmp_path):
    log = tmp_path / "log.json"
    proc = rt("--log", str(log), "--log-format", "json", "list", "--format", "xml")
    assert proc.returncode == 2
    assert json.loads(log.read_text().splitlines()[-1])["level"] == "error"


def test_usage_errors_reach_the_log_too(rt, tmp_path):
    log = tmp_path / "log.json"
    proc = rt("--log", str(log), "--log-format", "json", "frobnicate", "x")
    assert proc.returncode == 2
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "frobnicate" in entry["msg"]
    assert proc.stderr.count("frobnicate") == 1  # shown once, by click


def test_text_log(rt, tmp_path):
    log = tmp_path / "log.txt"
    rt("--log", str(log), "kill", "missing")
    assert 'level=error msg="container \'missing\' does not exist"' in log.read_text()


def test_list_table_and_quiet(rt):
    cid = rt.new_id()
    rt("create", "--bundle", str(rt.bundle(["true"])), cid, check=True)
    table = rt("list", check=True).stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == cid and table[1].split()[2] == "created"
    assert rt("list", "-q", check=True).stdout.split() == [cid]
    rt("delete", cid, check=True)
    assert rt("list", "-q", check=True).stdout == ""


def test_features_is_truthful(rt):
    doc = json.loads(rt("features", check=True).stdout)
    assert doc["ociVersionMax"] == "1.3.0"
    assert set(doc["linux"]["namespaces"]) == {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}
    assert "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]
    assert doc["linux"]["seccomp"]["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in doc["linux"]["seccomp"]["actions"]
    assert doc["linux"]["apparmor"]["enabled"] is False
    assert doc["linux"]["cgroup"]["systemd"] is False
    assert {"rbind", "ro", "rprivate", "nosuid"} <= set(doc["mountOptions"])
    assert set(doc["hooks"]) == {"prestart", "createRuntime", "createContainer", "startContainer",
                                 "poststart", "poststop"}


def test_version_and_usage(rt):
    out = rt("--version", check=True).stdout
    assert out.startswith("pyruntime version") and "spec: 1.3.0" in out
    proc = rt("frobnicate")
    assert proc.returncode == 2 and "No such command" in proc.stderr
    proc = rt("kill")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_state_and_features_validate_against_their_schemas(rt):
    from pyruntime import spec

    cid = rt.new_id()
    rt("create", "--bundle", str(rt.bundle(["true"], annotations={"a": "b"})), cid, check=True)
    spec.validate_document(rt.state(cid), "state")
    rt("start", cid, check=True)
    spec.validate_document(rt.state(cid), "state")
    spec.validate_document(json.loads(rt("features", check=True).stdout), "features")
    rt("delete", "-f", cid, check=True)


def test_spec_command(rt, tmp_path):
    rt("spec", "--bundle", str(tmp_path), check=True)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["process"]["args"] == ["sh"] and config["root"]["path"] == "rootfs"
    proc = rt("spec", "--bundle", str(tmp_path))
    assert proc.returncode != 0 and "exists" in proc.stderr
    rootless = tmp_path / "rootless"
    rootless.mkdir()
    rt("spec", "--rootless", "--bundle", str(rootless), check=True)
    config = json.loads((rootless / "config.json").read_text())
    assert {"type": "user"} in config["linux"]["namespaces"]
    assert config["linux"]["uidMappings"]


def test_spec_writes_networked_configs(rt, tmp_path):
    bridged = tmp_path / "bridged"
    bridged.mkdir()
    rt("spec", "--bundle", str(bridged), "--network", "bridge", "--publish", "127.0.0.1:8080:80/tcp",
       check=True)
    config = json.loads((bridged / "config.json").read_text())
    assert config["annotations"] == {"io.pyruntime.network": "bridge",
                                     "io.pyruntime.publish": "127.0.0.1:8080:80/tcp"}
    up, down = config["hooks"]["createRuntime"][0], config["hooks"]["poststop"][0]
    assert up["args"][1:] == ["up"] and down["args"][1:] == ["down"] and os.access(up["path"], os.X_OK)
    assert {"type": "network"} in config["linux"]["namespaces"]
    for bad, fragment in ((["--network", "bogus"], "network 'bogus'"),
                          (["--network", "bridge", "--publish", "8080:80/xyz"], "protocol")):
        target = tmp_path / bad[-1].replace("/", "_")
        target.mkdir()
        proc = rt("spec", "--bundle", str(target), *bad)
        assert proc.returncode == 1 and fragment in proc.stderr and "Traceback" not in proc.stderr
        assert not (target / "config.json").exists()
