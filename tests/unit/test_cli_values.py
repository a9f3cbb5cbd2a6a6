"""Values the command line takes as runc does."""

import json

import pytest

from pyruntime.cli import compact_json, parse_duration
from pyruntime.errors import RuntimeUserError


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("100ms", 0.1), ("5m", 300.0),
                                          ("1m30s", 90.0), ("1h", 3600.0), ("2", 2.0), ("0.5", 0.5)])
def test_interval_takes_go_durations_and_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5x", "", "1s2", "10ms", "-1s"])
def test_bad_or_too_short_intervals_are_refused(bad):
    with pytest.raises(RuntimeUserError, match="--interval"):
        parse_duration(bad)


def test_compact_json_is_runcs():
    assert compact_json({"type": "stats", "id": "c1", "data": [1, 2]}) == '{"type":"stats","id":"c1","data":[1,2]}'
    assert json.loads(compact_json([{"a": None}])) == [{"a": None}]


# -- --version ---------------------------------------------------------------------------------
def _fake_checkout(tmp_path, head, **files):
    git = tmp_path / "checkout" / ".git"
    git.mkdir(parents=True)
    (git / "HEAD").write_text(head + "\n")
    for name, text in files.items():
        path = git / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "checkout"


SHA_A, SHA_B = "a" * 40, "0123456789abcdef0123456789abcdef01234567"


def test_git_head_follows_a_branch_to_its_loose_or_packed_commit(tmp_path):
    from pyruntime import buildinfo

    loose = _fake_checkout(tmp_path / "1", "ref: refs/heads/main", refs__heads__main=SHA_A + "\n")
    assert buildinfo.git_head(str(loose)) == SHA_A
    packed = _fake_checkout(tmp_path / "2", "ref: refs/heads/main",
                            **{"packed-refs": f"# pack-refs with: peeled\n{SHA_B} refs/heads/main\n"})
    assert buildinfo.git_head(str(packed)) == SHA_B
    detached = _fake_checkout(tmp_path / "3", SHA_B)
    assert buildinfo.git_head(str(detached)) == SHA_B
    assert buildinfo.git_head(str(tmp_path / "nothing")) is None
    broken = _fake_checkout(tmp_path / "4", "ref: refs/heads/gone")
    assert buildinfo.git_head(str(broken)) is None


def test_git_head_of_a_worktree_reads_the_common_refs(tmp_path):
    from pyruntime import buildinfo

    main = _fake_checkout(tmp_path, "ref: refs/heads/main", refs__heads__topic=SHA_B + "\n",
                          worktrees__wt__HEAD="ref: refs/heads/topic\n",
                          worktrees__wt__commondir="../..\n")
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'wt'}\n")
    assert buildinfo.git_head(str(worktree)) == SHA_B


def test_commit_prefers_the_checkout_then_the_build_record(tmp_path):
    from pyruntime import buildinfo

    checkout = _fake_checkout(tmp_path, SHA_A)
    package = checkout / "pyruntime"
    package.mkdir()
    (package / "COMMIT").write_text(SHA_B + "\n")
    assert buildinfo.commit(str(package)) == SHA_A
    (checkout / ".git" / "HEAD").unlink()
    assert buildinfo.commit(str(package)) == SHA_B
    (package / "COMMIT").write_text("not a commit\n")
    assert buildinfo.commit(str(package)) == "unknown"


def test_a_build_records_the_commit_of_its_sources(tmp_path):
    from pyruntime import buildinfo

    checkout = _fake_checkout(tmp_path, SHA_A)
    built = tmp_path / "build" / "pyruntime"
    assert buildinfo.record(str(built), str(checkout)) == SHA_A
    assert (built / "COMMIT").read_text() == SHA_A + "\n"
    # an sdist (no .git) passes on what it carries
    sdist = tmp_path / "sdist"
    (sdist / "pyruntime").mkdir(parents=True)
    (sdist / "pyruntime" / "COMMIT").write_text(SHA_B + "\n")
    wheel = tmp_path / "wheel" / "pyruntime"
    assert buildinfo.record(str(wheel), str(sdist)) == SHA_B
    assert buildinfo.commit(str(wheel)) == SHA_B
    assert buildinfo.record(str(tmp_path / "x"), str(tmp_path / "plain-copy")) is None


