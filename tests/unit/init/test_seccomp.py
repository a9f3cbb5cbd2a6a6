"""linux.seccomp as a filter (pyruntime.init.seccomp): compiled programs built once per profile and
host and read back from the cache, conditions split into rules, a NOTIFY filter's listener."""

import marshal
import os

import pytest

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import seccomp
from pyruntime.init.seccomp import rule_arg_sets
from tests.unit.spec.support import isolated_cache  # noqa: F401 (fixture)
from tests.unit.support import NOTIFY_MKDIR

PROFILE = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}


def fresh_program(profile) -> bytes:
    return seccomp._export(seccomp.build_filter(profile))


def test_a_profile_compiles_to_libseccomps_program_and_is_read_back_from_the_cache(tmp_path, monkeypatch):
    program = seccomp.compiled(PROFILE, str(tmp_path))
    assert program == fresh_program(PROFILE) and len(program) % 8 == 0
    [cached] = os.listdir(tmp_path)
    key, library, stored = marshal.loads((tmp_path / cached).read_bytes())
    assert stored == program and "libseccomp.so" in library[0] and library[1] > 0

    def no_build(profile):
        raise AssertionError("built again")

    monkeypatch.setattr(seccomp, "build_filter", no_build)
    assert seccomp.compiled(dict(PROFILE), str(tmp_path)) == program      # an equal profile hits


def test_another_profile_or_a_stale_entry_is_compiled_anew(tmp_path):
    first = seccomp.compiled(PROFILE, str(tmp_path))
    other = dict(PROFILE, syscalls=[dict(PROFILE["syscalls"][0], errnoRet=13)])
    assert seccomp.compiled(other, str(tmp_path)) not in (None, first)
    # an entry whose library no longer matches (libseccomp upgraded) is not trusted
    for name in os.listdir(tmp_path):
        key, library, program = marshal.loads((tmp_path / name).read_bytes())
        (tmp_path / name).write_bytes(marshal.dumps((key, (library[0], library[1] + 1, library[2]), b"\0" * 8)))
    assert seccomp.compiled(PROFILE, str(tmp_path)) == first
    (tmp_path / "junk").mkdir()
    for name in os.listdir(tmp_path):
        if name != "junk":
            (tmp_path / name).write_bytes(b"not marshal")
    assert seccomp.compiled(PROFILE, str(tmp_path)) == first


def test_load_time_flags_are_left_to_the_init_and_bad_profiles_fail_in_the_runtime(tmp_path):
    assert seccomp.compiled(dict(PROFILE, flags=["SECCOMP_FILTER_FLAG_LOG"]), str(tmp_path)) is None
    with pytest.raises(RuntimeUserError, match="unknown seccomp action"):
        seccomp.compiled(dict(PROFILE, defaultAction="SCMP_ACT_MAYBE"), str(tmp_path))
    assert seccomp.compiled_for({"linux": {}}) is None


def test_a_read_only_cache_still_gives_the_program(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert seccomp.compiled(PROFILE, str(blocked)) == fresh_program(PROFILE)


def test_seccomp_conditions_on_one_index_become_separate_rules():
    a = {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}
    b = {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}
    c = {"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}
    assert rule_arg_sets([a, b]) == [[a, b]]
    assert rule_arg_sets([a, c]) == [[a], [c]]
    assert rule_arg_sets([]) == [[]]


def test_notify_loads_with_a_new_listener():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [NOTIFY_MKDIR]}
    assert seccomp.flag_bits(profile) == linux.SECCOMP_FILTER_FLAG_NEW_LISTENER
    assert seccomp.flag_bits(dict(profile, flags=["SECCOMP_FILTER_FLAG_TSYNC"])) == (
        linux.SECCOMP_FILTER_FLAG_NEW_LISTENER | linux.SECCOMP_FILTER_FLAG_TSYNC
        | linux.SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
    log_and_ssb = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert seccomp.flag_bits({"defaultAction": "SCMP_ACT_ALLOW", "flags": log_and_ssb}) == (
        linux.SECCOMP_FILTER_FLAG_LOG | linux.SECCOMP_FILTER_FLAG_SPEC_ALLOW)
    # libseccomp compiles the action: the program returns SECCOMP_RET_USER_NOTIF for mkdir
    program = seccomp.compiled(profile)
    assert (0x7FC00000).to_bytes(4, "little") in program


def test_a_listener_filter_goes_on_while_the_runtime_still_listens():
    notify = seccomp.Filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [NOTIFY_MKDIR]}, b"", 7)
    plain = seccomp.Filter({"defaultAction": "SCMP_ACT_ALLOW"}, b"")
    assert notify.moment({"noNewPrivileges": True}) == "no-new-privs"
    assert plain.moment({"noNewPrivileges": True}) == "exec"
    assert notify.moment({}) == plain.moment({"noNewPrivileges": False}) == "privileged"


def become_then_exec(process: dict, seccomp_filter, kernel) -> list[tuple]:
    from pyruntime.init import process as proc

    executable = proc.become(process, seccomp_filter, print, kernel=kernel)
    proc.exec_program(executable, process, seccomp_filter, kernel)
    return [c[:2] for c in kernel.calls if c[0] in ("seccomp_set_filter", "prctl", "capset",
                                                    "setresuid", "execve")]


def test_without_no_new_privs_the_filter_is_loaded_before_any_privilege_is_dropped():
    from tests.unit.fake_kernel import FakeProcessKernel

    kernel = FakeProcessKernel(bounding=0b11, permitted=0b11)
    process = {"args": ["/bin/sh"], "user": {"uid": 1000, "gid": 1000},
               "capabilities": {"bounding": ["CAP_CHOWN"]}}
    program = fresh_program(PROFILE)
    steps = become_then_exec(process, seccomp.Filter(PROFILE, program), kernel)
    assert steps == [("seccomp_set_filter", program), ("prctl", linux.PR_CAPBSET_DROP),
                     ("prctl", linux.PR_SET_KEEPCAPS), ("setresuid", 1000),
                     ("prctl", linux.PR_SET_KEEPCAPS), ("capset", 0), ("execve", "/bin/sh")]


def test_with_no_new_privs_the_filter_is_the_last_step_before_execve():
    from tests.unit.fake_kernel import FakeProcessKernel

    kernel = FakeProcessKernel()
    process = {"args": ["/bin/sh"], "noNewPrivileges": True}
    program = fresh_program(PROFILE)
    steps = become_then_exec(process, seccomp.Filter(PROFILE, program), kernel)
    assert steps == [("prctl", linux.PR_SET_KEEPCAPS), ("setresuid", 0),
                     ("prctl", linux.PR_SET_KEEPCAPS), ("capset", 0),
                     ("prctl", linux.PR_SET_NO_NEW_PRIVS), ("seccomp_set_filter", program),
                     ("execve", "/bin/sh")]
    assert kernel.named("seccomp_set_filter") == [("seccomp_set_filter", program, 0)]
