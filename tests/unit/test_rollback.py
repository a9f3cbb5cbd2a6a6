"""rollback.Rollback: the order of the steps, deferred clean-ups, failing steps."""

from __future__ import annotations

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.rollback import Rollback


def test_a_failed_operation_undoes_its_steps_last_first_and_keeps_its_error():
    done = []
    with pytest.raises(RuntimeUserError, match="^the operation failed$"):
        with Rollback() as rollback:
            rollback.push("first", lambda: done.append("undo first"))
            rollback.defer("close", lambda: done.append("close"))
            rollback.push("second", lambda: done.append("undo second"))
            raise RuntimeUserError("the operation failed")
    assert done == ["undo second", "close", "undo first"]


def test_a_successful_operation_runs_only_what_was_deferred():
    done = []
    with Rollback() as rollback:
        rollback.push("made", lambda: done.append("undo"))
        rollback.defer("close", lambda: done.append("close"))
    assert done == ["close"]


def test_a_failing_step_is_a_warning_naming_it_and_the_rest_still_run(capfd):
    done = []

    def broken():
        raise OSError(16, "Device or resource busy")
    with pytest.raises(RuntimeUserError, match="^the operation failed$"):
        with Rollback() as rollback:
            rollback.push("remove state directory", lambda: done.append("removed"))
            rollback.push("remove cgroup", broken)
            raise RuntimeUserError("the operation failed")
    assert done == ["removed"]
    assert "warning: rollback: remove cgroup: [Errno 16] Device or resource busy" in capfd.readouterr().err


def test_a_failing_clean_up_after_success_is_a_warning_too(capfd):
    with Rollback() as rollback:
        rollback.defer("close the console socket", lambda: 1 / 0)
    assert "warning: clean-up: close the console socket: division by zero" in capfd.readouterr().err


def test_run_undoes_explicitly_and_once():
    done = []
    rollback = Rollback()
    rollback.push("made", lambda: done.append("undo"))
    rollback.run()
    rollback.run()
    assert done == ["undo"]
