"""The OCI features document (pyruntime.features): runtime-spec v1.3 and valid."""

from __future__ import annotations

import pytest

from pyruntime.features import features_document
from pyruntime.init import mempolicy
from pyruntime.spec import validate_document
from tests.unit.spec.support import isolated_cache, mutate  # noqa: F401 (isolated_cache is a fixture)


# -- features ----------------------------------------------------------------------------------
def test_features_document_is_1_3_and_valid():
    doc = features_document()
    validate_document(doc, "features")
    assert doc["ociVersionMax"] == "1.3.0"
    assert doc["linux"]["memoryPolicy"] == {"modes": sorted(mempolicy.MODES), "flags": sorted(mempolicy.FLAGS)}
    assert doc["linux"]["netDevices"] == {"enabled": True}
    assert doc["linux"]["mountExtensions"]["idmap"] == {"enabled": True}


@pytest.mark.parametrize("field,value,path", [
    ("linux.memoryPolicy.modes", ["MPOL_RANDOM"], "linux.memoryPolicy.modes[0]"),
    ("linux.memoryPolicy.flags", "MPOL_F_STATIC_NODES", "linux.memoryPolicy.flags"),
    ("linux.netDevices.enabled", "yes", "linux.netDevices.enabled"),
    ("linux.intelRdt.schemata", 1, "linux.intelRdt.schemata"),
])
def test_features_schema_knows_the_1_3_fields(field, value, path):
    from pyruntime.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        validate_document(mutate(features_document(), field, value), "features")
    assert caught.value.problems[0][0] == path
