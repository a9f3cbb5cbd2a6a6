"""Property tests: random damage to valid configs only ever yields ConfigError, and the fast
compiled check agrees with jsonschema on what is valid."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyruntime.errors import ConfigError
from pyruntime.spec import fastcheck, schemas, validate_config
from pyruntime.spec.messages import schema_problems
from tests.unit.test_schema_config import base_config, isolated_cache, podman_config  # noqa: F401 (fixture)

BASES = [base_config(), podman_config()]
CONFIG_SCHEMA = schemas.bundle("config")
# Objects whose keys are data (maps), not field names.
MAPS = {"annotations", "sysctl", "unified", "rdma", "timeOffsets"}

json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["", "/", "rootfs", "pid", "user", "SCMP_ACT_ALLOW", "1.2.0", "CAP_KILL", "0-3",
                   "CAP_KILL\n", "1.2.0\n", "/\n", "MB:0=20\n", "2MB\n"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def locations(node, path=()):
    """Every (container path, key) in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key
            yield from locations(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield path, index
            yield from locations(value, path + (index,))


def containers(node, path=()):
    if isinstance(node, dict):
        yield path
        for key, value in node.items():
            yield from containers(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from containers(value, path + (index,))


def at(doc, path):
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def damaged_configs(draw):
    config = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        spots = list(locations(config))
        if not spots:
            break
        parent_path, key = draw(st.sampled_from(spots))
        parent = at(config, parent_path)
        action = draw(st.sampled_from(["replace", "drop", "junk"]))
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "drop":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
        else:
            parent.insert(key, draw(json_values))
    return config


def fast_says_valid(doc) -> bool:
    return fastcheck.fast_validator("config")(doc)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(damaged_configs())
def test_damage_only_ever_raises_config_error(config):
    try:
        validate_config(config)
    except ConfigError as e:
        assert e.problems
        for path, message in e.problems:
            assert isinstance(path, str) and isinstance(message, str) and message


@SETTINGS
@given(damaged_configs())
def test_fast_check_agrees_with_jsonschema(config):
    assert fast_says_valid(config) == (schema_problems(config, CONFIG_SCHEMA) == [])


@SETTINGS
@given(st.sampled_from(BASES), st.data())
def test_unknown_fields_never_make_a_config_invalid(base, data):
    config = copy.deepcopy(base)
    spots = [p for p in containers(config) if isinstance(at(config, p), dict) and (not p or p[-1] not in MAPS)]
    path = data.draw(st.sampled_from(spots))
    key = "x-" + data.draw(st.text(max_size=8))
    at(config, path)[key] = data.draw(json_values)
    validate_config(config)


@SETTINGS
@given(json_values)
def test_any_json_document_is_judged_without_crashing(doc):
    try:
        validate_config(doc)
    except ConfigError:
        pass
    assert fast_says_valid(doc) == (schema_problems(doc, CONFIG_SCHEMA) == [])
