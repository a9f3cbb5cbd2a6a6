"""Values the command line takes as runc does."""

import json

import pytest

from pyruntime.cli import compact_json, parse_duration
from pyruntime.errors import RuntimeUserError


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("100ms", 0.1), ("5m", 300.0),
                                          ("1m30s", 90.0), ("1h", 3600.0), ("2", 2.0), ("0.5", 0.5)])
def test_interval_takes_go_durations_and_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5x", "", "1s2", "10ms", "-1s"])
def test_bad_or_too_short_intervals_are_refused(bad):
    with pytest.raises(RuntimeUserError, match="--interval"):
        parse_duration(bad)


def test_compact_json_is_runcs():
    assert compact_json({"type": "stats", "id": "c1", "data": [1, 2]}) == '{"type":"stats","id":"c1","data":[1,2]}'
    assert json.loads(compact_json([{"a": None}])) == [{"a": None}]


@pytest.mark.parametrize("flags", [["--cgroup-manager", "systemd"], ["--systemd-cgroup"]])
def test_systemd_is_refused_alike_by_either_flag(flags):
    from pyruntime import cli

    with pytest.raises(RuntimeUserError) as refused:
        cli.main_group.main([*flags, "list"], standalone_mode=False)
    assert refused.value.message.endswith("the systemd cgroup driver is not supported; "
                                          "use --cgroup-manager cgroupfs (the default) or disabled")
    assert refused.value.message.startswith(" ".join(flags) + ":")
