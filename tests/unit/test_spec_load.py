"""load_config: every way reading a bundle can fail gives one clear RuntimeUserError."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pyruntime.errors import ConfigError, RuntimeUserError
from pyruntime.spec import default_spec, load_config
from tests.unit.test_schema_config import isolated_cache  # noqa: F401 (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_bundle(path, config) -> str:
    (path / "rootfs").mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(config) if not isinstance(config, str) else config)
    return str(path)


def test_valid_bundle_loads(tmp_path):
    config = default_spec()
    assert load_config(make_bundle(tmp_path, config)) == config


def test_missing_bundle_dir(tmp_path):
    with pytest.raises(RuntimeUserError) as caught:
        load_config(str(tmp_path / "nope"))
    assert str(caught.value) == f"bundle {tmp_path}/nope does not exist"


def test_bundle_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RuntimeUserError, match="is not a directory"):
        load_config(str(tmp_path / "file"))


def test_missing_config_json(tmp_path):
    with pytest.raises(RuntimeUserError) as caught:
        load_config(str(tmp_path))
    assert str(caught.value) == f"bundle {tmp_path} has no config.json"
    assert not isinstance(caught.value, ConfigError)


def test_unreadable_config_json(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(RuntimeUserError) as caught:
        load_config(str(tmp_path))
    assert str(caught.value) == f"cannot read {tmp_path}/config.json: Is a directory"


def test_invalid_json_names_line_and_column(tmp_path):
    bundle = make_bundle(tmp_path, '{\n  "ociVersion": "1.2.0",\n  "root": {"path": "rootfs",}\n}\n')
    with pytest.raises(RuntimeUserError) as caught:
        load_config(bundle)
    assert str(caught.value) == (
        "invalid config.json: not valid JSON at line 3 column 29: Expecting property name enclosed in double quotes"
    )


def test_empty_config_json(tmp_path):
    with pytest.raises(RuntimeUserError, match="not valid JSON at line 1 column 1"):
        load_config(make_bundle(tmp_path, ""))


def test_config_json_that_is_not_utf8(tmp_path):
    (tmp_path / "config.json").write_bytes(b'{"ociVersion": "\xff"}')
    with pytest.raises(RuntimeUserError, match="invalid config.json"):
        load_config(str(tmp_path))


def test_schema_problem_is_a_config_error(tmp_path):
    config = default_spec()
    config["process"]["user"]["uid"] = "root"
    with pytest.raises(ConfigError) as caught:
        load_config(make_bundle(tmp_path, config))
    assert caught.value.problems == [("process.user.uid", 'expected an integer >= 0, got "root"')]


def test_missing_rootfs_is_a_config_error(tmp_path):
    bundle = make_bundle(tmp_path, default_spec())
    os.rmdir(tmp_path / "rootfs")
    with pytest.raises(ConfigError) as caught:
        load_config(bundle)
    assert caught.value.problems == [("root.path", f"{tmp_path}/rootfs does not exist")]


def run_fresh(code: str, cache_dir, *args) -> str:
    env = dict(os.environ, PYRUNTIME_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


LOAD_AND_LIST_MODULES = """
import sys
from pyruntime.errors import ConfigError
from pyruntime.spec import load_config
try:
    load_config(sys.argv[1])
    result = "valid"
except ConfigError as e:
    result = "invalid:" + e.problems[0][0]
heavy = sorted(m for m in ("jsonschema", "fastjsonschema", "decimal", "pathlib", "typing") if m in sys.modules)
print(result, ",".join(heavy) or "-")
"""


def test_valid_config_with_warm_cache_imports_no_schema_library(tmp_path):
    bundle = make_bundle(tmp_path, default_spec())
    cache = tmp_path / "cache"
    first = run_fresh(LOAD_AND_LIST_MODULES, cache, bundle)
    assert first.startswith("valid ")
    assert os.listdir(cache), "the compiled validator was not cached"
    assert run_fresh(LOAD_AND_LIST_MODULES, cache, bundle) == "valid -"


def test_invalid_config_is_explained_by_jsonschema(tmp_path):
    config = default_spec()
    config["mounts"][1]["destination"] = 3
    bundle = make_bundle(tmp_path, config)
    out = run_fresh(LOAD_AND_LIST_MODULES, tmp_path / "cache", bundle)
    result, modules = out.split(" ")
    assert result == "invalid:mounts[1].destination"
    assert "jsonschema" in modules.split(",")
