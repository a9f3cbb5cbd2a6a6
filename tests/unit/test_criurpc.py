"""criu's RPC protocol (pyruntime.criurpc): protobuf messages, notifications, failures."""

import json

import pytest

from pyruntime.errors import RuntimeUserError

# -- criu's RPC messages -----------------------------------------------------------------------
# Written by protobuf itself (python3-protobuf with criu's own rpc_pb2) from the same fields.
RESTORE_REQUEST_WIRE = (
    "080212e10108044804520b726573746f72652e6c6f675a0c0a0831302e302e302e31101b6a102f72756e2f78"
    "2f637269752d726f6f74880105ba01160a092f6465762f6e756c6c12092f6465762f6e756c6cba01120a052f"
    "6461746112092f7372762f64617461c00101ca01170a066d656d6f7279120d2f707972756e74696d652f6331"
    "d00101da010f0a0b706970653a5b313233345d1001900205aa021c6e65745b343032363533323030385d3a65"
    "7874526f6f744e65744e53b0028080808004ba02150a03697063120e2f70726f632f312f6e732f6970638803"
    "ffffffffffffffffff01")


def test_requests_are_encoded_as_protobuf_encodes_them():
    from pyruntime import criurpc

    request = {"type": criurpc.RESTORE, "opts": {
        "images_dir_fd": 4, "work_dir_fd": 5, "log_level": 4, "log_file": "restore.log",
        "root": "/run/x/criu-root", "rst_sibling": True, "manage_cgroups": True,
        "manage_cgroups_mode": criurpc.CGROUP_MODES["strict"], "empty_ns": 0x40000000,
        "ext_mnt": [{"key": "/dev/null", "val": "/dev/null"}, {"key": "/data", "val": "/srv/data"}],
        "inherit_fd": [{"key": "pipe:[1234]", "fd": 1}],
        "cg_root": [{"ctrl": "memory", "path": "/pyruntime/c1"}],
        "join_ns": [{"ns": "ipc", "ns_file": "/proc/1/ns/ipc"}],
        "external": ["net[4026532008]:extRootNetNS"], "status_fd": -1,
        "ps": {"address": "10.0.0.1", "port": 27}, "lsm_profile": None}}
    assert criurpc.encode("criu_req", request).hex() == RESTORE_REQUEST_WIRE


@pytest.mark.parametrize("wire,expected", [
    ("080110001a02080038fdffffffffffffffff014a0c6e6f2073756368207461736b",
     {"type": 1, "success": False, "dump": {"restored": False}, "cr_errno": -3,
      "cr_errmsg": "no such task"}),
    ("080610012a150a1073657475702d6e616d65737061636573109221",
     {"type": 6, "success": True, "notify": {"script": "setup-namespaces", "pid": 4242}}),
    ("080a10015209080310111a01782001",
     {"type": 10, "success": True,
      "version": {"major_number": 3, "minor_number": 17, "gitid": "x", "sublevel": 1}}),
])
def test_answers_are_decoded(wire, expected):
    from pyruntime import criurpc

    assert criurpc.decode("criu_resp", bytes.fromhex(wire)) == expected


def test_undescribed_fields_are_skipped_and_truncation_is_an_error():
    from pyruntime import criurpc

    # field 11 (status, not described) and a fixed32 field 15 before `success`
    data = bytes.fromhex("0801" "5807" "7d01020304" "1001")
    assert criurpc.decode("criu_resp", data) == {"type": 1, "success": True}
    with pytest.raises(ValueError):
        criurpc.decode("criu_resp", bytes.fromhex("4a0c6e6f"))


