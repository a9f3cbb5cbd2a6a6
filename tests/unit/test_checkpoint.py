"""The checkpoint and restore commands (pyruntime.checkpoint)."""

import pytest

from pyruntime.errors import RuntimeUserError


def test_restore_refuses_what_is_not_a_checkpoint(tmp_path):
    from pyruntime import checkpoint as cr

    with pytest.raises(RuntimeUserError, match="no such directory"):
        cr.read_descriptors(str(tmp_path / "missing"))
    with pytest.raises(RuntimeUserError, match="not a checkpoint .descriptors.json is missing"):
        cr.read_descriptors(str(tmp_path))
    (tmp_path / "descriptors.json").write_text('["/dev/null", "pipe:[5]"]')
    assert cr.read_descriptors(str(tmp_path)) == ["/dev/null", "pipe:[5]"]
