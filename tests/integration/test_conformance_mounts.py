"""The container's mounts where runc and crun behave one way a script can see: the root's
propagation, recursive mount attributes, what --no-pivot leaves in the namespace, a tmpfs's
mode, a read-only /dev, a rootfs without /proc, and who owns the terminal and stdio pipes."""

import json
import os
import subprocess
import sys

import pytest

from tests.support import container_config, repo_env


def _root_mount_fields(proc) -> list[str]:
    """The optional fields (shared:N, master:N, unbindable) of `/` in mountinfo output."""
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/":
            return fields[6:fields.index("-")]
    raise AssertionError(f"no / in mountinfo: {proc.stdout}{proc.stderr}")


@pytest.mark.parametrize("propagation, expected", [
    ("shared", "shared:"), ("rshared", "shared:"), ("unbindable", "unbindable"),
    ("runbindable", "unbindable"), ("private", None), ("rprivate", None),
    ("slave", None), ("rslave", None),
])
def test_root_propagation_takes_effect(rt, propagation, expected):
    config = container_config(["cat", "/proc/self/mountinfo"])
    config["linux"]["rootfsPropagation"] = propagation
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    fields = _root_mount_fields(proc)
    if expected is None:
        # a slave of nothing is private: the root is a bind made under a private parent
        assert fields == [], fields
    else:
        assert [f for f in fields if f.startswith(expected)], fields


def test_shared_root_propagates_to_a_bind_of_itself(rt):
    """runtime-tools' check: a mount made after binding / elsewhere shows up in the bind."""
    script = ("mkdir -p /tmp/copy /tmp/new && mount --rbind / /tmp/copy && "
              "mount -t tmpfs tmpfs /tmp/new && touch /tmp/new/seen && "
              "ls /tmp/copy/tmp/new/seen")
    config = container_config(["sh", "-c", script])
    caps = config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = [*caps.get(kind, []), "CAP_SYS_ADMIN"]
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/tmp"]
    config["root"]["readonly"] = False
    config["linux"]["rootfsPropagation"] = "rshared"
    shared = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    config["linux"]["rootfsPropagation"] = "rprivate"
    private = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert shared.returncode == 0, shared.stderr
    assert private.returncode != 0 and "No such file" in private.stderr, private.stderr


@pytest.fixture
def tree_with_submount(tmp_path):
    """A directory with a tmpfs mounted below it: what an `rbind` carries along."""
    top = tmp_path / "volume"
    (top / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(top / "sub")], check=True)
    yield top
    subprocess.run(["umount", str(top / "sub")], check=True)


def test_recursive_read_only_reaches_every_submount(rt, tree_with_submount):
    script = ("touch /volume/top 2>/dev/null && echo top-writable; "
              "touch /volume/sub/below 2>/dev/null && echo sub-writable; "
              "grep ' /volume' /proc/self/mountinfo")
    config = container_config(["sh", "-c", script])
    config["mounts"].append({"destination": "/volume", "type": "bind",
                             "source": str(tree_with_submount), "options": ["rbind", "rro"]})
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert "writable" not in proc.stdout, proc.stdout
    mounts = [line.split() for line in proc.stdout.splitlines() if " /volume" in line]
    assert {m[4] for m in mounts} == {"/volume", "/volume/sub"}
    assert all(m[5].split(",")[0] == "ro" for m in mounts), mounts


def test_recursive_nosuid_noexec_and_a_later_option_wins(rt, tree_with_submount):
    config = container_config(["grep", " /volume", "/proc/self/mountinfo"])
    config["mounts"].append({"destination": "/volume", "type": "bind",
                             "source": str(tree_with_submount),
                             "options": ["rbind", "rnosuid", "rnoexec", "rro", "rrw", "rnoatime"]})
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    mounts = [line.split() for line in proc.stdout.splitlines()]
    assert len(mounts) == 2, proc.stdout
    for m in mounts:
        options = set(m[5].split(","))
        assert {"rw", "nosuid", "noexec", "noatime"} <= options, m


