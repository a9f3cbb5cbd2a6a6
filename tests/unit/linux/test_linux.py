"""The syscall wrappers (pyruntime.linux), on a process of our own (no root needed)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import repo_env


# -- the syscall wrappers, on a process of our own (no root needed) ----------------------------
def in_child(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=repo_env(), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_set_mempolicy_reaches_the_kernel():
    out = in_child(
        "from pyruntime import linux\n"
        "from pyruntime.init import mempolicy as m\n"
        "linux.set_mempolicy(m.MODES['MPOL_INTERLEAVE'] | m.FLAGS['MPOL_F_STATIC_NODES'], m.nodemask({0}))\n"
        "print(open('/proc/self/numa_maps').readline())\n")
    assert out.split()[1] == "interleave=static:0"


def test_sched_setattr_reaches_the_kernel():
    out = in_child(
        "from pyruntime import linux\n"
        "from pyruntime.init import scheduler as s\n"
        "linux.sched_setattr(s.POLICIES['SCHED_BATCH'], s.FLAGS['SCHED_FLAG_RESET_ON_FORK'], nice=3)\n"
        "import os\n"
        "p = os.sched_getscheduler(0)\n"
        "print(p & ~os.SCHED_RESET_ON_FORK == os.SCHED_BATCH, bool(p & os.SCHED_RESET_ON_FORK), os.getpriority(os.PRIO_PROCESS, 0))\n")
    assert out.split() == ["True", "True", "3"]
