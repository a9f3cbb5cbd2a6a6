"""Pure runtime decisions, without root: ids, signals, mount options, path resolution,
namespace plans, seccomp rule splitting, capability masks, status derivation."""

import os

import pytest

from pyruntime import linux
from pyruntime.errors import ContainerExists, ContainerNotFound, RuntimeUserError
from pyruntime.init.container import NamespacePlan
from pyruntime.init.process import CAP_NUMBERS, cap_mask, find_executable
from pyruntime.init.inroot import secure_join
from pyruntime.init.rootfs import is_idmapped, parse_options, recursive_attributes
from pyruntime.init.seccomp import rule_arg_sets
from pyruntime.lifecycle import parse_signal
from pyruntime.state import (ContainerDir, ContainerState, check_id, oci_state,
                             process_start_time, status_of)


@pytest.mark.parametrize("good", ["abc", "a-b_c.d+e", "0123", "x" * 200])
def test_valid_ids(good):
    assert check_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a b", "a\nb", "abc\n", "é"])
def test_invalid_ids(bad):
    with pytest.raises(RuntimeUserError, match="invalid container id"):
        check_id(bad)


@pytest.mark.parametrize("text,number", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("kill", 9),
                                         ("TERM", 15), ("SIGUSR1", 10), ("64", 64),
                                         ("0", 0)])   # runc: signal 0 probes
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["65", "SIGNOPE", "NOPE", "-1", ""])
def test_parse_signal_rejects(bad):
    with pytest.raises(RuntimeUserError):
        parse_signal(bad)


def test_parse_options_flags_propagation_and_data():
    flags, propagation, data, ext = parse_options(
        ["nosuid", "nodev", "ro", "rw", "rbind", "rprivate", "mode=755", "size=1m", "tmpcopyup"])
    assert flags == linux.MS_NOSUID | linux.MS_NODEV | linux.MS_BIND | linux.MS_REC
    assert propagation == [linux.MS_PRIVATE | linux.MS_REC]
    assert data == ["mode=755", "size=1m"]
    assert ext == {"tmpcopyup"}


def test_parse_options_clearing_flags_in_order():
    assert parse_options(["noexec", "exec"])[0] == 0
    assert parse_options(["exec", "noexec"])[0] == linux.MS_NOEXEC


def test_recursive_options_are_attributes_not_fs_data():
    flags, _, data, _ = parse_options(["rbind", "rro", "rnosuid", "rnoatime"])
    assert data == [] and flags == linux.MS_BIND | linux.MS_REC
    attr_set, attr_clr = recursive_attributes(["rro", "rnosuid", "rnodev", "rnoexec"])
    assert attr_set == (linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                        | linux.MOUNT_ATTR_NODEV | linux.MOUNT_ATTR_NOEXEC)
    assert attr_clr == 0


def test_a_later_recursive_option_wins():
    assert recursive_attributes(["rro", "rrw"]) == (0, linux.MOUNT_ATTR_RDONLY)
    assert recursive_attributes(["rrw", "rro"]) == (linux.MOUNT_ATTR_RDONLY, 0)
    assert recursive_attributes(["rexec", "rnoexec"]) == (linux.MOUNT_ATTR_NOEXEC, 0)


def test_an_atime_mode_clears_the_whole_atime_field():
    """The kernel refuses an atime mode unless the whole field is cleared with it."""
    assert recursive_attributes(["rnoatime"]) == (linux.MOUNT_ATTR_NOATIME, linux.MOUNT_ATTR__ATIME)
    attr_set, attr_clr = recursive_attributes(["rnoatime", "rstrictatime", "rnoexec"])
    assert attr_set == linux.MOUNT_ATTR_STRICTATIME | linux.MOUNT_ATTR_NOEXEC
    assert attr_clr == linux.MOUNT_ATTR__ATIME
    assert recursive_attributes(["rstrictatime", "rrelatime"]) == (0, linux.MOUNT_ATTR__ATIME)