def test_recursive_attributes_on_a_new_filesystem(rt):
    config = container_config(["sh", "-c", "touch /scratch/x 2>/dev/null || echo refused"])
    config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                             "options": ["rro"]})
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "refused\n"


# -- --no-pivot ------------------------------------------------------------------------------
def test_no_pivot_container_cannot_mount_proc_from_a_nested_user_namespace(rt):
    """With --no-pivot the host's mounts stay in the container's namespace below its root;
    while the host's whole proc is among them, a nested user namespace may mount a fresh,
    unmasked proc (the container's own is masked, so it alone would not allow that)."""
    config = container_config(["unshare", "-mrpf", "sh", "-c",
                               "mount -t proc none /proc && echo mounted"])
    caps = config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = [*caps.get(kind, []), "CAP_SETFCAP", "CAP_SYS_ADMIN"]
    proc = rt("run", "--no-pivot", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert "mounted" not in proc.stdout
    assert "permission denied" in proc.stderr, proc.stderr


# -- tmpfs mode, read-only /dev, no /proc ----------------------------------------------------
def test_tmpfs_without_mode_takes_the_mode_of_the_directory_it_covers(rt):
    config = container_config(["stat", "-c", "%a", "/scratch", "/fresh", "/given"])
    for dest, options in (("/scratch", []), ("/fresh", []), ("/given", ["mode=700"])):
        config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                                 "options": options})
    bundle = rt.bundle_from(config)
    for name in ("scratch", "given"):
        (bundle / "rootfs" / name).mkdir()
        (bundle / "rootfs" / name).chmod(0o1770)
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    # a path the image lacks keeps tmpfs's default; mode= is never overridden
    assert proc.stdout.split() == ["1770", "1777", "700"]


def test_read_only_dev_still_gets_pts_devices_and_links(rt):
    config = container_config(["sh", "-c", "ls /dev/pts /dev/null /dev/stdout >/dev/null && "
                                           "grep ' /dev ' /proc/self/mountinfo && touch /dev/new"])
    for m in config["mounts"]:
        if m["destination"] == "/dev":
            m["options"].append("ro")
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode != 0
    assert proc.stdout.split()[5].startswith("ro,"), proc.stdout
    assert "Read-only file system" in proc.stderr, proc.stderr


def test_a_rootfs_without_proc_starts(rt):
    config = container_config(["sh", "-c", "echo started; ls /"])
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
    bundle = rt.bundle_from(config)
    (bundle / "rootfs" / "proc").rmdir()
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "started"
    assert "proc" not in proc.stdout.split()


# -- terminal and stdio ownership ------------------------------------------------------------
def _cli(rt, *args: str) -> list[str]:
    return [sys.executable, "-m", "pyruntime", "--root", str(rt.root), *args]


