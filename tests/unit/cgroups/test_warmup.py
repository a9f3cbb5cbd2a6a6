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
