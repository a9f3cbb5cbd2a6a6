"""The shipped bundles are `pyruntime spec`'s default plus bundles/configure's changes, and
they validate."""

import importlib.machinery
import importlib.util
import json

import pytest

from pyruntime import spec
from tests.support import REPO


def load_configure():
    loader = importlib.machinery.SourceFileLoader("configure", str(REPO / "bundles" / "configure"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("configure", loader))
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["busybox", "httpd"])
def test_committed_config_is_generated(name):
    configure = load_configure()
    assert (REPO / "bundles" / name / "config.json").read_text() == configure.render(name)


@pytest.mark.parametrize("name", ["busybox", "httpd"])
def test_bundle_config_validates(name):
    config = json.loads((REPO / "bundles" / name / "config.json").read_text())
    spec.validate_config(config)
