"""Device rules (pyruntime.cgroups.devices): the order they take effect in, what an update passes
through."""

import itertools

import pytest

from pyruntime.cgroups import devices
from pyruntime.cgroups.devices import DeviceState, Rule
from pyruntime.cgroups.v1 import V1Manager
from pyruntime.errors import RuntimeUserError
from tests.unit.cgroups.support import PATH, Recorder, fake_v1

# ---------------------------------------------------------------- devices

def test_effective_device_rules_order():
    rules = devices.effective_rules(
        [{"allow": False, "access": "rwm"}, {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "mr"}])
    lines = [(r.allow, r.v1_line()) for r in rules]
    assert lines[0] == (False, "a *:* rwm")
    assert lines[1] == (False, "a *:* rwm")
    assert lines[2] == (True, "b 8:* rm")
    assert (True, "c 1:3 rwm") in lines and (True, "c 136:* rwm") in lines
    assert lines[-1] == (True, "c 10:200 rwm")


def state_of(resource_devices) -> DeviceState:
    return devices.emulate(devices.named_rules(resource_devices))


def step_through(start: DeviceState, steps) -> list[DeviceState]:
    """The kernel's state after each write."""
    states, state = [], start.copy()
    for rule in steps:
        state.apply(rule)
        states.append(state.copy())
    return states


def within(state: DeviceState, *bounds: DeviceState) -> bool:
    """Nothing allowed in `state` that none of `bounds` allows (all of them deny by default)."""
    if state.default_allow:
        return False
    return all(set(access) <= set().union(*(set(b.exceptions.get(key, "")) for b in bounds))
               for key, access in state.exceptions.items())


# ---------------------------------------------------------------- devices

KMSG_W = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}
FUSE = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
NULL_R_ONLY = {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}

RULE_SETS = [[], [KMSG_W], [FUSE], [KMSG_W, FUSE], [{**KMSG_W, "access": "rw"}],
             [{"allow": True, "type": "b", "major": 8, "access": "rm"}]]


@pytest.mark.parametrize("before,after", list(itertools.permutations(RULE_SETS, 2)))
def test_device_update_passes_through_nothing_wider_than_either_end(before, after):
    old, new = state_of(before), state_of(after)
    steps = devices.transition(old, new)
    assert all(rule.type != "a" for rule in steps)          # never "allow all", never "deny all"
    states = step_through(old, steps)
    assert all(within(s, old, new) for s in states), steps
    assert (states[-1] if states else old) == new
    # the defaults (/dev/null, ptys, mknod) stay allowed at every step
    for s in [old] + states:
        assert s.exceptions[("c", 1, 3)] == "rwm" and s.exceptions[("c", 136, None)] == "rwm"


def test_device_update_writes_only_the_difference():
    old, new = state_of([KMSG_W, FUSE]), state_of([{**KMSG_W, "access": "rw"}])
    assert devices.transition(old, new) == [Rule(False, "c", 10, 229, "rwm"), Rule(True, "c", 1, 11, "r")]
    assert devices.transition(new, new) == []


def test_device_rules_start_with_deny_all_where_the_current_exceptions_are_unknown():
    new = state_of([KMSG_W])
    for current in (None, DeviceState.from_list("a *:* rwm\n")):
        steps = devices.transition(current, new)
        assert steps[0] == Rule(False, "a", None, None, "rwm")
        assert step_through(DeviceState(True), steps)[-1] == new


def test_devices_list_is_read_as_the_kernel_shows_it():
    text = "c *:* m\nb *:* m\nc 1:3 rwm\nc 136:* rwm\nb 8:0 r\n"
    assert DeviceState.from_list(text) == DeviceState(False, {
        ("c", None, None): "m", ("b", None, None): "m", ("c", 1, 3): "rwm", ("c", 136, None): "rwm",
        ("b", 8, 0): "r"})
    assert DeviceState.from_list("") == DeviceState(False)
    assert DeviceState.from_list("a *:* rwm\n").default_allow is True
    assert DeviceState.from_list(None) is None


def test_a_deny_inside_a_wildcard_allow_is_refused_naming_the_rule():
    # runc refuses this list too: the v1 kernel would keep c 1:11 allowed through c *:*
    with pytest.raises(RuntimeUserError) as err:
        state_of([{"allow": True, "type": "c", "access": "rwm"},
                  {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rw"}])
    assert str(err.value).startswith("linux.resources.devices[1]: cannot deny c 1:11 rw inside the rule c *:* rwm")
    # the same deny before the wildcard, or of access the wildcard lacks, is fine
    state_of([{"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rw"},
              {"allow": True, "type": "c", "access": "rwm"}])
    state_of([{"allow": False, "type": "c", "major": 1, "minor": 11, "access": "r"}])


def test_linux_devices_get_no_rule_of_their_own(tmp_path, monkeypatch):
    rec = Recorder(monkeypatch, tmp_path)
    mgr = V1Manager(PATH, hierarchies=fake_v1(tmp_path))
    mgr.create({"devices": [{"allow": False, "access": "rwm"}]},
               linux_devices=[{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}])
    written = rec.to("devices.allow") + rec.to("devices.deny")
    assert "c 1:3 rwm" in written and not any("1:11" in line for line in written)
    assert not any(r.v1_line().startswith("c 1:11") for r in devices.effective_rules([]))


def test_update_with_devices_reads_devices_list_and_writes_the_transition(tmp_path, monkeypatch):
    hier = fake_v1(tmp_path)
    listing = tmp_path / "devices" / PATH.strip("/") / "devices.list"
    listing.write_text("".join(r.v1_line() + "\n" for r in devices.transition(None, state_of([KMSG_W]))[1:]))
    rec = Recorder(monkeypatch, tmp_path)
    stored = {"devices": [KMSG_W], "pids": {"limit": 5}}
    merged = V1Manager(PATH, hierarchies=hier).update(stored, {"devices": []})
    assert merged == {"devices": [], "pids": {"limit": 5}}
    assert rec.to("devices.deny") == ["c 1:11 w"] and rec.to("devices.allow") == []
    # an update that does not name devices leaves them alone
    rec.writes.clear()
    V1Manager(PATH, hierarchies=hier).update(stored, {"pids": {"limit": 7}})
    assert not rec.to("devices.allow") and not rec.to("devices.deny")
