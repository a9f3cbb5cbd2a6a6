"""The compiled validators (pyruntime.spec.fastcheck): reused from the cache while the schemas are
unchanged, rebuilt when they change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pyruntime.spec import fastcheck, schemas
from pyruntime.spec.validate import schema_check
from tests.unit.spec.support import VALID, base_config


@pytest.fixture
def dirs(tmp_path):
    schema_dir = tmp_path / "schemas"
    shutil.copytree(schemas.schema_dir(), schema_dir)
    cache_dir = tmp_path / "cache"
    fastcheck.forget()
    yield str(schema_dir), str(cache_dir)
    fastcheck.forget()


def cached_files(cache_dir: str) -> list[str]:
    return sorted(n for n in os.listdir(cache_dir) if n.endswith(".pyc"))


def test_first_use_compiles_and_caches(dirs):
    schema_dir, cache_dir = dirs
    check = fastcheck.fast_validator("config", schema_dir, cache_dir)
    assert check(VALID) and not check({"ociVersion": "1.2.0"})
    files = cached_files(cache_dir)
    assert files == [f"config-{fastcheck.schema_hash(schema_dir)}.pyc"]


def test_cached_validator_is_reused_without_compiling(dirs, monkeypatch):
    schema_dir, cache_dir = dirs
    fastcheck.fast_validator("config", schema_dir, cache_dir)
    fastcheck.forget()

    def no_compiling(*args):
        raise AssertionError("the cached validator should have been used")

    monkeypatch.setattr(fastcheck, "generate_source", no_compiling)
    assert fastcheck.fast_validator("config", schema_dir, cache_dir)(VALID)


def test_changed_schema_regenerates_the_validator(dirs):
    schema_dir, cache_dir = dirs
    assert fastcheck.fast_validator("config", schema_dir, cache_dir)(VALID)
    before = cached_files(cache_dir)

    path = os.path.join(schema_dir, "config.json")
    with open(path) as f:
        schema = json.load(f)
    schema["properties"]["hostname"] = {"type": "string", "maxLength": 3}
    with open(path, "w") as f:
        json.dump(schema, f)
    fastcheck.forget()

    after = cached_files(cache_dir)
    assert after == before  # nothing happens until the next use
    check = fastcheck.fast_validator("config", schema_dir, cache_dir)
    assert not check(VALID)
    assert check(dict(VALID, hostname="abc"))
    after = cached_files(cache_dir)
    assert len(after) == 1 and after != before, "stale validator not replaced"
    # The detailed report comes from the same edited schema.
    assert schema_check(VALID, "config", schema_dir, cache_dir) == [
        ("hostname", 'expected a string, got "a-long-hostname"'),
    ]


def test_change_in_a_shared_definition_also_counts(dirs):
    schema_dir, cache_dir = dirs
    first = fastcheck.schema_hash(schema_dir)
    with open(os.path.join(schema_dir, "defs.json"), "a") as f:
        f.write("\n")
    assert fastcheck.schema_hash(schema_dir) != first


def test_corrupt_cache_file_is_rebuilt(dirs):
    schema_dir, cache_dir = dirs
    fastcheck.fast_validator("config", schema_dir, cache_dir)
    (name,) = cached_files(cache_dir)
    with open(os.path.join(cache_dir, name), "wb") as f:
        f.write(b"\x00garbage")
    fastcheck.forget()
    assert fastcheck.fast_validator("config", schema_dir, cache_dir)(VALID)
    with open(os.path.join(cache_dir, name), "rb") as f:
        assert f.read(8) != b"\x00garbage"


def test_unwritable_cache_falls_back_to_memory(dirs, tmp_path):
    schema_dir, _ = dirs
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    check = fastcheck.fast_validator("config", schema_dir, str(blocker / "cache"))
    assert check(VALID) and not check({})


def test_generated_code_needs_no_schema_library():
    source = fastcheck.generate_source("config", schemas.schema_dir())
    assert "import fastjsonschema" not in source and "from fastjsonschema" not in source
    assert "from decimal" not in source
    assert "import re" not in source


def test_a_valid_config_is_checked_without_importing_re(dirs):
    """ociVersion, capability names, device access and absolute paths all have patterns."""
    schema_dir, cache_dir = dirs
    fastcheck.fast_validator("config", schema_dir, cache_dir)   # compiled and cached here
    bad_version = {**base_config(), "ociVersion": "1.x"}
    code = ("import sys; from pyruntime import jsonlite; from pyruntime.spec import fastcheck; "
            "check = fastcheck.fast_validator('config', sys.argv[1], sys.argv[2]); "
            "print(*(check(jsonlite.loads(doc)) for doc in sys.argv[3:]), 're' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, schema_dir, cache_dir,
                          json.dumps(base_config()), json.dumps(bad_version)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]
