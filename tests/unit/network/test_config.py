"""Finding a network's conflist (pyruntime.network.config)."""

import pytest

from pyruntime.errors import RuntimeUserError
from pyruntime.network.config import DEFAULT_CONFLIST, find_network


def test_find_network(tmp_path):
    assert find_network("pyruntime", [str(tmp_path)]) is DEFAULT_CONFLIST
    (tmp_path / "lab.conflist").write_text(
        '{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"bridge"}]}')
    assert find_network("lab", [str(tmp_path)])["plugins"][0]["type"] == "bridge"
    (tmp_path / "odd.conflist").write_text('{"cniVersion":"1.0.0","name":"lab","plugins":[{"type":"b"}]}')
    with pytest.raises(RuntimeUserError, match="named 'lab', not 'odd'"):
        find_network("odd", [str(tmp_path)])
    with pytest.raises(RuntimeUserError, match="network 'nope' not found"):
        find_network("nope", [str(tmp_path)])


def test_deep_conflist_in_the_config_dir_is_one_clear_error(tmp_path):
    (tmp_path / "deep.conflist").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(RuntimeUserError, match=r"deep.conflist: nested more than 100 levels deep"):
        find_network("deep", [str(tmp_path)])
