"""Property: for a randomly damaged config.json that validation rejects, `create` fails with
one clear message and starts nothing (no state, no cgroup, no process)."""

import json
import os
import uuid

from hypothesis import HealthCheck, given, settings

from pyruntime.errors import ConfigError
from pyruntime.spec import validate_config
from tests.support import BUSYBOX_ROOTFS
from tests.unit.spec.strategies import damaged_configs


def cgroup_dirs(cid: str) -> list[str]:
    return [d for base in os.listdir("/sys/fs/cgroup")
            for d in [f"/sys/fs/cgroup/{base}/pyruntime/{cid}"] if os.path.exists(d)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=damaged_configs())
def test_create_starts_nothing_for_an_invalid_config(rt, config):
    try:
        validate_config(config)
    except ConfigError:
        invalid = True
    else:
        invalid = False
    bundle = rt.tmp_path / uuid.uuid4().hex[:8]
    bundle.mkdir()
    (bundle / "rootfs").symlink_to(BUSYBOX_ROOTFS)
    (bundle / "config.json").write_text(json.dumps(config))
    cid = rt.new_id()
    proc = rt("create", "--bundle", str(bundle), cid)
    if not invalid:
        rt("delete", "--force", cid)  # still a container; what it does is not this test's concern
        return
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("invalid config.json"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (rt.root / cid).exists()
    assert cgroup_dirs(cid) == []
