import json
import uuid
from pathlib import Path

import pytest

from tests.support import container_config, make_bundle, pyruntime


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
