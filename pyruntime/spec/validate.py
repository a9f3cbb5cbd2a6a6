"""Loading and validating OCI documents: the entry points the runtime calls.

The path for a valid config stays cheap: jsonlite (no json import), the cached fast validator
(see fastcheck) and the plain-Python semantic checks. jsonschema is imported only to explain a document the fast check
rejected.
"""

from __future__ import annotations

import os

from pyruntime import jsondoc, jsonlite, log
from pyruntime.boundedfile import MAX_CONFIG_BYTES, read_bounded_file
from pyruntime.errors import ConfigError, RuntimeUserError
from pyruntime.spec import fastcheck, schemas
from pyruntime.spec.semantics import deprecations, semantic_problems

_SOURCES = {"config": "config.json", "state": "state.json", "features": "features.json"}


def schema_check(document: object, kind: str, schema_dir: str | None = None,
                 cache_dir: str | None = None) -> list[tuple[str, str]]:
    """Schema problems of a document (empty when valid), fast path first."""
    fast = fastcheck.fast_validator(kind, schema_dir, cache_dir)
    if fast is not None and fast(document):
        return []
    from pyruntime.spec.messages import schema_problems, shown

    problems = schema_problems(document, schemas.bundle(kind, schema_dir))
    if fast is not None and not problems:
        # The two validators disagree; trust neither silently.
        problems = [("", f"rejected by the compiled schema check: {shown(document)}")]
    return problems


def validate_config(config: dict, bundle: str | None = None) -> None:
    """Raise ConfigError listing every problem of a config; return None when it is valid.

    With `bundle`, checks that need the bundle's filesystem (root.path exists) run too.
    """
    problems = schema_check(config, "config")
    if problems:
        raise ConfigError(problems, source="config.json")
    problems = semantic_problems(config, bundle)
    if problems:
        raise ConfigError(problems, source="config.json")


def validate_document(doc: dict, kind: str) -> None:
    """Validate a `state` or `features` document against its schema (raises ConfigError)."""
    if kind not in ("state", "features"):
        raise ValueError(f"unknown document kind {kind!r}")
    problems = schema_check(doc, kind)
    if problems:
        raise ConfigError(problems, source=_SOURCES[kind])


# No real config comes near these: podman's, seccomp profile and all, is ~20 KB and 8 deep.
# (MAX_CONFIG_BYTES and read_bounded_file live in pyruntime.boundedfile, light enough for
# exec's --process file on the hot path.)
MAX_CONFIG_DEPTH = 64


def read_config(bundle: str, path: str | None = None) -> dict:
    """Parse `<bundle>/config.json`; every way this can fail becomes a RuntimeUserError.
    Only a regular file of a sane size is read: a FIFO, a device (/dev/zero) or a huge file
    is refused at once rather than read forever."""
    if not os.path.isdir(bundle):
        what = "is not a directory" if os.path.exists(bundle) else "does not exist"
        raise RuntimeUserError(f"bundle {bundle} {what}")
    if path is None:
        path = os.path.join(bundle, "config.json")
        missing = f"bundle {bundle} has no config.json"
    else:
        missing = f"--config {path}: no such file"
    raw = read_bounded_file(path, MAX_CONFIG_BYTES, missing=missing)
    try:
        config = jsonlite.loads(raw)
    except UnicodeDecodeError as e:
        raise RuntimeUserError(f"invalid config.json: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:   # json.JSONDecodeError, named without importing json
        raise RuntimeUserError(
            f"invalid config.json: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    except RecursionError:
        raise RuntimeUserError(f"invalid config.json: nested more than {MAX_CONFIG_DEPTH} levels deep") from None
    try:
        jsondoc.check(config, MAX_CONFIG_DEPTH)
    except jsondoc.JsonDocError as e:
        raise RuntimeUserError(f"invalid config.json: {e}") from None
    return config




def load_config(bundle: str, path: str | None = None) -> dict:
    """Read and validate `<bundle>/config.json` (or the file `path`, checked against that
    bundle); the config dict, or RuntimeUserError/ConfigError. What the spec deprecates but
    allows is accepted with a warning naming the field."""
    config = read_config(bundle, path)
    validate_config(config, bundle)
    for path, message in deprecations(config):
        log.warn(f"config.json: {path}: {message}")
    return config
