"""Helpers shared by the test suites: how to call the CLI and what counts as a leak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def repo_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses that must import this checkout of pyruntime."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def pyruntime(*args: str, root: str | os.PathLike | None = None, check: bool = False,
              timeout: float = 60, as_user: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run the pyruntime CLI of this checkout and capture its output (`as_user`: run by that
    user, through runuser).

    Output goes through files, not pipes: a created container's init inherits the caller's
    stdio (as with runc), so a pipe would stay open until the container exits."""
    import tempfile

    cmd = ["runuser", "-u", as_user, "--"] if as_user else []
    cmd += [sys.executable, "-m", "pyruntime"]
    if root is not None:
        cmd += ["--root", str(root)]
    cmd += list(args)
    if "input" not in kwargs:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, env=kwargs.pop("env", repo_env()), timeout=timeout,
                              stdout=out, stderr=err, **kwargs)
        out.seek(0)
        err.seek(0)
        proc.stdout = out.read().decode(errors="replace")
        proc.stderr = err.read().decode(errors="replace")
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


def host_snapshot() -> dict[str, set[str]]:
    """What a test could leak on the host, read from the kernel and the standard tools."""
    snap: dict[str, set[str]] = {}
    snap["links"] = set(os.listdir("/sys/class/net"))
    snap["netns"] = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    with open("/proc/self/mountinfo") as f:
        snap["mounts"] = {line.split()[4] for line in f}
    cgroups = set()
    for base in Path("/sys/fs/cgroup").iterdir():
        for sub in ("pyruntime", "pyruntime-test"):
            for dirpath, _, _ in os.walk(base / sub):  # tolerates dirs removed while walking
                if dirpath != str(base / sub):
                    cgroups.add(dirpath)
    snap["cgroups"] = cgroups
    rules = set()
    for tool in ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"):
        if "legacy" in tool and not _legacy_tables_exist(tool.startswith("ip6")):
            continue  # reading would load the legacy table modules and make empty tables
        try:
            out = subprocess.run([tool], capture_output=True, text=True, timeout=20).stdout
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
        # a chain line's packet and byte counters ("[12:3456]") change with traffic, not with tests
        rules.update(f"{tool}: {line.rsplit(' [', 1)[0] if line.startswith(':') else line}"
                     for line in out.splitlines() if line.startswith(("-A", ":")))
    snap["rules"] = rules
    try:
        nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=20).stdout
        snap["nft_tables"] = set(nft.splitlines())
    except FileNotFoundError:
        snap["nft_tables"] = set()
    snap["container_processes"] = processes_in_other_pid_namespaces()
    default_root = Path("/run/pyruntime")
    snap["state_dirs"] = {str(p) for p in default_root.iterdir()} if default_root.is_dir() else set()
    return snap


def _legacy_tables_exist(ipv6: bool) -> bool:
    try:
        with open("/proc/net/ip6_tables_names" if ipv6 else "/proc/net/ip_tables_names") as f:
            return bool(f.read().strip())
    except OSError:
        return False


def processes_in_other_pid_namespaces() -> set[str]:
    """"pid comm" of every live process whose PID namespace is not ours: container processes.
    Zombies are left out: a killed detached container's init waits there until the host's
    init reaps it, which holds nothing of the container."""
    ours = os.readlink("/proc/self/ns/pid")
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") == ours:
                continue
            with open(f"/proc/{entry}/stat") as f:
                comm, _, rest = f.read().partition("(")[2].rpartition(")")
            if rest.split()[0] != "Z":
                found.add(f"{entry} {comm}")
        except OSError:
            continue  # exited while we looked, or a kernel thread
    return found


def leaks(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {k: after[k] - before.get(k, set()) for k in after if after[k] - before.get(k, set())}


def load_json(text: str):
    return json.loads(text)


BUSYBOX_ROOTFS = REPO / "bundles" / "busybox" / "rootfs"

def container_config(args: list[str], **changes) -> dict:
    """`pyruntime spec`'s default config with what tests need: no terminal, `args` to run, a
    cgroup namespace (the default adds it only on cgroup v2 hosts) and a writable /tmp under
    the read-only root. Keyword changes replace a top-level field, or with a double
    underscore a field one level down (process__terminal=True sets process.terminal)."""
    from pyruntime.spec import default_spec

    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["hostname"] = "pyruntime-test"
    namespaces = config["linux"]["namespaces"]
    if not any(ns["type"] == "cgroup" for ns in namespaces):
        namespaces.append({"type": "cgroup"})
    config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev"]})
    return apply_changes(config, changes)


def apply_changes(config: dict, changes: dict) -> dict:
    """Keyword changes to a config: `key=v` replaces a top-level field, `section__field=v`
    a field one level down."""
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config.setdefault(section, {})[field] = value
        else:
            config[section] = value
    return config


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 15, interval: float = 0.05):
    """Poll `predicate` until it returns something true or `timeout` passes; its last value."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def pyruntime_with_fd3(rt, data: bytes, *args: str) -> subprocess.CompletedProcess:
    """The CLI with a pipe holding `data` as its fd 3 (for --preserve-fds)."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    try:
        return subprocess.run(
            [sys.executable, "-c",
             f"import os, sys; os.dup2({r}, 3); os.execv(sys.executable, [sys.executable, '-m', "
             f"'pyruntime', '--root', {str(rt.root)!r}, *{list(args)!r}])"],
            pass_fds=(r,), env=repo_env(), capture_output=True, text=True, timeout=30)
    finally:
        os.close(r)


def make_bundle(directory: Path, config: dict, copy_rootfs: bool = True) -> Path:
    """A bundle in `directory`: config.json plus its own copy of the busybox rootfs."""
    directory.mkdir(parents=True, exist_ok=True)
    if copy_rootfs:
        subprocess.run(["cp", "-a", str(BUSYBOX_ROOTFS), str(directory / "rootfs")], check=True)
    else:
        config = json.loads(json.dumps(config))
        config["root"]["path"] = str(BUSYBOX_ROOTFS)
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    return directory


_OPEN_DEVICES = """
import errno, json, os, sys
sys.stdin.readline()
result = {}
for name in sys.argv[1:]:
    try:
        os.close(os.open(name, os.O_RDONLY))
        result[name] = "ok"
    except OSError as e:
        result[name] = errno.errorcode[e.errno]
print(json.dumps(result))
"""


def kmsg_and_null(directory: Path) -> tuple[str, str]:
    """Device nodes for /dev/kmsg (c 1:11) and /dev/null (c 1:3) made in `directory`."""
    kmsg, null = str(directory / "kmsg"), str(directory / "null")
    os.mknod(kmsg, 0o600 | 0o020000, os.makedev(1, 11))
    os.mknod(null, 0o666 | 0o020000, os.makedev(1, 3))
    return kmsg, null


def open_devices_in_cgroup(manager, *paths: str) -> dict[str, str]:
    """{path: "ok" or the errno name} for opening each path from a process that is moved into
    the cgroup of `manager` before it tries (it waits on stdin until then)."""
    proc = subprocess.Popen([sys.executable, "-c", _OPEN_DEVICES, *paths],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        manager.add_process(proc.pid)
        out, _ = proc.communicate("go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return json.loads(out)
