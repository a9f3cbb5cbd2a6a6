"""Hypothesis strategies for configs: random damage to valid ones, any JSON value, and where a
document has room for a field."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pyruntime.spec import fastcheck, schemas
from tests.unit.spec.support import base_config, podman_config

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
