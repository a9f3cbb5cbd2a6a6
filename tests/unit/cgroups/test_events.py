"""The stats and OOM event streams of `events` (cgroups/events.py), on a fake manager."""

from pyruntime.cgroups import events


class FakeManager:
    def __init__(self, counts, data=None):
        self.counts = list(counts)
        self.data = data or {"pids": {"current": 1}}
        self.polls = 0

    def oom_count(self):
        self.polls += 1
        return self.counts[min(self.polls - 1, len(self.counts) - 1)]

    def stats(self):
        return self.data

    def exists(self):
        return self.polls < len(self.counts)


def test_oom_events_one_per_kill():
    mgr = FakeManager([1, 1, 3, 3, 4])  # one kill before the stream started: not reported
    found = list(events.oom_events(mgr, "c1", poll=0, sleep=lambda s: None))
    assert found == [{"type": "oom", "id": "c1"}] * 3


def test_event_stream_interleaves_stats_and_oom():
    clock = iter(range(100))
    mgr = FakeManager([0, 0, 1, 1, 1])
    found = list(events.event_stream(mgr, "c1", interval=2, poll=0, clock=lambda: next(clock),
                                     sleep=lambda s: None))
    kinds = [e["type"] for e in found]
    assert kinds.count("oom") == 1
    assert kinds[0] == "stats" and found[0] == {"type": "stats", "id": "c1", "data": {"pids": {"current": 1}}}


def test_stats_event_shape():
    assert events.stats_event(FakeManager([0]), "x") == {"type": "stats", "id": "x", "data": {"pids": {"current": 1}}}
