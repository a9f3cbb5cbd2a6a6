"""config.json and the other OCI documents: loading, schema and semantic validation, defaults.

    load_config(bundle)            read and validate <bundle>/config.json
    validate_config(config, bundle=None)
    validate_document(doc, kind)   kind "state" or "features"
    default_spec(rootless=False)   what the `spec` command writes

Importing this package stays cheap: jsonschema and fastjsonschema are only imported when a
document turns out invalid or the compiled validator has to be (re)built.
"""

from __future__ import annotations

from pyruntime.spec.validate import load_config, validate_config, validate_document


def default_spec(rootless: bool = False, *, cgroup_ns: bool | None = None) -> dict:
    """The default config.json as a dict; see pyruntime.spec.defaults."""
    from pyruntime.spec.defaults import default_spec as build

    return build(rootless, cgroup_ns=cgroup_ns)

__all__ = ["default_spec", "load_config", "validate_config", "validate_document"]
