"""The host's cgroup hierarchies (pyruntime.cgroups.mounts): mountinfo, /proc/cgroups, the mode."""

from pyruntime.cgroups import mounts

# ---------------------------------------------------------------- host discovery

MOUNTINFO = """\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw shared:14 - cgroup cgroup rw,net_cls,net_prio
31 1 0:28 / /mnt/other rw shared:15 - cgroup cgroup rw,pids
"""
PROC_CGROUPS = """\
#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	3	1
cpu	1	3	1
cpuacct	1	3	1
memory	4	18	1
net_cls	5	1	1
net_prio	5	1	1
pids	8	3	1
"""


def test_v1_hierarchies_from_mountinfo():
    known = [c for c, on in mounts.parse_proc_cgroups(PROC_CGROUPS).items() if on]
    assert mounts.v1_hierarchies_from(MOUNTINFO, known) == {
        "name=systemd": "/sys/fs/cgroup/systemd",
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "net_cls": "/sys/fs/cgroup/net_cls,net_prio",
        "net_prio": "/sys/fs/cgroup/net_cls,net_prio",
    }


def test_detect_mode(tmp_path):
    assert mounts.detect_mode(str(tmp_path)) == "v1"
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert mounts.detect_mode(str(tmp_path)) == "hybrid"
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert mounts.detect_mode(str(tmp_path)) == "v2"
