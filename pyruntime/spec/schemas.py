"""Where the OCI JSON Schemas live and how they become one self-contained schema per document.

The schema files in `oci-schemas/` refer to each other (`defs.json#/definitions/uint32`). Both
validators are handed a bundled copy instead: every referenced file's `definitions` merged into
one, every cross-file `$ref` rewritten to a local one. That keeps jsonschema free of a registry
and lets fastjsonschema generate one module with no remote lookups.
"""

from __future__ import annotations

import json
import os

# The document kinds and the schema file each one starts from.
DOCUMENTS = {"config": "config.json", "state": "state.json", "features": "features.json"}


def schema_dir() -> str:
    """The `oci-schemas/` directory: next to the package in a checkout or editable install.

    PYRUNTIME_SCHEMA_DIR overrides it (an installed tree that keeps the schemas elsewhere).
    """
    override = os.environ.get("PYRUNTIME_SCHEMA_DIR")
    if override:
        return override
    import pyruntime

    package = os.path.dirname(os.path.abspath(pyruntime.__file__))
    return os.path.join(os.path.dirname(package), "oci-schemas")


def schema_files(directory: str) -> list[str]:
    """All schema files of the directory, in a stable order (they are all part of the cache key)."""
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json"))


def _load(directory: str, name: str) -> dict:
    with open(os.path.join(directory, name), encoding="utf-8") as f:
        return json.load(f)


def bundle(kind: str, directory: str | None = None) -> dict:
    """The self-contained schema for one document kind (see the module docstring)."""
    directory = directory or schema_dir()
    root = _load(directory, DOCUMENTS[kind])
    definitions: dict[str, dict] = {}
    loaded: dict[str, dict] = {DOCUMENTS[kind]: root}
    pending = [DOCUMENTS[kind]]

    def localise(node, owner: str):
        # Rewrites "file.json#/definitions/X" (and "#/definitions/X" inside another file)
        # to "#/definitions/X" and queues the file whose definitions are then needed.
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    target, _, pointer = value.partition("#")
                    target = target or owner
                    if target not in loaded:
                        loaded[target] = _load(directory, target)
                        pending.append(target)
                    out[key] = "#" + pointer
                else:
                    out[key] = localise(value, owner)
            return out
        if isinstance(node, list):
            return [localise(item, owner) for item in node]
        return node

    result = None
    while pending:
        name = pending.pop(0)
        document = loaded[name]
        for def_name, definition in document.get("definitions", {}).items():
            if def_name in definitions:
                raise ValueError(f"schema definition {def_name!r} is defined twice ({name})")
            definitions[def_name] = localise(definition, name)
        if name == DOCUMENTS[kind]:
            result = localise({k: v for k, v in document.items() if k != "definitions"}, name)
    assert result is not None
    result.pop("$id", None)
    result["definitions"] = definitions
    return result