def test_stdio_pipes_belong_to_the_process_user(rt):
    config = container_config(["sh", "-c", "stat -L -c %u:%g /proc/self/fd/0 /proc/self/fd/1 "
                                           "/proc/self/fd/2 && echo reopened > /dev/stdout"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    proc = subprocess.run(_cli(rt, "run", "--bundle", str(rt.bundle_from(config)), rt.new_id()),
                          input="", capture_output=True, text=True, timeout=60, env=repo_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1000:1000"] * 3 + ["reopened"]


def test_a_regular_file_given_as_stdout_is_left_as_it_is(rt, tmp_path):
    config = container_config(["echo", "written"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.run(_cli(rt, "run", "--bundle", str(rt.bundle_from(config)), rt.new_id()),
                              stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE,
                              text=True, timeout=60, env=repo_env())
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "written\n"
    assert (out.stat().st_uid, out.stat().st_gid) == (0, 0)


def _in_a_pty(command: list[str]) -> subprocess.CompletedProcess:
    """`command` with a terminal as its stdio (script(1) makes the pty)."""
    return subprocess.run(["script", "-qec", " ".join(command), "/dev/null"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          env=repo_env())


def test_the_terminal_belongs_to_the_process_user(rt):
    """run with process.terminal: the pty is the user's, its group devpts's tty group."""
    config = container_config(["stat", "-L", "-c", "%u %g %a", "/proc/self/fd/0"], process__terminal=True)
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    proc = _in_a_pty(_cli(rt, "run", "--bundle", str(rt.bundle_from(config)), rt.new_id()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.replace("\r", "").split()[-3:] == ["1000", "5", "620"]


def test_exec_with_a_terminal_gives_the_pty_to_the_exec_user(rt):
    cid = rt.new_id()
    bundle = rt.bundle_from(container_config(["sleep", "60"]))
    assert rt("run", "-d", "--bundle", str(bundle), cid).returncode == 0
    proc = _in_a_pty(_cli(rt, "exec", "-t", "--user", "1234:1234", cid,
                          "stat", "-L", "-c", "%u", "/proc/self/fd/0"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.replace("\r", "").split()[-1] == "1234"


def test_create_runtime_and_prestart_hooks_see_created(rt, tmp_path):
    seen = tmp_path / "seen"
    config = container_config(["true"])
    config["hooks"] = {phase: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat >> {seen}; echo >> {seen}"]}]
                       for phase in ("prestart", "createRuntime")}
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    states = [json.loads(line) for line in seen.read_text().splitlines() if line.strip()]
    assert [s["status"] for s in states] == ["created", "created"]
    assert all(s["pid"] > 0 for s in states)


# -- user namespaces -------------------------------------------------------------------------
def _userns_bundle(rt, config):
    """The bundle, with the mount point the image's root (unmapped inside) must provide."""
    bundle = rt.bundle_from(config, traversable=True)
    (bundle / "rootfs" / "volume").mkdir()
    return bundle


def _userns_config(args: list[str]) -> dict:
    config = container_config(args)
    config["linux"]["namespaces"].append({"type": "user"})
    for maps in ("uidMappings", "gidMappings"):
        config["linux"][maps] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    return config


@pytest.fixture
def private_volume(tmp_path):
    """A directory only the host's root may enter (pytest's tmp_path is 0700 root)."""
    volume = tmp_path / "private" / "volume"
    volume.mkdir(parents=True)
    (volume / "file").write_text("from the host\n")
    (tmp_path / "private").chmod(0o700)
    return volume


def test_userns_bind_sources_are_opened_on_the_host_side(rt, private_volume):
    config = _userns_config(["sh", "-c", "cat /volume/file; ls -ln /volume/file"])
    config["mounts"].append({"destination": "/volume", "type": "bind",
                             "source": str(private_volume), "options": ["rbind", "ro"]})
    proc = rt("run", "--bundle", str(_userns_bundle(rt, config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "from the host"
    assert lines[1].split()[2:4] == ["65534", "65534"]    # host root is unmapped inside


def test_userns_exec_into_a_container_with_inaccessible_mounts(rt, private_volume):
    config = _userns_config(["sleep", "60"])
    config["mounts"].append({"destination": "/volume", "type": "bind",
                             "source": str(private_volume), "options": ["rbind"]})
    cid = rt.new_id()
    assert rt("run", "-d", "--bundle", str(_userns_bundle(rt, config)), cid).returncode == 0
    proc = rt("exec", "--cwd", "/volume", cid, "cat", "file")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from the host\n"


def test_userns_missing_bind_source_names_the_mount(rt, tmp_path):
    config = _userns_config(["true"])
    config["mounts"].append({"destination": "/volume", "type": "bind",
                             "source": str(tmp_path / "absent"), "options": ["rbind"]})
    proc = rt("run", "--bundle", str(_userns_bundle(rt, config)), rt.new_id())
    assert proc.returncode != 0
    assert f"({'/volume'})" in proc.stderr and "does not exist" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_userns_devices_are_binds_of_the_hosts_nodes_without_exec_or_suid(rt):
    config = _userns_config(["sh", "-c", "grep -E ' /dev/(null|zero|tty) ' /proc/self/mountinfo; "
                                         "stat -c '%t:%T %a' /dev/null"])
    proc = rt("run", "--bundle", str(rt.bundle_from(config, traversable=True)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    mounts = [line.split() for line in proc.stdout.splitlines() if " - " in line]
    assert {m[4] for m in mounts} == {"/dev/null", "/dev/zero", "/dev/tty"}, proc.stdout
    for m in mounts:
        assert {"nosuid", "noexec"} <= set(m[5].split(",")), m
    host = os.stat("/dev/null")
    assert proc.stdout.splitlines()[-1] == f"1:3 {host.st_mode & 0o7777:o}"


# -- idmapped mounts -------------------------------------------------------------------------
@pytest.fixture
def owned_volume(tmp_path):
    """Files owned on disk by 0 and by 1000, for idmapped binds."""
    volume = tmp_path / "owned"
    (volume / "sub").mkdir(parents=True)
    (volume / "by-root").write_text("x")
    (volume / "by-1000").write_text("x")
    os.chown(volume / "by-1000", 1000, 1000)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(volume / "sub")], check=True)
    (volume / "sub" / "below").write_text("x")
    yield volume
    subprocess.run(["umount", str(volume / "sub")], check=True)


def test_idmap_bind_in_a_user_namespace_shows_the_files_as_the_containers(rt, owned_volume):
    """Without mappings of its own, an idmap mount takes the container's: what root owns on
    disk is root's inside, though the container's root is 100000 on the host."""
    config = _userns_config(["stat", "-c", "%n %u:%g", "/volume/by-root", "/volume/by-1000"])
    config["mounts"].append({"destination": "/volume", "type": "bind",
                             "source": str(owned_volume), "options": ["rbind", "idmap"]})
    proc = rt("run", "--bundle", str(_userns_bundle(rt, config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/volume/by-root", "0:0", "/volume/by-1000", "1000:1000"]


def _mapped_bind(source, option: str) -> dict:
    """An idmapped rbind at /volume with maps of its own: on-disk 0..1999 show as 5000..6999."""
    maps = [{"containerID": 0, "hostID": 5000, "size": 2000}]
    return {"destination": "/volume", "type": "bind", "source": str(source),
            "options": ["rbind", option], "uidMappings": maps, "gidMappings": maps}


def test_idmap_with_the_mounts_own_mappings_and_ridmap_reaches_submounts(rt, owned_volume):
    config = container_config(["stat", "-c", "%n %u", "/volume/by-root", "/volume/by-1000",
                               "/volume/sub/below"])
    config["mounts"].append(_mapped_bind(owned_volume, "ridmap"))
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/volume/by-root", "5000", "/volume/by-1000", "6000",
                                   "/volume/sub/below", "5000"]
    assert os.stat(owned_volume / "by-root").st_uid == 0     # the host's view is unchanged


def test_plain_idmap_leaves_submounts_unmapped(rt, owned_volume):
    config = container_config(["stat", "-c", "%u", "/volume/by-root", "/volume/sub/below"])
    config["mounts"].append(_mapped_bind(owned_volume, "idmap"))
    proc = rt("run", "--bundle", str(rt.bundle_from(config)), rt.new_id())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["5000", "0"]


def test_idmap_on_a_new_filesystem_is_refused(rt):
    config = _userns_config(["true"])
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                             "options": ["idmap"]})
    proc = rt("run", "--bundle", str(_userns_bundle(rt, config)), rt.new_id())
    assert proc.returncode != 0
    assert "(/tmp): idmapped mounts are made of binds only" in proc.stderr, proc.stderr


@pytest.mark.parametrize("name, fstype", [("proc", "proc"), ("sys", "sysfs")])
def test_proc_or_sys_as_a_symlink_in_the_image_is_refused(rt, name, fstype):
    bundle = rt.bundle_from(container_config(["true"]))
    (bundle / "rootfs" / name).rmdir()
    (bundle / "rootfs" / "elsewhere").mkdir()
    (bundle / "rootfs" / name).symlink_to("/elsewhere")
    proc = rt("run", "--bundle", str(bundle), rt.new_id())
    assert proc.returncode != 0
    assert f'filesystem "{fstype}" must be mounted on an ordinary directory' in proc.stderr
    assert f"(/{name})" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
