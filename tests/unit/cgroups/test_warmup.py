"""The early no-op cgroup move (pyruntime.cgroups.warmup)."""

def test_warmup_finds_a_cgroup_the_process_is_in(tmp_path):
    from pyruntime.cgroups import warmup

    def make(*parts):
        d = tmp_path.joinpath(*parts)
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
        return str(d / "cgroup.procs")

    # hybrid host: the first line whose hierarchy is mounted wins, in /proc/self/cgroup order
    text = "12:pids:/user.slice\n4:cpu,cpuacct:/svc\n1:name=systemd:/svc\n0::/svc\n"
    assert warmup.own_procs_file(text, str(tmp_path)) is None
    systemd = make("systemd", "svc")
    assert warmup.own_procs_file(text, str(tmp_path)) == systemd
    co_mounted = make("cpu,cpuacct", "svc")
    assert warmup.own_procs_file(text, str(tmp_path)) == co_mounted
    assert warmup.own_procs_file("0::/svc\n", str(tmp_path)) is None
    unified = make("unified", "svc")
    assert warmup.own_procs_file("0::/svc\n", str(tmp_path)) == unified
    # pure v2: the unified hierarchy is the root itself
    v2 = tmp_path / "v2"
    (v2 / "ctr").mkdir(parents=True)
    (v2 / "ctr" / "cgroup.procs").write_text("")
    assert warmup.own_procs_file("0::/ctr\n", str(v2)) == str(v2 / "ctr" / "cgroup.procs")
    assert warmup.own_procs_file("garbage\n", str(tmp_path)) is None


class _RecordingOs:
    """os for the warm-up thread: records its calls; write blocks until `proceed` is set
    (the kernel's grace period), open fails with `open_error` when given."""

    def __init__(self, open_error=None):
        import os
        import threading

        self._os = os
        self.calls = []
        self.proceed = threading.Event()
        self.writing = threading.Event()
        self.open_error = open_error

    def __getattr__(self, name):
        return getattr(self._os, name)

    def open(self, path, flags):
        self.calls.append("open")
        if self.open_error:
            raise self.open_error
        return self._os.open("/dev/null", self._os.O_WRONLY | self._os.O_CLOEXEC)

    def write(self, fd, data):
        self.calls.append("write")
        self.writing.set()
        self.proceed.wait(5)
        return len(data)


def _start_with(monkeypatch, fake):
    import time

    from pyruntime.cgroups import warmup

    monkeypatch.setattr(warmup, "os", fake)
    monkeypatch.setattr(warmup, "own_procs_file", lambda text: "/sys/fs/cgroup/x/cgroup.procs")
    began = time.monotonic()
    warmup.start()
    return warmup, time.monotonic() - began


def test_start_returns_once_the_first_move_is_under_way(monkeypatch):
    """The thread's first move begins before start() returns (it would otherwise wait for the
    GIL behind the imports that follow), and start() does not wait for the move itself."""
    fake = _RecordingOs()
    warmup, took = _start_with(monkeypatch, fake)
    try:
        assert fake.calls[:1] == ["open"]      # at return, not later
        assert fake.writing.wait(2)
        assert took < 1
    finally:
        warmup.stop()
        fake.proceed.set()


def test_start_does_not_wait_for_a_move_that_cannot_be_made(monkeypatch):
    fake = _RecordingOs(open_error=PermissionError(13, "Permission denied"))
    warmup, took = _start_with(monkeypatch, fake)
    assert fake.calls == ["open"] and "write" not in fake.calls
    assert took < warmup.START_WAIT_S + 0.5
