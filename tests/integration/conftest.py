import json
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import (BUSYBOX_ROOTFS, REPO, apply_changes, container_config, make_bundle,
                           pyruntime, wait_for)


class Runtime:
    """The CLI against a private --root; forgets nothing it created."""

    def __init__(self, root, tmp_path):
        self.root = root
        self.tmp_path = tmp_path
        self.ids: list[str] = []
        self.extra_dirs: list[Path] = []

    def new_id(self) -> str:
        cid = f"t-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def __call__(self, *args, **kwargs):
        return pyruntime(*args, root=self.root, **kwargs)

    def bundle(self, args, name=None, **changes):
        return make_bundle(self.tmp_path / (name or uuid.uuid4().hex[:8]), container_config(args, **changes))

    def bundle_from(self, config, name=None, traversable=False):
        """`traversable`: in a directory every user can enter, for containers whose root is
        mapped to an unprivileged host uid (pytest's own temp root is private to root)."""
        base = self.tmp_path
        if traversable:
            import tempfile

            base = Path(tempfile.mkdtemp(prefix="pyruntime-test-", dir="/var/tmp"))
            base.chmod(0o755)
            self.extra_dirs.append(base)
        return make_bundle(base / (name or uuid.uuid4().hex[:8]), config)

    def run(self, args, **changes):
        """Run a container in the foreground; return the CompletedProcess."""
        bundle = self.bundle(args, **changes)
        return self("run", "--bundle", str(bundle), self.new_id())

    def state(self, cid) -> dict:
        proc = self("state", cid, check=True)
        return json.loads(proc.stdout)

    def cleanup(self):
        for cid in self.ids:
            pyruntime("delete", "--force", cid, root=self.root)
        import shutil

        for d in self.extra_dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rt(tmp_path):
    runtime = Runtime(tmp_path / "state", tmp_path)
    yield runtime
    runtime.cleanup()
    left = sorted(p.name for p in runtime.root.iterdir()) if runtime.root.is_dir() else []
    assert not left, f"state directories left in --root: {left}"


# -- throwaway users, for rootless tests ------------------------------------------------------
# Each gets its own copy of the package (the checkout may live where only root can read), a
# bundle it owns, and subordinate id ranges from useradd. Everything it made goes with it.
class User:
    def __init__(self, name: str, base: Path):
        entry = pwd.getpwnam(name)
        self.name, self.uid, self.gid, self.home = name, entry.pw_uid, entry.pw_gid, entry.pw_dir
        self.base = base
        self.lib = base / "lib"
        self.subuid = _subordinate("/etc/subuid", name)
        self.subgid = _subordinate("/etc/subgid", name)

    @property
    def state_root(self) -> Path:
        return Path(f"/tmp/pyruntime-{self.uid}")

    def env(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.name, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                "PYTHONPATH": str(self.lib)}

    def run(self, *args, cwd=None, **kwargs) -> subprocess.CompletedProcess:
        """pyruntime as this user (no XDG_RUNTIME_DIR: the default state root is /tmp's)."""
        return pyruntime(*args, as_user=self.name, env=self.env(), cwd=cwd or self.base, **kwargs)

    def bundle(self, args: list[str], spec_args=(), **changes) -> Path:
        """A bundle the user owns, from `pyruntime spec --rootless` run as the user; its
        network hook (if any) runs this user's copy of the package."""
        bundle = self.base / uuid.uuid4().hex[:8]
        bundle.mkdir()
        subprocess.run(["cp", "-a", str(BUSYBOX_ROOTFS), str(bundle / "rootfs")], check=True)
        shutil.chown(bundle, self.name, self.name)
        subprocess.run(["chown", "-R", f"{self.name}:{self.name}", str(bundle / "rootfs")], check=True)
        made = self.run("spec", "--rootless", *spec_args, cwd=bundle)
        assert made.returncode == 0, made.stderr
        config = json.loads((bundle / "config.json").read_text())
        for hooks in (config.get("hooks") or {}).values():
            for hook in hooks:
                hook["path"] = str(self.hook_script())
        config["process"].update(terminal=False, args=args)
        apply_changes(config, changes)
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle


    def hook_script(self) -> Path:
        script = self.base / "pyruntime-network-hook"
        if not script.exists():
            script.write_text(f"#!/bin/sh\nPYTHONPATH={self.lib} exec {sys.executable} "
                              "-m pyruntime.network.hook \"$@\"\n")
            script.chmod(0o755)
        return script


def _subordinate(path: str, name: str) -> tuple[int, int]:
    for line in Path(path).read_text().splitlines():
        owner, start, count = line.split(":")
        if owner == name:
            return int(start), int(count)
    raise AssertionError(f"useradd gave {name} no range in {path}")


def _make_user() -> User:
    name = f"pyrt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    base = Path(tempfile.mkdtemp(prefix="pyruntime-rootless-", dir="/var/tmp"))
    base.chmod(0o755)
    shutil.copytree(REPO / "pyruntime", base / "lib" / "pyruntime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "oci-schemas", base / "lib" / "oci-schemas")
    shutil.chown(base, name, name)
    return User(name, base)


def _remove_user(user: User) -> None:
    name = user.name
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    wait_for(lambda: subprocess.run(["pgrep", "-u", name], capture_output=True).returncode != 0)
    for leftover in (user.state_root, Path(f"/tmp/pyruntime-network-{user.uid}")):
        shutil.rmtree(leftover, ignore_errors=True)
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        kept = [l for l in Path(path).read_text().splitlines(True) if not l.startswith(name + ":")]
        Path(path).write_text("".join(kept))
    shutil.rmtree(user.base, ignore_errors=True)


@pytest.fixture
def make_user():
    """make_user() -> a new throwaway user (useradd -m, subordinate ids); all removed after."""
    made: list[User] = []

    def make() -> User:
        made.append(_make_user())
        return made[-1]

    yield make
    for user in made:
        _remove_user(user)


@pytest.fixture
def user(make_user):
    return make_user()