def test_version_text_is_runcs_layout():
    import subprocess
    import sys

    from pyruntime import OCI_VERSION, __version__, buildinfo
    from tests.support import REPO

    lines = buildinfo.version_text().splitlines()
    assert lines[0] == f"pyruntime version {__version__}"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, check=False,
                          text=True).stdout.strip()
    if head:
        assert lines[1] == f"commit: {head}"
    assert lines[2] == f"spec: {OCI_VERSION}"
    assert lines[3] == f"python: {sys.version.split()[0]}"
    assert lines[4].startswith("libseccomp: ") and len(lines) == 5


def test_libseccomp_version_is_the_loaded_librarys():
    import os

    from pyruntime.linux import libraries

    dirs = libraries.system_library_dirs()
    soname = libraries.versioned_sonames(dirs)["seccomp"]
    real = next(os.path.realpath(os.path.join(d, soname)) for d in dirs
                if os.path.exists(os.path.join(d, soname)))
    # the file behind libseccomp.so.2 is libseccomp.so.2.5.4: its name says the version
    assert real.endswith(".so." + libraries.seccomp_library_version())
    assert libraries.seccomp_library_version(["/nonexistent"]) is None


# -- --cgroup-manager --------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["--cgroup-manager", "disabled", "create", "-b", "/b", "c1"],
    ["--cgroup-manager=cgroupfs", "run", "-d", "c1"],
    ["--cgroup-manager", "disabled", "state", "c1"],
    ["--criu", "/usr/local/sbin/criu", "delete", "c1"],
], ids=" ".join)
def test_cgroup_manager_is_read_alike_by_both_parsers(argv):
    from pyruntime import fastpath
    from tests.unit.test_fastpath import click_parse

    command, fast = fastpath.parse(argv)
    click_command, slow = click_parse(argv)
    assert command == click_command
    assert fast["cgroup_manager"] == slow["cgroup_manager"] and fast["criu"] == slow["criu"]


@pytest.mark.parametrize("argv", [["--cgroup-manager", "systemd", "create", "c1"],
                                  ["--cgroup-manager", "bogus", "state", "c1"]])
def test_unsupported_cgroup_managers_are_left_to_click(argv):
    from pyruntime import fastpath

    assert fastpath.parse(argv) is None


@pytest.mark.parametrize("flags", [["--cgroup-manager", "systemd"], ["--systemd-cgroup"]])
def test_systemd_is_refused_alike_by_either_flag(flags):
    from pyruntime import cli

    with pytest.raises(RuntimeUserError) as refused:
        cli.main_group.main([*flags, "list"], standalone_mode=False)
    assert refused.value.message.endswith("the systemd cgroup driver is not supported; "
                                          "use --cgroup-manager cgroupfs (the default) or disabled")
    assert refused.value.message.startswith(" ".join(flags) + ":")


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
    import json
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
    import json
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


# -- what checkpoint and restore ask criu for --------------------------------------------------
def test_checkpoint_flags_are_checked_as_runc_checks_them(tmp_path):
    from pyruntime import criuopts as cr

    assert cr.page_server("10.0.0.1:27") == {"address": "10.0.0.1", "port": 27}
    assert cr.page_server("[fe80::1]:8080") == {"address": "fe80::1", "port": 8080}
    assert cr.page_server("") is None
    for bad in ("host", ":80", "host:", "fe80::1:80", "host:http", "host:70000"):
        with pytest.raises(RuntimeUserError, match="--page-server"):
            cr.page_server(bad)
    assert [cr.cgroups_mode(m) for m in ("", "soft", "full", "strict")] == [None, 3, 4, 5]
    with pytest.raises(RuntimeUserError, match="--manage-cgroups-mode 'ignore': use soft, full or strict"):
        cr.cgroups_mode("ignore")
    assert cr.empty_ns_mask([]) == cr.empty_ns_mask(["network"]) == 0x40000000
    with pytest.raises(RuntimeUserError, match="--empty-ns 'pid'"):
        cr.empty_ns_mask(["pid"])
    images = tmp_path / "img"
    (images / "prev").mkdir(parents=True)
    assert cr.image_directories(str(images), "prev") == (str(images), "prev")
    with pytest.raises(RuntimeUserError, match="must be relative"):
        cr.image_directories(str(images), str(images / "prev"))
    with pytest.raises(RuntimeUserError, match="is not a directory"):
        cr.image_directories(str(images), "missing")