@pytest.mark.parametrize("mount, idmapped", [
    ({"options": ["rbind", "idmap"]}, True), ({"options": ["ridmap"]}, True),
    ({"uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}, True),
    ({"options": ["rbind", "ro"]}, False), ({}, False),
])
def test_which_mounts_are_idmapped(mount, idmapped):
    assert is_idmapped(mount) is idmapped


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    os.symlink("/etc", root / "abs")              # absolute: means the rootfs's /etc
    os.symlink("../../../../..", root / "up")     # climbs: must stop at the root
    os.symlink("real", root / "rel")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink(str(tmp_path), root / "host")      # a host path: resolved inside the root
    return root


@pytest.mark.parametrize("unsafe,expected", [
    ("/etc/passwd", "etc/passwd"),
    ("/abs/x", "etc/x"),
    ("/up/etc", "etc"),
    ("/../../etc", "etc"),
    ("/rel/a/b", "real/a/b"),
    ("/host/secret", None),
    ("/missing/../etc", "etc"),
    ("/", ""),
])
def test_secure_join(tree, unsafe, expected):
    result = secure_join(str(tree), unsafe)
    assert result.startswith(str(tree))
    if expected is not None:
        assert result == os.path.join(str(tree), expected).rstrip("/") or result == str(tree)
    else:
        assert result == str(tree) + str(tree.parent) + "/secret"


def test_secure_join_symlink_loop(tree):
    with pytest.raises(RuntimeUserError, match="too many symlinks"):
        secure_join(str(tree), "/loop1/x")


def test_namespace_plan_orders_joins_and_separates_user():
    config = {"linux": {"namespaces": [
        {"type": "network", "path": "/proc/1/ns/net"}, {"type": "pid"}, {"type": "mount"},
        {"type": "user"}, {"type": "ipc", "path": "/proc/1/ns/ipc"}, {"type": "time"}]}}
    plan = NamespacePlan.from_config(config)
    assert plan.join == [("ipc", "/proc/1/ns/ipc"), ("network", "/proc/1/ns/net")]
    assert plan.new_user
    assert plan.new_flags == linux.CLONE_NEWPID | linux.CLONE_NEWNS | linux.CLONE_NEWTIME
    assert plan.new_types == {"pid", "mount", "user", "time"}


def test_seccomp_conditions_on_one_index_become_separate_rules():
    a = {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}
    b = {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}
    c = {"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}
    assert rule_arg_sets([a, b]) == [[a, b]]
    assert rule_arg_sets([a, c]) == [[a], [c]]
    assert rule_arg_sets([]) == [[]]


def test_cap_mask_skips_unavailable_with_warning():
    warnings = []
    available = (1 << CAP_NUMBERS["CAP_KILL"]) | (1 << CAP_NUMBERS["CAP_CHOWN"])
    mask = cap_mask(["CAP_KILL", "CAP_SYS_RESOURCE", "CAP_CHOWN"], available, warnings.append)
    assert mask == available
    assert "CAP_SYS_RESOURCE" in warnings[0]


def test_cap_mask_rejects_unknown_names():
    with pytest.raises(RuntimeUserError, match="CAP_BOGUS"):
        cap_mask(["CAP_BOGUS"], -1, print)


def test_find_executable(tmp_path):
    exe = tmp_path / "bin" / "prog"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = [f"PATH=/nonexistent:{exe.parent}"]
    assert find_executable("prog", env, "/") == str(exe)
    assert find_executable(str(exe), [], "/") == str(exe)
    with pytest.raises(RuntimeUserError, match='exec: "nope": executable file not found in \\$PATH'):
        find_executable("nope", env, "/")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(RuntimeUserError, match="permission denied"):
        find_executable(str(tmp_path / "plain"), [], "/")


def test_state_dir_roundtrip_and_status(tmp_path):
    cdir = ContainerDir(str(tmp_path), "c1")
    cdir.make()
    with pytest.raises(ContainerExists):
        ContainerDir(str(tmp_path), "c1").make()
    me = os.getpid()
    state = ContainerState(id="c1", bundle="/b", config={"ociVersion": "1.2.0", "annotations": {"a": "b"}},
                           pid=me, pid_start_time=process_start_time(me), creating=False)
    cdir.save(state)
    loaded = cdir.load()
    assert loaded.to_dict() == state.to_dict()
    cdir.make_fifo()
    assert status_of(cdir, loaded) == "created"
    os.unlink(cdir.fifo_path)
    assert status_of(cdir, loaded) == "running"
    # The same pid with another start time is a different process: the container stopped.
    loaded.pid_start_time += 1
    assert status_of(cdir, loaded) == "stopped"
    doc = oci_state(loaded, "stopped")
    assert doc["pid"] == 0 and doc["annotations"] == {"a": "b"} and doc["rootfs"] == "/b/rootfs"
    cdir.remove()
    with pytest.raises(ContainerNotFound):
        ContainerDir(str(tmp_path), "c1").lock()


def test_creating_status(tmp_path):
    cdir = ContainerDir(str(tmp_path), "c2")
    cdir.make()
    state = ContainerState(id="c2", bundle="/b", config={})
    assert status_of(cdir, state) == "creating"  # no init yet
    state.pid, state.pid_start_time = 2**22 + 7, 1  # an init that died during create
    assert status_of(cdir, state) == "stopped"


def test_corrupt_state_is_a_clear_error(tmp_path):
    cdir = ContainerDir(str(tmp_path), "c3")
    cdir.make()
    with open(os.path.join(cdir.path, "state.json"), "w") as f:
        f.write("{")
    with pytest.raises(RuntimeUserError, match="corrupt"):
        cdir.load()
