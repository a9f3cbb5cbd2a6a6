"""`exec`'s stages (pyruntime.init.execin) against a recording kernel: which of the init's
namespaces are joined, and in which order, without root."""

import errno
import os

import pytest

from pyruntime import linux
from pyruntime.errors import RuntimeUserError
from pyruntime.init import execin
from tests.unit.fake_kernel import FakeProcessKernel


def namespace_links(init_pid: int, differing: set[str]) -> dict[str, str]:
    """readlink targets of ours and the init's namespaces; the init's differ for `differing`
    (entry names under /proc/<pid>/ns). No time namespace: a kernel without it."""
    links = {}
    for entry in ("user", "ipc", "uts", "net", "pid", "mnt", "cgroup"):
        links[f"/proc/self/ns/{entry}"] = f"{entry}:[1]"
        links[f"/proc/{init_pid}/ns/{entry}"] = f"{entry}:[{2 if entry in differing else 1}]"
    return links


def test_only_the_inits_own_namespaces_are_joined_user_first_mount_last():
    kernel = FakeProcessKernel(files=namespace_links(7, {"mnt", "net", "user", "pid"}))
    assert execin.namespaces_to_join(7, kernel) == [
        ("user", "/proc/7/ns/user"), ("network", "/proc/7/ns/net"), ("pid", "/proc/7/ns/pid"),
        ("mount", "/proc/7/ns/mnt")]


def test_every_namespace_is_opened_before_the_first_is_joined():
    kernel = FakeProcessKernel(files=namespace_links(7, {"mnt", "user", "uts"}))
    execin.join_namespaces_of(7, kernel)
    flags = os.O_RDONLY | os.O_CLOEXEC
    assert kernel.calls == [
        ("open", "/proc/7/ns/user", flags), ("open", "/proc/7/ns/uts", flags),
        ("open", "/proc/7/ns/mnt", flags),
        ("setns", "open:/proc/7/ns/user", linux.CLONE_NEWUSER),
        ("setns", "open:/proc/7/ns/uts", linux.CLONE_NEWUTS),
        ("setns", "open:/proc/7/ns/mnt", linux.CLONE_NEWNS)]
    assert kernel.fds == {}


def test_a_namespace_that_cannot_be_joined_is_named_and_no_fd_stays_open():
    kernel = FakeProcessKernel(files=namespace_links(7, {"mnt", "ipc"}),
                               fail={("setns", "open:/proc/7/ns/ipc"):
                                     PermissionError(errno.EPERM, "Operation not permitted")})
    with pytest.raises(RuntimeUserError, match="cannot join the container's ipc namespace: "
                                               "Operation not permitted"):
        execin.join_namespaces_of(7, kernel)
    assert kernel.named("setns") == [("setns", "open:/proc/7/ns/ipc", linux.CLONE_NEWIPC)]
    assert kernel.fds == {}