def test_a_failed_answer_names_the_first_error_of_the_log(tmp_path):
    from pyruntime import criurpc

    log = tmp_path / "dump.log"
    log.write_text("(00.01) Version: 3.17.1\n(00.02) Error (criu/vdso.c:381): vdso: bad bounds\n"
                   "(00.03) Error (criu/kerndat.c:1615): kerndat failed\n")
    message = criurpc.failure_message(criurpc.DUMP, {"success": False, "cr_errno": 0}, str(log))
    assert message == f"criu failed: type DUMP errno 0 (vdso: bad bounds); log file: {log}"
    assert criurpc.failure_message(criurpc.RESTORE, {"cr_errno": 2, "cr_errmsg": "gone"}, None) \
        == "criu failed: type RESTORE errno 2 (gone)"


FAKE_CRIU = """\
import json, os, socket, sys
sock = socket.socket(fileno=int(sys.argv[2]))
got = [sock.recv(65536).hex()]
for hexed in json.loads(os.environ["ANSWERS"]):
    answer = bytes.fromhex(hexed)
    if answer[:2] == bytes([8, 6]):        # a notification: an fd along, then wait for the ack
        r, w = os.pipe()
        os.write(w, b"from criu")
        os.close(w)
        socket.send_fds(sock, [answer], [r])
        os.close(r)
        got.append(sock.recv(65536).hex())
    else:
        sock.send(answer)
open(os.environ["RECORD"], "w").write(json.dumps(got))
"""


def test_notifications_are_answered_until_the_final_answer(tmp_path, monkeypatch):
    import os
    import sys

    from pyruntime import criurpc

    fake = tmp_path / "criu"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_CRIU)
    fake.chmod(0o755)
    answers = [criurpc.encode("criu_resp", a) for a in (
        {"type": criurpc.NOTIFY, "success": True, "notify": {"script": "setup-namespaces", "pid": 41}},
        {"type": criurpc.NOTIFY, "success": True, "notify": {"script": "post-restore", "pid": 42}},
        {"type": criurpc.RESTORE, "success": True, "restore": {"pid": 42}})]
    monkeypatch.setenv("ANSWERS", json.dumps([a.hex() for a in answers]))
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    seen = []

    def on_notify(notify, fds):
        seen.append((notify["script"], notify["pid"], os.read(fds[0], 100)))
        assert os.read(fds[0], 100) == b""      # the pipe criu sent, and only that

    swrk = criurpc.Swrk(str(fake))
    answer = swrk.call({"type": criurpc.RESTORE, "opts": {"images_dir_fd": 3}}, on_notify)
    swrk.finish(criurpc.RESTORE)
    assert answer["restore"] == {"pid": 42}
    assert seen == [("setup-namespaces", 41, b"from criu"), ("post-restore", 42, b"from criu")]
    request, *acks = json.loads((tmp_path / "record").read_text())
    assert bytes.fromhex(request) == criurpc.encode("criu_req", {"type": criurpc.RESTORE,
                                                                 "opts": {"images_dir_fd": 3}})
    ack = criurpc.encode("criu_req", {"type": criurpc.NOTIFY, "notify_success": True})
    assert [bytes.fromhex(a) for a in acks] == [ack, ack]


def test_a_failed_notification_stops_at_criu_s_first_refusal(tmp_path, monkeypatch):
    import sys

    from pyruntime import criurpc

    fake = tmp_path / "criu"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_CRIU)
    fake.chmod(0o755)
    refusal = criurpc.encode("criu_resp", {"type": criurpc.DUMP, "success": False, "cr_errno": 3})
    monkeypatch.setenv("ANSWERS", json.dumps([refusal.hex()]))
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    swrk = criurpc.Swrk(str(fake), log_path=str(tmp_path / "never-written.log"))
    with pytest.raises(criurpc.CriuFailed) as failed:
        swrk.call({"type": criurpc.DUMP, "opts": {"images_dir_fd": 3}})
    swrk.abort()
    # no log was written for this request: none is named
    assert failed.value.message == "criu failed: type DUMP errno 3"


def test_a_missing_criu_is_one_clear_error(tmp_path):
    from pyruntime import criurpc

    with pytest.raises(RuntimeUserError, match="--criu .*/nope: cannot run it"):
        criurpc.Swrk(str(tmp_path / "nope"))