def test_the_criu_configuration_file_follows_runcs_annotation():
    from pyruntime import criuopts as cr

    assert cr.criu_config_file({}) == "/etc/criu/runc.conf"
    assert cr.criu_config_file({"org.criu.config": "/etc/criu/mine.conf"}) == "/etc/criu/mine.conf"
    assert cr.criu_config_file({"org.criu.config": ""}) is None


CONTAINER_MOUNTINFO = """\
20 1 0:50 / / ro,relatime - overlay overlay rw
21 20 0:51 / /proc rw - proc proc rw
22 20 0:52 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
23 22 0:30 /pyruntime/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
24 22 0:31 /pyruntime/c1 /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct
25 20 8:1 /srv/my\\040data /data rw - ext4 /dev/sda1 rw
26 21 0:5 /null /proc/kcore rw - devtmpfs udev rw
"""


def _config(namespaces=("pid", "mount"), **linux):
    return {
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
                   {"destination": "/data/", "source": "/srv/my data", "options": ["rbind", "ro"]},
                   {"destination": "/etc/hosts", "type": "bind", "source": "hosts"}],
        "linux": {"namespaces": [{"type": t} for t in namespaces],
                  "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                  **linux},
    }


def test_dump_names_every_mount_from_outside_the_container():
    from pyruntime import criuopts as cr

    mounts = cr.parse_mountinfo(CONTAINER_MOUNTINFO)
    assert ("/data", "ext4") in mounts and ("/sys/fs/cgroup/memory", "cgroup") in mounts
    entries = cr.dump_external_mounts(_config(), mounts, ["/proc/kcore"])
    assert entries == [
        {"key": "/data", "val": "/data"}, {"key": "/etc/hosts", "val": "/etc/hosts"},
        {"key": "/sys/fs/cgroup/memory", "val": "/sys/fs/cgroup/memory"},
        {"key": "/sys/fs/cgroup/cpu,cpuacct", "val": "/sys/fs/cgroup/cpu,cpuacct"},
        {"key": "/proc/kcore", "val": "/dev/null"},
        *({"key": p, "val": p} for p in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                          "/dev/urandom", "/dev/tty", "/dev/fuse")),
    ]
    # with a cgroup namespace the cgroup mounts are the container's own: criu dumps them
    own = cr.dump_external_mounts(_config(namespaces=("pid", "cgroup")), mounts, [])
    assert not [e for e in own if e["key"].startswith("/sys/fs/cgroup")]


