"""process.scheduler (pyruntime.init.scheduler): the sched_setattr call it makes."""

import errno

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.init import scheduler
from tests.unit.fake_kernel import FakeProcessKernel


def test_policy_flags_and_parameters_reach_sched_setattr():
    kernel = FakeProcessKernel()
    scheduler.apply({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 10000,
                                   "deadline": 20000, "period": 30000,
                                   "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM"]}},
                    kernel=kernel)
    assert kernel.calls == [("sched_setattr", 6, 0x03, 0, 0, 10000, 20000, 30000)]


def test_a_refused_realtime_policy_says_what_it_needs():
    kernel = FakeProcessKernel(fail={("sched_setattr", 1): PermissionError(errno.EPERM, "")})
    with pytest.raises(RuntimeUserError, match="cannot set SCHED_FIFO: .*realtimeRuntime"):
        scheduler.apply({"scheduler": {"policy": "SCHED_FIFO", "priority": 10}}, kernel=kernel)
