"""Which lines of ps output belong to the container (cgroups/processes.py)."""

import pytest

from pyruntime.cgroups import processes
from pyruntime.errors import RuntimeUserError

PS = """\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 01:27 ?        00:00:01 /sbin/init
root         120       1  0 01:27 ?        00:00:00 sleep 100
root         121     120  0 01:27 ?        00:00:00 sh -c x
"""


def test_filter_ps_output():
    assert processes.filter_ps_output(PS, [120, 121]).splitlines() == [PS.splitlines()[0], PS.splitlines()[2],
                                                                      PS.splitlines()[3]]
    with pytest.raises(RuntimeUserError, match="PID field"):
        processes.filter_ps_output("USER COMMAND\nroot x\n", [1])
