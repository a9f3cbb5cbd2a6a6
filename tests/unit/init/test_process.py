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


def test_rlimits_are_set_in_order_with_the_largest_value_as_unlimited():
    import resource

    kernel = FakeProcessKernel()
    proc.apply_rlimits([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
                        {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1}], kernel)
    assert kernel.calls == [
        ("setrlimit", resource.RLIMIT_NOFILE, 1024, 4096),
        ("setrlimit", resource.RLIMIT_CORE, resource.RLIM_INFINITY, resource.RLIM_INFINITY)]


def test_an_rlimit_the_kernel_refuses_names_its_index():
    import resource

    kernel = FakeProcessKernel(fail={("setrlimit", resource.RLIMIT_NPROC):
                                     PermissionError(errno.EPERM, "Operation not permitted")})
    with pytest.raises(RuntimeUserError, match=r"process.rlimits\[1\]: cannot set RLIMIT_NPROC to "
                                               r"soft=9 hard=9: Operation not permitted"):
        proc.apply_rlimits([{"type": "RLIMIT_CPU", "soft": 1, "hard": 2},
                            {"type": "RLIMIT_NPROC", "soft": 9, "hard": 9}], kernel)


def test_oom_score_adj_is_written_only_when_configured():
    kernel = FakeProcessKernel()
    proc.set_oom_score_adj({}, kernel)
    proc.set_oom_score_adj({"oomScoreAdj": -17}, kernel)
    assert kernel.calls == [("write_text", "/proc/self/oom_score_adj", "-17")]


def test_the_terminal_becomes_stdio_and_the_master_goes_to_the_console_socket():
    import struct
    import termios

    kernel = FakeProcessKernel()
    console = kernel.new_fd("console-socket")
    bound = []
    proc.setup_terminal(console, {"height": 24, "width": 80},
                        bind_console=lambda fd: bound.append(kernel.what(fd)), uid=1000,
                        kernel=kernel)
    assert bound == ["pty-slave"]
    assert kernel.calls == [
        ("openpty",),
        ("fchown", "pty-slave", 1000, -1),
        ("ioctl", "pty-master", termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0)),
        ("ioctl", "pty-slave", termios.TIOCSCTTY, 0),
        ("dup2", "pty-slave", 0), ("dup2", "pty-slave", 1), ("dup2", "pty-slave", 2),
        ("send_fds", "console-socket", [b"/dev/pts/3"], ["pty-master"])]
    assert kernel.fds == {}     # slave, master and the console socket all closed


def test_fds_are_marked_close_on_exec_around_the_kept_ones():
    kernel = FakeProcessKernel()
    proc.close_fds_from(4, {2, 4, 7, 8, 12}, kernel)
    cloexec = linux.CLOSE_RANGE_CLOEXEC
    assert kernel.calls == [("close_range", 5, 6, cloexec), ("close_range", 9, 11, cloexec),
                            ("close_range", 13, 0xFFFFFFFF, cloexec)]


def test_without_close_range_the_listed_fds_are_marked_one_by_one():
    import fcntl

    kernel = FakeProcessKernel(files={"/proc/self/fd": "0 1 2 3 5 6"},
                               fail={("close_range", 3): OSError(errno.ENOSYS, "")})
    proc.close_fds_from(3, {5}, kernel)
    assert kernel.named("fcntl") == [
        ("fcntl", 3, fcntl.F_GETFD, 0), ("fcntl", 3, fcntl.F_SETFD, fcntl.FD_CLOEXEC),
        ("fcntl", 6, fcntl.F_GETFD, 0), ("fcntl", 6, fcntl.F_SETFD, fcntl.FD_CLOEXEC)]


def test_exec_gets_the_process_env_with_a_home():
    kernel = FakeProcessKernel()
    proc.exec_program("/bin/sh", {"args": ["sh", "-c", "true"], "env": ["PATH=/bin", "EMPTY"],
                                  "user": {"uid": 4242}}, None, kernel)
    assert kernel.calls == [("execve", "/bin/sh", ["sh", "-c", "true"],
                             {"PATH": "/bin", "EMPTY": "", "HOME": "/"})]
