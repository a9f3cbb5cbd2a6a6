"""hostprocess: stopping, waiting for and reaping real child processes."""

from __future__ import annotations

import os
import signal
import subprocess

from pyruntime import hostprocess
from pyruntime.state import process_start_time


def test_kill_and_wait_kills_and_reaps_a_child():
    child = subprocess.Popen(["sleep", "60"])
    hostprocess.kill_and_wait(child.pid)
    assert process_start_time(child.pid) is None    # gone, not a zombie
    hostprocess.kill_and_wait(child.pid)            # a second time is no error


def test_the_exit_code_of_a_killed_process_is_128_plus_the_signal():
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert hostprocess.exit_code(status) == 128 + signal.SIGTERM


def test_waiting_returns_the_childs_exit_code_and_passes_signals_on():
    child = subprocess.Popen(["sh", "-c", "while :; do sleep 0.01; done"])
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)   # our own SIGALRM must reach the child...
        code = hostprocess.wait_forwarding_signals(child.pid)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 128 + signal.SIGALRM             # ...and its default action ends it


def test_a_process_in_the_hosts_pid_namespace_lists_only_itself():
    assert hostprocess.PidNamespaceProcesses(os.getpid()).pids() == [os.getpid()]
    assert hostprocess.PidNamespaceProcesses(0).pids() == []
