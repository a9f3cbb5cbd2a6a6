"""Where the OCI JSON Schemas live and how they become one self-contained schema per document.

The schema files in `oci-schemas/` refer to each other (`defs.json#/definitions/uint32`). Both
validators are handed a bundled copy instead: every referenced file's `definitions` merged into
one, every cross-file `$ref` rewritten to a local one. That keeps jsonschema free of a registry
and lets fastjsonschema generate one module with no remote lookups.

The top-level `oci-schemas/` of a checkout is the only copy in the repository; building a wheel
(or an sdist) puts it into the package as `pyruntime/oci_schemas` (pyproject.toml maps the
directory to that package). So the schemas are found in one of three places: beside the package
(a checkout, an editable install), inside it (a wheel, `pip install .`), or, when the package is
not a plain directory (imported from a zip), through importlib.resources. A directory here is
a path string, or in that last case an importlib.resources Traversable.
"""

from __future__ import annotations

import os

# The document kinds and the schema file each one starts from.
DOCUMENTS = {"config": "config.json", "state": "state.json", "features": "features.json"}

SOURCE_DIR = "oci-schemas"      # top level of a checkout: what is edited
PACKAGED_DIR = "oci_schemas"    # the same files as built into the package


def schema_dir():
    """Where the schema files are (see the module docstring for the order).

    PYRUNTIME_SCHEMA_DIR overrides it (an installed tree that keeps the schemas elsewhere).
    """
    override = os.environ.get("PYRUNTIME_SCHEMA_DIR")
    if override:
        return override
    import pyruntime

    package = os.path.dirname(os.path.abspath(pyruntime.__file__))
    # A checkout's own files first: in a checkout they are the truth, even if a build left a
    # copy inside the package directory.
    for candidate in (os.path.join(os.path.dirname(package), SOURCE_DIR),
                      os.path.join(package, PACKAGED_DIR)):
        if os.path.isfile(os.path.join(candidate, DOCUMENTS["config"])):
            return candidate
    # Not a directory on disk (a zip, another loader): ask the package's loader. Imported only
    # here, as importlib.resources costs several ms to import.
    from importlib.resources import files

    packaged = files("pyruntime") / PACKAGED_DIR
    if not packaged.joinpath(DOCUMENTS["config"]).is_file():
        from pyruntime.errors import RuntimeUserError

        raise RuntimeUserError(f"the OCI schemas are missing from this installation of pyruntime "
                               f"(looked for {SOURCE_DIR}/ beside {package} and {PACKAGED_DIR}/ "
                               f"inside it); reinstall it, or set PYRUNTIME_SCHEMA_DIR")
    return packaged


def schema_files(directory) -> list:
    """All schema files of the directory, in a stable order (they are all part of the cache
    key): paths for a path, Traversables for a Traversable."""
    if isinstance(directory, str):
        return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json"))
    return sorted((e for e in directory.iterdir() if e.name.endswith(".json")), key=lambda e: e.name)


def file_name(entry) -> str:
    return os.path.basename(entry) if isinstance(entry, str) else entry.name


def read_bytes(entry) -> bytes:
    if isinstance(entry, str):
        with open(entry, "rb") as f:
            return f.read()
    return entry.read_bytes()


def _entry(directory, name: str):
    return os.path.join(directory, name) if isinstance(directory, str) else directory / name


def _load(directory, name: str) -> dict:
    import json   # only to compile a validator anew: a cached one needs no schema parsed

    return json.loads(read_bytes(_entry(directory, name)).decode("utf-8"))


def bundle(kind: str, directory=None) -> dict:
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