def test_restore_maps_the_mounts_to_sources_on_this_host(tmp_path):
    from pyruntime import criuopts as cr
    from pyruntime.cgroups import CgroupManager

    manager = CgroupManager.from_dict({
        "mode": "v1", "path": "/pyruntime/c2", "root": "/sys/fs/cgroup",
        "hierarchies": {"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}})
    sources = cr.cgroup_bind_sources(_config(), manager)
    assert sources == {"/sys/fs/cgroup/cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/pyruntime/c2",
                       "/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/pyruntime/c2"}
    assert cr.cgroup_bind_sources(_config(namespaces=("cgroup",)), manager) == {}
    assert cr.cgroup_bind_sources(_config(), None) == {}
    v2 = CgroupManager.from_dict({"mode": "v2", "path": "/pyruntime/c2", "root": "/sys/fs/cgroup"})
    assert cr.cgroup_bind_sources(_config(), v2) == {"/sys/fs/cgroup": "/sys/fs/cgroup/pyruntime/c2"}
    entries = cr.restore_external_mounts(_config(maskedPaths=["/proc/kcore"]), "/bundles/b", sources)
    assert entries[:5] == [
        {"key": "/data", "val": "/srv/my data"}, {"key": "/etc/hosts", "val": "/bundles/b/hosts"},
        {"key": "/sys/fs/cgroup/cpu,cpuacct", "val": "/sys/fs/cgroup/cpu,cpuacct/pyruntime/c2"},
        {"key": "/sys/fs/cgroup/memory", "val": "/sys/fs/cgroup/memory/pyruntime/c2"},
        {"key": "/dev/null", "val": "/dev/null"}]
    assert [e["key"] for e in entries].count("/dev/null") == 1


def test_stdio_pipes_and_cgroup_roots_for_restore():
    from pyruntime import criuopts as cr

    assert cr.inherited_pipes(["/dev/null", "pipe:[77]", "pipe:[78]"]) == [
        {"key": "pipe:[77]", "fd": 1}, {"key": "pipe:[78]", "fd": 2}]
    proc_cgroup = "12:pids:/pyruntime/c2\n4:cpu,cpuacct:/pyruntime/c2\n1:name=systemd:/x\n0::/x\n"
    assert cr.cgroup_roots(proc_cgroup) == [
        {"ctrl": "pids", "path": "/pyruntime/c2"}, {"ctrl": "cpu,cpuacct", "path": "/pyruntime/c2"},
        {"ctrl": "name=systemd", "path": "/x"}]


def test_dump_options_are_runcs():
    from pyruntime import criuopts as cr

    options = cr.CriuOptions(leave_running=True, tcp_established=True, shell_job=True,
                             page_server="10.0.0.1:27", parent_path="prev",
                             manage_cgroups_mode="full")
    config = _config(namespaces=("pid", "network"))
    config["annotations"] = {"org.criu.config": ""}
    opts = cr.dump_options(options, config, "/b", 99, version=31701,
                           external_ns_inodes={"network": 4026532008, "pid": 4026532009},
                           freezer="/sys/fs/cgroup/freezer/pyruntime/c1")
    assert opts == {
        "log_level": 4, "manage_cgroups": True, "notify_scripts": True, "shell_job": True,
        "tcp_established": True, "ext_unix_sk": False, "file_locks": False,
        "empty_ns": 0x40000000, "orphan_pts_master": True, "auto_dedup": False,
        "lazy_pages": False, "manage_cgroups_mode": 4, "pid": 99, "root": "/b/rootfs",
        "leave_running": True, "log_file": "dump.log",
        "external": ["net[4026532008]:extRootNetNS", "pid[4026532009]:extRootPidNS"],
        "freeze_cgroup": "/sys/fs/cgroup/freezer/pyruntime/c1",
        "ps": {"address": "10.0.0.1", "port": 27}, "parent_img": "prev", "track_mem": True}
    # an external PID namespace needs criu 3.15
    older = cr.dump_options(cr.CriuOptions(), config, "/b", 99, version=31400,
                            external_ns_inodes={"network": 1, "pid": 2}, freezer=None)
    assert older["external"] == ["net[1]:extRootNetNS"] and "freeze_cgroup" not in older
    assert "config_file" not in older       # the annotation asks for none


def test_restore_options_and_joined_namespaces():
    from pyruntime import criuopts as cr

    opts = cr.restore_options(cr.CriuOptions(file_locks=True, lsm_profile="apparmor:p"), {}, "/r")
    assert opts["rst_sibling"] and opts["evasive_devices"] and opts["file_locks"]
    assert (opts["root"], opts["log_file"], opts["lsm_profile"]) == ("/r", "restore.log", "apparmor:p")
    assert opts["config_file"] == "/etc/criu/runc.conf" and "lsm_mount_context" not in opts
    config = {"linux": {"namespaces": [{"type": "ipc", "path": "/proc/7/ns/ipc"},
                                       {"type": "network", "path": "/run/netns/n"},
                                       {"type": "uts"}]}}
    assert cr.joined_namespaces(config) == [{"ns": "ipc", "ns_file": "/proc/7/ns/ipc"}]
    with pytest.raises(RuntimeUserError, match="cgroup namespace given by path"):
        cr.joined_namespaces({"linux": {"namespaces": [{"type": "cgroup", "path": "/proc/7/ns/cgroup"}]}})


def test_restore_refuses_what_is_not_a_checkpoint(tmp_path):
    from pyruntime import checkpoint as cr

    with pytest.raises(RuntimeUserError, match="no such directory"):
        cr.read_descriptors(str(tmp_path / "missing"))
    with pytest.raises(RuntimeUserError, match="not a checkpoint .descriptors.json is missing"):
        cr.read_descriptors(str(tmp_path))
    (tmp_path / "descriptors.json").write_text('["/dev/null", "pipe:[5]"]')
    assert cr.read_descriptors(str(tmp_path)) == ["/dev/null", "pipe:[5]"]
