"""The OCI network hook (pyruntime.network.hook): its failures are one line."""

import pytest


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

    hook = Path(__file__).resolve().parents[3] / "hooks" / "pyruntime-network"
    proc = subprocess.run([str(hook), "up"], input=stdin, capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert err.startswith("pyruntime-network-hook up: the container state on stdin is not JSON: "), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
