"""The init's process set-up (pyruntime.init.process) against a recording kernel: capabilities,
the user switch, the I/O priority and the order of become(), call by call, without root."""

import errno
import stat

import pytest

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import process as proc
from pyruntime.init.process import CAP_NUMBERS, cap_mask, find_executable
from tests.unit.fake_kernel import FakeProcessKernel

CAP = proc.CAP_NUMBERS
ALL = (1 << (proc.last_cap() + 1)) - 1


def caps_of(*names):
    return sum(1 << CAP[n] for n in names)


def test_bounding_set_drops_all_but_the_configured_ones():
    kernel = FakeProcessKernel(bounding=ALL, permitted=ALL)
    sets = proc.CapabilitySets({"bounding": ["CAP_CHOWN", "CAP_KILL"]}, print, kernel=kernel)
    sets.drop_bounding()
    dropped = [c[2] for c in kernel.named("prctl")]
    assert dropped == [c for c in range(proc.last_cap() + 1)
                       if c not in (CAP["CAP_CHOWN"], CAP["CAP_KILL"])]
    assert kernel.bounding == caps_of("CAP_CHOWN", "CAP_KILL")


def test_capabilities_not_available_are_skipped_with_a_warning():
    warnings = []
    kernel = FakeProcessKernel(bounding=ALL, permitted=caps_of("CAP_CHOWN"))
    sets = proc.CapabilitySets({"effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}, warnings.append,
                               kernel=kernel)
    assert sets.effective == caps_of("CAP_CHOWN")
    assert "CAP_SYS_ADMIN" in warnings[0]


def test_sets_then_ambient_ones_raised():
    kernel = FakeProcessKernel(bounding=ALL, permitted=ALL)
    sets = proc.CapabilitySets({"effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
                                "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}, print,
                               kernel=kernel)
    sets.apply()
    assert kernel.calls == [
        ("capset", caps_of("CAP_KILL"), caps_of("CAP_KILL", "CAP_CHOWN"), caps_of("CAP_KILL")),
        ("prctl", linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, CAP["CAP_KILL"]),
    ]


def test_user_switch_keeps_the_capabilities_across_setuid():
    kernel = FakeProcessKernel(bounding=ALL, permitted=ALL)
    sets = proc.CapabilitySets({}, print, kernel=kernel)
    proc.switch_user({"uid": 1000, "gid": 100, "additionalGids": [5, 6]}, sets, kernel=kernel)
    assert kernel.calls == [
        ("prctl", linux.PR_SET_KEEPCAPS, 1, 0), ("setgroups", [5, 6]),
        ("setresgid", 100, 100, 100), ("setresuid", 1000, 1000, 1000),
        ("prctl", linux.PR_SET_KEEPCAPS, 0, 0)]


def test_setgroups_denied_is_fine_without_additional_groups():
    kernel = FakeProcessKernel(fail={("setgroups", ()): PermissionError(errno.EPERM, "")})
    proc.switch_user({"uid": 1, "gid": 1}, None, kernel=kernel)
    assert kernel.named("setresuid") == [("setresuid", 1, 1, 1)]


def test_setgroups_denied_with_additional_groups_is_an_error():
    kernel = FakeProcessKernel(fail={("setgroups", (7,)): PermissionError(errno.EPERM, "denied")})
    with pytest.raises(RuntimeUserError, match="cannot switch to uid 1 gid 2: denied"):
        proc.switch_user({"uid": 1, "gid": 2, "additionalGids": [7]}, None, kernel=kernel)
    assert kernel.named("setresuid") == []


def test_io_priority():
    kernel = FakeProcessKernel()
    proc.set_io_priority({"ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 4}},
                         kernel=kernel)
    assert kernel.calls == [("ioprio_set", 3, 4)]


def test_become_keeps_runcs_order_of_steps():
    kernel = FakeProcessKernel(bounding=ALL, permitted=ALL,
                               modes={"stdio:1": stat.S_IFIFO | 0o600})
    process = {"args": ["/bin/sh"], "cwd": "/work", "noNewPrivileges": True,
               "user": {"uid": 1000, "gid": 1000, "umask": 0o027},
               "capabilities": {"bounding": [n for n in CAP if n != "CAP_SYS_ADMIN"
                                             and CAP[n] <= proc.last_cap()],
                                "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}
    assert proc.become(process, None, print, kernel=kernel) == "/bin/sh"
    steps = [c[:2] if c[0] != "prctl" else c[:3] for c in kernel.calls if c[0] != "root.open"]
    assert steps == [
        ("prctl", linux.PR_CAPBSET_DROP, CAP["CAP_SYS_ADMIN"]),
        ("fchown", "stdio:1"),                      # a pipe becomes the user's
        ("open_root", "/"), ("fchdir", "root:/work"),   # entered while still root
        ("prctl", linux.PR_SET_KEEPCAPS, 1), ("setgroups", []), ("setresgid", 1000),
        ("setresuid", 1000), ("prctl", linux.PR_SET_KEEPCAPS, 0),
        ("capset", caps_of("CAP_KILL")),
        ("prctl", linux.PR_SET_NO_NEW_PRIVS, 1),
        ("umask", 0o027),
    ]
    assert kernel.fds == {}


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


def test_home_of_reads_the_containers_passwd(tmp_path):
    from pyruntime.init.process import home_of

    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nodd:x:7:7::\n")
    assert home_of(0, str(passwd)) == "/root"
    assert home_of(1000, str(passwd)) == "/home/user"
    assert home_of(7, str(passwd)) == "/"          # no home given
    assert home_of(4242, str(passwd)) == "/"
    assert home_of(0, str(tmp_path / "missing")) == "/"
